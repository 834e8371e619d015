"""The Markdown cost report: what a pull-request comment shows (tables from planner/reports/cells.py)."""
from __future__ import annotations

from typing import Iterable

from planner.reports.cells import (
    COST_HEADER,
    actual_cells,
    allocation_cells,
    comparison_cells,
    cost_table_cells,
    money,
    provenance_cells,
)
from planner.reports.cost_report import CostReport, clean


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    right = [h for h in header if h.startswith(("$", "kWh", "kg", "util", "headroom", "p99", "p50", "qps", "thr",
                                                 "errors", "savings", "cpu", "gpu", "tpu", "energy", "total"))]
    return [line(header), "|" + "|".join("---:" if h in right else "---" for h in header) + "|"] + \
        [line(r) for r in rows]


def render_markdown(report: CostReport) -> str:
    total = report.total
    window = report.allocations[0] if report.allocations else None
    lines = [f"### Cost report: {money(total.usd_per_hour, 4)}/hour, {money(total.usd_per_month)}/month",
             f"<!-- total_usd_per_hour: {clean(total.usd_per_hour)} -->", "",
             f"Plan {report.plan_status}, objective {report.objective}; a month is "
             f"{report.hours_per_month:g} hours. Energy: measured, estimated or unknown per row (unknown is "
             "left out of the sums).", ""]
    lines += _md_table(COST_HEADER, (cost_table_cells(r) for r in report.rows))
    if report.comparisons:
        lines += ["", "#### Against other plans", ""] + _md_table(*comparison_cells(report))
    if report.actuals:
        lines += ["", f"#### Plan vs actual ({report.actuals_source or 'verify.json'})", ""]
        lines += _md_table(*actual_cells(report))
    if window is not None:
        lines += ["", f"#### Allocation by {report.aggregate}, {window.window_start} to {window.window_end}", ""]
        lines += _md_table(*allocation_cells(report))
    lines += ["", "<details><summary>Provenance</summary>", ""]
    lines += _md_table(["", ""], provenance_cells(report)) + ["", "</details>", ""]
    return "\n".join(lines)
