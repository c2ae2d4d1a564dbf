"""Backends read the SNN IR (never ONNX): ``sim`` (the interpreter), ``hls``, ``verilog``.

Each has ``check(graph) -> list[Diagnostic]`` (run before anything is written) and
``emit(graph, out_dir, ...)``.
"""
