"""Execution backends: how a model runs on a kind of device (torch on CPU, torch on CUDA, JAX on TPU)."""
