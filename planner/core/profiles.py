"""Profile rows: one measured (or estimated, or imported) operating point of a model.

A profile table is what the planner reads. Its CSV form is the exchange format:
the profiler writes it, users may write it by hand or export it from another
tool. Required columns::

    model, hardware, precision, batch_size, latency_p50_ms, latency_p99_ms,
    throughput_rps, memory_gib, energy_j_per_item, quality_loss, source

Optional columns (defaults in brackets): latency_p90_ms [blank],
units_per_replica [1: a CPU row's vCPUs/threads, else devices], device_name [""],
source_detail [""], energy_source [""], samples [blank], latency_cv [blank],
measured_at [""]; efficiency: flops_per_item, bytes_per_item, achieved_tflops,
achieved_gbps, peak_fraction [blank]; estimates: uncertainty_pct [blank];
provenance: device_fingerprint, runtime_version, framework_version,
code_version [""]; mode [inference | training_step].

`source` is one of measured | estimated | imported, so a figure never hides
where it came from; `source_detail` says on what device, by which model, or
from which file.
"""
from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from planner.core.errors import InputError
from planner.core.io import write_atomically
from planner.core.workloads import PRECISIONS

SOURCES = ("measured", "estimated", "imported")
REQUIRED_COLUMNS = ("model", "hardware", "precision", "batch_size", "latency_p50_ms", "latency_p99_ms",
                    "throughput_rps", "memory_gib", "energy_j_per_item", "quality_loss", "source")


@dataclass(frozen=True)
class ProfileRow:
    model: str
    hardware: str
    precision: str
    batch_size: int
    latency_p50_ms: float          # per batch
    latency_p99_ms: float          # per batch
    throughput_rps: float          # items per second for one replica at this batch size
    memory_gib: float              # peak memory of one replica
    energy_j_per_item: float
    quality_loss: float            # vs fp32 on a held-out set (accuracy drop or relative error)
    source: str                    # measured | estimated | imported
    latency_p90_ms: float | None = None
    units_per_replica: float = 1.0  # vCPUs (threads) for CPU rows; devices for accelerators
    device_name: str = ""
    source_detail: str = ""
    energy_source: str = ""
    samples: int | None = None
    latency_cv: float | None = None
    measured_at: str = ""
    # Efficiency: counted work per item, and how much of the catalog's peak it achieved.
    flops_per_item: float | None = None
    bytes_per_item: float | None = None
    achieved_tflops: float | None = None
    achieved_gbps: float | None = None
    peak_fraction: float | None = None      # achieved / catalog peak for this device and precision
    uncertainty_pct: float | None = None    # estimated rows: +- this much on throughput
    # Provenance: enough to tell whether two rows are comparable.
    device_fingerprint: str = ""            # e.g. GPU UUID hash / CPU model + flags hash
    runtime_version: str = ""               # driver / CUDA runtime
    framework_version: str = ""             # torch x.y / jax x.y
    code_version: str = ""                  # git commit of the profiler
    mode: str = "inference"                 # inference | training_step
    # How the batch was executed (eager | cuda_graph | jax_jit); serving runs it the same way.
    execution: str = ""
    ops_per_batch: float | None = None      # ATen ops per forward that launch work: the estimator's kernel count
    conv_ops_per_batch: float | None = None  # of which convolutions (several times an elementwise kernel's cost)

    @property
    def key(self) -> tuple[str, str, str, int, float, str]:
        return (self.model, self.hardware, self.precision, self.batch_size, self.units_per_replica, self.mode)


@dataclass(frozen=True)
class SkippedPoint:
    """A grid point not measured, and why: unsupported precision, out of memory, or pruned."""
    model: str
    hardware: str
    precision: str
    batch_size: int
    status: str        # unsupported | oom | pruned | error
    reason: str
    units_per_replica: float = 1.0
    mode: str = "inference"
    device_fingerprint: str = ""
    framework_version: str = ""



COLUMNS = tuple(f.name for f in fields(ProfileRow))
_INT = {"batch_size", "samples"}
_OPTIONAL_NUMBERS = {"latency_p90_ms", "samples", "latency_cv", "flops_per_item", "bytes_per_item",
                     "achieved_tflops", "achieved_gbps", "peak_fraction", "uncertainty_pct",
                     "ops_per_batch", "conv_ops_per_batch"}
_FLOAT = {"latency_p50_ms", "latency_p99_ms", "throughput_rps", "memory_gib", "energy_j_per_item",
          "quality_loss", "units_per_replica"} | (_OPTIONAL_NUMBERS - {"samples"})
_DEFAULTS = {f.name: f.default for f in fields(ProfileRow) if f.name not in REQUIRED_COLUMNS}


def _parse_cell(path: str, line: int, column: str, text: str) -> object:
    where = f"{path}: line {line}, column {column}"
    text = text.strip()
    if column in _OPTIONAL_NUMBERS and text == "":
        return None
    if column in _INT:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            raise InputError(where, text, "not a whole number", "write an integer") from None
        value = int(number)
        if value < 0:
            raise InputError(where, text, "must be >= 0", "write a non-negative integer")
        if value < 1 and column == "batch_size":
            raise InputError(where, text, "must be >= 1", "write a positive batch size")
        return value
    if column in _FLOAT:
        try:
            value = float(text)
        except ValueError:
            raise InputError(where, text, "not a number", "write a decimal number") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(where, text, "must be a finite number >= 0", "write a non-negative number")
        positive = {"latency_p50_ms", "latency_p99_ms", "throughput_rps", "units_per_replica"}
        if column in positive and value == 0:
            raise InputError(where, text, "must be > 0", "write a positive number")
        return value
    return text


def read_profiles_csv(path: str | Path, known_hardware: Iterable[str] | None = None) -> list[ProfileRow]:
    """Read a profile CSV, checking every cell; errors name file, line, column and value."""
    path = Path(path)
    if not path.is_file():
        raise InputError("--profiles", str(path), "file not found",
                         "pass a profiles CSV (run `planner profile` to make one)")
    hardware = set(known_hardware) if known_hardware is not None else None
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(f"{path}: header", ",".join(header), f"missing columns {missing}",
                             f"the CSV needs at least: {', '.join(REQUIRED_COLUMNS)}")
        # A misspelt optional column would otherwise be dropped without a word.
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            close = difflib.get_close_matches(unknown[0], COLUMNS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise InputError(f"{path}: header", unknown[0], "unknown column",
                             f"{hint}known columns are {', '.join(COLUMNS)}; "
                             "see docs/formats.md for the columns")
        rows: list[ProfileRow] = []
        for line, record in enumerate(reader, start=2):
            values: dict[str, object] = dict(_DEFAULTS)
            for column, text in record.items():
                column = (column or "").strip()
                if column in COLUMNS and text is not None:
                    if column not in REQUIRED_COLUMNS and text.strip() == "" and column not in _OPTIONAL_NUMBERS:
                        continue
                    values[column] = _parse_cell(str(path), line, column, text)
            row = ProfileRow(**values)  # type: ignore[arg-type]
            where = f"{path}: line {line}"
            if row.precision not in PRECISIONS:
                raise InputError(f"{where}, column precision", row.precision, "unknown precision",
                                 f"use one of {', '.join(PRECISIONS)}")
            if row.source not in SOURCES:
                raise InputError(f"{where}, column source", row.source, "unknown source",
                                 f"use one of {', '.join(SOURCES)}")
            if hardware is not None and row.hardware not in hardware:
                raise InputError(f"{where}, column hardware", row.hardware, "hardware not in the catalog",
                                 "use a catalog name or pass --catalog with your own catalog")
            rows.append(row)
    if not rows:
        raise InputError("--profiles", str(path), "the file has no rows", "profile some models first")
    return rows


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def profiles_to_csv_text(rows: Sequence[ProfileRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        data = asdict(row)
        writer.writerow([_format(data[c]) for c in COLUMNS])
    return buffer.getvalue()


def write_profiles_csv(path: str | Path, rows: Sequence[ProfileRow]) -> Path:
    return write_atomically(path, profiles_to_csv_text(rows))
