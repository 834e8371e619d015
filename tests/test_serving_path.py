"""The serving path as part of the plan: its terms composed into p99 and capacity, the ingress sized and charged."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from planner import api
from planner.core.catalog import load_catalog
from planner.core.errors import InputError
from planner.core.latency import compose_p99_ms, sharing_slowdown
from planner.core.plan import plan_from_dict, plan_to_dict
from planner.core.profiles import ProfileRow
from planner.core.serving_path import (
    ASSUMED,
    PathPoint,
    ServingPath,
    ServingTerms,
    plan_ingress,
    read_serving_path,
    write_serving_path,
)
from planner.core.workloads import Workload, WorkloadSet
from planner.planning.candidates import evaluate_candidate


def measured(floor=0.5, proxy=2.0, points=((10.0, 8.0, 7.0, 10.0, 20.0), (100.0, 12.0, 10.0, 16.0, 30.0))):
    return ServingPath(replica_floor_ms=floor, proxy_cpu_ms=proxy,
                       points=tuple(PathPoint(q, m, p50, p90, p99, 500) for q, m, p50, p90, p99 in points),
                       source="measured", source_detail="test figures")


def online(qps, p99=500.0, model="m", min_replicas=1):
    return Workload("w", model, "online", ("fp32",), 0.0, min_replicas, qps=qps, p99_ms=p99)


def test_the_floor_lowers_a_replicas_capacity_and_the_path_sets_the_floor_of_p99():
    # 1000 items/s back to back (1 ms each) plus 1 ms of Serve per request: 500 requests/s per replica.
    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 1.0, 1000.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.0)
    terms = ServingTerms(PathPoint(50.0, 8.0, 7.0, 10.0, 20.0), floor_ms=1.0, source="measured")
    c = evaluate_candidate(online(800.0), row, load_catalog(), None, 0.8, terms, queueing=False)
    assert c.replicas == 2                       # 800 / (500 x 0.8) = 2; the raw 1000/s would have said 1
    assert c.predicted_throughput_rps == pytest.approx(2 * 500.0)
    # Path (mean 8, p99 20) and batch (1 ms, constant): means add, the only spread is the path's.
    assert c.predicted_p99_ms == pytest.approx(8.0 + 1.0 + (20.0 - 8.0))
    assert [t[0] for t in c.prediction] == ["serving path", "batch formation", "replica queue", "batch"]
    assert "measured" in c.prediction[0][3]


def test_a_batch_pays_one_floor_per_request():
    row = ProfileRow("m", "cpu-x86", "fp32", 8, 4.0, 4.0, 2000.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.0)
    terms = ServingTerms(PathPoint(0.0, 0.0, 0.0, 0.0, 0.0), floor_ms=0.5, source="measured")
    c = evaluate_candidate(online(100.0), row, load_catalog(), None, 0.8, terms, queueing=False)
    # A batch of 8: 4 ms of model and 8 x 0.5 ms of Serve = 8 ms -> 1000 items/s per replica.
    assert c.predicted_throughput_rps == pytest.approx(1000.0)
    # The path point already carries one request's floor; the batch adds the other 7.
    assert c.prediction[3][2] == pytest.approx(4.0 + 7 * 0.5)


def test_composition_adds_means_and_spreads_in_quadrature():
    assert compose_p99_ms([(1.0, 1.0), (2.0, 2.0)]) == pytest.approx(3.0)     # constants add
    assert compose_p99_ms([(5.0, 20.0), (1.0, 1.0)]) == pytest.approx(21.0)   # one variable term: exact
    assert compose_p99_ms([(5.0, 20.0), (5.0, 20.0)]) == pytest.approx(10.0 + 15.0 * math.sqrt(2))
    # Two exponentials of mean 1: the exact p99 of their sum (Gamma(2, 1)) is 6.64.
    exp_p99 = math.log(100)
    assert 6.64 <= compose_p99_ms([(1.0, exp_p99), (1.0, exp_p99)]) <= 6.64 * 1.08


def test_path_latency_follows_the_measured_points_and_grows_beyond_them():
    path = measured()
    assert path.at(5.0).p99_ms == 20.0                       # below the lightest point: the lightest
    assert path.at(55.0).p99_ms == pytest.approx(25.0)       # halfway: linear
    beyond = path.at(300.0)                                  # the proxy (2 ms) at 60% instead of 20%
    assert beyond.p99_ms > 30.0 and beyond.mean_ms > 12.0
    assert math.isinf(path.at(600.0).p99_ms)                 # past the proxy's capacity of 500/s


def test_ingress_is_sized_for_all_online_traffic_and_charged():
    path = measured(proxy=2.0)
    ingress = plan_ingress(path, 1000.0, 0.8, cpu_hardware="cpu-x86", cpu_usd_per_vcpu_hour=0.05)
    assert ingress.proxies == 3                               # 2 busy vCPUs / 0.8 = 2.5 -> 3 proxies
    assert ingress.proxy_vcpus == pytest.approx(2.5) and ingress.usd_per_hour == pytest.approx(0.125)
    assert ingress.qps_per_proxy == pytest.approx(1000.0 / 3) and not ingress.problem
    short = plan_ingress(path, 1000.0, 0.8, nodes=2, cpu_available=2.0, cpu_hardware="cpu-x86")
    assert "needs 3 proxies" in short.problem and "add 1 nodes" in short.problem
    assert "needs 2.50 vCPUs" in short.problem and "inventory has 2" in short.problem


def test_a_plan_whose_proxies_do_not_fit_is_infeasible_with_the_number_needed():
    row = ProfileRow("m", "t4", "fp16", 32, 2.0, 3.0, 50_000.0, 0.5, 0.001, 0.0, "imported")
    ws = WorkloadSet((online(20_000.0, p99=200.0),), inventory={"t4": 8, "cpu-x86": 4}, serving_path=measured(),
                     gpu_sharing=True)
    plan = api.plan(ws, [row], load_catalog())
    assert not plan.ok
    assert any("HTTP ingress needs" in line and "50.00 vCPUs" in line for line in plan.infeasible)


def test_plan_json_records_the_ingress_and_each_term_of_the_prediction():
    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 2.0, 800.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.2)
    ws = WorkloadSet((online(100.0),), inventory={"cpu-x86": 8}, serving_path=measured())
    plan = api.plan(ws, [row], load_catalog())
    assert plan.ok and plan.ingress.proxies == 1
    assert plan.objective_usd_per_hour == pytest.approx(
        sum(w.chosen.usd_per_hour for w in plan.workloads) + plan.unallocated_usd_per_hour + plan.ingress.usd_per_hour)
    data = json.loads(json.dumps(plan_to_dict(plan)))
    assert data["ingress"]["proxy_vcpus"] == pytest.approx(100 * 2.0 / 1000 / 0.8)
    assert data["serving_path"]["source"] == "measured"
    terms = data["workloads"][0]["prediction"]
    assert {t["term"] for t in terms} == {"serving path", "batch formation", "replica queue", "batch"}
    back = plan_from_dict(data)
    assert back.ingress.proxies == 1 and back.ingress.proxy_vcpus == pytest.approx(plan.ingress.proxy_vcpus)
    for read, planned in zip(back.workloads[0].chosen.prediction, plan.workloads[0].chosen.prediction):
        assert read[0] == planned[0] and read[1:3] == pytest.approx(planned[1:3], abs=1e-3)


def test_without_a_measurement_the_path_is_assumed_and_says_so():
    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 2.0, 800.0, 0.1, 0.01, 0.0, "imported")
    plan = api.plan(WorkloadSet((online(10.0),), inventory={"cpu-x86": 4}), [row], load_catalog())
    assert plan.serving_path.source == "assumed" and plan.ingress.source == "assumed"
    assert plan.workloads[0].chosen.prediction[0][3].startswith("assumed")
    assert ASSUMED.source_detail.startswith("not measured")


def test_cpu_replicas_share_a_core_with_a_processor_sharing_stretch():
    assert sharing_slowdown(1.0, 0.8) == 1.0
    assert sharing_slowdown(0.25, 0.8) == pytest.approx(1 / (1 - 0.8 * 0.75))
    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 1.0, 1000.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.0)
    ws = WorkloadSet(tuple(Workload(f"w{i}", "m", "online", ("fp32",), 0.0, 1, qps=20.0, p99_ms=500.0)
                           for i in range(4)), inventory={"cpu-x86": 2}, serving_path=measured())
    plan = api.plan(ws, [row], load_catalog())
    assert plan.ok and all(w.chosen.units_per_replica < 1 for w in plan.workloads)
    assert sum(w.chosen.devices for w in plan.workloads) + plan.ingress.proxy_vcpus <= 2.0
    # The planned CPU fractions are what Serve is asked for.
    from cluster.serving import deployment_options
    options = deployment_options(plan.workloads[0], load_catalog())
    assert options["ray_actor_options"]["num_cpus"] == plan.workloads[0].chosen.units_per_replica


def test_the_floor_falls_from_idle_to_busy_as_the_replica_gets_busier():
    # 1 ms of model per request; Serve's floor 4 ms reaching an idle replica, 1 ms finding it busy.
    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 1.0, 1000.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.0)
    terms = ServingTerms(PathPoint(0.0, 0.0, 0.0, 0.0, 0.0), floor_ms=4.0, source="measured", saturated_floor_ms=1.0)

    def floor(c) -> float:  # the floor the replica-queue term says it used: "... 1 x 2.85 ms floor at this load"
        return float(c.prediction[2][3].split(" ms floor")[0].split(" x ")[-1])
    light = evaluate_candidate(online(10.0), row, load_catalog(), None, 0.8, terms, queueing=False)
    # 10 requests/s: busy rho = 10 x 5 / (1000 + 10 x 3) = 4.9% of the time -> floor 1 + 3 x 0.951.
    assert floor(light) == pytest.approx(1.0 + 3.0 * (1 - 50.0 / 1030.0), abs=0.01)
    # The most one replica takes at U = 0.8: 800 / (1 + 1 + 0.2 x 3) = 307.7/s (idle floor alone: 160/s).
    heavy = evaluate_candidate(online(600.0), row, load_catalog(), None, 0.8, terms, queueing=False)
    assert heavy.replicas == 2 and floor(heavy) < floor(light)
    # Its capacity (rho -> 1) is what the saturated floor allows: 1000 / (1 + 1) per replica.
    assert heavy.predicted_throughput_rps == pytest.approx(2 * 500.0)
    # Without a saturated floor nothing changes: the idle floor throughout.
    plain = evaluate_candidate(online(600.0), row, load_catalog(), None, 0.8,
                               ServingTerms(terms.path, floor_ms=4.0, source="measured"), queueing=False)
    assert plain.replicas == 4 and floor(plain) == pytest.approx(4.0)   # 600 / (0.8 x 200)


def test_serving_path_file_round_trips_and_bad_files_say_what_to_do(tmp_path):
    path = replace(measured(), floor_by_model={"m": 4.0}, saturated_floor_by_model={"m": 1.5}, loadgen_cpu_ms=1.1)
    assert path.saturated_floor_ms("m") == 1.5 and path.saturated_floor_ms("other") == path.floor_ms("other")
    write_serving_path(tmp_path / "sp.json", path)
    assert read_serving_path(tmp_path / "sp.json") == path
    (tmp_path / "bad.json").write_text('{"points": []}')
    with pytest.raises(InputError, match="planner calibrate"):
        read_serving_path(tmp_path / "bad.json")
    with pytest.raises(InputError, match="quantiles out of order"):
        PathPoint(1.0, 1.0, 5.0, 4.0, 6.0)


def test_cost_reports_carry_the_ingress_so_their_total_is_the_plans():
    from planner.reports.cost_report import cost_rows

    row = ProfileRow("m", "cpu-x86", "fp32", 1, 1.0, 2.0, 800.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.2)
    plan = api.plan(WorkloadSet((online(400.0),), inventory={"cpu-x86": 8}, serving_path=measured()), [row],
                    load_catalog())
    rows = cost_rows(plan)
    ingress = [r for r in rows if r.scope == "ingress"]
    assert len(ingress) == 1 and ingress[0].usd_per_hour == pytest.approx(plan.ingress.usd_per_hour)
    assert next(r for r in rows if r.scope == "total").usd_per_hour == pytest.approx(plan.objective_usd_per_hour)
