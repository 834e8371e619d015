"""Importers: profile rows from the planner's own CSV and from Triton's profiling tools.

Three formats are recognised by their header (``detect_format``):

* ``planner`` -- the profile CSV of ``planner/core/profiles.py`` (columns ``model, hardware, ...``).
* ``perf_analyzer`` -- Triton perf_analyzer's ``-f out.csv`` export. The header, as written by
  perf_analyzer's ReportWriter::GenerateReport, is ``Concurrency`` (or ``Request Rate``),
  ``Inferences/Second, Client Send``, server columns when server stats are on, ``Client Recv``,
  ``p50 latency, p90 latency, p95 latency, p99 latency``, and with ``--verbose-csv`` ``Avg latency,
  request/response, response wait`` (newer versions add GPU metric columns). Every latency is in
  MICROSECONDS.
* ``model_analyzer`` -- Triton Model Analyzer's ``metrics-model-inference.csv``: ``Model, Batch,
  Concurrency`` (or ``Request Rate``), ``Model Config Path, Instance Group, Max Batch Size,
  Satisfies Constraints, Throughput (infer/sec), p99 Latency (ms)`` and, when asked for, ``p90
  Latency (ms), Avg Latency (ms), RAM Usage (MB), GPU Memory Usage (MB), GPU Utilization (%),
  GPU Power Usage (W)``. Latencies are in ms.

Rows from the two Triton tools are ``source="imported"`` and their ``source_detail`` names the
file and the load level, so an imported figure is never mistaken for one measured here. Both
tools' "infer/sec" counts items (requests x batch size), which is what ``throughput_rps`` means.

Leading lines starting with ``#`` are skipped in the two Triton formats (to let a user note where
an export came from); the planner CSV itself takes no comment lines.
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from planner.core.errors import InputError
from planner.core.profiles import REQUIRED_COLUMNS, ProfileRow, read_profiles_csv
from planner.core.workloads import PRECISIONS

US_PER_MS = 1000.0
BYTES_PER_GIB = 2 ** 30
BYTES_PER_MB_UPPER = 2 ** 20   # see _mb_to_gib

PERF_ANALYZER_REQUIRED = ("Inferences/Second", "p50 latency", "p99 latency")
MODEL_ANALYZER_REQUIRED = ("Model", "Batch", "Throughput (infer/sec)", "p99 Latency (ms)")
_LOAD_COLUMNS = ("Concurrency", "Request Rate")
FORMATS = {
    "planner": "planner profile CSV (" + ", ".join(REQUIRED_COLUMNS) + ")",
    "perf_analyzer": "Triton perf_analyzer -f export (Concurrency, "
                     + ", ".join(PERF_ANALYZER_REQUIRED) + ")",
    "model_analyzer": "Triton Model Analyzer metrics-model-inference.csv ("
                      + ", ".join(MODEL_ANALYZER_REQUIRED) + ", Concurrency)",
}


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs, skipping leading '#' lines and blank rows."""
    if not path.is_file():
        raise InputError("import", str(path), "file not found", "pass the path of an exported CSV")
    with path.open(newline="") as fh:
        lines = fh.read().splitlines()
    first = 0
    while first < len(lines) and (lines[first].startswith("#") or not lines[first].strip()):
        first += 1
    reader = csv.reader(lines[first:])
    header = [h.strip() for h in next(reader, [])]
    rows = []
    for offset, cells in enumerate(reader, start=first + 2):
        if not any(c.strip() for c in cells):
            continue
        rows.append((offset, {h: c.strip() for h, c in zip(header, cells)}))
    return header, rows


def _format_of(header: list[str]) -> str | None:
    if all(c in header for c in REQUIRED_COLUMNS):
        return "planner"
    has_load = any(c in header for c in _LOAD_COLUMNS)
    if has_load and all(c in header for c in MODEL_ANALYZER_REQUIRED):
        return "model_analyzer"
    if has_load and all(c in header for c in PERF_ANALYZER_REQUIRED):
        return "perf_analyzer"
    return None


def _unknown_header(path: Path, header: list[str], expected: str | None = None) -> InputError:
    # Name the first column the closest format lacks, so the user sees what to fix.
    wanted = {"planner": REQUIRED_COLUMNS, "perf_analyzer": ("Concurrency",) + PERF_ANALYZER_REQUIRED,
              "model_analyzer": MODEL_ANALYZER_REQUIRED + ("Concurrency",)}
    names = [expected] if expected else list(wanted)
    best = max(names, key=lambda n: sum(c in header for c in wanted[n]))
    missing = [c for c in wanted[best] if c not in header
               and not (c == "Concurrency" and "Request Rate" in header)]
    what = f"missing column {missing[0]!r} for the {best} format" if missing else "unrecognised"
    return InputError(f"{path}: header", ",".join(header)[:120], what,
                      "export one of: " + "; ".join(FORMATS[n] for n in names))


def detect_format(path: str | Path) -> str:
    """'planner' | 'perf_analyzer' | 'model_analyzer', from the file's header."""
    path = Path(path)
    header, _ = _read_table(path)
    found = _format_of(header)
    if found is None:
        raise _unknown_header(path, header)
    return found


def _number(path: Path, line: int, column: str, text: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 if positive else value >= 0):  # also rejects nan
        need = "> 0" if positive else ">= 0"
        raise InputError(f"{path}: line {line}, column {column}", text, f"must be a number {need}",
                         "check the export was not edited or truncated")
    return value


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError("--precision", precision, "unknown precision", f"use one of {', '.join(PRECISIONS)}")


def _load_level(header: list[str], record: dict[str, str]) -> str:
    column = "Concurrency" if "Concurrency" in header else "Request Rate"
    return f"{column.lower()} {record.get(column, '?')}"


def _mb_to_gib(mb: float) -> float:
    # Model Analyzer's "MB" is 10^6 bytes on some paths and DCGM's MiB on others; take the larger
    # reading (MiB) so a replica's memory is never understated when packing it onto a device.
    return mb * BYTES_PER_MB_UPPER / BYTES_PER_GIB


def import_profiles_csv(path: str | Path, known_hardware: Iterable[str] | None = None) -> list[ProfileRow]:
    """The planner's own CSV. Measured rows stay measured; their source_detail names this file."""
    path = Path(path)
    if path.is_file():
        with path.open() as fh:
            if fh.readline().startswith("#"):
                raise InputError(f"{path}: line 1", "#...", "a planner profile CSV takes no comment lines",
                                 "delete the comment line (the header must be the first line)")
    rows = read_profiles_csv(path, known_hardware)
    return [replace(r, source_detail=f"{r.source_detail} (imported from {path})".strip())
            if r.source == "measured" else r for r in rows]


def import_perf_analyzer_csv(path: str | Path, *, model: str, hardware: str, precision: str,
                             batch_size: int, units_per_replica: float = 1.0, memory_gib: float = 0.0,
                             quality_loss: float = 0.0) -> list[ProfileRow]:
    """One ProfileRow per load level (concurrency or request rate) of a perf_analyzer export.

    perf_analyzer latencies are per request, and a request is one batch of ``batch_size`` items
    (its ``-b``), which matches ProfileRow's per-batch latencies; they are converted from
    microseconds to ms. Throughput is ``Inferences/Second`` (items/s). The export has no energy,
    no memory and no sample count, so energy is 0 (energy_source says why) and memory is what the
    caller passes. Note that all load levels share one batch size, so their rows share a store key.
    """
    path = Path(path)
    _check_precision(precision)
    if batch_size < 1:
        raise InputError("--batch-size", batch_size, "must be >= 1", "pass the -b used with perf_analyzer")
    header, records = _read_table(path)
    if _format_of(header) != "perf_analyzer":
        raise _unknown_header(path, header, "perf_analyzer")
    rows = []
    for line, record in records:
        def ms(column: str) -> float:
            return _number(path, line, column, record[column], positive=True) / US_PER_MS
        p90 = ms("p90 latency") if record.get("p90 latency") else None
        rows.append(ProfileRow(
            model=model, hardware=hardware, precision=precision, batch_size=batch_size,
            latency_p50_ms=ms("p50 latency"), latency_p99_ms=ms("p99 latency"),
            throughput_rps=_number(path, line, "Inferences/Second", record["Inferences/Second"], True),
            memory_gib=memory_gib, energy_j_per_item=0.0, quality_loss=quality_loss,
            source="imported", latency_p90_ms=p90, units_per_replica=units_per_replica,
            source_detail=f"perf_analyzer export {path}, {_load_level(header, record)}",
            energy_source="not in perf_analyzer export"))
    if not rows:
        raise InputError("import", str(path), "the export has no rows", "run perf_analyzer with -f again")
    return rows


def import_model_analyzer_csv(path: str | Path, *, hardware: str, precision: str = "fp32",
                              quality_loss: float = 0.0, units_per_replica: float = 1.0) -> list[ProfileRow]:
    """One ProfileRow per row of Model Analyzer's metrics-model-inference.csv.

    Model Analyzer reports no p50 (it has no p50 metric), so ``latency_p50_ms`` is set to the p99
    and source_detail says "p50 not in export; p99 used" -- an overstatement of the median, never
    an understatement. A ``p50 Latency (ms)`` column, if a future export has one, is used.
    Energy per item is GPU power (W) / throughput (items/s) when ``GPU Power Usage (W)`` is there
    (that is the whole GPU's average power, idle share included), else 0. Memory is ``GPU Memory
    Usage (MB)``, else ``RAM Usage (MB)``, else 0 (and source_detail says so).
    """
    path = Path(path)
    _check_precision(precision)
    header, records = _read_table(path)
    if _format_of(header) != "model_analyzer":
        raise _unknown_header(path, header, "model_analyzer")
    rows = []
    for line, record in records:
        def value(column: str, positive: bool = False) -> float | None:
            text = record.get(column, "")
            return _number(path, line, column, text, positive) if text else None
        batch = value("Batch", positive=True)
        if batch is None or not batch.is_integer():
            raise InputError(f"{path}: line {line}, column Batch", record.get("Batch"),
                             "not a whole number", "check the export was not edited")
        throughput = value("Throughput (infer/sec)", positive=True)
        p99 = value("p99 Latency (ms)", positive=True)
        if throughput is None or p99 is None:
            raise InputError(f"{path}: line {line}", "", "throughput or p99 latency is empty",
                             "drop rows of failed measurements from the export")
        p50 = value("p50 Latency (ms)", positive=True)
        notes = [f"Model Analyzer export {path}", _load_level(header, record)]
        if record.get("Model Config Path"):
            notes.append(f"config {record['Model Config Path']}")
        if p50 is None:
            p50 = p99
            notes.append("p50 not in export; p99 used")
        memory_mb = value("GPU Memory Usage (MB)")
        if memory_mb is None:
            memory_mb = value("RAM Usage (MB)")
        if memory_mb is None:
            notes.append("memory not in export")
        power_w = value("GPU Power Usage (W)")
        rows.append(ProfileRow(
            model=record["Model"], hardware=hardware, precision=precision, batch_size=int(batch),
            latency_p50_ms=p50, latency_p99_ms=p99, throughput_rps=throughput,
            memory_gib=_mb_to_gib(memory_mb) if memory_mb is not None else 0.0,
            energy_j_per_item=power_w / throughput if power_w is not None else 0.0,
            quality_loss=quality_loss, source="imported",
            latency_p90_ms=value("p90 Latency (ms)", positive=True),
            units_per_replica=units_per_replica, source_detail=", ".join(notes),
            energy_source=("imported: Model Analyzer GPU power / throughput" if power_w is not None
                           else "not in Model Analyzer export")))
    if not rows:
        raise InputError("import", str(path), "the export has no rows", "run model-analyzer again")
    return rows
