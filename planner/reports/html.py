"""The HTML cost report: one self-contained file, charts drawn as inline SVG here.

No JavaScript, no fonts or stylesheets from elsewhere: it reads the same offline, in a mail
attachment or a CI artefact, and prints cleanly (@media print). The tables are the Markdown
report's cells (planner/reports/cells.py), so the two never disagree.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

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

BAR_COLOR = "#3b6ea8"
IDLE_COLOR = "#b0b0b0"
NUMERIC = ' class="n"'
PALETTE = ("#3b6ea8", "#d9822b", "#5a9e5a", "#8c6bb1")

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 70em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; border-top: 2px solid #888; } tr.idle td { color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; } .note { color: #555; font-size: 0.85em; }
svg text { font-family: inherit; font-size: 11px; fill: #222; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; } table, svg { break-inside: avoid; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def bar_chart(title: str, items: Sequence[tuple[str, float, str, str]], width: int = 460) -> str:
    """Horizontal bars: items are (label, value, value label, colour)."""
    bar_h, gap, label_w, top = 18, 6, 150, 24
    height = top + len(items) * (bar_h + gap) + 6
    peak = max((v for _, v, _, _ in items), default=0.0) or 1.0
    room = width - label_w - 90
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
             f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>']
    for i, (label, value, shown, color) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(0.0, value) / peak * room
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label[:24])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{escape(shown)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def grouped_bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
                 unit: str, width: int = 460) -> str:
    """Vertical bars, one group per label, one bar per series (None: no bar)."""
    top, bottom, left, legend_h = 40, 34, 40, 14
    height = 220
    plot_h = height - top - bottom
    values = [v for _, vs in series for v in vs if v is not None]
    peak = max(values, default=0.0) or 1.0
    group_w = (width - left - 10) / max(1, len(labels))
    bar_w = max(4.0, group_w * 0.8 / max(1, len(series)))
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
             f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 5}" y2="{top + plot_h}" stroke="#888"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak:.0f}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
             f'<text x="{left - 4}" y="{top - 8}" text-anchor="end">{escape(unit)}</text>']
    for s, (name, _) in enumerate(series):
        x = left + s * 130
        parts.append(f'<rect x="{x}" y="{top - legend_h - 6}" width="10" height="10" '
                     f'fill="{PALETTE[s % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 14}" y="{top - legend_h + 3}">{escape(name)}</text>')
    for g, label in enumerate(labels):
        x0 = left + g * group_w + group_w * 0.1
        for s, (_, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            h = max(0.0, v) / peak * plot_h
            parts.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(label)} '
                         f'{escape(series[s][0])}: {v:.1f}</title></rect>')
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                     f'{escape(label[:14])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = (),
           row_attrs: Sequence[str] = ()) -> str:
    numeric = {i for i, h in enumerate(header) if h.startswith(("$", "kWh", "kg", "util", "p99", "p50", "qps",
                                                               "thr", "errors", "savings", "cpu", "gpu", "tpu",
                                                               "energy", "total", "off"))}
    out = ["<table>", "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        attrs = row_attrs[i] if i < len(row_attrs) else ""
        cells = "".join(f"<td{NUMERIC if j in numeric else ''}>{escape(c.replace('**', ''))}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{cls}{attrs}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _charts(report: CostReport) -> list[str]:
    per_item = [r for r in report.rows if r.scope in ("workload", "idle", "ingress")]
    charts = [bar_chart("$/month by workload", [
        (r.name if r.scope == "workload" else "HTTP ingress" if r.scope == "ingress" else f"{r.hardware} idle",
         r.usd_per_month, money(r.usd_per_month),
         BAR_COLOR if r.scope == "workload" else IDLE_COLOR) for r in per_item])]
    charts.append(bar_chart("$/month by hardware type", [
        (r.name, r.usd_per_month, money(r.usd_per_month), BAR_COLOR) for r in report.rows if r.scope == "hardware"]))
    if report.comparisons:
        total = report.total
        items = [("this plan", total.usd_per_month, money(total.usd_per_month), PALETTE[2])]
        items += [(c.name, c.usd_per_hour * report.hours_per_month,
                   money(c.usd_per_hour * report.hours_per_month), BAR_COLOR)
                  for c in report.comparisons if c.usd_per_hour is not None]
        charts.append(bar_chart("$/month against other plans", items))
    if report.actuals:
        names = [a.name for a in report.actuals]
        charts.append(grouped_bars("p99 latency: target, predicted, measured", names, [
            ("target", [a.p99_target_ms for a in report.actuals]),
            ("predicted", [a.predicted_p99_ms for a in report.actuals]),
            ("measured", [a.measured_p99_ms for a in report.actuals])], "ms"))
    return charts


def render_html(report: CostReport) -> str:
    total = report.total
    title = f"Cost report: {money(total.usd_per_hour, 4)}/hour, {money(total.usd_per_month)}/month"
    classes = ["total" if r.scope == "total" else "idle" if r.scope == "idle" else "" for r in report.rows]
    attrs = [f' data-total-usd-per-hour="{clean(r.usd_per_hour)}"' if r.scope == "total" else ""
             for r in report.rows]
    body = [f"<h1>{escape(title)}</h1>",
            f'<p class="note">Plan {escape(report.plan_status)}, objective {escape(report.objective)}. A month is '
            f"{report.hours_per_month:g} hours. Energy per row is measured, estimated or unknown (unknown is left "
            "out of the sums); idle rows are shared devices paid whole but partly unused.</p>",
            '<div class="charts">', *_charts(report), "</div>",
            "<h2>Costs per workload and hardware type</h2>",
            _table(COST_HEADER, [cost_table_cells(r) for r in report.rows], classes, attrs)]
    if report.comparisons:
        body += ["<h2>Against other plans</h2>", _table(*comparison_cells(report))]
    if report.actuals:
        body += [f"<h2>Plan vs actual</h2><p class=\"note\">{escape(report.actuals_source or 'verify.json')}</p>",
                 _table(*actual_cells(report))]
    if report.allocations:
        first = report.allocations[0]
        body += [f"<h2>Allocation by {escape(report.aggregate)}</h2>",
                 f'<p class="note">{escape(first.window_start)} to {escape(first.window_end)} '
                 f"({first.minutes / 60:g} hours); fields follow OpenCost's allocation API.</p>",
                 _table(*allocation_cells(report))]
    body += ["<h2>Provenance</h2>", _table(["key", "value"], provenance_cells(report))]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
