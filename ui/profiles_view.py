"""Profiles page logic: which measurements the planner reads, and where each came from.

The default set is the one `planner demo` plans with, minus this machine's fresh CPU
run: GPU rows measured on H100/H200 (profiles/reference/), roofline estimates from
the H100 rows for other accelerators (planner/profiling/estimator.py), and the committed CPU
profile (profiles/reference/cpu-x86.csv) in place of a live CPU measurement. An
uploaded CSV is imported with the CLI's importer, so its rows keep the `source` the
file gives them (or `imported` for perf_analyzer / Model Analyzer exports).
"""
from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import pandas as pd

from planner.core.catalog import Catalog
from planner.core.profiles import ProfileRow

# What each `source` means, for the legend next to every chart and table.
SOURCE_MEANING = {
    "measured": "timed on the device named in source_detail",
    "estimated": "predicted by a model (roofline from another device's measurements); never a measurement",
    "imported": "read from another tool's export (the file is named in source_detail)",
}
# What the charts show first: a measured CPU and GPU, and an estimated GPU, at two precisions.
DEFAULT_HARDWARE = ("cpu-x86", "h100", "t4")
DEFAULT_PRECISIONS = ("fp32", "bf16")
FRAME_COLUMNS = ("model", "hardware", "precision", "batch_size", "source", "latency_p50_ms", "latency_p99_ms",
                 "throughput_rps", "energy_j_per_item", "quality_loss", "memory_gib", "units_per_replica",
                 "uncertainty_pct", "mode", "source_detail")


def default_rows(catalog: Catalog) -> list[ProfileRow]:
    """Reference GPU rows, their estimates for other accelerators, and the committed CPU profile."""
    from planner.core.profiles import read_profiles_csv
    from planner.models import builtin_model_names
    from planner.profiling.reference import REFERENCE_CPU, reference_and_estimated_rows

    reference, estimated = reference_and_estimated_rows(catalog, builtin_model_names())
    cpu = read_profiles_csv(REFERENCE_CPU, known_hardware=catalog.names())
    return [*cpu, *reference, *estimated]


def rows_from_upload(data: bytes, name: str, catalog: Catalog) -> list[ProfileRow]:
    """Rows of an uploaded profiles CSV (the planner's format); InputError names the bad cell."""
    from planner.profiling.importers import import_profiles_csv

    # The CSV reader (planner/core/profiles.py) reads a file, not text: the upload goes through one until it does.
    with tempfile.TemporaryDirectory(prefix="planner-ui-") as folder:
        path = Path(folder) / Path(name).name
        path.write_bytes(data)
        return import_profiles_csv(path, known_hardware=catalog.names())


def frame(rows: Sequence[ProfileRow]) -> pd.DataFrame:
    """The rows as a table, one line per operating point, with their source kept."""
    if not rows:
        return pd.DataFrame(columns=list(FRAME_COLUMNS))
    records = [{column: asdict(r)[column] for column in FRAME_COLUMNS} for r in rows]
    return pd.DataFrame.from_records(records, columns=list(FRAME_COLUMNS))


def source_counts(rows: Sequence[ProfileRow]) -> dict[str, int]:
    counts = {source: 0 for source in SOURCE_MEANING}
    for r in rows:
        counts[r.source] = counts.get(r.source, 0) + 1
    return counts


def chart_frame(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """One model's inference rows, labelled `hardware precision (source)` for one line per series."""
    picked = table[(table["model"] == model) & (table["mode"] == "inference")].copy()
    picked["series"] = picked["hardware"] + " " + picked["precision"] + " (" + picked["source"] + ")"
    return picked.sort_values(["series", "batch_size"])


def default_pick(options: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """The preferred options that exist, or every option when none does."""
    picked = [o for o in options if o in preferred]
    return picked or list(options)


def merge(*groups: Sequence[ProfileRow]) -> list[ProfileRow]:
    """Rows of several sources; a later group's row replaces an earlier one with the same key."""
    by_key: dict[tuple, ProfileRow] = {}
    for group in groups:
        for r in group:
            by_key[r.key] = r
    return list(by_key.values())
