"""The torch backends' device checks, kept apart so the torch harness itself can refuse.

planner.profiling.profiler (the harness the torch backends wrap) calls ``check_torch_device``
before it times anything, so a direct call (bench/gpu_reference.py, a test) refuses too; this
module imports no backend and no harness, so that call makes no import cycle.
"""
from __future__ import annotations

from typing import Callable

from planner.core.catalog import HardwareType
from planner.core.errors import PlannerError


def check_cpu_device(hardware: HardwareType, device: str) -> str:
    if device != "cpu":
        raise PlannerError(f"hardware '{hardware.name}' is a CPU type but device={device!r}. "
                           "To fix: use device='cpu'")
    return device


def check_cuda_device(hardware: HardwareType, device: str) -> str:
    import torch

    # A node may claim a GPU torch cannot see (a fake one in tests, a broken driver).
    if not (device.startswith("cuda") and torch.cuda.is_available()):
        raise PlannerError(f"hardware '{hardware.name}' is a GPU but this process has no CUDA device "
                           f"(device={device!r}); refusing to record CPU timings as GPU timings. "
                           "To fix: run the profile on a node with a real GPU")
    return device


# The kinds torch runs (planner.backends.torch_devices declares the same two backends).
_CHECK_BY_KIND: dict[str, Callable[[HardwareType, str], str]] = {"cpu": check_cpu_device, "gpu": check_cuda_device}


def check_torch_device(hardware: HardwareType, device: str) -> None:
    """Refuse to record torch timings under a hardware type the process is not actually running on."""
    check = _CHECK_BY_KIND.get(hardware.kind)
    if check is None:
        raise PlannerError(f"hardware '{hardware.name}' is a {hardware.kind}, which the torch profiler does not "
                           "time (a TPU is profiled with JAX). To fix: profile it through its backend "
                           f"(planner.backends.registry.backend_for), e.g. planner profile --hardware {hardware.name} "
                           "on a node that has it")
    check(hardware, device)
