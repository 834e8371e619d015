"""Workloads page logic: YAML text <-> validated WorkloadSet <-> an editable table.

The YAML text is the one source of truth. The table shows its `workloads` list; an
edit made in the table is applied to the parsed document (keeping fields the table
does not show, such as `variants` or `qps_hourly`) and written back as YAML, which is
then validated by the same loader the CLI uses (planner/core/workloads.py), so a bad cell
gets the same field-level message as a bad file.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from planner.core.catalog import Catalog
from planner.core.errors import InputError
from planner.core.workloads import WorkloadSet, parse_workloads

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_WORKLOADS = REPO / "examples" / "workloads.yaml"

# Columns of the table editor, in order; each is a field of one workload entry.
TABLE_COLUMNS = ("name", "model", "kind", "qps", "p99_ms", "items", "deadline_h", "precisions",
                 "max_quality_loss", "min_replicas")
_INT_COLUMNS = {"items", "min_replicas"}
_FLOAT_COLUMNS = {"qps", "p99_ms", "deadline_h", "max_quality_loss"}

INVENTORY_SOURCES = {
    "file": "the workloads file's inventory",
    "catalog": "anything in the catalog, rented at its price",
    "cluster": "the running Ray cluster's nodes (owned)",
}


def example_text() -> str:
    return EXAMPLE_WORKLOADS.read_text()


def parse_text(text: str, catalog: Catalog, source: str = "workloads YAML") -> WorkloadSet:
    """Validate workloads YAML text; InputError names the field, the value and the fix."""
    from planner.models import builtin_model_names

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputError(source, "<yaml>", f"not valid YAML{where}", "fix the YAML syntax") from None
    return parse_workloads(raw, source, known_models=builtin_model_names(), known_hardware=catalog.names())


def table_rows(text: str) -> list[dict[str, Any]]:
    """The `workloads` entries of a YAML document as flat rows for the table editor.

    Reads the raw document (not the validated set) so a half-valid file can still be
    fixed in the table. Precisions are shown comma-separated.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    entries = raw.get("workloads") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        return []
    rows = []
    for entry in entries:
        entry = entry if isinstance(entry, dict) else {}
        row = {column: entry.get(column) for column in TABLE_COLUMNS}
        if isinstance(row["precisions"], list):
            row["precisions"] = ", ".join(str(p) for p in row["precisions"])
        rows.append(row)
    return rows


def _is_blank(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _cell(column: str, value: object) -> object:
    """A table cell as the YAML value it stands for (blank: the field is left out)."""
    if _is_blank(value):
        return None
    if column == "precisions":
        return [p.strip() for p in str(value).split(",") if p.strip()]
    if column in _INT_COLUMNS and isinstance(value, float) and value.is_integer():
        return int(value)
    if column in _FLOAT_COLUMNS | _INT_COLUMNS and hasattr(value, "item"):
        return value.item()  # numpy scalar from the editor's frame
    return value


def apply_table_edits(rows: Sequence[Mapping[str, Any]], edits: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Apply a Streamlit data-editor delta ({edited_rows, added_rows, deleted_rows}) to rows."""
    out = [dict(r) for r in rows]
    for index, changes in (edits.get("edited_rows") or {}).items():
        i = int(index)
        if 0 <= i < len(out):
            out[i].update(changes)
    for added in edits.get("added_rows") or []:
        out.append({column: added.get(column) for column in TABLE_COLUMNS})
    deleted = {int(i) for i in edits.get("deleted_rows") or []}
    return [r for i, r in enumerate(out) if i not in deleted]


def text_with_rows(text: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The YAML document with its `workloads` list replaced by the table's rows.

    Fields the table does not show are kept from the entry at the same position.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    raw = raw if isinstance(raw, dict) else {}
    old = raw.get("workloads") if isinstance(raw.get("workloads"), list) else []
    entries = []
    for i, row in enumerate(rows):
        entry = dict(old[i]) if i < len(old) and isinstance(old[i], dict) else {}
        for column in TABLE_COLUMNS:
            value = _cell(column, row.get(column))
            if value is None:
                entry.pop(column, None)
            else:
                entry[column] = value
        entries.append(entry)
    raw["workloads"] = entries
    return yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=110)


def summary(ws: WorkloadSet) -> str:
    """One line: how many workloads of each kind, the objective and the inventory."""
    kinds: dict[str, int] = {}
    for w in ws.workloads:
        kinds[w.kind] = kinds.get(w.kind, 0) + 1
    inventory = ("none listed: anything in the catalog" if ws.inventory is None
                 else ", ".join(f"{name} x{count}" for name, count in ws.inventory.items()))
    return (f"{len(ws.workloads)} workloads ({', '.join(f'{n} {k}' for k, n in kinds.items())}); "
            f"objective {ws.objective}; inventory: {inventory}")
