"""What a compiled model does, counted: firing activity, synaptic operations and energy,
MAC counts of the source ANN, the comparison with onnxruntime, report.json. Imports the
core, the backends (the simulators), the runtime and the compiler API; never the
application."""
