"""Display cells of a cost report's tables, shared by the Markdown and HTML renderers so the two never disagree.

Money, counts and percentages are formatted here once; each renderer only adds its markup.
"""
from __future__ import annotations

import json

from planner.reports.cost_report import CostReport, CostRow, clean


def money(usd: float | None, digits: int = 2) -> str:
    if usd is None:
        return "-"
    sign = "-" if usd < 0 else ""
    return f"{sign}${abs(usd):,.{digits}f}" if abs(usd) >= 1 or usd == 0 else f"{sign}${abs(usd):.4f}"


def num(value: float | None, fmt: str = ".1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def configuration(r: CostRow) -> str:
    if r.scope != "workload":
        return f"{r.devices:g} {r.unit}" if r.unit else ""
    return f"{r.hardware} {r.precision} batch {r.batch_size} x{r.replicas} ({r.devices:g} {r.unit})"


def cost_table_cells(r: CostRow) -> list[str]:
    """One cost row as display cells (shared by Markdown and HTML)."""
    name = r.name if r.scope == "workload" else (f"{r.hardware} idle" if r.scope == "idle" else f"**{r.name}**"
                                                 if r.scope == "total" else "HTTP ingress (proxies)"
                                                 if r.scope == "ingress" else r.name)
    basis = f" ({r.energy_basis})" if r.energy_basis else ""
    energy = "unknown" if r.energy_kwh_per_month is None and r.energy_basis == "unknown" else \
        num(r.energy_kwh_per_month, ".1f") + basis
    headroom = "-" if r.slo_headroom_ms is None else f"{r.slo_headroom_ms:.1f} ms ({r.slo_headroom_pct:.0f}%)"
    return [r.scope, name, r.team, configuration(r), money(r.usd_per_hour, 4), money(r.usd_per_month),
            money(r.usd_per_million_requests, 4), energy, num(r.carbon_kg_co2e_per_month, ".2f"),
            num(None if r.utilization is None else 100 * r.utilization, ".0f", "%"), headroom]


COST_HEADER = ["scope", "name", "team", "configuration", "$/hour", "$/month", "$ per 1M requests",
               "kWh/month", "kg CO2e/month", "utilization", "headroom to p99 target"]


def comparison_cells(report: CostReport) -> tuple[list[str], list[list[str]]]:
    header = ["plan", "$/hour", "$/month", "savings $/month", "savings %"]
    total = report.total
    rows = [["this plan", money(total.usd_per_hour, 4), money(total.usd_per_month), "-", "-"]]
    for c in report.comparisons:
        if c.usd_per_hour is None:
            rows.append([c.name, "no feasible plan", "-", "-", "-"])
        else:
            rows.append([c.name, money(c.usd_per_hour, 4), money(c.usd_per_hour * report.hours_per_month),
                         money(c.savings_usd_per_month), num(c.savings_pct, ".1f", "%")])
    return header, rows


def actual_cells(report: CostReport) -> tuple[list[str], list[list[str]]]:
    header = ["workload", "qps target", "throughput rps", "p99 target ms", "p99 predicted ms", "p99 measured ms",
              "p50 measured ms", "off prediction", "errors", "pass"]
    return header, [[a.name, num(a.qps_target, "g"), num(a.throughput_rps, ".1f"), num(a.p99_target_ms, "g"),
                     num(a.predicted_p99_ms, ".1f"), num(a.measured_p99_ms, ".1f"), num(a.measured_p50_ms, ".1f"),
                     num(a.p99_off_prediction_pct, "+.0f", "%"), str(a.errors), "yes" if a.passed else "NO"]
                    for a in report.actuals]


def allocation_cells(report: CostReport) -> tuple[list[str], list[list[str]]]:
    header = [report.aggregate, "cpu $", "gpu $", "tpu $", "energy $", "total $", "cpu core-h", "gpu-h",
              "tpu chip-h", "properties"]
    return header, [[a.name, money(a.cpu_cost), money(a.gpu_cost), money(a.tpu_cost), money(a.energy_cost),
                     money(a.total_cost), num(a.cpu_core_hours, ",.0f"), num(a.gpu_hours, ",.0f"),
                     num(a.tpu_chip_hours, ",.0f"), json.dumps(clean(a.properties), sort_keys=True)]
                    for a in report.allocations]


def provenance_cells(report: CostReport) -> list[list[str]]:
    out = []
    for key, value in report.provenance.items():
        if isinstance(value, (list, tuple)):
            value = "; ".join(str(v) for v in value)
        elif key == "solver_gap_pct":
            value = "no bound" if value is None else f"{value:.2f}%"
        out.append([key, str(value)])
    return out
