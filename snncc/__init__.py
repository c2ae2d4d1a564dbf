"""snncc: compile quantized ANN transformers (ONNX) into fully spike-driven SNNs."""

__version__ = "0.1.0"

from snncc import ops  # noqa: E402
from snncc.compiler import CompiledModel, compile, load  # noqa: E402

__all__ = ["CompiledModel", "compile", "load", "ops", "__version__"]
