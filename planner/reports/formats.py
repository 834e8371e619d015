"""Renderers of a CostReport (planner/reports/cost_report.py): every format to bytes, and files on top.

    render(report, fmt) -> bytes        every format, in memory (what a UI offers for download)
    write_report(report, fmt, out)      one file, written atomically
    write_all(report, folder)           cost_report.<ext> for every format; nothing written unless all render
    read_back_totals(paths)             the total $/h each written file states (the demo checks they agree)

CSV, JSON, Parquet and XLSX are rendered here; Markdown in markdown.py and HTML in html.py,
both from the same display cells (cells.py). CSV and Parquet hold the cost rows (one table);
JSON, XLSX, Markdown and HTML also hold the comparisons, plan vs actual, the allocation and
the provenance. Parquet keeps the whole JSON report in its schema metadata under `cost_report_json`.
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
from planner.reports.html import render_html
from planner.reports.markdown import render_markdown

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
    return {"csv": render_csv, "json": render_json, "md": render_markdown, "html": render_html}[fmt](report).encode()


def write_report(report: CostReport, fmt: str, out: str | Path) -> Path:
    """Write one format (out: a file, or an existing folder for cost_report.<ext>); atomically."""
    path = Path(out)
    if path.is_dir():
        path = path / f"{STEM}.{fmt}"
    return write_atomically(path, render(report, fmt))


def write_all(report: CostReport, folder: str | Path) -> list[Path]:
    """cost_report.<ext> for every format in `folder`; every format renders before any file is written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError("--out", str(folder), "is a file; --format all writes a folder of files",
                         "pass a folder, e.g. --out reports/")
    contents = {fmt: render(report, fmt) for fmt in FORMATS}
    return [write_atomically(folder / f"{STEM}.{fmt}", content) for fmt, content in contents.items()]


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
