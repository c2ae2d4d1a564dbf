"""The ONNX frontend: loading a model (external data, hostile-file limits), checking it
against the ONNX schemas, constant folding, the quantizer forms (QCDQ, QONNX, QOperator) and
one handler an op, into the canonical IR. Imports only the core."""
