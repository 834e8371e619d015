"""Renderers of a CostReport (planner/reports/cost_report.py): CSV, JSON, Parquet, XLSX, Markdown; HTML in report_html.py.

    render(report, fmt) -> bytes        every format, in memory (what a UI offers for download)
    write_report(report, fmt, out)      one file, written atomically
    write_all(report, folder)           cost_report.<ext> for every format; nothing written unless all render
    read_back_totals(paths)             the total $/h each written file states (the demo checks they agree)

CSV and Parquet hold the cost rows (one table); JSON, XLSX, Markdown and HTML also hold the
comparisons, plan vs actual, the allocation and the provenance. Parquet keeps the whole JSON
report in its schema metadata under `cost_report_json`.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterable

from planner.core.errors import InputError
from planner.core.io import write_atomically
from planner.reports.cost_report import FORMATS, CostReport, CostRow, clean, report_to_dict

ALL = "all"
STEM = "cost_report"
# Sheets of the XLSX file, in order, with the section of report_to_dict each holds.
SHEETS = ("costs", "comparisons", "plan_vs_actual", "allocation", "provenance")


def _cell(value: Any) -> Any:
    value = clean(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def render_csv(report: CostReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f.name for f in fields(CostRow)])
    for row in report.rows:
        writer.writerow(["" if v is None else _cell(v) for v in asdict(row).values()])
    return buffer.getvalue()


def render_json(report: CostReport) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def _arrow_type(annotation: str):
    import pyarrow as pa
    base = annotation.replace(" | None", "").strip()
    return {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}[base]


def render_parquet(report: CostReport) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(f.name, _arrow_type(str(f.type))) for f in fields(CostRow)],
                       metadata={"cost_report_json": json.dumps(report_to_dict(report), sort_keys=True)})
    table = pa.Table.from_pylist([clean(asdict(r)) for r in report.rows], schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _tables(report: CostReport) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Each XLSX sheet as (header, rows) of plain cells."""
    data = report_to_dict(report)
    cost_names = [f.name for f in fields(CostRow)]
    comparison_names = ["name", "usd_per_hour", "savings_usd_per_hour", "savings_usd_per_month", "savings_pct"]
    actual_names = ["name", "qps_target", "throughput_rps", "p99_target_ms", "predicted_p99_ms", "measured_p50_ms",
                    "measured_p99_ms", "p99_off_prediction_pct", "errors", "passed"]
    allocation_names = ["name", "window_start", "window_end", "minutes", "cpu_cost", "gpu_cost", "tpu_cost",
                        "energy_cost", "total_cost", "cpu_core_hours", "gpu_hours", "tpu_chip_hours", "properties"]

    def table(names: list[str], entries: list[dict]) -> tuple[list[str], list[list[Any]]]:
        return names, [[_cell(e.get(n)) for n in names] for e in entries]

    return {
        "costs": table(cost_names, data["rows"]),
        "comparisons": table(comparison_names, data["comparisons"]),
        "plan_vs_actual": table(actual_names, data["plan_vs_actual"]["workloads"]),
        "allocation": table(allocation_names, data["allocation"]["allocations"]),
        "provenance": (["key", "value"], [[k, _cell(v)] for k, v in data["provenance"].items()]),
    }


def render_xlsx(report: CostReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for name, (header, rows) in _tables(report).items():
        sheet = book.create_sheet(name)
        sheet.append(header)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
        sheet.freeze_panes = "A2"
        for i, title in enumerate(header, start=1):
            sheet.column_dimensions[sheet.cell(1, i).column_letter].width = max(10, min(40, len(title) + 2))
    book.properties.creator = "cost-planner"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- Markdown (pull-request comments) ------------------------------------------------------

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


def _md_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    right = [h for h in header if h.startswith(("$", "kWh", "kg", "util", "headroom", "p99", "p50", "qps", "thr",
                                                 "errors", "savings", "cpu", "gpu", "tpu", "energy", "total"))]
    return [line(header), "|" + "|".join("---:" if h in right else "---" for h in header) + "|"] + \
        [line(r) for r in rows]


def cost_table_cells(r: CostRow) -> list[str]:
    """One cost row as display cells (shared by Markdown and HTML)."""
    name = r.name if r.scope == "workload" else (f"{r.hardware} idle" if r.scope == "idle" else f"**{r.name}**"
                                                 if r.scope == "total" else r.name)
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


# --- dispatch and files --------------------------------------------------------------------

def check_format(fmt: str, allow_all: bool = True) -> str:
    allowed = FORMATS + ((ALL,) if allow_all else ())
    if fmt not in allowed:
        raise InputError("--format", fmt, "unknown report format", f"use one of {', '.join(allowed)}")
    return fmt


def render(report: CostReport, fmt: str) -> bytes:
    """One format's file content (bytes for every format: text ones are UTF-8)."""
    check_format(fmt, allow_all=False)
    if fmt == "parquet":
        return render_parquet(report)
    if fmt == "xlsx":
        return render_xlsx(report)
    if fmt == "html":
        from planner.reports.html import render_html
        return render_html(report).encode()
    return {"csv": render_csv, "json": render_json, "md": render_markdown}[fmt](report).encode()


def write_report(report: CostReport, fmt: str, out: str | Path) -> Path:
    """Write one format (out: a file, or an existing folder for cost_report.<ext>); atomically."""
    path = Path(out)
    if path.is_dir():
        path = path / f"{STEM}.{fmt}"
    content = render(report, fmt)
    return write_atomically(path, content if fmt in ("parquet", "xlsx") else content.decode())


def write_all(report: CostReport, folder: str | Path) -> list[Path]:
    """cost_report.<ext> for every format in `folder`; every format renders before any file is written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError("--out", str(folder), "is a file; --format all writes a folder of files",
                         "pass a folder, e.g. --out reports/")
    contents = {fmt: render(report, fmt) for fmt in FORMATS}
    return [write_atomically(folder / f"{STEM}.{fmt}", c if fmt in ("parquet", "xlsx") else c.decode())
            for fmt, c in contents.items()]


def read_back_totals(paths: Iterable[str | Path]) -> dict[str, float]:
    """The total $/hour each written report file states, by its extension."""
    out: dict[str, float] = {}
    for path in map(Path, paths):
        fmt = path.suffix.lstrip(".")
        if fmt == "csv":
            with path.open(newline="") as fh:
                out[fmt] = next(float(r["usd_per_hour"]) for r in csv.DictReader(fh) if r["scope"] == "total")
        elif fmt == "json":
            out[fmt] = next(r["usd_per_hour"] for r in json.loads(path.read_text())["rows"] if r["scope"] == "total")
        elif fmt == "parquet":
            import pyarrow.parquet as pq
            rows = pq.read_table(path).to_pylist()
            out[fmt] = next(r["usd_per_hour"] for r in rows if r["scope"] == "total")
        elif fmt == "xlsx":
            from openpyxl import load_workbook
            sheet = load_workbook(path, read_only=True)["costs"]
            rows = list(sheet.iter_rows(values_only=True))
            column = rows[0].index("usd_per_hour")
            out[fmt] = next(float(r[column]) for r in rows[1:] if r[0] == "total")
        elif fmt in ("md", "html"):
            pattern = r"total_usd_per_hour: ([0-9.eE+-]+)" if fmt == "md" else r'data-total-usd-per-hour="([^"]+)"'
            found = re.search(pattern, path.read_text())
            if found:
                out[fmt] = float(found.group(1))
    return out
