"""`planner demo` end to end, as `make demo` runs it (quick mode, own embedded Ray, a free port)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from tests.conftest import REPO, free_port

FIELDS = {"name", "hardware", "precision", "batch_size", "replicas", "predicted_p99_ms",
          "predicted_throughput_rps", "usd_per_hour", "devices", "alternatives"}


def test_demo_profiles_plans_deploys_verifies_and_reports(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "planner", "demo", "--out", str(out), "--quick",
                           "--duration", "4", "--port", str(free_port())],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    plan = json.loads((out / "plan.json").read_text())
    assert plan["status"] in ("OPTIMAL", "FEASIBLE")
    assert len(plan["workloads"]) >= 3
    for w in plan["workloads"]:
        assert FIELDS <= set(w)
        # Every choice says where its numbers came from; CPU choices were measured here.
        assert w["profile_source"].split(":")[0] in ("measured", "estimated", "imported")
        if w["hardware"] == "cpu-x86":
            assert w["profile_source"].startswith("measured") and "imported" not in w["profile_source"]
    # The high-demand workload does not fit the 16 vCPUs: the plan puts it on an accelerator.
    assert next(w for w in plan["workloads"] if w["name"] == "video-frames")["hardware"] != "cpu-x86"

    profiles = list(csv.DictReader((out / "profiles.csv").open()))
    assert profiles and all(r["source"] == "measured" and r["hardware"] == "cpu-x86" for r in profiles)
    assert {r["precision"] for r in profiles} >= {"fp32", "bf16"}
    planned = list(csv.DictReader((out / "profiles_planned.csv").open()))
    assert {r["source"] for r in planned} == {"measured", "estimated"}
    assert all(r["source"] == "estimated" for r in planned if r["hardware"] in ("t4", "l4", "tpu-v5e"))

    verify = json.loads((out / "verify.json").read_text())
    skipped = {s["name"]: s["reason"] for s in verify["skipped"]}
    assert "video-frames" in skipped and "has none" in skipped["video-frames"]
    assert {w["name"] for w in verify["workloads"]} | set(skipped) == {w["name"] for w in plan["workloads"]}
    # This machine serves the plan's online CPU workloads, planned again for its own cores and the
    # serving path measured on it; each verified with enough requests for a bounded p99 interval.
    assert {w["name"] for w in verify["workloads"]} == {w["name"] for w in plan["workloads"]
                                                       if w["hardware"] == "cpu-x86" and w["kind"] == "online"}
    assert len(verify["workloads"]) >= 3  # the demo's point: most of the plan is driven with real load here
    for w in verify["workloads"]:
        assert w["errors"] == 0 and w["p50_ms"] > 0 and w["p99_ms"] >= w["p50_ms"]
        assert {"qps_target", "throughput_rps", "predicted_p99_ms", "pass", "prediction_ratio", "within_band"} <= set(w)
        assert w["requests"] >= 400 and w["p99_ci_high_ms"] is not None
    local = json.loads((out / "plan_local.json").read_text())
    assert local["serving_path"]["source"] == "measured" and local["inventory"]["cpu-x86"] <= os.cpu_count()
    assert sum(w["devices"] for w in local["workloads"]) + local["ingress"]["proxy_vcpus"] <= local["inventory"]["cpu-x86"]
    assert all(w["prediction"][0]["source"].startswith("measured") for w in local["workloads"])

    import yaml
    from ray.serve.schema import ServeDeploySchema
    ServeDeploySchema.model_validate(yaml.safe_load((out / "serve_config.yaml").read_text()))

    report = list(csv.DictReader((out / "cost_report.csv").open()))
    total = next(r for r in report if r["scope"] == "total")
    assert abs(float(total["usd_per_hour"]) - plan["objective_usd_per_hour"]) < 1e-6
    from planner.reports.cost_report import FORMATS
    from planner.reports.formats import read_back_totals
    totals = read_back_totals(out / f"cost_report.{fmt}" for fmt in FORMATS)
    assert set(totals) == set(FORMATS)
    assert all(abs(t - plan["objective_usd_per_hour"]) < 1e-4 for t in totals.values()), totals
