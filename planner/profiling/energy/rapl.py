"""The RAPL meter: CPU package energy from Linux powercap (``/sys/class/powercap``).

Each top-level powercap zone (``intel-rapl:0``, ``intel-rapl:1``, ...; AMD CPUs appear under
the same driver) whose ``name`` file starts with ``package`` has a monotonic ``energy_uj``
counter in microjoules. The meter sums the package zones' deltas between start() and stop().
Sub-zones (``intel-rapl:0:0`` = core, dram, ...) are inside the package and are not added.

Wraparound: a counter runs from 0 to ``max_energy_range_uj`` and then restarts at 0, so an
end value below the start value means ``delta = (max - start) + end``. A second wrap within one
interval cannot be seen (Intel's range is ~262 kJ: minutes at full socket power, while a
profile point lasts seconds).

RAPL measures whole sockets: every core and every process on them, not just this process;
the reading's detail says so. Since Linux 5.10 ``energy_uj`` is readable by root only
(CVE-2020-8694); an unreadable counter makes ``open_rapl_meter`` raise ``MeterError``, which
``select_meter`` turns into a fallback to the estimate.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from planner.core.errors import MeterError
from planner.profiling.energy import EnergyReading

_FIX_PERMISSION = ("run as root, or let this user read the counters "
                   "(sudo chmod o+r /sys/class/powercap/*/energy_uj)")


@dataclass(frozen=True)
class RaplDomain:
    zone: str  # directory name, e.g. "intel-rapl:0"
    name: str  # contents of its name file, e.g. "package-0"
    energy_path: Path
    max_energy_range_uj: int | None  # None when the file is missing: wraparound then cannot be undone


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise MeterError(f"{path} is not readable by this user", _FIX_PERMISSION) from None
    except (OSError, ValueError) as exc:
        raise MeterError(f"cannot read {path} ({type(exc).__name__})",
                         "check that the powercap (intel_rapl) kernel driver is loaded") from None


def find_package_domains(root: str | Path) -> list[RaplDomain]:
    """Top-level package zones under ``root`` (raises MeterError when there are none)."""
    root = Path(root)
    if not root.is_dir():
        raise MeterError(f"{root} absent", "use a Linux host with the intel_rapl powercap driver loaded")
    found: dict[str, RaplDomain] = {}
    # Plain zones before "-mmio" ones: intel-rapl-mmio:0 repeats package-0 on some Intel CPUs,
    # so a package name already seen is skipped rather than counted twice.
    zones = sorted(root.iterdir(), key=lambda p: ("mmio" in p.name, p.name))
    for zone in zones:
        if zone.name.count(":") != 1 or not (zone / "energy_uj").exists():
            continue  # the control-type directory ("intel-rapl") or a sub-zone ("intel-rapl:0:0")
        try:
            name = (zone / "name").read_text().strip()
        except OSError:
            continue
        if not name.startswith("package") or name in found:
            continue
        max_file = zone / "max_energy_range_uj"
        max_uj = _read_int(max_file) if max_file.exists() else None
        found[name] = RaplDomain(zone.name, name, zone / "energy_uj", max_uj)
    if not found:
        raise MeterError(f"no package domain under {root}",
                         "use a Linux host whose powercap tree has intel-rapl:N zones named package-N")
    return list(found.values())


def counter_delta_uj(start_uj: int, end_uj: int, max_energy_range_uj: int | None, where: str) -> int:
    """Energy between two counter values, undoing one wraparound (pure)."""
    if end_uj >= start_uj:
        return end_uj - start_uj
    if max_energy_range_uj is None:
        raise MeterError(f"RAPL counter {where} went backwards and has no max_energy_range_uj",
                         "re-run the measurement (the counter wrapped or was reset)")
    return (max_energy_range_uj - start_uj) + end_uj


class RaplMeter:
    """Implements ``EnergyMeter`` from RAPL package counters; measured, whole sockets."""

    name = "rapl"
    measured = True

    def __init__(self, domains: list[RaplDomain], clock: Callable[[], float] = time.perf_counter):
        self.domains = domains
        self._clock = clock
        self._start: tuple[float, list[int]] | None = None

    def _read_all(self) -> list[int]:
        return [_read_int(d.energy_path) for d in self.domains]

    def start(self) -> None:
        self._start = (self._clock(), self._read_all())

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise MeterError("RAPL meter stopped before it was started", "call start() before stop()")
        end_uj = self._read_all()
        duration_s = self._clock() - self._start[0]
        total_uj = sum(counter_delta_uj(s, e, d.max_energy_range_uj, d.zone)
                       for d, s, e in zip(self.domains, self._start[1], end_uj))
        zones = ", ".join(f"{d.zone} {d.name}" for d in self.domains)
        detail = (f"RAPL package energy counter, {len(self.domains)} domain"
                  f"{'s' if len(self.domains) != 1 else ''} ({zones}); whole socket: all cores "
                  "and processes, not just this one")
        return EnergyReading(energy_j=total_uj / 1e6, duration_s=duration_s, meter=self.name,
                             measured=True, detail=detail)


def open_rapl_meter(root: str | Path = "/sys/class/powercap") -> RaplMeter:
    """A RAPL meter whose counters have been read once, or MeterError saying why not."""
    meter = RaplMeter(find_package_domains(root))
    meter._read_all()  # fail now, not in stop(), when a counter is unreadable
    return meter
