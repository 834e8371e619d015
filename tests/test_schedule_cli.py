"""`planner schedule` and `planner.schedule`: batch workloads from a workloads file, real CP-SAT."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from planner import api
from planner.cli import main
from planner.core.errors import InfeasiblePlanError, InputError
from tests.conftest import REPLICAS_ONLY

REFERENCE = Path(__file__).resolve().parent.parent / "profiles" / "reference"
NIGHT_CHEAP = [0.10] * 6 + [0.20] * 16 + [0.10] * 2


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _doc(**electricity) -> dict:
    return {"electricity": {"usd_per_kwh": 0.15, "pue": 1.2, **electricity},
            "inventory": {"h100": 1, "cpu-x86": 8},
            "workloads": [{"name": "tagger", "model": "resnet_small", "kind": "online", "qps": 50, "p99_ms": 100,
                           "precisions": ["fp32", "bf16"], "max_quality_loss": 0.05},
                          {"name": "embed", "model": "transformer_small", "kind": "batch", "items": 200_000_000,
                           "release_h": 7, "deadline_h": 24, "precisions": ["bf16"], "max_quality_loss": 0.05}]}


def test_cli_writes_a_schedule_inside_the_jobs_window(tmp_path):
    workloads = _write(tmp_path, _doc(usd_per_kwh_hourly=NIGHT_CHEAP))
    out = tmp_path / "schedule.json"
    assert main(["schedule", "--workloads", str(workloads), "--profiles", str(REFERENCE / "h100.csv"),
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    (job,) = data["jobs"]
    assert job["name"] == "embed" and 7 <= job["start_h"] and job["end_h"] <= 24
    assert job["hardware"] == "h100" and "measured" in job["rate_source"]
    assert data["horizon_h"] == 24 and data["status"] == "OPTIMAL"
    # Inside the window only hours 22-23 are cheap: every hour of the run is one of them.
    assert all(NIGHT_CHEAP[h] == 0.10 for h in range(job["start_h"], job["end_h"]))
    assert data["savings_pct"] > 0


def test_serving_plan_takes_its_devices_out_of_the_capacity(tmp_path):
    doc = {**_doc(), **REPLICAS_ONLY}  # planned for the replicas alone: this test is about the devices
    doc["workloads"][0]["qps"] = 100_000  # more than 8 vCPUs can serve: it needs the H100
    online_only = _write(tmp_path, {**doc, "workloads": doc["workloads"][:1]})
    plan = api.plan(online_only, REFERENCE / "h100.csv")
    assert plan.ok and plan.workloads[0].chosen.hardware == "h100"
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump(doc))
    _, inputs = api.schedule(both, REFERENCE / "h100.csv")
    assert inputs.capacity["h100"] == [1] * 24
    with pytest.raises(InfeasiblePlanError, match="'embed'"):
        # the reference file has no CPU rows, so with the H100 serving the job has nowhere to run
        api.schedule(both, REFERENCE / "h100.csv", plan=plan)


def test_hourly_curve_must_cover_a_day(tmp_path):
    workloads = _write(tmp_path, _doc(usd_per_kwh_hourly=[0.1] * 5))
    with pytest.raises(InputError, match="usd_per_kwh_hourly.*24"):
        api.schedule(workloads, REFERENCE / "h100.csv")


def test_release_h_is_for_batch_jobs_only(tmp_path):
    doc = _doc()
    doc["workloads"][0]["release_h"] = 3
    with pytest.raises(InputError, match="release_h.*not used by kind: online"):
        api.schedule(_write(tmp_path, doc), REFERENCE / "h100.csv")


def test_training_jobs_are_scheduled_in_steps_and_left_out_of_serving(tmp_path):
    doc = _doc(usd_per_kwh_hourly=NIGHT_CHEAP)
    doc["workloads"].append({"name": "finetune", "model": "resnet_small", "kind": "training", "steps": 2_000_000,
                             "samples_per_step": 32, "release_h": 7, "deadline_h": 24, "precisions": ["bf16"]})
    workloads = _write(tmp_path, doc)
    # The H100 reference file has training_step rows at 8, 32 and 128 samples per step.
    schedule, inputs = api.schedule(workloads, REFERENCE / "h100.csv")
    job = next(j for j in schedule.jobs if j.name == "finetune")
    step_rate = job.option.items_per_hour
    assert job.hours == max(1, math.ceil(2_000_000 / step_rate - 1e-9)) and job.hours > 1
    assert "b32" in inputs.sources[("finetune", "h100")]
    plan = api.plan(workloads, REFERENCE / "h100.csv")
    assert [w.name for w in plan.workloads] == ["tagger", "embed"]  # training is not served
    doc["workloads"][-1]["samples_per_step"] = 33
    with pytest.raises(InputError, match="training_step rows at 33.*--training"):
        api.schedule(_write(tmp_path, doc), REFERENCE / "h100.csv")
