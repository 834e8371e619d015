"""The Parquet profile store: exact round trip, upsert, cache keys, atomic writes, format version."""
from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from planner.core.errors import InputError
from planner.core.profiles import ProfileRow, SkippedPoint, read_profiles_csv
from planner.profiling.store import ROWS_SCHEMA, PointKey, ProfileStore, point_key


def _row(**changes) -> ProfileRow:
    base = ProfileRow("mlp_digits", "t4", "fp16", 8, 1.25, 2.5, 6400.0, 0.2, 0.0005, 0.001, "measured",
                      latency_p90_ms=2.0, units_per_replica=1.0, device_name="Tesla T4",
                      source_detail="Tesla T4, torch 2.5.1", energy_source="nvml",
                      samples=200, latency_cv=0.04, measured_at="2026-01-02T03:04:05+00:00",
                      flops_per_item=1.5e6, bytes_per_item=None, achieved_tflops=0.01,
                      achieved_gbps=None, peak_fraction=0.0001, uncertainty_pct=None,
                      device_fingerprint="gpu-abc123", runtime_version="cuda 12.4",
                      framework_version="torch 2.5.1", code_version="deadbeef", mode="inference")
    return dataclasses.replace(base, **changes)


def test_round_trip_is_exact(tmp_path):
    rows = [_row(), _row(batch_size=1, latency_cv=None, samples=None, latency_p90_ms=None,
                         source="estimated", uncertainty_pct=25.0, latency_p50_ms=0.1 + 0.2)]
    skipped = [SkippedPoint("mlp_digits", "t4", "int8", 8, "unsupported", "no int8 kernels on CUDA")]
    store = ProfileStore(tmp_path / "store")
    assert store.add(rows, skipped) == 2
    again = ProfileStore(tmp_path / "store")
    assert again.rows() == rows
    assert again.skipped() == skipped
    assert again.rows()[1].latency_p50_ms == 0.1 + 0.2   # float64, no rounding


def test_schema_follows_profile_row_and_nullability(tmp_path):
    assert ROWS_SCHEMA.names == [f.name for f in dataclasses.fields(ProfileRow)]
    assert ROWS_SCHEMA.field("batch_size").type == pa.int64() and not ROWS_SCHEMA.field("batch_size").nullable
    assert ROWS_SCHEMA.field("samples").type == pa.int64() and ROWS_SCHEMA.field("samples").nullable
    assert ROWS_SCHEMA.field("model").type == pa.string() and not ROWS_SCHEMA.field("model").nullable
    assert ROWS_SCHEMA.field("latency_p90_ms").nullable
    store = ProfileStore(tmp_path)
    store.add([_row()])
    metadata = pq.read_schema(store.rows_path).metadata
    assert metadata[b"store_format_version"] == b"1"


def test_empty_store_reads_empty(tmp_path):
    store = ProfileStore(tmp_path / "not-yet")
    assert store.rows() == [] and store.skipped() == [] and store.lookup(PointKey.from_row(_row())) is None


def test_upsert_replaces_in_place_and_appends_new(tmp_path):
    store = ProfileStore(tmp_path)
    store.add([_row(batch_size=1), _row(batch_size=8)])
    faster = _row(batch_size=1, latency_p50_ms=0.9)
    assert store.add([faster, _row(batch_size=32)]) == 2
    assert [(r.batch_size, r.latency_p50_ms) for r in store.rows()] == [(1, 0.9), (8, 1.25), (32, 1.25)]


def test_replace_false_keeps_the_stored_row(tmp_path):
    store = ProfileStore(tmp_path)
    store.add([_row()])
    assert store.add([_row(latency_p50_ms=9.0), _row(batch_size=2)], replace=False) == 1
    assert [r.latency_p50_ms for r in store.rows()] == [1.25, 1.25]


def test_skipped_points_upsert_by_grid_point(tmp_path):
    store = ProfileStore(tmp_path)
    store.add([], [SkippedPoint("m", "t4", "fp32", 64, "oom", "16 GiB exceeded")])
    store.add([], [SkippedPoint("m", "t4", "fp32", 64, "pruned", "slower than b32"),
                   SkippedPoint("m", "t4", "fp32", 128, "oom", "x")])
    assert [(p.batch_size, p.status) for p in store.skipped()] == [(64, "pruned"), (128, "oom")]


@pytest.mark.parametrize("part, other", [
    ("model", "resnet_small"), ("hardware", "a10g"), ("precision", "fp32"), ("batch_size", 16),
    ("units_per_replica", 2.0), ("mode", "training_step"),
    ("device_fingerprint", "gpu-other"), ("framework_version", "torch 2.6.0"),
])
def test_cache_lookup_misses_when_any_key_part_differs(tmp_path, part, other):
    store = ProfileStore(tmp_path)
    row = _row()
    store.add([row])
    assert store.lookup(PointKey.from_row(row)) == row
    assert store.lookup(dataclasses.replace(PointKey.from_row(row), **{part: other})) is None


def test_cache_lookup_ignores_non_key_fields(tmp_path):
    store = ProfileStore(tmp_path)
    store.add([_row()])
    key = point_key("mlp_digits", "t4", "fp16", 8, device_fingerprint="gpu-abc123",
                    framework_version="torch 2.5.1")
    assert store.lookup(key) == _row()   # code_version, runtime_version, measured_at are not in the key


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    store = ProfileStore(tmp_path)
    store.add([_row()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        store.add([_row(batch_size=2)])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]
    assert store.rows() == [_row()]   # the old file is intact


def test_newer_format_version_is_refused(tmp_path):
    store = ProfileStore(tmp_path)
    store.add([_row()])
    table = pq.read_table(store.rows_path)
    pq.write_table(table.replace_schema_metadata({b"store_format_version": b"99"}), store.rows_path)
    with pytest.raises(InputError, match="newer planner.*To fix: upgrade the planner"):
        store.rows()


def test_parquet_without_version_is_refused(tmp_path):
    pq.write_table(pa.table({"model": ["m"]}), tmp_path / "rows.parquet")
    with pytest.raises(InputError, match="no store_format_version"):
        ProfileStore(tmp_path).rows()


def test_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="is a file, not a folder"):
        ProfileStore(tmp_path / "f")


def test_export_csv_reads_back_equal(tmp_path):
    store = ProfileStore(tmp_path / "s")
    rows = [_row(latency_p50_ms=1.5), _row(batch_size=1, samples=None, latency_cv=None)]
    store.add(rows)
    path = store.export_csv(tmp_path / "out.csv")
    assert read_profiles_csv(path) == rows
