"""The plan as a CP-SAT model: one configuration per workload, under shared inventory and caps.

Data (built by planner/planning/candidates.py, pruned by planner/planning/optimizer.py):
workloads w; for each, feasible candidates c, each with hardware h_c, replicas r_c,
units d_c = r_c x units_per_replica (vCPUs, GPUs or TPU chips; a fraction of a GPU
when shared), cost p_c $/h, power e_c W, predicted p99 l_c, and v_c, its value in the
plan's objective (planner/core/objectives.py). Every per-workload limit (p99, memory,
quality, precision, min_replicas) already holds for every candidate.

Variables::

    x[w,c]   in {0,1}      workload w runs candidate c
    y[w,c,n] in 0..r_c     replicas of c placed on node n (live cluster only)
    D_h      in 0..ceil(sum d)  whole devices of hardware h bought (only where replicas share a device)
    placed[w] in {0,1}     workload w is placed (the diagnosis model only)

Constraints::

    (1) sum_c x[w,c] = 1                                  every workload runs exactly one configuration
    (2) sum_{w,c: h_c=h} d_c x[w,c] <= I_h                 shared inventory, for each h with a limit I_h
    (3) sum_n y[w,c,n] = r_c x[w,c]                        on a live cluster, every replica lands on a node,
        sum_{w,c} y[w,c,n] need_c(k) <= node_n(k)          and nodes hold what they have of each resource k
    (4) y[w,c,n] <= r_c - 1   when min_replicas_w >= 2     spread: no node holds them all
                                                           ((3)-(4): planner/planning/packing.py)
    (5) sum p_c x[w,c] <= B                                optional budget in $/h, whatever the objective
    (6) sum e_c x[w,c] x PUE <= P                          optional cap on power at the wall (Pareto sweep)
    (7) D_h >= sum_{w,c: h_c=h} d_c x[w,c]                 shared GPUs are paid whole (h with fractional d_c)

Objective::

    minimise  sum_{w,c} (round(v_c S) T + t_c) x[w,c]                      (8) objective, (9) tie-break
            + sum_h q_h T (D_h - sum_{w,c: h_c=h} d_c x[w,c])              (10) whole-device remainder

    S   the objective's integer scale (micro-$/h, mW, mg CO2e/h: planner/core/objectives.py)
    T   TIE_SCALE: room below one objective unit for the tie-break
    t_c = round(L min(1, l_c / p99 target)) in 0..L, with L x (workloads) < T, so the
        tie-breaks of all workloads add up to less than one objective unit: among plans of
        equal value, the one with the most latency headroom wins, and no dearer plan ever does
    q_h the hardware's price per unit in S units; (7) and (10) apply only to objectives that
        include the hardware's price (cost, cost+carbon): candidates carry their pro-rata
        share of a device, so only the unused remainder of the last device is added

Device counts are scaled by UNIT_SCALE (milli-units) so fractional GPUs stay exact;
money by COST_SCALE (micro-$/h), power by POWER_SCALE (mW).

(11) Diagnosis: when (1)-(7) is infeasible, a second model replaces (1) by
sum_c x[w,c] = placed[w] and maximises the number of workloads placed (then the lowest
objective), so the report can say which workload does not fit and which limit binds.

The LP path (planner/planning/lp_decomposition.py) builds its exact sub-problems with
`build` too: the fractional workloads, in the inventory and budget the others left,
without the tie-break or the remainder (its LP bound has neither).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ortools.sat.python import cp_model

from planner.core.candidate import Candidate
from planner.core.inventory import NodeShape
from planner.core.objectives import OBJECTIVES
from planner.planning.packing import add_node_packing

COST_SCALE = 1_000_000      # $/h -> micro-$/h
POWER_SCALE = 1_000         # W -> mW
UNIT_SCALE = 1_000          # devices -> milli-devices
TIE_SCALE = 1_000           # objective units per micro-$ (or mW): room below them for the tie-break


@dataclass(frozen=True)
class Problem:
    """Everything the model is built from; `choices` holds only feasible candidates."""
    choices: Mapping[str, Sequence[Candidate]]
    objective: str = "cost"
    capacity: Mapping[str, float] | None = None       # (2): units per hardware type; None: unbounded
    budget_usd_per_hour: float | None = None          # (5)
    max_wall_power_w: float | None = None             # (6)
    pue: float = 1.0
    nodes: tuple[NodeShape, ...] = ()                 # (3)-(4)
    min_replicas: Mapping[str, int] = field(default_factory=dict)
    p99_targets_ms: Mapping[str, float | None] = field(default_factory=dict)
    tie_break_levels: int = 0                         # (9): L; 0 leaves the tie-break out
    pay_whole_devices: bool = True                    # (7), (10), where the objective includes the price


@dataclass
class Formulation:
    model: cp_model.CpModel
    x: dict[tuple[str, int], cp_model.IntVar]
    placed: dict[str, cp_model.IntVar]                # (11) only
    y: dict                                           # (3) only: (w, i, node index) -> replicas there


def coefficient(c: Candidate, objective: str) -> int:
    """The candidate's objective value in integer units (its evaluation computed it for this objective)."""
    return int(round(c.objective_value * OBJECTIVES[objective].scale))


def tie_break(c: Candidate, p99_target_ms: float | None, levels: int) -> int:
    """(9) 0..levels, lower for more latency headroom."""
    if levels <= 0 or not p99_target_ms:
        return 0
    return int(round(levels * min(1.0, c.predicted_p99_ms / p99_target_ms)))


def build(problem: Problem, optional: bool = False) -> Formulation:
    """Variables and constraints (1)-(6); with `optional`, (11)'s placement in place of (1)."""
    model = cp_model.CpModel()
    choices = problem.choices
    x = {(w, i): model.new_bool_var(f"x[{w},{i}]") for w, cands in choices.items() for i in range(len(cands))}
    placed = {}
    for w, cands in choices.items():
        choice = [x[w, i] for i in range(len(cands))]
        if optional:
            # (11) a workload may stay unplaced.
            placed[w] = model.new_bool_var(f"placed[{w}]")
            model.add(sum(choice) == placed[w])
        else:
            # (1) each workload runs exactly one configuration.
            model.add_exactly_one(choice)
    # (2) devices used per hardware type stay within the inventory.
    for hw, available in (problem.capacity or {}).items():
        terms = [int(math.ceil(c.devices * UNIT_SCALE)) * x[w, i]
                 for w, cands in choices.items() for i, c in enumerate(cands) if c.hardware == hw]
        if terms:
            model.add(sum(terms) <= int(available * UNIT_SCALE + 1e-6))
    # (3)-(4) on a live cluster, replicas must also pack onto its nodes, and spread when asked.
    y = add_node_packing(model, x, choices, problem.nodes, problem.min_replicas) if problem.nodes else {}
    # (5) an optional budget caps the plan's $/h, whatever the objective.
    if problem.budget_usd_per_hour is not None:
        model.add(sum(int(round(c.usd_per_hour * COST_SCALE)) * x[w, i]
                      for w, cands in choices.items() for i, c in enumerate(cands))
                  <= int(problem.budget_usd_per_hour * COST_SCALE))
    # (6) an optional cap on power at the wall (the energy axis of a Pareto sweep).
    if problem.max_wall_power_w is not None:
        model.add(sum(int(round(c.power_w * problem.pue * POWER_SCALE)) * x[w, i]
                      for w, cands in choices.items() for i, c in enumerate(cands))
                  <= int(problem.max_wall_power_w * POWER_SCALE))
    return Formulation(model, x, placed, y)


def minimise_objective(f: Formulation, problem: Problem) -> None:
    """(8) the objective in units scaled by TIE_SCALE, (9) the tie-break below one unit, (10) the remainder."""
    objective, levels = problem.objective, problem.tie_break_levels
    f.model.minimize(sum((coefficient(c, objective) * TIE_SCALE + tie_break(c, problem.p99_targets_ms.get(w), levels))
                         * f.x[w, i] for w, cands in problem.choices.items() for i, c in enumerate(cands))
                     + _whole_device_remainder(f, problem))


def _whole_device_remainder(f: Formulation, problem: Problem):
    """(7) and (10): per hardware type with fractional replicas (planner/planning/sharing.py), an
    integer device count covers them, and the unused part of the last device is paid."""
    if not (problem.pay_whole_devices and OBJECTIVES[problem.objective].includes_hardware_price):
        return 0
    by_hw: dict[str, list[tuple[Candidate, object]]] = {}
    for w, cands in problem.choices.items():
        for i, c in enumerate(cands):
            by_hw.setdefault(c.hardware, []).append((c, f.x[w, i]))
    extra = 0
    for hw, entries in by_hw.items():
        if all(abs(c.devices - round(c.devices)) < 1e-9 for c, _ in entries):
            continue
        price = int(round(max(c.hardware_usd_per_hour_per_unit for c, _ in entries) * COST_SCALE)) * TIE_SCALE
        scaled = [(int(math.ceil(c.devices * UNIT_SCALE)), v) for c, v in entries]
        whole = f.model.new_int_var(0, int(math.ceil(sum(d for d, _ in scaled) / UNIT_SCALE)), f"devices[{hw}]")
        f.model.add(whole * UNIT_SCALE >= sum(d * v for d, v in scaled))
        extra += price * whole - sum(int(round(price * c.devices)) * v for c, v in entries)
    return extra


def maximise_placed(f: Formulation, problem: Problem) -> None:
    """(11) most workloads placed first; among those, the lowest objective."""
    objective = problem.objective
    big = 1 + sum(max(coefficient(c, objective) for c in cands) for cands in problem.choices.values())
    f.model.maximize(big * sum(f.placed.values()) - sum(
        coefficient(c, objective) * f.x[w, i] for w, cands in problem.choices.items() for i, c in enumerate(cands)))


def hint_greedy(f: Formulation, problem: Problem) -> None:
    """Hint a feasible start: each workload's cheapest candidate (fastest among equals) that still fits.

    Largest demand for units first; without an inventory this is the optimum. With one,
    the solver starts from a plan that already respects it and improves from there.
    """
    left = None if problem.capacity is None else {hw: float(n) for hw, n in problem.capacity.items()}
    choices = problem.choices

    def key(c: Candidate) -> tuple:
        return (coefficient(c, problem.objective), c.predicted_p99_ms)

    for w in sorted(choices, key=lambda w: -min(c.devices for c in choices[w])):
        cands = choices[w]
        fitting = [i for i, c in enumerate(cands) if left is None or c.devices <= left.get(c.hardware, 0.0) + 1e-9]
        best = min(fitting or range(len(cands)), key=lambda i: key(cands[i]))
        if left is not None and fitting:
            left[cands[best].hardware] = left.get(cands[best].hardware, 0.0) - cands[best].devices
        for i in range(len(cands)):
            f.model.add_hint(f.x[w, i], i == best)


def chosen_indices(solver: cp_model.CpSolver, f: Formulation, problem: Problem) -> dict[str, int]:
    """Read the solution: the index of each placed workload's candidate."""
    return {w: i for w, cands in problem.choices.items() for i in range(len(cands)) if solver.value(f.x[w, i])}
