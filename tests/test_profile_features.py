"""Profiler features end to end: the store as a cache, regression check, imports, estimates,
training steps, out-of-memory and unsupported precisions recorded instead of dropped."""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import torch

from planner.core.profiles import read_profiles_csv, write_profiles_csv
from planner.models import get_model
from planner.profiling.profiler import QUICK_BUDGET, profile_grid
from tests.conftest import DATA, REPO


class RunsOutOfMemory(torch.nn.Module):
    """A real module that fails as a GPU does when a batch is too big (this machine has no GPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return x.sum(dim=1, keepdim=True)


def oom_factory():
    return RunsOutOfMemory(), lambda b: torch.ones(b, 4)


def planner_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_store_is_a_cache_and_force_measures_again(tmp_path):
    store, out = tmp_path / "store", tmp_path / "p.csv"
    common = ("profile", "--models", "mlp_digits", "--precisions", "fp32", "--batch-sizes", "1,2", "--quick",
              "--store", str(store), "--out", str(out))
    first = planner_cli(*common)
    assert first.returncode == 0 and "2 points measured, 0 from the store" in first.stdout, first.stderr
    second = planner_cli(*common)
    assert "0 points measured, 2 from the store" in second.stdout
    assert [r.measured_at for r in read_profiles_csv(out)]  # the cached rows are written out too
    forced = planner_cli(*common, "--force")
    assert "2 points measured, 0 from the store" in forced.stdout
    exported = tmp_path / "all.csv"
    assert planner_cli("profile", "--store", str(store), "--export-store", str(exported)).returncode == 0
    assert len(read_profiles_csv(exported)) == 2  # upserted by key: forcing replaced, did not duplicate


def test_compare_to_flags_points_slower_than_a_baseline(tmp_path):
    out, baseline = tmp_path / "now.csv", tmp_path / "baseline.csv"
    proc = planner_cli("profile", "--models", "mlp_digits", "--precisions", "fp32", "--batch-sizes", "1",
                       "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    # A baseline where the same point ran in a third of the time: now it is clearly slower.
    rows = [dataclasses.replace(r, latency_p50_ms=r.latency_p50_ms / 3, latency_cv=0.01, samples=1000)
            for r in read_profiles_csv(out)]
    write_profiles_csv(baseline, rows)
    proc = planner_cli("profile", "--models", "mlp_digits", "--precisions", "fp32", "--batch-sizes", "1",
                       "--quick", "--out", str(tmp_path / "again.csv"), "--compare-to", str(baseline))
    assert proc.returncode == 5
    assert "REGRESSED" in proc.stdout.upper() and "slower beyond measurement noise" in proc.stderr


def test_import_perf_analyzer_needs_model_and_writes_rows(tmp_path):
    out = tmp_path / "imported.csv"
    proc = planner_cli("profile", "--import", str(DATA / "perf_analyzer_export.csv"), "--out", str(out))
    assert proc.returncode == 2 and "--models" in proc.stderr and "Traceback" not in proc.stderr
    proc = planner_cli("profile", "--import", str(DATA / "perf_analyzer_export.csv"), "--models", "resnet_small",
                       "--hardware", "t4", "--precisions", "fp16", "--batch-sizes", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = read_profiles_csv(out)
    assert rows and all(r.source == "imported" and r.hardware == "t4" and r.batch_size == 8 for r in rows)


def test_estimate_command_labels_rows_as_estimates(tmp_path):
    out = tmp_path / "est.csv"
    proc = planner_cli("estimate", "--profiles", str(REPO / "profiles" / "reference" / "h100.csv"),
                       "--targets", "l4,a100-80gb", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert {r["hardware"] for r in rows} == {"l4", "a100-80gb"}
    assert all(r["source"] == "estimated" and float(r["uncertainty_pct"]) > 0 for r in rows)
    assert all("roofline estimate from h100" in r["source_detail"] for r in rows)


def test_training_step_rows(catalog):
    from planner.profiling.training import profile_training_point
    row = profile_training_point(get_model("mlp_digits"), "bf16", 16, catalog.get("cpu-x86"), budget=QUICK_BUDGET,
                                 energy_window_s=0.05)
    assert row.mode == "training_step" and row.batch_size == 16 and row.throughput_rps > 0
    assert row.energy_source.startswith(("estimated", "measured")) and "Adam" in row.source_detail


def test_out_of_memory_is_recorded_and_ends_the_precision(catalog):
    spec = get_model("tests.test_profile_features:oom_factory")
    rows, skipped = profile_grid(spec, ["fp32"], [1, 2, 4, 8], catalog.get("cpu-x86"), budget=QUICK_BUDGET,
                                 energy_window_s=0.02)
    assert [r.batch_size for r in rows] == [1, 2]
    assert [(p.batch_size, p.status) for p in skipped] == [(4, "oom"), (8, "oom")]
    assert "out of memory at batch 4" in skipped[0].reason


def test_memory_limit_and_unknown_precision_are_recorded(catalog):
    tiny = dataclasses.replace(catalog.get("cpu-x86"), memory_gib=1e-9)
    rows, skipped = profile_grid(get_model("mlp_digits"), ["fp32", "fp64"], [1, 2], tiny, budget=QUICK_BUDGET,
                                 energy_window_s=0.02)
    assert [r.batch_size for r in rows] == [1]
    statuses = {(p.precision, p.batch_size): p.status for p in skipped}
    assert statuses == {("fp32", 2): "oom", ("fp64", 1): "unsupported", ("fp64", 2): "unsupported"}
