"""OpenCost-style allocation: the plan's cost rows spread over a time window, grouped by
workload, team label or hardware, with paid-but-unused capacity kept apart as `__idle__`.

Field names follow OpenCost's allocation API (cpuCost, gpuCost, ... in snake case); TPU cost
and chip-hours are this product's additions. Pure: cost rows and a plan in, records out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Mapping

from planner.core.catalog import UNIT_KIND
from planner.core.errors import InputError
from planner.core.plan import Plan

if TYPE_CHECKING:
    from planner.reports.cost_report import CostRow

AGGREGATES = ("workload", "team", "hardware")
IDLE = "__idle__"             # OpenCost's name for paid, unused capacity
INGRESS = "__ingress__"       # the HTTP proxies every online request crosses (shared by all workloads)
UNLABELLED = "unlabelled"     # the team of a workload without a `team` label
HOURS_PER_MONTH = 730.0       # the month every monthly figure uses (8,760 h / 12)


@dataclass(frozen=True)
class Allocation:
    """OpenCost-style allocation over the window; *_cost exclude the electricity bill (energy_cost)."""
    name: str
    window_start: str
    window_end: str
    minutes: float
    cpu_cost: float
    gpu_cost: float
    tpu_cost: float
    energy_cost: float
    total_cost: float
    cpu_core_hours: float
    gpu_hours: float
    tpu_chip_hours: float
    properties: Mapping[str, Any] = field(default_factory=dict)


def _instant(value: datetime | str, flag: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(flag, value, "not an ISO 8601 date-time",
                             "write e.g. 2026-01-01T00:00:00+00:00 (no zone: UTC)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def report_window(plan: Plan, start: datetime | str | None = None,
                  end: datetime | str | None = None) -> tuple[datetime, datetime]:
    """The allocation window: given, or from the plan's created_at for one 730-hour month."""
    if start is None:
        created = plan.provenance.get("created_at")
        if not created:
            raise InputError("--window-start", None, "the plan records no created_at to start the window at",
                             "pass --window-start (ISO 8601)")
        start_at = _instant(str(created), "provenance.created_at")
    else:
        start_at = _instant(start, "--window-start")
    end_at = start_at + timedelta(hours=HOURS_PER_MONTH) if end is None else _instant(end, "--window-end")
    if end_at <= start_at:
        raise InputError("--window-end", end_at.isoformat(), f"not after the window start {start_at.isoformat()}",
                         "pass a --window-end later than --window-start")
    return start_at, end_at


def allocations(rows: list[CostRow] | tuple[CostRow, ...], plan: Plan, aggregate: str,
                start: datetime, end: datetime) -> tuple[Allocation, ...]:
    """Workload and idle rows costed over [start, end), grouped by `aggregate` (idle kept apart)."""
    if aggregate not in AGGREGATES:
        raise InputError("--aggregate", aggregate, "unknown aggregation", f"use one of {', '.join(AGGREGATES)}")
    hours = (end - start).total_seconds() / 3600.0
    energy = {w.name: w.chosen.energy_usd_per_hour for w in plan.workloads}
    labels = {w.name: dict(w.labels) for w in plan.workloads}
    groups: dict[str, list[CostRow]] = {}
    for r in rows:
        if r.scope == "workload":
            key = {"workload": r.name, "team": r.team, "hardware": r.hardware}[aggregate]
        elif r.scope in ("idle", "ingress"):
            key = IDLE if r.scope == "idle" else INGRESS
        else:
            continue
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups, key=lambda k: (k in (IDLE, INGRESS), k)) if aggregate != "workload" else groups:
        parts = groups[key]
        cost = {"cpu": 0.0, "gpu": 0.0, "tpu": 0.0}
        usage = {"cpu": 0.0, "gpu": 0.0, "tpu": 0.0}
        energy_usd = 0.0
        for r in parts:
            bill = energy.get(r.name, 0.0) if r.scope == "workload" else 0.0
            kind = UNIT_KIND.get(r.unit, "gpu")
            cost[kind] += (r.usd_per_hour - bill) * hours
            usage[kind] += r.devices * hours
            energy_usd += bill * hours
        served = [r.name for r in parts if r.scope == "workload"]
        properties: dict[str, Any] = {"hardware": sorted({r.hardware for r in parts if r.hardware})}
        if aggregate == "workload" and served:
            properties["labels"] = labels[served[0]]
        elif aggregate == "team" and key not in (IDLE, INGRESS, UNLABELLED):
            properties["labels"] = {"team": key}
        if served and aggregate != "workload":
            properties["workloads"] = served
        out.append(Allocation(
            name=key, window_start=start.isoformat(timespec="seconds"), window_end=end.isoformat(timespec="seconds"),
            minutes=hours * 60.0, cpu_cost=cost["cpu"], gpu_cost=cost["gpu"], tpu_cost=cost["tpu"],
            energy_cost=energy_usd, total_cost=sum(cost.values()) + energy_usd, cpu_core_hours=usage["cpu"],
            gpu_hours=usage["gpu"], tpu_chip_hours=usage["tpu"], properties=properties))
    return tuple(out)
