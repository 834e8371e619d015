"""Energy meters: how many joules a stretch of work used, and where that figure came from.

One interface, three implementations, one fallback chain:

    meter = select_meter(device, hardware, threads)
    meter.start(); ...work...; reading = meter.stop()
    reading.energy_j, reading.label()   # label -> ProfileRow.energy_source

=============  ==========================  ===============================================
device         first choice                fallback
=============  ==========================  ===============================================
``cuda[:i]``   NVML total-energy counter   catalog power model (``estimate.py``)
``cpu``        Linux RAPL package counter  catalog power model
anything else  (none)                      catalog power model
=============  ==========================  ===============================================

A missing meter never raises: the fallback's reason goes into ``EnergyReading.detail``
(e.g. ``"estimated (no RAPL: /sys/class/powercap absent): ..."``), and only readings from
a real hardware counter carry ``measured=True``. Each vendor SDK is imported in one file
only (``nvml.py`` for pynvml); this package imports without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from planner.core.catalog import HardwareType
from planner.core.errors import InputError, MeterError


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one start()/stop() interval of a meter."""

    energy_j: float
    duration_s: float
    meter: str  # "nvml" | "rapl" | "estimate"
    measured: bool  # True only for a real hardware counter
    detail: str  # what was read or assumed, and why this meter (fallback reason)

    @property
    def power_w(self) -> float:
        """Mean power over the interval (0 for an empty interval)."""
        return self.energy_j / self.duration_s if self.duration_s > 0 else 0.0

    def label(self) -> str:
        """One line for ``ProfileRow.energy_source``: starts with "measured: " or "estimated"."""
        if self.measured:
            return f"measured: {self.meter}, {self.detail}"
        return self.detail if self.detail.startswith("estimated") else f"estimated: {self.detail}"


class EnergyMeter(Protocol):
    """Measures (or estimates) energy between ``start()`` and ``stop()``; reusable for many intervals."""

    name: str
    measured: bool

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...


def energy_per_item_j(reading: EnergyReading, items: int) -> float:
    """Joules per item when ``items`` items were processed during the reading's interval."""
    if items < 1:
        raise InputError("items", items, "must be a positive count",
                         "pass the number of items processed while the meter ran (batches x batch size)")
    return reading.energy_j / items


def select_meter(device: str, hardware: HardwareType, threads: int = 1, *,
                 rapl_root: str | Path = "/sys/class/powercap",
                 nvml_factory: Callable[[], Any] | None = None,
                 gpu_utilisation: float | None = None) -> EnergyMeter:
    """The best meter this machine has for ``device``; the catalog estimate when none works.

    ``threads`` is the number of vCPUs the work runs on (the estimate's unit count on CPU).
    ``nvml_factory`` returns a pynvml-like module (tests inject a fake); ``gpu_utilisation``
    is passed to the GPU estimate when NVML is unavailable (default: busy, 1.0).
    """
    # Imported here, not at the top: the submodules import EnergyReading from this package.
    from planner.profiling.energy.estimate import EstimateMeter
    from planner.profiling.energy.nvml import open_nvml_meter
    from planner.profiling.energy.rapl import open_rapl_meter

    if threads < 1:
        raise InputError("threads", threads, "must be at least 1", "pass the number of CPU threads the work uses")
    if device == "cpu":
        try:
            return open_rapl_meter(rapl_root)
        except MeterError as exc:
            return EstimateMeter.for_cpu(hardware, threads, fallback_reason=f"no RAPL: {exc.reason}")
    if device == "cuda" or device.startswith("cuda:"):
        try:
            return open_nvml_meter(device, factory=nvml_factory)
        except MeterError as exc:
            return EstimateMeter.for_accelerator(hardware, utilisation=gpu_utilisation,
                                                 fallback_reason=f"NVML unavailable: {exc.reason}")
    return EstimateMeter.for_accelerator(hardware, utilisation=gpu_utilisation,
                                         fallback_reason=f"no energy meter for device {device!r}")


__all__ = ["EnergyMeter", "EnergyReading", "energy_per_item_j", "select_meter"]
