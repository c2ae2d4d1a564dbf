"""Running compiled models on data: reading input arrays and data sets, the delay search
of `--latency`, and spreading batches over a Ray cluster. Imports the core, the frontend,
the passes and the backends; the compiler API imports it."""
