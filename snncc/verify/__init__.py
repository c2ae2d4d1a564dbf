"""The verification ladder (`snncc verify`): ONNX model → integer reference → interpreter
→ HLS C simulation → RTL simulation, rung by rung (``ladder``, ``hardware``), and the
conversion verdict of `snncc inspect` (``verdict``)."""
