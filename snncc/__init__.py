"""snncc: compile quantized ANN transformers (ONNX) into fully spike-driven SNNs."""

from snncc import ops
from snncc.compiler import CompiledModel, compile, load
from snncc.version import __version__

__all__ = ["CompiledModel", "compile", "load", "ops", "__version__"]
