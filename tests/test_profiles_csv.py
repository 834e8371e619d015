"""The profile CSV: round trip, required columns, and cell errors that name line, column and value."""
from __future__ import annotations

import pytest

from planner.core.errors import InputError
from planner.core.profiles import ProfileRow, read_profiles_csv, write_profiles_csv
from tests.conftest import DATA


def test_hand_written_csv_reads_with_defaults():
    rows = read_profiles_csv(DATA / "profiles_small.csv", known_hardware=["cpu-x86", "t4"])
    assert len(rows) == 8
    assert {r.source for r in rows} == {"imported"}
    assert rows[0].latency_p90_ms is None and rows[0].units_per_replica == 1.0


def test_round_trip_keeps_every_field(tmp_path):
    row = ProfileRow("m", "cpu-x86", "bf16", 4, 1.5, 2.5, 2666.7, 0.01, 0.002, 0.003, "measured",
                     latency_p90_ms=2.0, units_per_replica=2.0, device_name="AMD EPYC (2 threads)",
                     source_detail="AMD EPYC (2 threads), torch 2.13.0", energy_source="estimated: x",
                     samples=100, latency_cv=0.05, measured_at="2026-11-23T00:00:00+00:00")
    path = write_profiles_csv(tmp_path / "p.csv", [row])
    assert read_profiles_csv(path) == [row]


@pytest.mark.parametrize("column, bad, problem", [
    ("batch_size", "zero", "not a whole number"),
    ("latency_p99_ms", "-1", "must be a finite number >= 0"),
    ("throughput_rps", "0", "must be > 0"),
    ("precision", "fp64", "unknown precision"),
    ("source", "guessed", "unknown source"),
])
def test_bad_cells_name_line_column_and_value(tmp_path, column, bad, problem):
    text = (DATA / "profiles_small.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[2].split(",")
    cells[header.index(column)] = bad
    text[2] = ",".join(cells)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as info:
        read_profiles_csv(path)
    assert "line 3" in info.value.field and column in info.value.field
    assert info.value.value == bad and problem in str(info.value)


def test_missing_columns_are_listed(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("model,hardware\nm,cpu-x86\n")
    with pytest.raises(InputError, match="missing columns"):
        read_profiles_csv(path)


def test_unknown_hardware_is_rejected_when_catalog_given():
    with pytest.raises(InputError, match="hardware not in the catalog"):
        read_profiles_csv(DATA / "profiles_small.csv", known_hardware=["cpu-x86"])
