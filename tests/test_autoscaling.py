"""Demand over a day: replicas per hour, Serve autoscaling bounds, the day's cost vs the peak's."""
from __future__ import annotations

import pytest

from cluster.serving import deployment_options
from planner import api
from planner.core.catalog import load_catalog
from planner.core.errors import InputError
from planner.core.plan import plan_from_dict, plan_to_dict
from planner.core.profiles import ProfileRow
from planner.core.workloads import parse_workloads
from tests.conftest import REPLICAS_ONLY

CURVE = [100.0] * 8 + [400.0] * 8 + [200.0] * 8


def _doc(**workload):
    return {**REPLICAS_ONLY, "inventory": {"cpu-x86": 16},
            "workloads": [{"name": "w", "model": "m", "p99_ms": 500, **workload}]}


def _rows():
    # 100 items/s per 1-vCPU replica: at U = 0.8, 100 qps needs 2 replicas, 400 qps needs 5.
    return [ProfileRow("m", "cpu-x86", "fp32", 1, 10.0, 12.0, 100.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.1)]


def test_replicas_follow_the_curve_and_the_day_costs_less_than_the_peak():
    catalog = load_catalog()
    plan = api.plan(parse_workloads(_doc(qps_hourly=CURVE), "w.yaml"), _rows(), catalog)
    w = plan.workloads[0]
    assert w.qps_target == 400.0 and w.chosen.replicas == 5  # configured for the peak hour
    a = w.autoscaling
    assert (a.min_replicas, a.max_replicas) == (2, 5)
    assert a.replicas_by_hour == (2,) * 8 + (5,) * 8 + (3,) * 8
    per_replica = catalog.get("cpu-x86").usd_per_hour  # no electricity bill in this file
    assert a.day_usd == pytest.approx(per_replica * 8 * (2 + 5 + 3))
    assert a.peak_provisioned_day_usd == pytest.approx(24 * 5 * per_replica)
    assert a.savings_pct == pytest.approx(100 * (1 - 10 / 15))
    # Serve gets the bounds instead of a fixed count; plan.json keeps them.
    options = deployment_options(w, catalog)
    assert "num_replicas" not in options
    assert options["autoscaling_config"]["min_replicas"] == 2 and options["autoscaling_config"]["max_replicas"] == 5
    again = plan_from_dict(plan_to_dict(plan)).workloads[0].autoscaling
    assert again.replicas_by_hour == a.replicas_by_hour and again.day_usd == pytest.approx(a.day_usd)


def test_constant_demand_keeps_a_fixed_replica_count():
    plan = api.plan(parse_workloads(_doc(qps=100), "w.yaml"), _rows(), load_catalog())
    assert plan.workloads[0].autoscaling is None
    assert deployment_options(plan.workloads[0], load_catalog())["num_replicas"] == 2


def test_curve_errors_name_the_field():
    with pytest.raises(InputError, match="qps_hourly.*24"):
        parse_workloads(_doc(qps_hourly=[1.0] * 5), "w.yaml")
    with pytest.raises(InputError, match="qps.*given together with qps_hourly"):
        parse_workloads(_doc(qps=10, qps_hourly=CURVE), "w.yaml")
    with pytest.raises(InputError, match="qps_hourly.*not used by kind: batch"):
        parse_workloads({"workloads": [{"name": "b", "model": "m", "kind": "batch", "items": 10, "deadline_h": 1,
                                        "qps_hourly": CURVE}]}, "w.yaml")
