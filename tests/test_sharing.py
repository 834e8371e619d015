"""Sharing GPUs among small replicas: derived rows, whole-device cost, and an exhaustive check."""
from __future__ import annotations

import itertools
import math

import pytest

from planner import api
from planner.core.catalog import load_catalog
from planner.core.profiles import ProfileRow
from planner.core.serving_path import NO_SERVING_PATH
from planner.core.workloads import Workload, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.sharing import shared_rows


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def gpu_row(model="m", rps=4000.0, memory=1.0):
    return ProfileRow(model, "h100", "fp32", 8, 2.0, 3.0, rps, memory, 0.01, 0.0, "imported", latency_cv=0.1)


def online(name, qps, p99=500.0, model="m"):
    return Workload(name, model, "online", ("fp32",), 0.0, 1, qps=qps, p99_ms=p99)


def test_shared_rows_scale_throughput_and_latency_and_say_so(catalog):
    cpu = ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 200.0, 0.1, 0.01, 0.0, "imported")
    rows = shared_rows([gpu_row(), cpu], catalog)
    assert [r.units_per_replica for r in rows] == [0.5, 0.25, 0.125]  # none for the CPU row
    quarter = rows[1]
    assert quarter.throughput_rps == 1000.0 and quarter.latency_p99_ms == 12.0 and quarter.memory_gib == 1.0
    assert quarter.source == "estimated" and "num_gpus=0.25" in quarter.source_detail


def test_small_workloads_share_one_gpu_and_pay_it_once(catalog):
    price = catalog.get("h100").usd_per_hour
    workloads = tuple(online(f"w{i}", qps=500.0) for i in range(4))  # each fits an eighth of the GPU
    shared = api.plan(WorkloadSet(workloads, inventory={"h100": 1}, serving_path=NO_SERVING_PATH), [gpu_row()], catalog)
    assert shared.ok and sum(w.chosen.devices for w in shared.workloads) <= 1.0
    assert shared.objective_usd_per_hour == pytest.approx(price)  # one device, paid whole
    assert shared.unallocated_usd_per_hour == pytest.approx(price * (1 - sum(w.chosen.devices for w in shared.workloads)))
    alone = api.plan(WorkloadSet(workloads, inventory={"h100": 4}, gpu_sharing=False, serving_path=NO_SERVING_PATH), [gpu_row()], catalog)
    assert alone.ok and alone.objective_usd_per_hour == pytest.approx(4 * price)
    assert not api.plan(WorkloadSet(workloads, inventory={"h100": 1}, gpu_sharing=False, serving_path=NO_SERVING_PATH), [gpu_row()], catalog).ok


def test_memory_limits_the_share(catalog):
    price = catalog.get("h100").usd_per_hour
    pair = (online("a", 100.0), online("b", 100.0))
    halves = api.plan(WorkloadSet(pair, serving_path=NO_SERVING_PATH), [gpu_row(memory=30.0)], catalog)  # 30 of 80 GiB: a half fits
    assert [w.chosen.units_per_replica for w in halves.workloads] == [0.5, 0.5]
    assert halves.objective_usd_per_hour == pytest.approx(price)
    wholes = api.plan(WorkloadSet(pair, serving_path=NO_SERVING_PATH), [gpu_row(memory=50.0)], catalog)  # a half does not
    assert [w.chosen.units_per_replica for w in wholes.workloads] == [1.0, 1.0]
    assert wholes.objective_usd_per_hour == pytest.approx(2 * price)


@pytest.mark.parametrize("qps", [(300.0, 900.0, 1500.0), (100.0, 2500.0, 700.0), (1200.0, 1200.0, 1200.0)])
def test_cost_equals_exhaustive_search_with_whole_devices(catalog, qps):
    price = catalog.get("h100").usd_per_hour
    rows = [gpu_row()]
    rows += shared_rows(rows, catalog)
    workloads = tuple(online(f"w{i}", q, p99=200.0) for i, q in enumerate(qps))
    cands = {name: t.candidates() for name, t in enumerate_tables(workloads, rows, catalog, {"h100": 3}, 0.8,
                                                                  10.0).items()}
    feasible = [[c for c in cands[w.name] if c.feasible] for w in workloads]
    best = min(sum(c.usd_per_hour - c.devices * price for c in combo) + price * math.ceil(sum(c.devices for c in combo) - 1e-9)
               for combo in itertools.product(*feasible) if sum(c.devices for c in combo) <= 3 + 1e-9)
    plan = api.plan(WorkloadSet(workloads, inventory={"h100": 3}, serving_path=NO_SERVING_PATH), [gpu_row()], catalog)
    assert plan.status == "OPTIMAL" and plan.objective_usd_per_hour == pytest.approx(best, rel=1e-6)
