"""Execution backends: how a model runs on a kind of device (torch on CPU, torch on CUDA, JAX on TPU).

``planner.backends.registry.backend_for(hardware)`` gives the backend of a catalog entry: what
it supports, its device check, its measurements, its Ray options and its Serve replica settings
(planner/backends/base.py). Nothing is imported here, so the torch harness can import
planner.backends.torch_checks without importing the backends that wrap it.
"""
