"""A persistent profile store: every profiled point, kept across runs, in two Parquet files.

Why Parquet rather than DuckDB: a Parquet file is one portable columnar file that pandas, pyarrow,
Spark and DuckDB itself read, with no server and no lock file. The data is small (thousands of
rows), so reading the whole table, merging in memory and writing it back is cheap; DuckDB would add
a dependency for SQL this store does not need.

Layout: ``<dir>/rows.parquet`` (one row per ProfileRow) and ``<dir>/skipped.parquet`` (the grid
points not measured, and why). Each file is written atomically (a temporary file in the same
folder, then ``os.replace``): a reader sees the old file or the new one, never half of one. There
is no lock: two writers at once both succeed and the last one wins.

Schema: built from ProfileRow's own fields, so the store cannot drift from the record (str ->
string, int -> int64, float -> float64; a field typed ``X | None`` is nullable, the others are
not). The Parquet key-value metadata carries ``store_format_version``; a store written by a newer
planner is refused with a message saying to upgrade. A round trip is exact: the rows read back
compare equal to the rows written.

Cache semantics: a grid point is a cache hit when the store holds a row with the same PointKey --
model, hardware, precision, batch size, units per replica, mode, *and* the device fingerprint and
framework version it was measured with. A different torch version, or a different physical device
of the same catalog type, is a different point and is measured again. ``planner profile --force``
bypasses the cache (it measures and then upserts, replacing the cached row).
"""
from __future__ import annotations

import os
import tempfile
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from planner.core.errors import InputError
from planner.core.profiles import REQUIRED_COLUMNS, ProfileRow, SkippedPoint, write_profiles_csv

STORE_FORMAT_VERSION = 1
_VERSION_KEY = b"store_format_version"
ROWS_FILE = "rows.parquet"
SKIPPED_FILE = "skipped.parquet"
_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64()}


def _schema_for(record: type) -> pa.Schema:
    """An explicit Arrow schema from a dataclass's type hints (nullable exactly where Optional)."""
    hints = typing.get_type_hints(record)
    columns = []
    for field in fields(record):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)
        base = args[0] if nullable and len(args) == 1 else hint
        if base not in _ARROW_TYPES:  # a new field of a type this store cannot hold
            raise TypeError(f"{record.__name__}.{field.name}: no Parquet type for {hint!r}")
        columns.append(pa.field(field.name, _ARROW_TYPES[base], nullable=nullable))
    metadata = {_VERSION_KEY: str(STORE_FORMAT_VERSION).encode()}
    return pa.schema(columns, metadata=metadata)


ROWS_SCHEMA = _schema_for(ProfileRow)
SKIPPED_SCHEMA = _schema_for(SkippedPoint)


@dataclass(frozen=True)
class PointKey:
    """What makes two profile rows the same measurement (and so a cache hit)."""
    model: str
    hardware: str
    precision: str
    batch_size: int
    units_per_replica: float
    mode: str
    device_fingerprint: str
    framework_version: str

    @classmethod
    def from_row(cls, row: ProfileRow) -> PointKey:
        return cls(row.model, row.hardware, row.precision, row.batch_size, row.units_per_replica,
                   row.mode, row.device_fingerprint, row.framework_version)


def point_key(model: str, hardware: str, precision: str, batch_size: int,
              units_per_replica: float = 1.0, mode: str = "inference",
              device_fingerprint: str = "", framework_version: str = "") -> PointKey:
    """A PointKey with ProfileRow's defaults for the parts a caller does not name."""
    return PointKey(model, hardware, precision, int(batch_size), float(units_per_replica), mode,
                    device_fingerprint, framework_version)


def _skipped_key(point: SkippedPoint) -> tuple[str, str, str, int]:
    # SkippedPoint carries no units, mode, device or framework version, so this is all it can key on.
    return (point.model, point.hardware, point.precision, point.batch_size)


def _write_parquet_atomically(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_parquet(path: Path, schema: pa.Schema, record: type) -> list:
    if not path.is_file():
        return []
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError("profile store", str(path), f"not a readable Parquet file ({exc})",
                         "restore it from a backup or delete it and profile again") from None
    metadata = table.schema.metadata or {}
    if _VERSION_KEY not in metadata:
        raise InputError("profile store", str(path), "no store_format_version in its metadata",
                         "point --store at a folder written by `planner profile`")
    try:
        version = int(metadata[_VERSION_KEY])
    except ValueError:
        raise InputError(f"{path}: store_format_version", metadata[_VERSION_KEY].decode(errors="replace"),
                         "not a whole number", "restore the store from a backup") from None
    if version > STORE_FORMAT_VERSION:
        raise InputError(f"{path}: store_format_version", version,
                         f"written by a newer planner (this one reads up to {STORE_FORMAT_VERSION})",
                         "upgrade the planner (pip install -U) to read this store")
    names = set(schema.names)
    unknown = [c for c in table.column_names if c not in names]
    if unknown:
        raise InputError(f"{path}: column", unknown[0], "not a field this planner knows",
                         "upgrade the planner to read this store")
    required = set(REQUIRED_COLUMNS) if record is ProfileRow else names
    missing = [c for c in schema.names if c in required and c not in table.column_names]
    if missing:
        raise InputError(f"{path}: column", missing[0], "missing from the store",
                         "restore the store from a backup or delete it and profile again")
    # Columns absent from an older store take the record's defaults.
    return [record(**values) for values in table.to_pylist()]


class ProfileStore:
    """Profile rows and skipped points in a folder; upsert by PointKey; each file written atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError("--store", str(self.path), "is a file, not a folder",
                             "pass a folder (it is created on first write)")

    @property
    def rows_path(self) -> Path:
        return self.path / ROWS_FILE

    @property
    def skipped_path(self) -> Path:
        return self.path / SKIPPED_FILE

    def rows(self) -> list[ProfileRow]:
        return _read_parquet(self.rows_path, ROWS_SCHEMA, ProfileRow)

    def skipped(self) -> list[SkippedPoint]:
        return _read_parquet(self.skipped_path, SKIPPED_SCHEMA, SkippedPoint)

    def lookup(self, key: PointKey) -> ProfileRow | None:
        """The stored row for this point (a cache hit), or None (a miss)."""
        for row in self.rows():
            if PointKey.from_row(row) == key:
                return row
        return None

    def add(self, rows: Iterable[ProfileRow], skipped: Iterable[SkippedPoint] = (),
            replace: bool = True) -> int:
        """Upsert rows by PointKey (and skipped points by model/hardware/precision/batch).

        ``replace=True``: a new row replaces the stored one with the same key, in its place.
        ``replace=False``: a stored row is kept and the new one dropped. Within one call, the
        last row for a key wins. Returns how many of the given rows were written.
        """
        incoming = {PointKey.from_row(r): r for r in rows}
        current = self.rows()
        stored = {PointKey.from_row(r) for r in current}
        written = 0
        merged: list[ProfileRow] = []
        for row in current:
            key = PointKey.from_row(row)
            if replace and key in incoming:
                merged.append(incoming[key])
                written += 1
            else:
                merged.append(row)
        for key, row in incoming.items():
            if key not in stored:
                merged.append(row)
                written += 1
        new_skipped = {_skipped_key(p): p for p in skipped}
        if new_skipped:
            old = self.skipped()
            old_keys = {_skipped_key(p) for p in old}
            kept = [new_skipped.get(_skipped_key(p), p) if replace else p for p in old]
            kept += [p for k, p in new_skipped.items() if k not in old_keys]
            _write_parquet_atomically(self.skipped_path, _to_table(kept, SKIPPED_SCHEMA))
        if written or not self.rows_path.exists():
            _write_parquet_atomically(self.rows_path, _to_table(merged, ROWS_SCHEMA))
        return written

    def export_csv(self, path: str | Path) -> Path:
        """All stored rows as the planner's profile CSV (what `planner plan --profiles` reads)."""
        return write_profiles_csv(path, self.rows())


def _to_table(records: list, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in records], schema=schema)
