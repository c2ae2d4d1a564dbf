"""The interpreter: the plan (integer types, tables, kernels chosen once per graph), the fast
(closed-form exact) and step engines, the integer matrix kernels, and model.snn."""
