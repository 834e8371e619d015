"""Importers: format detection, unit conversions, provenance, and header errors.

The two Triton fixtures are hand-written in the tools' real column layouts (checked against
perf_analyzer's ReportWriter and Model Analyzer's result_table_manager / record types); each
starts with a '#' line saying so, which the importers skip.
"""
from __future__ import annotations

import pytest

from planner.core.errors import InputError
from planner.core.profiles import ProfileRow, write_profiles_csv
from planner.profiling.importers import (
    detect_format,
    import_model_analyzer_csv,
    import_perf_analyzer_csv,
    import_profiles_csv,
)
from tests.conftest import DATA

PA = DATA / "perf_analyzer_export.csv"
MA = DATA / "model_analyzer_metrics.csv"


def test_detect_format():
    assert detect_format(DATA / "profiles_small.csv") == "planner"
    assert detect_format(PA) == "perf_analyzer"
    assert detect_format(MA) == "model_analyzer"


def test_planner_csv_marks_measured_rows_as_imported_from_file(tmp_path):
    measured = ProfileRow("m", "t4", "fp16", 8, 1.0, 2.0, 8000.0, 0.2, 0.001, 0.0, "measured",
                          source_detail="Tesla T4, torch 2.5.1")
    estimated = ProfileRow("m", "t4", "fp16", 16, 1.5, 3.0, 9000.0, 0.2, 0.001, 0.0, "estimated",
                           source_detail="roofline")
    path = write_profiles_csv(tmp_path / "p.csv", [measured, estimated])
    got = import_profiles_csv(path)
    assert got[0].source == "measured"
    assert got[0].source_detail == f"Tesla T4, torch 2.5.1 (imported from {path})"
    assert got[1] == estimated


def test_planner_csv_passes_known_hardware_through():
    with pytest.raises(InputError, match="hardware not in the catalog"):
        import_profiles_csv(DATA / "profiles_small.csv", known_hardware=["cpu-x86"])


def test_planner_csv_with_comment_line_says_so(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("# note\n" + (DATA / "profiles_small.csv").read_text())
    with pytest.raises(InputError, match="takes no comment lines"):
        import_profiles_csv(path)


def test_perf_analyzer_converts_microseconds_to_ms():
    rows = import_perf_analyzer_csv(PA, model="resnet_small", hardware="t4", precision="fp16",
                                    batch_size=8, memory_gib=0.5)
    assert len(rows) == 3
    first = rows[0]
    assert first.latency_p50_ms == pytest.approx(4.986)     # 4986 us
    assert first.latency_p90_ms == pytest.approx(5.210)
    assert first.latency_p99_ms == pytest.approx(5.631)
    assert first.throughput_rps == pytest.approx(1598.4)    # items/s, unchanged
    assert (first.batch_size, first.memory_gib, first.units_per_replica) == (8, 0.5, 1.0)
    assert first.source == "imported"
    assert first.source_detail == f"perf_analyzer export {PA}, concurrency 1"
    assert first.energy_j_per_item == 0.0 and first.energy_source == "not in perf_analyzer export"
    assert rows[2].source_detail.endswith("concurrency 4")


def test_perf_analyzer_minimal_header_without_server_or_verbose_columns(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text("Request Rate,Inferences/Second,Client Send,Client Recv,"
                    "p50 latency,p90 latency,p95 latency,p99 latency\n"
                    "100,100.0,20,5,2500,3000,3200,4000\n")
    (row,) = import_perf_analyzer_csv(path, model="m", hardware="cpu-x86", precision="fp32", batch_size=1)
    assert (row.latency_p50_ms, row.latency_p99_ms) == (2.5, 4.0)
    assert row.source_detail.endswith("request rate 100")


def test_perf_analyzer_bad_cell_names_line_and_column(tmp_path):
    text = PA.read_text().replace("4986", "n/a")
    path = tmp_path / "pa.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=r"line 3, column p50 latency='n/a'"):
        import_perf_analyzer_csv(path, model="m", hardware="t4", precision="fp16", batch_size=8)


def test_model_analyzer_units_energy_memory_and_p50_note():
    rows = import_model_analyzer_csv(MA, hardware="t4", precision="fp16")
    assert [(r.model, r.batch_size) for r in rows] == [("resnet_small", 1), ("resnet_small", 1),
                                                       ("resnet_small", 8)]
    last = rows[2]
    assert last.throughput_rps == 4096.0
    assert last.latency_p99_ms == 21.7
    assert last.latency_p50_ms == 21.7                       # no p50 in the export: p99 used
    assert "p50 not in export; p99 used" in last.source_detail
    assert "concurrency 8" in last.source_detail and "config resnet_small_config_3" in last.source_detail
    assert last.energy_j_per_item == pytest.approx(204.8 / 4096.0)   # W / (items/s) = J/item
    assert last.energy_source == "imported: Model Analyzer GPU power / throughput"
    assert last.memory_gib == pytest.approx(1.0)             # 1024 MB read as MiB
    assert last.source == "imported" and last.precision == "fp16"


def test_model_analyzer_default_columns_only(tmp_path):
    path = tmp_path / "metrics-model-inference.csv"
    path.write_text("Model,Batch,Concurrency,Model Config Path,Instance Group,Max Batch Size,"
                    "Satisfies Constraints,Throughput (infer/sec),p99 Latency (ms)\n"
                    "m,4,2,m_config_default,1:GPU,8,Yes,800.0,12.5\n")
    (row,) = import_model_analyzer_csv(path, hardware="t4")
    assert row.precision == "fp32" and row.batch_size == 4
    assert row.energy_j_per_item == 0.0 and row.energy_source == "not in Model Analyzer export"
    assert row.memory_gib == 0.0 and "memory not in export" in row.source_detail


def test_unknown_header_names_file_missing_column_and_formats(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("Concurrency,Inferences/Second,p50 latency,p95 latency\n1,10,1,2\n")
    with pytest.raises(InputError) as error:
        detect_format(path)
    message = str(error.value)
    assert str(path) in message
    assert "missing column 'p99 latency' for the perf_analyzer format" in message
    assert "planner profile CSV" in message and "Model Analyzer" in message and "To fix:" in message


def test_importer_given_the_wrong_format_says_which_it_wanted():
    with pytest.raises(InputError, match="missing column 'Inferences/Second' for the perf_analyzer format"):
        import_perf_analyzer_csv(MA, model="m", hardware="t4", precision="fp16", batch_size=1)


def test_unknown_precision_is_refused():
    with pytest.raises(InputError, match="unknown precision"):
        import_model_analyzer_csv(MA, hardware="t4", precision="fp64")
