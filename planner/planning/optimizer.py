"""Choose one configuration per workload with CP-SAT, minimising cost under shared inventory.

Data: workloads w, and for each a list of candidates c (hardware h, precision,
batch size, replicas r_c, units d_c = r_c x units_per_replica, cost p_c $/h,
power e_c W) that already meet every per-workload limit (p99, throughput,
memory, quality, min_replicas: see planner/planning/candidates.py).

Model::

    x[w,c] in {0,1}                        choose candidate c for workload w
    (1) sum_c x[w,c] = 1          for all w     each workload runs exactly one configuration
    (2) sum_{w,c: h_c=h} d_c x[w,c] <= I_h  for all h with an inventory   shared devices
    minimise  sum p_c x[w,c]      (objective: cost)  or  sum e_c x[w,c]  (objective: energy)

Costs are scaled to integers through COST_SCALE (micro-dollars); device counts
through UNIT_SCALE so fractional units (shared GPUs, later) stay exact.

Before solving, dominated candidates are dropped: on the same hardware, a
candidate using no fewer devices, no better in the objective (cost or power),
no faster and no better in quality than another can be swapped for it in any
solution without raising cost or inventory use. This shrinks the model and breaks cost ties
toward latency headroom (a same-price plan with p99 at 149 of 150 ms is worse
than one at 30 ms).

When (1)-(2) is infeasible, a second model makes placement optional and
maximises the number of workloads placed, so the report can say which
workload does not fit and which inventory limit binds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from ortools.sat.python import cp_model

import numpy as np

from planner.planning.autoscaling import autoscale
from planner.planning.candidate_tables import FEASIBLE, CandidateTable
from planner.planning.candidates import Candidate, diagnose_infeasible_workload
from planner.planning.lp_decomposition import solve_by_lp
from planner.planning.packing import add_node_packing, placement
from planner.planning.sharing import unallocated_devices
from planner.core.plan import Plan, WorkloadPlan
from planner.core.workloads import WorkloadSet

COST_SCALE = 1_000_000      # $/h -> micro-$/h
TIE_SCALE = 1_000           # objective units per micro-$ (or mW): room below them for the tie-break

POWER_SCALE = 1_000         # W -> mW
UNIT_SCALE = 1_000          # devices -> milli-devices
_STATUS = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE", cp_model.INFEASIBLE: "INFEASIBLE",
           cp_model.MODEL_INVALID: "MODEL_INVALID", cp_model.UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class SolverSettings:
    time_limit_s: float = 10.0
    num_workers: int = 2
    random_seed: int = 0


# Integer units of each objective: micro-$/h, mW at the wall, mg CO2e/h.
OBJECTIVE_SCALE = {"cost": COST_SCALE, "cost+carbon": COST_SCALE, "energy": POWER_SCALE, "carbon": 1_000}


def _coefficient(c: Candidate, objective: str) -> int:
    """The candidate's objective value in integer units (its evaluation computed it for this objective)."""
    return int(round(c.objective_value * OBJECTIVE_SCALE[objective]))


def _tie_break(c: Candidate, workload_p99_ms: float | None, levels: int) -> int:
    """0..levels, lower for more latency headroom; never outweighs one objective unit in total."""
    if levels <= 0 or not workload_p99_ms:
        return 0
    return int(round(levels * min(1.0, c.predicted_p99_ms / workload_p99_ms)))


def prune_dominated(cands: Sequence[Candidate], objective: str = "cost",
                    latency_matters: bool = True, also: Sequence[str] = (),
                    by_replica_size: bool = False) -> list[Candidate]:
    """Keep, per hardware type, only candidates no other one beats on every criterion.

    Criteria: devices used (the inventory), the objective's coefficient, every
    other quantity a constraint caps (`also`: "usd_per_hour" under a budget,
    "power_w" under a power cap), and, while the tie-break is active, predicted
    p99 and quality loss.
    Swapping a dominated candidate for its dominator never raises the objective
    or the inventory used, so the optimum is unchanged. When replicas are packed onto nodes,
    the replica's size matters too (two 3-vCPU replicas and six 1-vCPU ones use the same
    inventory but not the same nodes): only candidates of the same size compete.
    """
    def criteria(c: Candidate) -> tuple:
        base = (c.devices, _coefficient(c, objective)) + tuple(getattr(c, name) for name in also)
        return base + (c.predicted_p99_ms, c.quality_loss) if latency_matters else base

    groups: dict[tuple, list[Candidate]] = {}
    for c in cands:
        groups.setdefault((c.hardware, c.units_per_replica) if by_replica_size else (c.hardware,), []).append(c)
    kept: list[Candidate] = []
    for group in groups.values():
        group.sort(key=criteria)
        front: list[tuple[tuple, Candidate]] = []
        for c in group:
            mine = criteria(c)
            if not any(all(k <= m for k, m in zip(theirs, mine)) for theirs, _ in front):
                front.append((mine, c))
        kept.extend(c for _, c in front)
    return kept


# Up to this many candidates in all, plan.json lists every one evaluated as `alternatives`; beyond
# it (thousands of workloads), each workload lists its pruned feasible ones and its 3 cheapest rejected.
ALL_ALTERNATIVES_LIMIT = 200_000
# From this many workloads on, the LP relaxation + exact repair (planner/planning/lp_decomposition.py)
# replaces the full CP-SAT model: same optimum in practice, a proven bound, seconds not minutes.
LARGE_INSTANCE_WORKLOADS = 2_000

CandidateSource = Sequence[Candidate] | CandidateTable


def _has_feasible(cands: CandidateSource) -> bool:
    if isinstance(cands, CandidateTable):
        return bool((cands.code == FEASIBLE).any())
    return any(c.feasible for c in cands)


def _sorted(cands: list[Candidate]) -> list[Candidate]:
    return sorted(cands, key=lambda c: (not c.feasible, c.usd_per_hour, c.predicted_p99_ms))


def expand(cands: CandidateSource, objective: str, latency_matters: bool,
           all_alternatives: bool, also: Sequence[str] = (),
           by_replica_size: bool = False) -> tuple[list[Candidate], list[Candidate]]:
    """(the feasible candidates the model needs, after pruning; the alternatives the plan reports)."""
    if not isinstance(cands, CandidateTable):
        return (prune_dominated([c for c in cands if c.feasible], objective, latency_matters, also, by_replica_size),
                list(cands))
    table = cands
    if latency_matters or also or by_replica_size:
        feasible = [table.candidate(int(i)) for i in np.nonzero(table.code == FEASIBLE)[0]]
        kept = prune_dominated(feasible, objective, latency_matters, also, by_replica_size)
    else:
        coefficient = np.round(table.objective_value * OBJECTIVE_SCALE[objective])
        kept = [table.candidate(i) for i in table.pareto_feasible(coefficient)]
    if all_alternatives:
        return kept, _sorted([table.candidate(i) for i in range(len(table))])
    rejected = np.nonzero(table.code != FEASIBLE)[0]
    cheapest = rejected[np.argsort(table.cost[rejected], kind="stable")[:3]]
    return kept, _sorted(kept + [table.candidate(int(i)) for i in cheapest])


def _build(workload_set: WorkloadSet, feasible: Mapping[str, Sequence[Candidate]], optional: bool):
    model = cp_model.CpModel()
    # Variables: x[w, i] for the i-th feasible candidate of workload w.
    x = {(w, i): model.new_bool_var(f"x[{w},{i}]") for w, cands in feasible.items() for i in range(len(cands))}
    placed = {}
    for w, cands in feasible.items():
        choice = [x[w, i] for i in range(len(cands))]
        if optional:
            placed[w] = model.new_bool_var(f"placed[{w}]")
            model.add(sum(choice) == placed[w])
        else:
            # (1) each workload runs exactly one configuration.
            model.add_exactly_one(choice)
    # (2) devices used per hardware type stay within the inventory.
    if workload_set.inventory is not None:
        for hw, available in workload_set.inventory.items():
            terms = [int(math.ceil(c.devices * UNIT_SCALE)) * x[w, i]
                     for w, cands in feasible.items() for i, c in enumerate(cands) if c.hardware == hw]
            if terms:
                model.add(sum(terms) <= available * UNIT_SCALE)
    # (2b) on a live cluster, replicas must also pack onto its nodes (and spread when asked).
    y = {}
    if workload_set.nodes:
        y = add_node_packing(model, x, feasible, workload_set.nodes,
                             {w.name: w.min_replicas for w in workload_set.workloads})
    # (3) an optional budget caps the plan's $/h, whatever the objective.
    if workload_set.budget_usd_per_hour is not None:
        model.add(sum(int(round(c.usd_per_hour * COST_SCALE)) * x[w, i]
                      for w, cands in feasible.items() for i, c in enumerate(cands))
                  <= int(workload_set.budget_usd_per_hour * COST_SCALE))
    # (4) an optional cap on power at the wall (the energy axis of a Pareto sweep).
    if workload_set.max_wall_power_w is not None:
        pue = workload_set.electricity.pue
        model.add(sum(int(round(c.power_w * pue * POWER_SCALE)) * x[w, i]
                      for w, cands in feasible.items() for i, c in enumerate(cands))
                  <= int(workload_set.max_wall_power_w * POWER_SCALE))
    return model, x, placed, y


def _hint_greedy(model: cp_model.CpModel, x, feasible: Mapping[str, Sequence[Candidate]], objective: str,
                 inventory: Mapping[str, int] | None) -> None:
    """Hint a feasible start: each workload's cheapest candidate (fastest among equals) that still fits.

    Largest demand for units first; without an inventory this is the optimum. With one,
    the solver starts from a plan that already respects it and improves from there.
    """
    left = None if inventory is None else {hw: float(n) for hw, n in inventory.items()}

    def key(c: Candidate) -> tuple:
        return (_coefficient(c, objective), c.predicted_p99_ms)

    order = sorted(feasible, key=lambda w: -min(c.devices for c in feasible[w]))
    for w in order:
        cands = feasible[w]
        fitting = [i for i, c in enumerate(cands) if left is None or c.devices <= left.get(c.hardware, 0.0) + 1e-9]
        best = min(fitting or range(len(cands)), key=lambda i: key(cands[i]))
        if left is not None and fitting:
            left[cands[best].hardware] = left.get(cands[best].hardware, 0.0) - cands[best].devices
        for i in range(len(cands)):
            model.add_hint(x[w, i], i == best)


def _solver(settings: SolverSettings) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = settings.time_limit_s
    solver.parameters.num_workers = settings.num_workers
    solver.parameters.random_seed = settings.random_seed
    # The inventory rows are knapsack constraints; their LP relaxation gives CP-SAT a tight bound.
    solver.parameters.linearization_level = 2
    return solver


def _inventory_diagnosis(workload_set: WorkloadSet, name: str, cands: Sequence[Candidate],
                         used: Mapping[str, float]) -> str:
    """Explain why a workload that fits alone does not fit beside the others."""
    inventory = workload_set.inventory or {}
    parts = []
    for hw in sorted({c.hardware for c in cands}):
        smallest = min((c for c in cands if c.hardware == hw), key=lambda c: c.devices)
        available = inventory.get(hw, 0)
        parts.append(f"{hw}: other workloads use {used.get(hw, 0):g} of {available} {smallest.unit}, "
                     f"its smallest configuration needs {smallest.devices:g} ({smallest.describe()}); "
                     f"raise inventory.{hw} to at least {used.get(hw, 0) + smallest.devices:g}")
    budget = (f" (or the budget of ${workload_set.budget_usd_per_hour:g}/h binds: raise budget_usd_per_hour)"
              if workload_set.budget_usd_per_hour is not None else "")
    return (f"workload '{name}' cannot be placed: the inventory limit is binding{budget}. " + "; ".join(parts)
            + ". To fix: add inventory, or lower qps / relax p99_ms of some workload")


def unit_price(c: Candidate) -> float:
    """The hardware's $/h per unit, recovered from a candidate (its cost less its energy)."""
    return max(0.0, c.usd_per_hour - c.energy_usd_per_hour) / c.devices if c.devices else 0.0


def _whole_device_remainder(model: cp_model.CpModel, x, placeable: Mapping[str, Sequence[Candidate]],
                            objective: str):
    """Shared GPUs are paid whole: per hardware type with fractional replicas (planner/planning/sharing.py),
    an integer device count covers them, and the unused part of the last device is added to the
    cost. Candidates carry their pro-rata share of the price, so only the remainder is added."""
    if objective not in ("cost", "cost+carbon"):
        return 0
    by_hw: dict[str, list[tuple[Candidate, object]]] = {}
    for w, cands in placeable.items():
        for i, c in enumerate(cands):
            by_hw.setdefault(c.hardware, []).append((c, x[w, i]))
    extra = 0
    for hw, entries in by_hw.items():
        if all(abs(c.devices - round(c.devices)) < 1e-9 for c, _ in entries):
            continue
        price = int(round(max(unit_price(c) for c, _ in entries) * COST_SCALE)) * TIE_SCALE
        scaled = [(int(math.ceil(c.devices * UNIT_SCALE)), v) for c, v in entries]
        whole = model.new_int_var(0, int(math.ceil(sum(d for d, _ in scaled) / UNIT_SCALE)), f"devices[{hw}]")
        model.add(whole * UNIT_SCALE >= sum(d * v for d, v in scaled))
        extra += price * whole - sum(int(round(price * c.devices)) * v for c, v in entries)
    return extra


def _solve_cp_sat(workload_set: WorkloadSet, placeable: Mapping[str, list[Candidate]], objective: str,
                  levels: int, settings: SolverSettings, placements: dict[str, tuple]
                  ) -> tuple[str, dict[str, Candidate], float, list[str]]:
    """The CP-SAT model (1)-(2); on infeasibility, the optional-placement model and its diagnoses."""
    diagnoses: list[str] = []
    model, x, _, y = _build(workload_set, placeable, optional=False)
    # Objective: the cost (or power) in units scaled by TIE_SCALE, plus a tie-break that prefers
    # latency headroom among equal-cost choices. The tie-breaks of all workloads add up to less
    # than TIE_SCALE, i.e. less than one micro-dollar, so they never buy a dearer plan.
    targets = {w.name: w.p99_ms for w in workload_set.workloads}
    model.minimize(sum((_coefficient(c, objective) * TIE_SCALE + _tie_break(c, targets[w], levels)) * x[w, i]
                       for w, cands in placeable.items() for i, c in enumerate(cands))
                   + _whole_device_remainder(model, x, placeable, objective))
    _hint_greedy(model, x, placeable, objective, workload_set.inventory)
    solver = _solver(settings)
    status = solver.solve(model)
    status_name = _STATUS.get(status, "UNKNOWN")
    chosen: dict[str, Candidate] = {}
    bound_scaled = 0.0

    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        index = {w: next(i for i in range(len(cands)) if solver.value(x[w, i])) for w, cands in placeable.items()}
        chosen = {w: placeable[w][i] for w, i in index.items()}
        placements.update({w: placement(solver, y, w, i, workload_set.nodes) for w, i in index.items() if y})
        bound_scaled = solver.best_objective_bound / TIE_SCALE
    elif status == cp_model.UNKNOWN and placeable:
        diagnoses.append(f"the solver found no plan within its time limit ({settings.time_limit_s:g} s). "
                         "To fix: raise --time-limit, or plan fewer workloads at once")
    elif status == cp_model.INFEASIBLE and placeable:
        # Inventory binds across workloads: place as many as possible, then explain the rest.
        diag_model, dx, placed, _ = _build(workload_set, placeable, optional=True)
        big = 1 + sum(max(_coefficient(c, objective) for c in cands) for cands in placeable.values())
        diag_model.maximize(big * sum(placed.values()) - sum(
            _coefficient(c, objective) * dx[w, i] for w, cands in placeable.items() for i, c in enumerate(cands)))
        diag_solver = _solver(settings)
        if diag_solver.solve(diag_model) in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            chosen = {w: next(c for i, c in enumerate(cands) if diag_solver.value(dx[w, i]))
                      for w, cands in placeable.items() if diag_solver.value(placed[w])}
        used: dict[str, float] = {}
        for c in chosen.values():
            used[c.hardware] = used.get(c.hardware, 0.0) + c.devices
        diagnoses += [_inventory_diagnosis(workload_set, w, cands, used)
                      for w, cands in placeable.items() if w not in chosen]
    return status_name, chosen, bound_scaled, diagnoses


def optimize(workload_set: WorkloadSet, candidates: Mapping[str, CandidateSource],
             settings: SolverSettings = SolverSettings(), provenance: Mapping[str, object] | None = None) -> Plan:
    """Solve the plan. Never raises for an infeasible instance: the Plan says INFEASIBLE and why."""
    started = time.perf_counter()
    objective = workload_set.objective
    sources = {w.name: candidates.get(w.name, []) for w in workload_set.workloads}
    has_feasible = {name: _has_feasible(cands) for name, cands in sources.items()}
    diagnoses = [diagnose_infeasible_workload(w, expand(sources[w.name], objective, True, True)[1])
                 for w in workload_set.workloads if not has_feasible[w.name]]
    # The tie-break has room only below TIE_SCALE (see the objective); without it, latency and
    # quality do not enter the model and need not survive pruning.
    levels = (TIE_SCALE - 1) // max(1, sum(has_feasible.values()))
    all_alternatives = sum(len(c) for c in sources.values()) <= ALL_ALTERNATIVES_LIMIT
    placeable: dict[str, list[Candidate]] = {}
    alternatives: dict[str, list[Candidate]] = {}
    # Quantities capped by a constraint must survive pruning too (a budget under the energy objective...).
    also = tuple(name for name, capped in (("usd_per_hour", workload_set.budget_usd_per_hour is not None
                                            and objective != "cost"),
                                           ("power_w", workload_set.max_wall_power_w is not None)) if capped)
    for name, cands in sources.items():
        kept, alternatives[name] = expand(cands, objective, levels > 0, all_alternatives, also,
                                          by_replica_size=bool(workload_set.nodes))
        if has_feasible[name]:
            placeable[name] = kept

    lp_result = None
    placements: dict[str, tuple] = {}
    if (len(placeable) >= LARGE_INSTANCE_WORKLOADS and workload_set.max_wall_power_w is None
            and not workload_set.nodes):
        lp_result = solve_by_lp(placeable, workload_set.inventory, settings.time_limit_s, settings.num_workers,
                                budget_usd_per_hour=workload_set.budget_usd_per_hour)
    if lp_result is not None:
        chosen = lp_result.chosen
        achieved = sum(c.objective_value for c in chosen.values())
        proven = achieved <= lp_result.lower_bound * (1 + 1e-9) + 1e-9
        status_name = "OPTIMAL" if proven else "FEASIBLE"
        bound_scaled = lp_result.lower_bound * OBJECTIVE_SCALE[objective]
    else:
        status_name, chosen, bound_scaled, more = _solve_cp_sat(workload_set, placeable, objective, levels, settings,
                                                                placements)
        diagnoses += more
    if diagnoses:
        status_name = "INFEASIBLE"

    plans = []
    for w in workload_set.workloads:
        if w.name in chosen:
            scaling = (autoscale(w.qps_hourly, chosen[w.name], w.min_replicas, workload_set.max_utilization)
                       if w.qps_hourly else None)
            # The model served: a variant when the optimizer chose one (deploy and verify use it).
            plans.append(WorkloadPlan(name=w.name, model=chosen[w.name].model or w.model, kind=w.kind,
                                      qps_target=w.demand_rps,
                                      p99_ms_target=w.p99_ms, chosen=chosen[w.name],
                                      alternatives=tuple(alternatives[w.name]), autoscaling=scaling,
                                      placement=placements.get(w.name, ()), labels=w.labels))
    devices_by_hw: dict[str, float] = {}
    for c in chosen.values():
        devices_by_hw[c.hardware] = devices_by_hw.get(c.hardware, 0.0) + c.devices
    remainder = unallocated_devices(devices_by_hw)
    prices = {c.hardware: unit_price(c) for c in chosen.values()}
    unallocated = sum(remainder[hw] * prices[hw] for hw in remainder)
    cost = sum(c.usd_per_hour for c in chosen.values()) + unallocated
    power = sum(c.power_w for c in chosen.values())
    value = sum(c.objective_value for c in chosen.values())
    solved = status_name in ("OPTIMAL", "FEASIBLE")
    objective_bound = bound_scaled / OBJECTIVE_SCALE[objective] if solved else 0.0
    # The $/h bound is the solver's only when $/h is what it minimised (with no carbon term).
    bound = objective_bound if objective == "cost" else (cost if status_name == "OPTIMAL" else 0.0)
    info = dict(provenance or {})
    info.update({"solver": f"OR-Tools CP-SAT {_ortools_version()}", "solver_workers": settings.num_workers,
                 "solver_time_limit_s": settings.time_limit_s})
    return Plan(status=status_name, objective=objective, objective_usd_per_hour=cost,
                best_bound_usd_per_hour=bound, objective_power_w=power, objective_value=value,
                best_bound_objective=objective_bound,
                carbon_g_per_hour=sum(c.carbon_g_per_hour for c in chosen.values()),
                budget_usd_per_hour=workload_set.budget_usd_per_hour,
                solve_seconds=time.perf_counter() - started, workloads=tuple(plans),
                infeasible=tuple(diagnoses), provenance=info, inventory=workload_set.inventory,
                max_utilization=workload_set.max_utilization, unallocated_usd_per_hour=unallocated)


def _ortools_version() -> str:
    import ortools
    return getattr(ortools, "__version__", "unknown")
