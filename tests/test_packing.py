"""Packing replicas onto a live cluster's node shapes, and spreading replicas that must survive a node."""
from __future__ import annotations

import pytest

from planner.core.catalog import load_catalog
from planner.core.inventory import NodeShape
from planner.core.profiles import ProfileRow
from planner.core.workloads import Workload, WorkloadSet
from planner.planning.candidates import enumerate_tables
from planner.planning.context import PlanningContext
from planner.planning.optimizer import optimize


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def rows():
    # A 3-vCPU replica carries 300 items/s at $0.134/h; 1-vCPU replicas only 90/s each (dearer per item).
    return [ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 300.0, 0.1, 0.01, 0.0, "imported",
                       units_per_replica=3.0, latency_cv=0.1),
            ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 90.0, 0.1, 0.01, 0.0, "imported",
                       units_per_replica=1.0, latency_cv=0.1)]


def solve(catalog, nodes, qps=400.0, min_replicas=1):
    w = Workload("w", "m", "online", ("fp32",), 0.0, min_replicas, qps=qps, p99_ms=500.0)
    total = sum(int(n.units.get("cpu-x86", 0)) for n in nodes)
    ws = WorkloadSet((w,), inventory={"cpu-x86": total}, queueing=False)
    context = PlanningContext(ws, inventory=ws.inventory, nodes=tuple(nodes))
    return optimize(context, enumerate_tables(ws.workloads, rows(), catalog, ws.inventory, 0.8, 10.0, queueing=False))


def test_replicas_that_fit_the_sum_but_not_the_nodes_change_the_plan(catalog):
    roomy = solve(catalog, [NodeShape("a", {"cpu-x86": 4.0}), NodeShape("b", {"cpu-x86": 4.0})])
    # 400 qps: two 3-vCPU replicas (6 vCPUs), one on each 4-vCPU node.
    assert roomy.ok and roomy.workloads[0].chosen.units_per_replica == 3.0
    assert sorted(roomy.workloads[0].placement) == [("a", 1), ("b", 1)]
    cramped = solve(catalog, [NodeShape("a", {"cpu-x86": 4.0}), NodeShape("b", {"cpu-x86": 2.0}),
                              NodeShape("c", {"cpu-x86": 2.0})])
    # Same 8 vCPUs, but only node a can host a 3-vCPU replica: six 1-vCPU replicas instead.
    chosen = cramped.workloads[0].chosen
    assert cramped.ok and chosen.units_per_replica == 1.0 and chosen.replicas == 6
    assert sum(n for _, n in cramped.workloads[0].placement) == 6
    assert all(n <= {"a": 4, "b": 2, "c": 2}[node] for node, n in cramped.workloads[0].placement)


def test_min_replicas_two_spreads_over_nodes(catalog):
    nodes = [NodeShape("a", {"cpu-x86": 8.0}), NodeShape("b", {"cpu-x86": 8.0})]
    plan = solve(catalog, nodes, qps=100.0, min_replicas=2)
    assert plan.ok and plan.workloads[0].chosen.replicas == 2
    assert len(plan.workloads[0].placement) == 2  # one replica per node, not both on one
    single = solve(catalog, [NodeShape("a", {"cpu-x86": 8.0})], qps=100.0, min_replicas=2)
    assert not single.ok  # one node cannot keep a replica alive through its own loss


def test_gpu_replicas_need_a_cpu_share_on_their_node(catalog):
    gpu_row = ProfileRow("m", "h100", "fp32", 8, 2.0, 3.0, 4000.0, 1.0, 0.01, 0.0, "imported", latency_cv=0.1)
    w = Workload("w", "m", "online", ("fp32",), 0.0, 1, qps=1000.0, p99_ms=500.0)
    no_cpu = (NodeShape("g", {"h100": 1.0}),)
    context = PlanningContext(WorkloadSet((w,)), inventory={"h100": 1}, nodes=no_cpu)
    assert not optimize(context, enumerate_tables(context.workloads, [gpu_row], catalog, context.inventory,
                                                  0.8, 10.0)).ok
    with_cpu = (NodeShape("g", {"h100": 1.0, "cpu-x86": 4.0}),)
    context = PlanningContext(WorkloadSet((w,)), inventory={"h100": 1, "cpu-x86": 4}, nodes=with_cpu)
    plan = optimize(context, enumerate_tables(context.workloads, [gpu_row], catalog, context.inventory, 0.8, 10.0))
    assert plan.ok and plan.workloads[0].placement == (("g", 1),)
