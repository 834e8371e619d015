"""The estimate meter: energy from the catalog's per-unit power figures and a utilisation.

The power model, per unit of the catalog (one vCPU, one GPU)::

    power_w  = units x (idle_w + (max_w - idle_w) x utilisation)
    energy_j = power_w x duration_s

Utilisation, in [0, 1]:

- CPU (``for_cpu``): units = threads, utilisation = process CPU time / (wall time x threads),
  both measured between start() and stop() (``time.process_time`` and ``time.perf_counter``),
  clipped to [0, 1]. Process CPU time counts every thread of this process, so a busy
  background thread counts as load too; it is still an estimate.
- GPU or other accelerator (``for_accelerator``): units = 1, utilisation given by the caller,
  else 1.0 (the device is assumed busy while it is being timed).

Missing catalog figures: no idle figure -> idle = 0.2 x max (assumed, and the detail says so);
no max figure -> energy 0 with "no power figure in the catalog". Every reading is measured=False.
"""
from __future__ import annotations

import time
from typing import Callable

from planner.core.catalog import HardwareType
from planner.core.costs import IDLE_FRACTION_WHEN_UNKNOWN
from planner.core.errors import InputError, MeterError
from planner.profiling.energy import EnergyReading


def estimate_power_w(hardware: HardwareType, units: float, utilisation: float) -> tuple[float, str]:
    """Mean power of ``units`` units at ``utilisation`` and how it was worked out (pure)."""
    if hardware.power_max_w is None:
        return 0.0, f"no power figure in the catalog for {hardware.name} (energy 0)"
    max_w = hardware.power_max_w
    if hardware.power_idle_w is None:
        idle_w = IDLE_FRACTION_WHEN_UNKNOWN * max_w
        idle_note = f"; catalog has no idle figure, assumed {IDLE_FRACTION_WHEN_UNKNOWN:g} x max = {idle_w:g} W"
        idle_text = f"assumed idle {idle_w:g} W"
    else:
        idle_w = hardware.power_idle_w
        idle_note, idle_text = "", f"catalog idle {idle_w:g} W"
    power_w = units * (idle_w + (max_w - idle_w) * utilisation)
    how = (f"{units:g} {hardware.unit} x ({idle_text} + ({max_w:g}-{idle_w:g}) W x utilisation "
           f"{utilisation:.2f}) = {power_w:.4g} W{idle_note}")
    return power_w, how


class EstimateMeter:
    """Implements ``EnergyMeter`` from the catalog power model; never measured.

    Build it with ``for_cpu`` or ``for_accelerator``. Clocks are injectable so tests can
    drive time without sleeping.
    """

    name = "estimate"
    measured = False

    def __init__(self, hardware: HardwareType, units: int, *, cpu_threads: int | None = None,
                 utilisation: float | None = None, fallback_reason: str | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.process_time):
        if utilisation is not None and not 0.0 <= utilisation <= 1.0:
            raise InputError("utilisation", utilisation, "must be between 0 and 1",
                             "pass the device's busy fraction, e.g. 0.63, or leave it out to assume 1.0")
        self.hardware, self.units = hardware, units
        self.cpu_threads, self.utilisation = cpu_threads, utilisation
        self.fallback_reason = fallback_reason
        self._clock, self._cpu_clock = clock, cpu_clock
        self._start: tuple[float, float] | None = None

    @classmethod
    def for_cpu(cls, hardware: HardwareType, threads: int, *, fallback_reason: str | None = None,
                clock: Callable[[], float] = time.perf_counter,
                cpu_clock: Callable[[], float] = time.process_time) -> "EstimateMeter":
        """``threads`` vCPUs, utilisation measured from this process's CPU time."""
        return cls(hardware, threads, cpu_threads=threads, fallback_reason=fallback_reason,
                   clock=clock, cpu_clock=cpu_clock)

    @classmethod
    def for_accelerator(cls, hardware: HardwareType, utilisation: float | None = None, *,
                        fallback_reason: str | None = None,
                        clock: Callable[[], float] = time.perf_counter) -> "EstimateMeter":
        """One GPU (or other accelerator) at ``utilisation`` (default 1.0: busy while timed)."""
        return cls(hardware, 1, utilisation=utilisation, fallback_reason=fallback_reason, clock=clock)

    def start(self) -> None:
        self._start = (self._clock(), self._cpu_clock())

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise MeterError("estimate meter stopped before it was started", "call start() before stop()")
        wall_s = self._clock() - self._start[0]
        cpu_s = self._cpu_clock() - self._start[1]
        if self.cpu_threads is not None:
            utilisation = min(1.0, max(0.0, cpu_s / (wall_s * self.cpu_threads))) if wall_s > 0 else 0.0
            source = (f"CPU utilisation = process CPU time {cpu_s:.3g} s / (wall {wall_s:.3g} s x "
                      f"{self.cpu_threads} thread{'s' if self.cpu_threads != 1 else ''})")
        elif self.utilisation is not None:
            utilisation, source = self.utilisation, "utilisation given by the caller"
        else:
            utilisation, source = 1.0, "utilisation assumed 1.0 (busy while timing)"
        power_w, how = estimate_power_w(self.hardware, self.units, utilisation)
        if self.hardware.power_max_w is not None:
            how = f"{how}; {source}"
        reason = f" ({self.fallback_reason})" if self.fallback_reason else ""
        return EnergyReading(energy_j=power_w * wall_s, duration_s=wall_s, meter=self.name,
                             measured=False, detail=f"estimated{reason}: {how}")
