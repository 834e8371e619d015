"""Drift detection: pure checks with known answers, and Serve's HTTP histogram parsing."""
from __future__ import annotations

import pytest

from cluster.metrics import parse_http_windows
from planner import api
from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow
from planner.core.workloads import Workload, WorkloadSet
from planner.deployment.drift import LiveWindow, check_drift


@pytest.fixture(scope="module")
def plan():
    rows = [ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 200.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.1)]
    ws = WorkloadSet((Workload("w", "m", "online", ("fp32",), 0.0, 1, qps=50.0, p99_ms=100.0),), serving_overhead_ms=10)
    p = api.plan(ws, rows, load_catalog())
    assert p.ok and 15 < p.workloads[0].chosen.predicted_p99_ms < 50
    return p


def test_no_drift_when_live_matches_the_plan(plan):
    predicted = plan.workloads[0].chosen.predicted_p99_ms
    assert check_drift(plan, {"w": LiveWindow(10.0, 500.0, 0.0, predicted * 1.5)}) == []


def test_latency_over_target_or_far_over_prediction(plan):
    (finding,) = check_drift(plan, {"w": LiveWindow(10.0, 500.0, 0.0, 150.0)})
    assert finding.kind == "latency" and "exceeds the target 100" in finding.detail and "re-profile m" in finding.fix
    predicted = plan.workloads[0].chosen.predicted_p99_ms
    (finding,) = check_drift(plan, {"w": LiveWindow(10.0, 500.0, 0.0, predicted * 2.5)})
    assert "more than 2x the predicted" in finding.detail


def test_demand_above_plan_and_errors(plan):
    kinds = [f.kind for f in check_drift(plan, {"w": LiveWindow(10.0, 700.0, 3.0, 20.0)})]
    assert kinds == ["demand", "errors"]  # 70 rps > 50 x 1.2, and 3 failures
    assert check_drift(plan, {"w": LiveWindow(10.0, 590.0, 0.0, 20.0)}) == []  # 59 rps: within 20%


def test_http_histogram_windows():
    text = """# TYPE ray_serve_http_request_latency_ms histogram
ray_serve_http_request_latency_ms_bucket{application="w",route="/w",status_code="200",le="10.0"} 90.0
ray_serve_http_request_latency_ms_bucket{application="w",route="/w",status_code="200",le="50.0"} 99.0
ray_serve_http_request_latency_ms_bucket{application="w",route="/w",status_code="200",le="100.0"} 100.0
ray_serve_http_request_latency_ms_bucket{application="w",route="/w",status_code="200",le="+Inf"} 100.0
ray_serve_http_request_latency_ms_count{application="w",route="/w",status_code="200"} 100.0
ray_serve_http_request_latency_ms_count{application="w",route="/w",status_code="500"} 2.0
"""
    window = parse_http_windows(text)["w"]
    assert window.requests == 102.0 and window.errors == 2.0
    assert window.percentile_ms(99) == 50.0 and window.percentile_ms(50) == 10.0
    assert (window - window).requests == 0 and (window - window).percentile_ms(99) is None
