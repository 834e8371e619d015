"""The NVML meter: GPU energy from NVML's total-energy counter. The only module that imports pynvml.

``nvmlDeviceGetTotalEnergyConsumption`` returns the energy the board has used since the driver
loaded, in millijoules (Volta and newer); the meter reads it at start() and stop() and reports
the difference. It covers the whole board and every process on that GPU.

Which GPU: ``cuda`` is ``cuda:0``; ``cuda:i`` is the i-th visible CUDA device. When
``CUDA_VISIBLE_DEVICES`` is set, its i-th entry is the NVML device (an index, or a ``GPU-``/``MIG-``
UUID). NVML numbers GPUs in PCI bus order; CUDA does too under ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
(Ray and most launchers), which this mapping assumes.

pynvml is imported inside ``open_nvml_meter`` (through ``factory``), so this package imports on
machines without it. Every ``pynvml.NVMLError`` becomes a ``MeterError`` here.
"""
from __future__ import annotations

import importlib
import os
import time
from typing import Any, Callable

from planner.core.errors import InputError, MeterError
from planner.profiling.energy import EnergyReading

_FIX_INSTALL = "pip install nvidia-ml-py (it provides the pynvml module) on the GPU node"


def _import_pynvml() -> Any:
    return importlib.import_module("pynvml")


def cuda_ordinal(device: str) -> int:
    """0 for "cuda", i for "cuda:i"."""
    if device == "cuda":
        return 0
    _, _, index = device.partition(":")
    if not index.isdigit():
        raise InputError("device", device, "is not a CUDA device string", "use 'cuda' or 'cuda:<index>', e.g. 'cuda:0'")
    return int(index)


def nvml_device_id(ordinal: int, cuda_visible_devices: str | None) -> str:
    """The NVML index or UUID of CUDA device ``ordinal``, through CUDA_VISIBLE_DEVICES when set."""
    if cuda_visible_devices is None:
        return str(ordinal)
    visible = [v.strip() for v in cuda_visible_devices.split(",") if v.strip()]
    if ordinal >= len(visible):
        raise MeterError(f"cuda:{ordinal} is not among CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}",
                         "use a device index below the number of visible GPUs")
    return visible[ordinal]


class NvmlMeter:
    """Implements ``EnergyMeter`` from an NVML total-energy counter; measured, whole board."""

    name = "nvml"
    measured = True

    def __init__(self, nvml: Any, handle: Any, device: str, device_id: str,
                 clock: Callable[[], float] = time.perf_counter):
        self._nvml, self._handle = nvml, handle
        self.device, self.device_id = device, device_id
        self._clock = clock
        self._start: tuple[float, int] | None = None

    def read_mj(self) -> int:
        """The counter now, in millijoules."""
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except self._nvml.NVMLError as exc:
            raise MeterError(f"NVML total-energy counter not readable on GPU {self.device_id} ({exc})",
                             "check the GPU with nvidia-smi and re-run the measurement") from None

    def start(self) -> None:
        self._start = (self._clock(), self.read_mj())

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise MeterError("NVML meter stopped before it was started", "call start() before stop()")
        end_mj = self.read_mj()
        duration_s = self._clock() - self._start[0]
        delta_mj = end_mj - self._start[1]
        if delta_mj < 0:
            raise MeterError(f"NVML energy counter on GPU {self.device_id} went backwards "
                             f"({self._start[1]} -> {end_mj} mJ)", "re-run the measurement (driver reset?)")
        return EnergyReading(energy_j=delta_mj / 1000.0, duration_s=duration_s, meter=self.name,
                             measured=True,
                             detail=f"NVML total-energy counter, GPU {self.device_id} ({self.device}); "
                                    "whole board, all processes on it")

    def close(self) -> None:
        """Release NVML (optional: NVML is also released at process exit)."""
        _shutdown_quietly(self._nvml)


def open_nvml_meter(device: str, *, factory: Callable[[], Any] | None = None) -> NvmlMeter:
    """An NVML meter for ``device`` whose counter has been read once, or MeterError saying why not.

    ``factory`` returns the pynvml module (default: import it); tests inject a fake.
    """
    try:
        nvml = (factory or _import_pynvml)()
    except ImportError:
        raise MeterError("pynvml not installed", _FIX_INSTALL) from None
    device_id = nvml_device_id(cuda_ordinal(device), os.environ.get("CUDA_VISIBLE_DEVICES"))
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise MeterError(f"nvmlInit failed ({exc})",
                         "check that the NVIDIA driver is loaded (nvidia-smi works) on this node") from None
    try:
        if device_id.startswith(("GPU-", "MIG-")):
            handle = nvml.nvmlDeviceGetHandleByUUID(device_id)
        else:
            handle = nvml.nvmlDeviceGetHandleByIndex(int(device_id))
    except (nvml.NVMLError, ValueError) as exc:
        _shutdown_quietly(nvml)
        raise MeterError(f"no NVML device {device_id!r} for {device} ({exc})",
                         "check CUDA_VISIBLE_DEVICES and the device index against nvidia-smi") from None
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # fail now, not in stop(), when there is no counter
    except nvml.NVMLError as exc:
        _shutdown_quietly(nvml)
        raise MeterError(f"total-energy counter not supported on GPU {device_id} ({exc})",
                         "use a Volta or newer GPU with a current driver; until then the catalog "
                         "estimate is used") from None
    return NvmlMeter(nvml, handle, device, device_id)


def _shutdown_quietly(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError:
        pass  # already shut down; nothing left to release
