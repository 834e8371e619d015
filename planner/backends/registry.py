"""The one place that maps a catalog kind to the backend that runs it.

To add a backend: subclass planner.backends.base.Backend and list an instance here. Code
outside planner/backends/ and cluster/ asks ``backend_for(hardware)`` (or reads a trait of
the catalog entry, such as ``HardwareType.is_accelerator``) instead of comparing kinds.
"""
from __future__ import annotations

from types import MappingProxyType

from planner.backends.base import Backend
from planner.backends.jax_tpu import JaxTpuBackend
from planner.backends.torch_devices import TorchCpuBackend, TorchCudaBackend
from planner.core.catalog import KIND_UNIT, HardwareType
from planner.core.errors import InputError

BACKENDS: tuple[Backend, ...] = (TorchCpuBackend(), TorchCudaBackend(), JaxTpuBackend())
_BY_KIND = MappingProxyType({b.kind: b for b in BACKENDS})


def backend_for(hardware: HardwareType) -> Backend:
    """The backend that profiles and serves ``hardware``."""
    backend = _BY_KIND.get(hardware.kind)
    if backend is None:
        raise InputError(f"{hardware.name}.kind", hardware.kind, "no execution backend runs this kind",
                         f"use one of {', '.join(KIND_UNIT)} (planner/backends/registry.py lists the backends)")
    return backend
