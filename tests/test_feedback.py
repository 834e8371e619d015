"""Verification fed back into the plan: the serving overhead verify measured replaces the assumed one."""
from __future__ import annotations

import json

import pytest

from planner import api
from planner.core.errors import InputError
from planner.deployment.feedback import overhead_feedback, overhead_feedback_from


def test_each_verified_workload_gets_its_measured_overhead():
    fb = overhead_feedback([{"name": "a", "p99_ms": 30.0, "predicted_p99_ms": 12.0},
                            {"name": "b", "p99_ms": 14.0, "predicted_p99_ms": 13.0},
                            {"name": "c", "p99_ms": None, "predicted_p99_ms": 5.0}], assumed_ms=10.0)
    assert fb.by_workload == {"a": pytest.approx(28.0), "b": pytest.approx(11.0)} and fb.needed
    close = overhead_feedback([{"name": "b", "p99_ms": 14.0, "predicted_p99_ms": 13.0}], assumed_ms=10.0)
    assert not close.needed


def test_a_window_too_short_to_bound_p99_is_no_evidence_against_the_prediction():
    short = [{"name": "a", "p99_ms": 30.0, "predicted_p99_ms": 20.0, "p99_ci_low_ms": 18.0, "p99_ci_high_ms": None}]
    assert not overhead_feedback(short, assumed_ms=10.0).needed      # 20 ms is inside [18, unbounded)
    clear = [{"name": "a", "p99_ms": 30.0, "predicted_p99_ms": 20.0, "p99_ci_low_ms": 27.0, "p99_ci_high_ms": 33.0}]
    assert overhead_feedback(clear, assumed_ms=10.0).needed          # the whole interval is > 25 ms


def test_p99_interval_from_order_statistics():
    from planner.deployment.verification import quantile_confidence_interval

    low, high = quantile_confidence_interval([float(i) for i in range(1, 1001)], 0.99)
    assert 980 <= low < 990 < high <= 1000  # ranks around Binomial(1000, 0.99)'s mean 990, sd 3.1
    assert quantile_confidence_interval([float(i) for i in range(64)], 0.99)[1] is None  # cannot bound it above
    assert quantile_confidence_interval([], 0.99) == (None, None)


def test_bad_verify_files_are_named(tmp_path):
    with pytest.raises(InputError, match="not a verify.json"):
        (tmp_path / "v.json").write_text("[]")
        overhead_feedback_from(tmp_path / "v.json", 10.0)
    with pytest.raises(InputError, match="no workload with a measured"):
        (tmp_path / "v.json").write_text(json.dumps({"workloads": []}))
        overhead_feedback_from(tmp_path / "v.json", 10.0)


def test_replan_with_the_measured_overhead_predicts_what_was_measured(tmp_path):
    data = "tests/data"
    plan = api.plan(f"{data}/workloads_ok.yaml", f"{data}/profiles_small.csv")
    chosen = plan.workloads[0]
    measured = chosen.chosen.predicted_p99_ms + 7.5  # the serving path took 7.5 ms more than assumed
    (tmp_path / "verify.json").write_text(json.dumps({"workloads": [
        {"name": chosen.name, "p99_ms": measured, "predicted_p99_ms": chosen.chosen.predicted_p99_ms}]}))
    replan = api.plan(f"{data}/workloads_ok.yaml", f"{data}/profiles_small.csv",
                      serving_overhead_from=tmp_path / "verify.json")
    again = {w.name: w for w in replan.workloads}
    assert again[chosen.name].chosen.describe() == chosen.chosen.describe()  # 7.5 ms more still fits its target
    assert again[chosen.name].chosen.predicted_p99_ms == pytest.approx(measured, rel=1e-3)
    for w in plan.workloads[1:]:  # not verified: nothing measured about their path, prediction unchanged
        assert again[w.name].chosen.predicted_p99_ms == pytest.approx(w.chosen.predicted_p99_ms)
    assert "measured" in replan.provenance["serving_overhead"]


def test_a_verification_in_memory_feeds_back_the_same_as_its_verify_json(tmp_path):
    from planner.deployment.verification import VerificationReport, summarise, write_verification

    data = "tests/data"
    plan = api.plan(f"{data}/workloads_ok.yaml", f"{data}/profiles_small.csv")
    w = plan.workloads[0]
    # 200 requests whose p99 lands 7.5 ms (and a fraction the file rounds away) above the prediction.
    latencies = [w.chosen.predicted_p99_ms + 7.5123456] * 200
    row = summarise(w.name, "http://127.0.0.1:1/x", w.qps_target, 1.0, latencies, 0, 1.0, w.p99_ms_target,
                    w.chosen.predicted_p99_ms)
    measured = VerificationReport(workloads=(row,), source="measured over HTTP (fixture)")
    path = write_verification(tmp_path / "verify.json", measured)
    from_file = overhead_feedback_from(path, 10.0)
    in_memory = overhead_feedback_from(measured, 10.0)
    assert in_memory.by_workload == from_file.by_workload and in_memory.needed == from_file.needed
    assert from_file.origin == str(path) and in_memory.origin == "the verification measured over HTTP (fixture)"
    replan = api.plan(f"{data}/workloads_ok.yaml", f"{data}/profiles_small.csv", serving_overhead_from=measured)
    again = api.plan(f"{data}/workloads_ok.yaml", f"{data}/profiles_small.csv", serving_overhead_from=path)
    assert [x.chosen for x in replan.workloads] == [x.chosen for x in again.workloads]
    assert replan.provenance["serving_overhead"].endswith("from the verification measured over HTTP (fixture)")
