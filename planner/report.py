"""Cost reports: per workload and per hardware type, $/hour, $/month and $ per million requests.

Pure: builds rows from a Plan; `write_report` renders them as CSV or JSON.
A month is 730 hours (365 x 24 / 12), the convention cloud price sheets use.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from planner.errors import InputError
from planner.plan import Plan
from planner.profiles import write_atomically

HOURS_PER_MONTH = 730.0
FORMATS = ("csv", "json")


@dataclass(frozen=True)
class CostRow:
    scope: str                 # workload | hardware | total
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


def _per_million(usd_per_hour: float, rps: float) -> float | None:
    return usd_per_hour / (rps * 3600.0) * 1e6 if rps > 0 else None


def cost_rows(plan: Plan) -> list[CostRow]:
    """One row per workload, one per hardware type, and a total (same sums in every format)."""
    rows: list[CostRow] = []
    by_hw: dict[str, list] = {}
    for w in plan.workloads:
        c = w.chosen
        rows.append(CostRow("workload", w.name, c.hardware, c.precision, c.batch_size, c.replicas, c.devices,
                            c.unit, w.qps_target, c.usd_per_hour, c.usd_per_hour * HOURS_PER_MONTH,
                            _per_million(c.usd_per_hour, w.qps_target), c.profile_source))
        by_hw.setdefault(c.hardware, []).append((w, c))
    for hw, items in sorted(by_hw.items()):
        usd = sum(c.usd_per_hour for _, c in items)
        rps = sum(w.qps_target for w, _ in items)
        rows.append(CostRow("hardware", hw, hw, "", None, sum(c.replicas for _, c in items),
                            sum(c.devices for _, c in items), items[0][1].unit, rps, usd,
                            usd * HOURS_PER_MONTH, _per_million(usd, rps), ""))
    usd = sum(w.chosen.usd_per_hour for w in plan.workloads)
    rps = sum(w.qps_target for w in plan.workloads)
    rows.append(CostRow("total", "total", "", "", None, sum(w.chosen.replicas for w in plan.workloads),
                        0.0, "", rps, usd, usd * HOURS_PER_MONTH, _per_million(usd, rps), ""))
    return rows


def _clean(value: object) -> object:
    return round(value, 6) if isinstance(value, float) else value


def render_report(plan: Plan, fmt: str) -> str:
    rows = cost_rows(plan)
    if fmt == "csv":
        buffer = io.StringIO()
        names = list(asdict(rows[0]))
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if v is None else _clean(v) for v in asdict(row).values()])
        return buffer.getvalue()
    if fmt == "json":
        return json.dumps({"plan_status": plan.status, "hours_per_month": HOURS_PER_MONTH,
                           "provenance": dict(plan.provenance),
                           "rows": [{k: _clean(v) for k, v in asdict(r).items()} for r in rows]}, indent=2) + "\n"
    raise InputError("--format", fmt, "unknown report format", f"use one of {', '.join(FORMATS)}")


def write_report(plan: Plan, fmt: str, out: str | Path) -> Path:
    return write_atomically(out, render_report(plan, fmt))
