"""The pure core: the records every stage exchanges and the models that price and time them.

Workload specs, the hardware catalog, profile rows, the plan record, inventory sources,
the latency and cost model, errors and file I/O. Imports only the standard library,
numpy, PyYAML and pydantic: never torch, Ray, Serve, Streamlit, JAX, NVML or OR-Tools
(tests/test_layout.py checks it).
"""
