"""Cost reports: what a plan costs per workload, hardware type and team, and where each figure came from.

Pure: `build_report` turns a Plan (and, when given, a verification and the $/h of comparison
plans) into a `CostReport` of plain rows; planner/reports/formats.py renders it as CSV, JSON,
Parquet, XLSX, HTML or Markdown. Every format carries the same rows, so the totals agree.

    usd_per_month            = usd_per_hour x 730          (365 x 24 / 12: the price-sheet month)
    usd_per_million_requests = usd_per_hour / (requests_per_s x 3600) x 1e6
    energy_kwh_per_month     = power_w / 1000 x 730        (device power, before PUE; null if unknown)
    carbon_kg_co2e_per_month = carbon_g_per_hour / 1000 x 730  (wall power x grid intensity, as planned)
    utilization              = requests_per_s / predicted_throughput_rps  (all replicas 100% busy = 1)
    slo_headroom_ms          = p99 target - predicted p99;  slo_headroom_pct = headroom / target x 100

Shared GPUs are paid whole: the unused part of partly used devices is one `idle` row per
hardware type (OpenCost calls it __idle__), so
    sum(workload rows) + sum(idle rows) = sum(hardware rows) = total = the plan's $/h.

Cost allocation follows OpenCost's allocation API (name, window, per-resource cost and usage,
properties), aggregated by workload, by the `team` label, or by hardware type.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Mapping

from planner.core.candidate import Candidate
from planner.core.errors import InputError
from planner.core.plan import Plan, WorkloadPlan
from planner.planning.sharing import unallocated_devices
from planner.reports.allocation import (
    HOURS_PER_MONTH,
    IDLE,
    INGRESS,
    UNLABELLED,
    Allocation,
    allocations,
    report_window,
)

FORMATS = ("csv", "json", "parquet", "xlsx", "html", "md")
ENERGY_BASES = ("measured", "estimated", "unknown")


@dataclass(frozen=True)
class CostRow:
    scope: str                 # workload | idle | hardware | total
    name: str
    hardware: str
    precision: str
    batch_size: int | None
    replicas: int | None
    devices: float
    unit: str
    requests_per_s: float
    usd_per_hour: float
    usd_per_month: float
    usd_per_million_requests: float | None
    profile_source: str
    team: str
    energy_kwh_per_month: float | None
    energy_basis: str          # measured | estimated | unknown; aggregates join theirs, e.g. measured+estimated
    carbon_kg_co2e_per_month: float | None   # null where the energy is unknown
    utilization: float | None
    p99_target_ms: float | None
    predicted_p99_ms: float | None
    slo_headroom_ms: float | None
    slo_headroom_pct: float | None


@dataclass(frozen=True)
class Comparison:
    """This plan against another way of serving the same workloads (None: no such plan meets every target)."""
    name: str
    usd_per_hour: float | None
    savings_usd_per_hour: float | None    # the other plan's $/h - this plan's
    savings_usd_per_month: float | None
    savings_pct: float | None             # of the other plan's $/h


@dataclass(frozen=True)
class PlanVsActual:
    """One workload of verify.json: measured under load beside the prediction."""
    name: str
    qps_target: float
    throughput_rps: float | None
    p99_target_ms: float | None
    predicted_p99_ms: float | None
    measured_p50_ms: float | None
    measured_p99_ms: float | None
    p99_off_prediction_pct: float | None   # (measured - predicted) / predicted x 100
    errors: int
    passed: bool


@dataclass(frozen=True)
class CostReport:
    plan_status: str
    objective: str
    hours_per_month: float
    rows: tuple[CostRow, ...]
    comparisons: tuple[Comparison, ...]
    actuals: tuple[PlanVsActual, ...]
    actuals_source: str
    aggregate: str
    allocations: tuple[Allocation, ...]
    provenance: Mapping[str, Any]

    @property
    def total(self) -> CostRow:
        return next(r for r in self.rows if r.scope == "total")


# --- per-row figures -----------------------------------------------------------------------

def energy_basis(c: Candidate) -> str:
    """measured | estimated | unknown: how the configuration's energy was obtained (never upgraded).

    From the profile row's energy_source; plans written before it was recorded carry only the
    profile source, whose `measured` is about latency, so their energy counts as estimated.
    """
    if c.energy_unknown:
        return "unknown"
    source = c.energy_source.strip().lower()
    if source.startswith(("measured", "imported")):   # a hardware counter, or a tool's power reading
        return "measured"
    if source.startswith("estimated"):
        return "estimated"
    if source:
        return "unknown"    # e.g. "not in perf_analyzer export": the figure is a placeholder
    return "measured" if any(m in c.profile_source.lower() for m in ("nvml", "rapl")) else "estimated"


def _per_million(usd_per_hour: float, rps: float) -> float | None:
    return usd_per_hour / (rps * 3600.0) * 1e6 if rps > 0 else None


def _joined_basis(bases: list[str]) -> str:
    return "+".join(b for b in ENERGY_BASES if b in bases)


def _team(labels: tuple[tuple[str, str], ...]) -> str:
    return dict(labels).get("team", UNLABELLED)


def _workload_row(w: WorkloadPlan) -> CostRow:
    c = w.chosen
    basis = energy_basis(c)
    target = w.p99_ms_target
    headroom = None if target is None else target - c.predicted_p99_ms
    return CostRow(
        scope="workload", name=w.name, hardware=c.hardware, precision=c.precision, batch_size=int(c.batch_size),
        replicas=int(c.replicas), devices=float(c.devices), unit=c.unit, requests_per_s=float(w.qps_target),
        usd_per_hour=float(c.usd_per_hour), usd_per_month=float(c.usd_per_hour) * HOURS_PER_MONTH,
        usd_per_million_requests=_per_million(float(c.usd_per_hour), float(w.qps_target)),
        profile_source=c.profile_source, team=_team(w.labels),
        energy_kwh_per_month=None if basis == "unknown" else float(c.power_w) / 1000.0 * HOURS_PER_MONTH,
        energy_basis=basis, carbon_kg_co2e_per_month=(None if basis == "unknown"
                                                      else float(c.carbon_g_per_hour) / 1000.0 * HOURS_PER_MONTH),
        utilization=float(w.qps_target) / c.predicted_throughput_rps if c.predicted_throughput_rps > 0 else None,
        p99_target_ms=None if target is None else float(target), predicted_p99_ms=float(c.predicted_p99_ms),
        slo_headroom_ms=None if headroom is None else float(headroom),
        slo_headroom_pct=None if headroom is None or not target else float(100.0 * headroom / target))


def idle_usd_per_hour(plan: Plan) -> dict[str, tuple[float, float, str]]:
    """Per hardware type: (idle devices, their $/h, unit), split of `plan.unallocated_usd_per_hour`."""
    devices: dict[str, float] = {}
    price: dict[str, float] = {}
    unit: dict[str, str] = {}
    for w in plan.workloads:
        c = w.chosen
        devices[c.hardware] = devices.get(c.hardware, 0.0) + c.devices
        if c.devices:   # the hardware's price per unit: the candidate's cost less its electricity
            price[c.hardware] = max(0.0, c.usd_per_hour - c.energy_usd_per_hour) / c.devices
        unit[c.hardware] = c.unit
    idle = {hw: (d, d * price.get(hw, 0.0), unit[hw]) for hw, d in unallocated_devices(devices).items()}
    recomputed = sum(usd for _, usd, _ in idle.values())
    if plan.unallocated_usd_per_hour > 0 and recomputed > 0:
        # The plan's figure is the one in its total: keep the split, match the sum.
        scale = plan.unallocated_usd_per_hour / recomputed
        idle = {hw: (d, usd * scale, u) for hw, (d, usd, u) in idle.items()}
    elif plan.unallocated_usd_per_hour > 0:
        idle = {"": (0.0, plan.unallocated_usd_per_hour, "")}
    else:
        idle = {}
    return idle


def _sum_row(scope: str, name: str, hardware: str, unit: str, parts: list[CostRow], devices: float) -> CostRow:
    usd = sum(r.usd_per_hour for r in parts)
    rps = sum(r.requests_per_s for r in parts)
    served = [r for r in parts if r.scope == "workload"]
    known = [r.energy_kwh_per_month for r in served if r.energy_kwh_per_month is not None]
    capacity = sum(r.requests_per_s / r.utilization for r in served if r.utilization)
    return CostRow(
        scope=scope, name=name, hardware=hardware, precision="", batch_size=None,
        replicas=sum(r.replicas or 0 for r in served), devices=devices, unit=unit, requests_per_s=rps,
        usd_per_hour=usd, usd_per_month=usd * HOURS_PER_MONTH, usd_per_million_requests=_per_million(usd, rps),
        profile_source="", team="", energy_kwh_per_month=sum(known) if known else None,
        energy_basis=_joined_basis([r.energy_basis for r in served]),
        carbon_kg_co2e_per_month=sum(r.carbon_kg_co2e_per_month or 0.0 for r in served) if known else None,
        utilization=rps / capacity if capacity > 0 else None, p99_target_ms=None, predicted_p99_ms=None,
        slo_headroom_ms=None, slo_headroom_pct=None)


def cost_rows(plan: Plan) -> list[CostRow]:
    """Workload rows in plan order, idle rows, one row per hardware type (by name), and the total."""
    rows = [_workload_row(w) for w in plan.workloads]
    idle_rows = []
    for hw, (devices, usd, unit) in sorted(idle_usd_per_hour(plan).items()):
        idle_rows.append(CostRow(
            scope="idle", name=IDLE, hardware=hw, precision="", batch_size=None, replicas=None, devices=devices,
            unit=unit, requests_per_s=0.0, usd_per_hour=usd, usd_per_month=usd * HOURS_PER_MONTH,
            usd_per_million_requests=None, profile_source="shared devices paid whole, partly unused", team="",
            energy_kwh_per_month=None, energy_basis="", carbon_kg_co2e_per_month=None, utilization=None,
            p99_target_ms=None, predicted_p99_ms=None, slo_headroom_ms=None, slo_headroom_pct=None))
    ingress = plan.ingress
    if ingress is not None and ingress.usd_per_hour > 0:
        # The HTTP proxies all online traffic crosses: shared, so kept apart like idle capacity.
        idle_rows.append(CostRow(
            scope="ingress", name=INGRESS, hardware=ingress.cpu_hardware, precision="", batch_size=None,
            replicas=ingress.proxies, devices=ingress.proxy_vcpus, unit="vcpu", requests_per_s=ingress.online_qps,
            usd_per_hour=ingress.usd_per_hour, usd_per_month=ingress.usd_per_hour * HOURS_PER_MONTH,
            usd_per_million_requests=_per_million(ingress.usd_per_hour, ingress.online_qps),
            profile_source=f"HTTP proxies: {ingress.proxies}, serving path {ingress.source}", team="",
            energy_kwh_per_month=None, energy_basis="", carbon_kg_co2e_per_month=None, utilization=None,
            p99_target_ms=None, predicted_p99_ms=None, slo_headroom_ms=None, slo_headroom_pct=None))
    hardware_rows = []
    for hw in sorted({r.hardware for r in rows + idle_rows}):
        parts = [r for r in rows + idle_rows if r.hardware == hw]
        hardware_rows.append(_sum_row("hardware", hw or "unattributed", hw, parts[0].unit, parts,
                                      sum(r.devices for r in parts)))
    # Units differ across hardware types (vCPUs, GPUs, TPU chips): the total does not add devices.
    total = _sum_row("total", "total", "", "", rows + idle_rows, 0.0)
    return rows + idle_rows + hardware_rows + [total]


# --- comparisons, verification, allocation, provenance -------------------------------------

def comparisons_from(plan_usd_per_hour: float, others: Mapping[str, float | None]) -> tuple[Comparison, ...]:
    out = []
    for name, usd in others.items():
        if usd is None:
            out.append(Comparison(name, None, None, None, None))
            continue
        saved = float(usd) - plan_usd_per_hour
        out.append(Comparison(name, float(usd), saved, saved * HOURS_PER_MONTH,
                              100.0 * saved / float(usd) if usd > 0 else None))
    return tuple(out)


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, value, "not a number", "pass a verify.json written by `planner verify`")
    return float(value)


def actuals_from(verification: Mapping[str, Any], source: str = "verify.json") -> tuple[PlanVsActual, ...]:
    """verify.json's workloads as PlanVsActual rows; InputError naming the entry at fault."""
    entries = verification.get("workloads") if isinstance(verification, Mapping) else None
    if not isinstance(entries, list):
        raise InputError(f"{source}: workloads", type(entries).__name__, "expected a list of workloads",
                         "pass a verify.json written by `planner verify`")
    out = []
    for i, e in enumerate(entries):
        where = f"{source}: workloads[{i}]"
        if not isinstance(e, Mapping) or "name" not in e or "qps_target" not in e:
            raise InputError(where, e if not isinstance(e, Mapping) else sorted(e), "needs name and qps_target",
                             "pass a verify.json written by `planner verify`")
        predicted = _number(e.get("predicted_p99_ms"), f"{where}.predicted_p99_ms")
        measured = _number(e.get("p99_ms"), f"{where}.p99_ms")
        off = None if predicted in (None, 0.0) or measured is None else 100.0 * (measured - predicted) / predicted
        out.append(PlanVsActual(
            name=str(e["name"]), qps_target=float(_number(e["qps_target"], f"{where}.qps_target") or 0.0),
            throughput_rps=_number(e.get("throughput_rps"), f"{where}.throughput_rps"),
            p99_target_ms=_number(e.get("p99_ms_target"), f"{where}.p99_ms_target"), predicted_p99_ms=predicted,
            measured_p50_ms=_number(e.get("p50_ms"), f"{where}.p50_ms"), measured_p99_ms=measured,
            p99_off_prediction_pct=off, errors=int(_number(e.get("errors", 0), f"{where}.errors") or 0),
            passed=bool(e.get("pass", e.get("passed", False)))))
    return tuple(out)


def solver_gap_pct(plan: Plan) -> float | None:
    """(plan $/h - best bound) / plan $/h x 100; None where the solver gave no $/h bound."""
    if plan.objective_usd_per_hour <= 0 or plan.best_bound_usd_per_hour <= 0:
        return 0.0 if plan.status == "OPTIMAL" else None
    return max(0.0, 100.0 * (plan.objective_usd_per_hour - plan.best_bound_usd_per_hour)
               / plan.objective_usd_per_hour)


def report_provenance(plan: Plan) -> dict[str, Any]:
    """The plan's provenance, with the solver's status and gap, in a fixed key order."""
    p = dict(plan.provenance)
    first = {"created_at": p.pop("created_at", None), "catalog_version": p.pop("catalog_version", None),
             "catalog": p.pop("catalog", None), "profile_sources": p.pop("profile_sources", None),
             "solver_status": plan.status, "solver_gap_pct": solver_gap_pct(plan), "objective": plan.objective}
    return {**{k: v for k, v in first.items() if v is not None or k == "solver_gap_pct"}, **dict(sorted(p.items()))}


def build_report(plan: Plan, comparisons: Mapping[str, float | None] | None = None,
                 verification: Mapping[str, Any] | None = None, aggregate: str = "workload",
                 window_start: datetime | str | None = None, window_end: datetime | str | None = None,
                 verification_source: str = "verify.json") -> CostReport:
    """Everything a cost report shows, as plain rows (see the module docstring for the figures)."""
    rows = cost_rows(plan)
    start, end = report_window(plan, window_start, window_end)
    total_usd = next(r for r in rows if r.scope == "total").usd_per_hour
    actuals = actuals_from(verification, verification_source) if verification is not None else ()
    return CostReport(plan_status=plan.status, objective=plan.objective, hours_per_month=HOURS_PER_MONTH,
                      rows=tuple(rows), comparisons=comparisons_from(total_usd, comparisons or {}),
                      actuals=actuals,
                      actuals_source=str((verification or {}).get("source", "")) if verification else "",
                      aggregate=aggregate, allocations=allocations(rows, plan, aggregate, start, end),
                      provenance=report_provenance(plan))


# --- the JSON form (also embedded in Parquet metadata and read by the other renderers) ---

def clean(value: Any) -> Any:
    """Plain JSON values: floats rounded to 6 decimals (NaN/inf -> None), containers recursed."""
    if hasattr(value, "dtype") and hasattr(value, "item"):   # a numpy scalar: its Python number
        value = value.item()
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return str(value)


def report_to_dict(report: CostReport) -> dict[str, Any]:
    return clean({
        "plan_status": report.plan_status, "objective": report.objective,
        "hours_per_month": report.hours_per_month,
        "total_usd_per_hour": report.total.usd_per_hour, "total_usd_per_month": report.total.usd_per_month,
        "provenance": report.provenance,
        "rows": [asdict(r) for r in report.rows],
        "comparisons": [asdict(c) for c in report.comparisons],
        "plan_vs_actual": {"source": report.actuals_source, "workloads": [asdict(a) for a in report.actuals]},
        "allocation": {"aggregate": report.aggregate, "allocations": [asdict(a) for a in report.allocations]},
    })
