"""`planner plan` and `planner report` as a user runs them: real CP-SAT, files in, files out."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

from tests.conftest import DATA, REPO

PLAN_FIELDS = {"name", "hardware", "precision", "batch_size", "replicas", "predicted_p99_ms",
               "predicted_throughput_rps", "usd_per_hour", "devices", "alternatives"}
ALTERNATIVE_FIELDS = {"hardware", "precision", "batch_size", "replicas", "devices", "predicted_p99_ms",
                      "usd_per_hour", "feasible", "reason"}


def planner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_plan_writes_every_documented_field(tmp_path):
    out = tmp_path / "plan.json"
    proc = planner("plan", "--workloads", str(DATA / "workloads_ok.yaml"),
                   "--profiles", str(DATA / "profiles_small.csv"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(out.read_text())
    assert plan["status"] in ("OPTIMAL", "FEASIBLE")
    for key in ("objective_usd_per_hour", "best_bound_usd_per_hour", "solve_seconds"):
        assert isinstance(plan[key], (int, float))
    assert len(plan["workloads"]) == 3
    for w in plan["workloads"]:
        assert PLAN_FIELDS <= set(w)
        assert w["alternatives"] and all(ALTERNATIVE_FIELDS <= set(a) for a in w["alternatives"])
        assert any(a["feasible"] for a in w["alternatives"])
        assert w["predicted_p99_ms"] <= w["p99_ms_target"]
        assert w["predicted_throughput_rps"] * 0.8 >= w["qps_target"] - 1e-6  # capacity at max utilisation
    total = sum(w["usd_per_hour"] for w in plan["workloads"])
    assert abs(total - plan["objective_usd_per_hour"]) < 1e-6
    assert plan["provenance"]["profile_sources"] == ["imported"]


def test_small_inventory_is_a_clear_infeasibility_and_writes_nothing(tmp_path):
    out = tmp_path / "plan.json"
    proc = planner("plan", "--workloads", str(DATA / "workloads_small_inventory.yaml"),
                   "--profiles", str(DATA / "profiles_small.csv"), "--out", str(out))
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    infeasible = [line for line in proc.stderr.splitlines() if line.startswith("infeasible:")]
    assert len(infeasible) == 1
    assert "workload 'images'" in infeasible[0] and "inventory limit is binding" in infeasible[0]
    assert "cpu-x86" in infeasible[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_allow_partial_writes_the_placed_part(tmp_path):
    out = tmp_path / "plan.json"
    proc = planner("plan", "--workloads", str(DATA / "workloads_small_inventory.yaml"),
                   "--profiles", str(DATA / "profiles_small.csv"), "--out", str(out), "--allow-partial")
    assert proc.returncode == 3
    plan = json.loads(out.read_text())
    assert plan["status"] == "INFEASIBLE" and len(plan["infeasible"]) == 1
    assert {w["name"] for w in plan["workloads"]} == {"digits", "text"}


def test_reports_agree_across_formats(tmp_path):
    plan_path = tmp_path / "plan.json"
    assert planner("plan", "--workloads", str(DATA / "workloads_ok.yaml"), "--profiles",
                   str(DATA / "profiles_small.csv"), "--out", str(plan_path)).returncode == 0
    assert planner("report", str(plan_path), "--format", "csv", "--out", str(tmp_path / "r.csv")).returncode == 0
    assert planner("report", str(plan_path), "--format", "json", "--out", str(tmp_path / "r.json")).returncode == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    data = json.loads((tmp_path / "r.json").read_text())
    plan = json.loads(plan_path.read_text())
    total_csv = next(r for r in rows if r["scope"] == "total")
    total_json = next(r for r in data["rows"] if r["scope"] == "total")
    assert float(total_csv["usd_per_hour"]) == total_json["usd_per_hour"]
    assert abs(total_json["usd_per_hour"] - plan["objective_usd_per_hour"]) < 1e-6
    assert abs(total_json["usd_per_month"] - 730 * total_json["usd_per_hour"]) < 1e-6
    per_workload = [r for r in data["rows"] if r["scope"] == "workload"]
    per_hardware = [r for r in data["rows"] if r["scope"] == "hardware"]
    assert len(per_workload) == 3 and per_hardware
    assert abs(sum(r["usd_per_hour"] for r in per_hardware) - total_json["usd_per_hour"]) < 1e-6
    for r in per_workload:
        expected = r["usd_per_hour"] / (r["requests_per_s"] * 3600) * 1e6
        assert abs(r["usd_per_million_requests"] - expected) < 1e-6


def test_unknown_report_format_is_a_usage_error(tmp_path):
    proc = planner("report", str(tmp_path / "missing.json"), "--format", "csv", "--out", str(tmp_path / "r.csv"))
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr
