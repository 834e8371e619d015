"""Choose one configuration per workload: prune, solve the formulation, read the solution into a Plan.

The model itself (variables, constraints, objective, tie-break) is
planner/planning/formulation.py's docstring. This module:

- prunes dominated candidates first: on the same hardware, a candidate using no
  fewer devices, no better in the objective, no faster and no better in quality
  than another can be swapped for it in any solution without raising the
  objective or inventory use. This shrinks the model and breaks ties toward
  latency headroom (a same-price plan with p99 at 149 of 150 ms is worse than
  one at 30 ms);
- solves large instances by LP relaxation and exact repair
  (planner/planning/lp_decomposition.py), others with CP-SAT on the whole model;
- when the model is infeasible, solves the optional-placement model and says which
  workload does not fit and which limit binds;
- reads the chosen candidates into a Plan with its totals, autoscaling and placement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from ortools.sat.python import cp_model

from planner.core.candidate import Candidate
from planner.core.objectives import OBJECTIVES
from planner.core.plan import Plan, WorkloadPlan
from planner.core.serving_path import Ingress
from planner.planning.autoscaling import autoscale
from planner.planning.candidates import FEASIBLE, CandidateTable, diagnose_infeasible_workload, sort_key
from planner.planning.context import PlanningContext
from planner.planning.formulation import (
    TIE_SCALE,
    Problem,
    build,
    chosen_indices,
    coefficient,
    hint_greedy,
    maximise_placed,
    minimise_objective,
)
from planner.planning.lp_decomposition import solve_by_lp
from planner.planning.packing import placement
from planner.planning.sharing import unallocated_devices

_STATUS = {cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE", cp_model.INFEASIBLE: "INFEASIBLE",
           cp_model.MODEL_INVALID: "MODEL_INVALID", cp_model.UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class SolverSettings:
    time_limit_s: float = 10.0
    num_workers: int = 2
    random_seed: int = 0


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
        base = (c.devices, coefficient(c, objective)) + tuple(getattr(c, name) for name in also)
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

def _sorted(cands: list[Candidate]) -> list[Candidate]:
    return sorted(cands, key=sort_key)


def expand(table: CandidateTable, objective: str, latency_matters: bool,
           all_alternatives: bool, also: Sequence[str] = (),
           by_replica_size: bool = False) -> tuple[list[Candidate], list[Candidate]]:
    """(the feasible candidates the model needs, after pruning; the alternatives the plan reports)."""
    if latency_matters or also or by_replica_size:
        feasible = [table.candidate(int(i)) for i in np.nonzero(table.code == FEASIBLE)[0]]
        kept = prune_dominated(feasible, objective, latency_matters, also, by_replica_size)
    else:
        scaled = np.round(table.objective_value * OBJECTIVES[objective].scale)
        kept = [table.candidate(i) for i in table.pareto_feasible(scaled)]
    if all_alternatives:
        return kept, table.candidates()
    rejected = np.nonzero(table.code != FEASIBLE)[0]
    cheapest = rejected[np.argsort(table.cost[rejected], kind="stable")[:3]]
    return kept, _sorted(kept + [table.candidate(int(i)) for i in cheapest])


def _solver(settings: SolverSettings) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = settings.time_limit_s
    solver.parameters.num_workers = settings.num_workers
    solver.parameters.random_seed = settings.random_seed
    # The inventory rows are knapsack constraints; their LP relaxation gives CP-SAT a tight bound.
    solver.parameters.linearization_level = 2
    return solver


def _inventory_diagnosis(context: PlanningContext, name: str, cands: Sequence[Candidate],
                         used: Mapping[str, float]) -> str:
    """Explain why a workload that fits alone does not fit beside the others."""
    inventory = context.inventory or {}
    parts = []
    for hw in sorted({c.hardware for c in cands}):
        smallest = min((c for c in cands if c.hardware == hw), key=lambda c: c.devices)
        available = inventory.get(hw, 0)
        parts.append(f"{hw}: other workloads use {used.get(hw, 0):g} of {available} {smallest.unit}, "
                     f"its smallest configuration needs {smallest.devices:g} ({smallest.describe()}); "
                     f"raise inventory.{hw} to at least {used.get(hw, 0) + smallest.devices:g}")
    budget = (f" (or the budget of ${context.budget_usd_per_hour:g}/h binds: raise budget_usd_per_hour)"
              if context.budget_usd_per_hour is not None else "")
    return (f"workload '{name}' cannot be placed: the inventory limit is binding{budget}. " + "; ".join(parts)
            + ". To fix: add inventory, or lower qps / relax p99_ms of some workload")


def _problem(context: PlanningContext, placeable: Mapping[str, list[Candidate]], levels: int,
             ingress: Ingress | None = None, inventory: Mapping[str, float] | None = None) -> Problem:
    budget = context.budget_usd_per_hour
    if budget is not None and ingress is not None:
        budget = max(0.0, budget - ingress.usd_per_hour)  # the proxies are paid first
    return Problem(placeable, context.objective, inventory if ingress is not None else context.inventory, budget,
                   context.max_wall_power_w, context.electricity.pue, context.nodes,
                   {w.name: w.min_replicas for w in context.workloads},
                   {w.name: w.p99_ms for w in context.workloads}, levels)


def _solve_cp_sat(problem: Problem, context: PlanningContext, settings: SolverSettings,
                  placements: dict[str, tuple]) -> tuple[str, dict[str, Candidate], float, list[str]]:
    """The whole model; on infeasibility, the optional-placement model and its diagnoses."""
    diagnoses: list[str] = []
    formulation = build(problem)
    minimise_objective(formulation, problem)
    hint_greedy(formulation, problem)
    solver = _solver(settings)
    status = solver.solve(formulation.model)
    status_name = _STATUS.get(status, "UNKNOWN")
    chosen: dict[str, Candidate] = {}
    bound_scaled = 0.0
    placeable = problem.choices

    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        index = chosen_indices(solver, formulation, problem)
        chosen = {w: placeable[w][i] for w, i in index.items()}
        if formulation.y:
            placements.update({w: placement(solver, formulation.y, w, i, context.nodes) for w, i in index.items()})
        bound_scaled = solver.best_objective_bound / TIE_SCALE
    elif status == cp_model.UNKNOWN and placeable:
        diagnoses.append(f"the solver found no plan within its time limit ({settings.time_limit_s:g} s). "
                         "To fix: raise --time-limit, or plan fewer workloads at once")
    elif status == cp_model.INFEASIBLE and placeable:
        # Inventory binds across workloads: place as many as possible, then explain the rest.
        diagnosis = build(problem, optional=True)
        maximise_placed(diagnosis, problem)
        diag_solver = _solver(settings)
        if diag_solver.solve(diagnosis.model) in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            chosen = {w: placeable[w][i] for w, i in chosen_indices(diag_solver, diagnosis, problem).items()}
        used: dict[str, float] = {}
        for c in chosen.values():
            used[c.hardware] = used.get(c.hardware, 0.0) + c.devices
        diagnoses += [_inventory_diagnosis(context, w, cands, used)
                      for w, cands in placeable.items() if w not in chosen]
    return status_name, chosen, bound_scaled, diagnoses


def optimize(context: PlanningContext, candidates: Mapping[str, CandidateTable],
             settings: SolverSettings = SolverSettings(), provenance: Mapping[str, object] | None = None) -> Plan:
    """Solve the plan. Never raises for an infeasible instance: the Plan says INFEASIBLE and why."""
    started = time.perf_counter()
    objective = context.objective
    tables = {w.name: candidates[w.name] for w in context.workloads}
    has_feasible = {name: bool((table.code == FEASIBLE).any()) for name, table in tables.items()}
    diagnoses = [diagnose_infeasible_workload(w, tables[w.name].candidates())
                 for w in context.workloads if not has_feasible[w.name]]
    # The tie-break has room only below TIE_SCALE (formulation (9)); without it, latency and
    # quality do not enter the model and need not survive pruning.
    levels = (TIE_SCALE - 1) // max(1, sum(has_feasible.values()))
    all_alternatives = sum(len(t) for t in tables.values()) <= ALL_ALTERNATIVES_LIMIT
    placeable: dict[str, list[Candidate]] = {}
    alternatives: dict[str, list[Candidate]] = {}
    # Quantities capped by a constraint must survive pruning too (a budget under the energy objective...).
    also = tuple(name for name, capped in (("usd_per_hour", context.budget_usd_per_hour is not None
                                            and not OBJECTIVES[objective].is_usd_per_hour),
                                           ("power_w", context.max_wall_power_w is not None)) if capped)
    for name, table in tables.items():
        kept, alternatives[name] = expand(table, objective, levels > 0, all_alternatives, also,
                                          by_replica_size=bool(context.nodes))
        if has_feasible[name]:
            placeable[name] = kept
    ingress = getattr(candidates, "ingress", None)
    problem = _problem(context, placeable, levels, ingress, getattr(candidates, "replica_inventory", None))
    if ingress is not None and ingress.problem:
        diagnoses.append(ingress.problem)

    lp_result = None
    placements: dict[str, tuple] = {}
    if len(placeable) >= LARGE_INSTANCE_WORKLOADS and context.max_wall_power_w is None and not context.nodes:
        lp_result = solve_by_lp(problem, settings.time_limit_s, settings.num_workers)
    if lp_result is not None:
        chosen = lp_result.chosen
        achieved = sum(c.objective_value for c in chosen.values())
        proven = achieved <= lp_result.lower_bound * (1 + 1e-9) + 1e-9
        status_name = "OPTIMAL" if proven else "FEASIBLE"
        bound_scaled = lp_result.lower_bound * OBJECTIVES[objective].scale
    else:
        status_name, chosen, bound_scaled, more = _solve_cp_sat(problem, context, settings, placements)
        diagnoses += more
    if diagnoses:
        status_name = "INFEASIBLE"
    return _read_plan(context, chosen, alternatives, placements, status_name, tuple(diagnoses), bound_scaled,
                      settings, provenance, started, ingress)


def _read_plan(context: PlanningContext, chosen: Mapping[str, Candidate], alternatives: Mapping[str, list[Candidate]],
               placements: Mapping[str, tuple], status_name: str, diagnoses: tuple[str, ...], bound_scaled: float,
               settings: SolverSettings, provenance: Mapping[str, object] | None, started: float,
               ingress: Ingress | None = None) -> Plan:
    """The chosen candidates as a Plan: per-workload records, totals, the whole-device remainder, bounds."""
    objective = context.objective
    plans = []
    for w in context.workloads:
        if w.name in chosen:
            scaling = (autoscale(w.qps_hourly, chosen[w.name], w.min_replicas, context.max_utilization)
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
    prices = {c.hardware: c.hardware_usd_per_hour_per_unit for c in chosen.values()}
    unallocated = sum(remainder[hw] * prices[hw] for hw in remainder)
    ingress_usd = ingress.usd_per_hour if ingress is not None and chosen else 0.0
    cost = sum(c.usd_per_hour for c in chosen.values()) + unallocated + ingress_usd
    power = sum(c.power_w for c in chosen.values())
    value = sum(c.objective_value for c in chosen.values())
    solved = status_name in ("OPTIMAL", "FEASIBLE")
    objective_bound = bound_scaled / OBJECTIVES[objective].scale if solved else 0.0
    if solved and OBJECTIVES[objective].is_usd_per_hour:
        objective_bound += ingress_usd  # a constant of every plan
    # The $/h bound is the solver's only when $/h is what it minimised (with no carbon term).
    bound = (objective_bound if OBJECTIVES[objective].is_usd_per_hour
             else (cost if status_name == "OPTIMAL" else 0.0))
    info = dict(provenance or {})
    info.update({"solver": f"OR-Tools CP-SAT {_ortools_version()}", "solver_workers": settings.num_workers,
                 "solver_time_limit_s": settings.time_limit_s})
    return Plan(status=status_name, objective=objective, objective_usd_per_hour=cost,
                best_bound_usd_per_hour=bound, objective_power_w=power, objective_value=value,
                best_bound_objective=objective_bound,
                carbon_g_per_hour=sum(c.carbon_g_per_hour for c in chosen.values()),
                budget_usd_per_hour=context.budget_usd_per_hour,
                solve_seconds=time.perf_counter() - started, workloads=tuple(plans),
                infeasible=diagnoses, provenance=info, inventory=context.inventory,
                max_utilization=context.max_utilization, unallocated_usd_per_hour=unallocated,
                ingress=ingress, serving_path=context.path if ingress is not None else None)


def _ortools_version() -> str:
    import ortools
    return getattr(ortools, "__version__", "unknown")
