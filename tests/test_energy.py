"""Energy meters: the fallback chain on this machine, RAPL and NVML on fakes, the estimate's arithmetic.

This machine has no RAPL powercap tree, no GPU and no pynvml, so the RAPL and NVML meters are
exercised on fakes of that hardware (``make_fake_powercap_tree``, ``FakeNvml``); the estimate
meter and the fallback chain run for real.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import pytest

from planner.core.catalog import load_catalog
from planner.core.errors import InputError, MeterError
from planner.profiling.energy import EnergyReading, energy_per_item_j, select_meter
from planner.profiling.energy.estimate import EstimateMeter
from planner.profiling.energy.nvml import NvmlMeter, nvml_device_id
from planner.profiling.energy.rapl import RaplMeter, counter_delta_uj

CATALOG = load_catalog()
CPU_X86 = CATALOG.get("cpu-x86")
H100 = CATALOG.get("h100")


def _idle_busy_w(hw) -> tuple[float, float]:
    return hw.power_idle_w, hw.power_max_w  # cpu-x86: 0.7 W and 3.5 W per vCPU


# ---------------------------------------------------------------- the real machine

def _readable_rapl_package(root: Path) -> bool:
    """Independent of planner.profiling.energy.rapl: does this host expose a readable package counter?"""
    if not root.is_dir():
        return False
    for zone in root.glob("*:*"):
        try:
            if (zone / "name").read_text().startswith("package"):
                int((zone / "energy_uj").read_text())
                return True
        except (OSError, ValueError):
            continue
    return False


def test_real_machine_cpu_meter_is_rapl_if_readable_else_estimate():
    meter = select_meter("cpu", CPU_X86, threads=1)
    meter.start()
    sum(i * i for i in range(20_000))
    reading = meter.stop()
    if _readable_rapl_package(Path("/sys/class/powercap")):
        assert isinstance(meter, RaplMeter) and reading.measured and reading.meter == "rapl"
        assert reading.label().startswith("measured: rapl")
    else:
        assert isinstance(meter, EstimateMeter) and meter.measured is False
        assert reading.measured is False and reading.meter == "estimate"
        assert reading.label().startswith("estimated") and "no RAPL" in reading.detail
    assert reading.energy_j >= 0 and reading.duration_s > 0


# ---------------------------------------------------------------- RAPL on a fake powercap tree

def make_fake_powercap_tree(root: Path, packages: dict[int, int], max_uj: int = 262_143_328_850) -> Path:
    """A FAKE /sys/class/powercap (this machine has no RAPL): package zones plus distractors.

    ``packages`` maps socket index -> energy_uj. Also writes the control-type directory and a
    core sub-zone (``intel-rapl:N:0``), which the meter must not count.
    """
    (root / "intel-rapl").mkdir(parents=True)
    for socket, energy_uj in packages.items():
        zone = root / f"intel-rapl:{socket}"
        zone.mkdir()
        (zone / "name").write_text(f"package-{socket}\n")
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
        sub = root / f"intel-rapl:{socket}:0"
        sub.mkdir()
        (sub / "name").write_text("core\n")
        (sub / "energy_uj").write_text("999999999\n")
    return root


def _set_energy(root: Path, socket: int, energy_uj: int) -> None:
    (root / f"intel-rapl:{socket}" / "energy_uj").write_text(f"{energy_uj}\n")
    (root / f"intel-rapl:{socket}:0" / "energy_uj").write_text("1\n")  # sub-zone noise, ignored


def test_rapl_sums_two_package_domains(tmp_path):
    root = make_fake_powercap_tree(tmp_path / "powercap", {0: 1_000_000, 1: 5_000_000})
    meter = select_meter("cpu", CPU_X86, threads=4, rapl_root=root)
    assert isinstance(meter, RaplMeter) and meter.measured
    meter.start()
    _set_energy(root, 0, 3_500_000)  # +2.5 J
    _set_energy(root, 1, 5_750_000)  # +0.75 J
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(3.25)
    assert reading.measured and reading.meter == "rapl"
    assert "2 domains" in reading.detail and "whole socket" in reading.detail
    assert reading.label().startswith("measured: rapl")


def test_rapl_undoes_counter_wraparound(tmp_path):
    max_uj = 10_000_000
    root = make_fake_powercap_tree(tmp_path / "powercap", {0: max_uj - 1_000_000}, max_uj=max_uj)
    meter = select_meter("cpu", CPU_X86, rapl_root=root)
    meter.start()
    _set_energy(root, 0, 500_000)  # wrapped: 1.0 J to the top, then 0.5 J
    assert meter.stop().energy_j == pytest.approx(1.5)
    with pytest.raises(MeterError, match="went backwards"):
        counter_delta_uj(100, 40, None, "intel-rapl:0")


def test_rapl_unreadable_counter_falls_back_to_estimate_with_reason(tmp_path):
    root = make_fake_powercap_tree(tmp_path / "powercap", {0: 1})
    counter = root / "intel-rapl:0" / "energy_uj"
    counter.unlink()
    counter.mkdir()  # reading it now fails even as root (chmod 000 would not stop root)
    meter = select_meter("cpu", CPU_X86, rapl_root=root)
    assert isinstance(meter, EstimateMeter)
    meter.start()
    reading = meter.stop()
    assert reading.detail.startswith("estimated (no RAPL: cannot read ")
    assert "energy_uj" in reading.detail and reading.measured is False


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_rapl_permission_denied_falls_back_with_fix(tmp_path):
    root = make_fake_powercap_tree(tmp_path / "powercap", {0: 1})
    (root / "intel-rapl:0" / "energy_uj").chmod(0)
    meter = select_meter("cpu", CPU_X86, rapl_root=root)
    meter.start()
    assert "not readable by this user" in meter.stop().detail


def test_rapl_absent_and_empty_trees_fall_back(tmp_path):
    absent = select_meter("cpu", CPU_X86, rapl_root=tmp_path / "nope")
    absent.start()
    assert f"no RAPL: {tmp_path / 'nope'} absent" in absent.stop().detail
    (tmp_path / "empty").mkdir()
    empty = select_meter("cpu", CPU_X86, rapl_root=tmp_path / "empty")
    empty.start()
    assert "no package domain" in empty.stop().detail


# ---------------------------------------------------------------- NVML: absent here, and a fake

class FakeNvmlError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNvml:
    """A FAKE pynvml module for GPUs this machine lacks: one counter (mJ) per GPU index."""

    NVMLError = FakeNvmlError

    def __init__(self, counters_mj: dict[int, int], supported: bool = True):
        self.counters_mj, self.supported = counters_mj, supported
        self.initialised = 0

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index not in self.counters_mj:
            raise FakeNvmlError("Invalid Argument")
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not self.supported:
            raise FakeNvmlError("Not Supported")
        return self.counters_mj[handle]

    def advance(self, index: int, mj: int) -> None:
        self.counters_mj[index] += mj


def test_nvml_absent_falls_back_to_estimate(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    # None in sys.modules makes `import pynvml` raise ImportError, installed or not: the test runs everywhere.
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter = select_meter("cuda:0", H100)
    assert isinstance(meter, EstimateMeter) and not meter.measured
    meter.start()
    reading = meter.stop()
    assert reading.detail.startswith("estimated (NVML unavailable: pynvml not installed)")
    assert "utilisation assumed 1.0" in reading.detail
    assert reading.power_w == pytest.approx(H100.power_max_w, rel=1e-6)  # busy -> max power


def test_fake_nvml_delta_in_joules(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml({0: 10_000, 1: 50_000_000})
    meter = select_meter("cuda:1", H100, nvml_factory=lambda: fake)
    assert isinstance(meter, NvmlMeter) and meter.measured
    meter.start()
    fake.advance(1, 123_456)  # 123.456 J on GPU 1
    fake.advance(0, 999_999)  # another GPU: not counted
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(123.456)
    assert reading.meter == "nvml" and reading.measured
    assert reading.label().startswith("measured: nvml, NVML total-energy counter, GPU 1")
    meter.close()
    assert fake.initialised == 0


def test_fake_nvml_maps_through_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    fake = FakeNvml({1: 0, 3: 0})
    meter = select_meter("cuda:0", H100, nvml_factory=lambda: fake)
    meter.start()
    fake.advance(3, 2_000)
    assert meter.stop().energy_j == pytest.approx(2.0)
    assert nvml_device_id(1, "GPU-abc, GPU-def") == "GPU-def"
    with pytest.raises(MeterError, match="not among CUDA_VISIBLE_DEVICES"):
        nvml_device_id(2, "3,1")


def test_fake_nvml_unsupported_counter_falls_back(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml({0: 0}, supported=False)
    meter = select_meter("cuda", H100, nvml_factory=lambda: fake, gpu_utilisation=0.5)
    assert isinstance(meter, EstimateMeter)
    meter.start()
    reading = meter.stop()
    assert "NVML unavailable: total-energy counter not supported on GPU 0" in reading.detail
    assert "utilisation given by the caller" in reading.detail
    assert fake.initialised == 0  # released after the failed probe


# ---------------------------------------------------------------- the estimate's arithmetic

def test_estimate_busy_cpu_is_near_full_power():
    meter = select_meter("cpu", CPU_X86, threads=1, rapl_root="/nonexistent-powercap")
    meter.start()
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        pass
    reading = meter.stop()
    idle_w, max_w = _idle_busy_w(CPU_X86)
    util = (reading.power_w - idle_w) / (max_w - idle_w)
    assert util > 0.8
    assert reading.energy_j == pytest.approx(reading.duration_s * (idle_w + (max_w - idle_w) * util), rel=1e-9)
    assert reading.energy_j == pytest.approx(0.2 * max_w, rel=0.25)


def test_estimate_sleeping_cpu_is_near_idle():
    meter = select_meter("cpu", CPU_X86, threads=1, rapl_root="/nonexistent-powercap")
    meter.start()
    time.sleep(0.2)
    reading = meter.stop()
    idle_w, max_w = _idle_busy_w(CPU_X86)
    assert reading.power_w == pytest.approx(idle_w, abs=0.1 * (max_w - idle_w))


def test_estimate_exact_with_injected_clocks():
    wall, cpu = iter([100.0, 102.0]), iter([5.0, 6.0])  # 2 s wall, 1 s CPU on 2 threads -> 0.25
    meter = EstimateMeter.for_cpu(CPU_X86, 2, clock=lambda: next(wall), cpu_clock=lambda: next(cpu))
    meter.start()
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(2 * (0.7 + (3.5 - 0.7) * 0.25) * 2.0)
    assert reading.detail.startswith("estimated: 2 vcpu x (catalog idle 0.7 W + (3.5-0.7) W x utilisation 0.25)")


def test_estimate_missing_catalog_figures():
    no_idle = dataclasses.replace(H100, power_idle_w=None)
    t = iter([0.0, 1.0])
    meter = EstimateMeter.for_accelerator(no_idle, 0.5, clock=lambda: next(t))
    meter.start()
    reading = meter.stop()
    assert reading.energy_j == pytest.approx(140 + (700 - 140) * 0.5)
    assert "assumed 0.2 x max = 140 W" in reading.detail
    no_power = dataclasses.replace(H100, power_idle_w=None, power_max_w=None)
    meter = select_meter("cuda:0", no_power, nvml_factory=_no_pynvml)
    meter.start()
    reading = meter.stop()
    assert reading.energy_j == 0 and "no power figure in the catalog" in reading.detail
    with pytest.raises(InputError, match="utilisation"):
        EstimateMeter.for_accelerator(H100, 1.5)


def _no_pynvml():
    raise ImportError("fake: no pynvml")


# ---------------------------------------------------------------- the reading

def test_reading_power_label_and_per_item():
    r = EnergyReading(energy_j=10.0, duration_s=2.0, meter="estimate", measured=False, detail="catalog model")
    assert r.power_w == 5.0 and r.label() == "estimated: catalog model"
    assert energy_per_item_j(r, 4) == 2.5
    assert EnergyReading(0.0, 0.0, "rapl", True, "x").power_w == 0.0
    with pytest.raises(InputError, match="items"):
        energy_per_item_j(r, 0)
