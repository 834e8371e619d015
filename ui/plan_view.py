"""Plan, deploy and report page logic: what-if edits, and the tables the pages show.

A what-if is applied to the validated workload set and the profile rows before
planning, never to the file: demand and p99 targets scaled, a budget, an
electricity price, a carbon price (which turns the objective into cost+carbon)
and the hardware allowed. Planning then goes through `planner.api.plan` with a
short solver time limit, so each change re-plans in about a second.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from planner.core.plan import Plan
from planner.core.profiles import ProfileRow
from planner.core.workloads import WorkloadSet
from planner.deployment.verification import VerificationReport
from planner.planning.pareto import ParetoPoint
from planner.reports.cost_report import HOURS_PER_MONTH

UI_TIME_LIMIT_S = 2.0   # the solver's limit per plan in the UI; the example solves in ~0.1 s

# MIME types of report formats; a format not listed downloads as plain bytes.
MIME_TYPES = {
    "csv": "text/csv", "json": "application/json", "html": "text/html", "md": "text/markdown",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class WhatIf:
    """Changes to the loaded workloads for one planning run (the defaults change nothing)."""
    qps_scale: float = 1.0                      # every workload's demand (online qps, batch items) times this
    p99_scale: float = 1.0                      # every p99 target times this
    budget_usd_per_hour: float | None = None    # None: the file's budget (if any)
    usd_per_kwh: float | None = None            # None: the file's electricity price
    carbon_usd_per_kg: float = 0.0              # > 0: objective cost+carbon at this carbon price
    allowed_hardware: tuple[str, ...] | None = None   # None: every hardware type with profiles


def apply_what_if(ws: WorkloadSet, what_if: WhatIf) -> WorkloadSet:
    workloads = []
    for w in ws.workloads:
        changes: dict[str, Any] = {}
        if w.qps is not None:
            changes["qps"] = w.qps * what_if.qps_scale
            changes["qps_hourly"] = tuple(q * what_if.qps_scale for q in w.qps_hourly)
        if w.items is not None:
            changes["items"] = max(1, round(w.items * what_if.qps_scale))
        if w.p99_ms is not None:
            changes["p99_ms"] = w.p99_ms * what_if.p99_scale
        workloads.append(replace(w, **changes))
    electricity = ws.electricity
    if what_if.usd_per_kwh is not None:
        electricity = replace(electricity, usd_per_kwh=what_if.usd_per_kwh)
    objective = ws.objective
    if what_if.carbon_usd_per_kg > 0:
        electricity = replace(electricity, carbon_usd_per_kg=what_if.carbon_usd_per_kg)
        objective = "cost+carbon" if objective == "cost" else objective
    budget = ws.budget_usd_per_hour if what_if.budget_usd_per_hour is None else what_if.budget_usd_per_hour
    return replace(ws, workloads=tuple(workloads), electricity=electricity, objective=objective,
                   budget_usd_per_hour=budget)


def allowed_rows(rows: Sequence[ProfileRow], what_if: WhatIf) -> list[ProfileRow]:
    if what_if.allowed_hardware is None:
        return list(rows)
    allowed = set(what_if.allowed_hardware)
    return [r for r in rows if r.hardware in allowed]


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per placed workload; `source` says whether its figures were measured or estimated."""
    rows = []
    for w in plan.workloads:
        c = w.chosen
        rows.append({
            "workload": w.name, "kind": w.kind, "hardware": c.hardware, "precision": c.precision,
            "batch": c.batch_size, "replicas": c.replicas, "units": f"{c.devices:g} {c.unit}",
            "p99 predicted (ms)": round(c.predicted_p99_ms, 1),
            "p99 target (ms)": "n/a" if w.p99_ms_target is None else f"{w.p99_ms_target:g}",
            "demand (rps)": round(w.qps_target, 2), "$/h": round(c.usd_per_hour, 4),
            "$/month": round(c.usd_per_hour * HOURS_PER_MONTH, 2),
            "source": c.profile_source.partition(":")[0],
        })
    return rows


def source_details(plan: Plan) -> list[str]:
    """The distinct `kind: detail` profile sources behind the plan's choices."""
    return sorted({w.chosen.profile_source for w in plan.workloads})


def cost_breakdown(plan: Plan) -> list[dict[str, Any]]:
    """$/h per workload and hardware, plus the unused part of shared GPUs (paid whole)."""
    out = [{"workload": w.name, "hardware": w.chosen.hardware, "usd_per_hour": w.chosen.usd_per_hour}
           for w in plan.workloads]
    if plan.unallocated_usd_per_hour > 1e-9:
        out.append({"workload": "(unused share of GPUs)", "hardware": "shared",
                    "usd_per_hour": plan.unallocated_usd_per_hour})
    return out


def headline(plan: Plan) -> dict[str, str]:
    return {"status": plan.status, "$/hour": f"{plan.objective_usd_per_hour:.4f}",
            "$/month": f"{plan.objective_usd_per_hour * HOURS_PER_MONTH:,.2f}",
            "solved in": f"{plan.solve_seconds:.2f} s"}


def pareto_rows(points: Sequence[ParetoPoint]) -> list[dict[str, Any]]:
    return [{"axis": p.axis, "value": round(p.axis_value, 3), "status": p.status,
             "usd_per_hour": None if p.usd_per_hour is None else round(p.usd_per_hour, 4),
             "wall_power_w": None if p.wall_power_w is None else round(p.wall_power_w, 1),
             "carbon_g_per_hour": None if p.carbon_g_per_hour is None else round(p.carbon_g_per_hour, 1),
             "energy_unknown_workloads": p.energy_unknown_workloads} for p in points]


def explanation_lines(plan: Plan) -> dict[str, list[str]]:
    """Per workload: why it got its configuration (planner/core/explain.py), as text lines."""
    from planner.core.explain import explain_plan

    return {e.workload: e.lines() for e in explain_plan(plan, plan.inventory, plan.max_utilization)}


def verification_rows(result: VerificationReport) -> list[dict[str, Any]]:
    """Predicted beside measured, per deployed workload."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)
    return [{"workload": w.name, "qps target": round(w.qps_target, 1), "achieved rps": round(w.throughput_rps, 1),
             "p99 predicted (ms)": ms(w.predicted_p99_ms), "p99 measured (ms)": ms(w.p99_ms),
             "p50 measured (ms)": ms(w.p50_ms), "p99 target (ms)": ms(w.p99_ms_target), "errors": w.errors,
             "passed": w.passed, "notes": w.notes} for w in result.workloads]


def report_formats() -> tuple[str, ...]:
    """Every format planner.reports.cost_report can write (read at call time, so new formats appear here)."""
    from planner.reports import cost_report as report

    return tuple(report.FORMATS)


def report_bytes(plan: Plan, fmt: str, verification=None) -> bytes:
    """The cost report in one format, rendered in memory by the same code `planner report` writes files with.

    With `verification` (what the Deploy and verify page measured), the report has plan vs actual.
    """
    from planner import api
    from planner.reports.formats import render

    return render(api.cost_report(plan, verification), fmt)
