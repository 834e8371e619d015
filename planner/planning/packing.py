"""Packing replicas onto the nodes of a live cluster, and spreading the ones that must survive a node.

Planning for a cluster (``--inventory cluster``) knows each node's shape: its
vCPUs and its GPUs or TPU chips (``NodeShape``). A sum over the cluster is not
enough: two 3-vCPU replicas do not fit on nodes of 4, 2 and 2 vCPUs although 6 <=
8. For each candidate c of workload w and node n, an integer y[w,c,n] counts
the replicas of c placed on n:

    sum_n y[w,c,n] = replicas_c x[w,c]                     every replica of the chosen configuration is placed
    sum_{w,c} y[w,c,n] x need_c(resource) <= node_n(resource)   for every node and resource
    y[w,c,n] <= replicas_c - 1   when min_replicas >= 2     no node holds them all (losing one node keeps some)

``need_c`` is the replica's units of its hardware and, for accelerator replicas,
the vCPUs Serve gives the replica's process (``ACCELERATOR_REPLICA_CPUS``) on
the same node. Ray Serve's scheduler places the replicas at deploy time (it
spreads replicas of a deployment across nodes by default); the plan's placement
shows one packing that fits, i.e. the plan is feasible on these node shapes.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from ortools.sat.python import cp_model

from planner.core.candidate import Candidate
from planner.core.catalog import is_accelerator_unit
from planner.core.inventory import ACCELERATOR_REPLICA_CPUS, NodeShape

_SCALE = 1_000                   # units -> milli-units, so fractional GPUs and 0.5 vCPU stay exact


def _needs(c: Candidate, cpu_hardware: str) -> dict[str, float]:
    if not is_accelerator_unit(c.unit):
        return {c.hardware: c.units_per_replica}
    return {c.hardware: c.units_per_replica, cpu_hardware: ACCELERATOR_REPLICA_CPUS}


def add_node_packing(model: cp_model.CpModel, x: Mapping[tuple[str, int], cp_model.IntVar],
                     feasible: Mapping[str, Sequence[Candidate]], nodes: Sequence[NodeShape],
                     min_replicas: Mapping[str, int], cpu_hardware: str = "cpu-x86") -> dict:
    """Adds y[w, i, node index] and the constraints above; returns y for reading the placement."""
    y: dict[tuple[str, int, int], cp_model.IntVar] = {}
    load: dict[tuple[int, str], list] = {}
    for w, cands in feasible.items():
        for i, c in enumerate(cands):
            needs = _needs(c, cpu_hardware)
            hosts = [k for k, node in enumerate(nodes)
                     if all(node.units.get(hw, 0.0) + 1e-9 >= amount for hw, amount in needs.items())]
            spread = min_replicas.get(w, 1) >= 2 and c.replicas >= 2
            cap = c.replicas - 1 if spread else c.replicas
            for k in hosts:
                y[w, i, k] = model.new_int_var(0, cap, f"y[{w},{i},{k}]")
                for hw, amount in needs.items():
                    load.setdefault((k, hw), []).append((int(math.ceil(amount * _SCALE)), y[w, i, k]))
            model.add(sum(y[w, i, k] for k in hosts) == c.replicas * x[w, i])
    for (k, hw), terms in load.items():
        model.add(sum(a * v for a, v in terms) <= int(nodes[k].units.get(hw, 0.0) * _SCALE))
    return y


def placement(solver: cp_model.CpSolver, y: Mapping[tuple[str, int, int], cp_model.IntVar], workload: str,
              index: int, nodes: Sequence[NodeShape]) -> tuple[tuple[str, int], ...]:
    """(node id, replicas) for the chosen candidate of a workload, nodes with none left out."""
    return tuple((nodes[k].node_id, solver.value(v)) for (w, i, k), v in y.items()
                 if w == workload and i == index and solver.value(v) > 0)
