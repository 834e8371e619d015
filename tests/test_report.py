"""Cost reports (planner/reports/cost_report.py, formats.py, cells.py, markdown.py, html.py): content, every format, errors.

Golden files under tests/data/golden/ are rendered from a fixed, hand-built plan (CPU, a shared
GPU with an idle remainder, a TPU whose energy is unknown). Text formats are compared byte for
byte; Parquet and XLSX by the content read back. After an intended change, regenerate them:

    UPDATE_GOLDEN=1 python -m pytest -q tests/test_report.py
"""
from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from planner import api
from planner.cli import main
from planner.core.errors import InputError
from planner.core.plan import Plan, WorkloadPlan, plan_from_dict, plan_to_dict, write_plan
from planner.core.workloads import parse_workloads
from planner.planning.candidates import Candidate
from planner.reports.cost_report import FORMATS, HOURS_PER_MONTH, build_report, report_to_dict
from planner.reports.formats import _tables, read_back_totals, render, write_all

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
COMPARISONS = {"best single hardware (h100)": 4.5, "all fp32": 3.0, "best single hardware (t4)": None}
VERIFICATION = {"source": "measured over HTTP (fixture)", "workloads": [
    {"name": "search", "qps_target": 40.0, "throughput_rps": 39.2, "p50_ms": 9.5, "p99_ms": 31.0,
     "p99_ms_target": 100.0, "predicted_p99_ms": 25.0, "errors": 0, "pass": True},
    {"name": "ranker", "qps_target": 900.0, "throughput_rps": 880.0, "p50_ms": 12.0, "p99_ms": 41.0,
     "p99_ms_target": 50.0, "predicted_p99_ms": 38.0, "errors": 2, "pass": False}]}
WINDOW = ("2026-01-01T00:00:00+00:00", "2026-01-31T00:00:00+00:00")


def _candidate(workload, hardware, unit, devices, usd, **extra) -> Candidate:
    values = dict(workload=workload, hardware=hardware, precision="fp32", batch_size=1, units_per_replica=1.0,
                  replicas=1, devices=devices, unit=unit, predicted_p99_ms=10.0, predicted_throughput_rps=100.0,
                  batch_wait_timeout_ms=0.0, usd_per_hour=usd, power_w=100.0, quality_loss=0.0, memory_gib=0.1,
                  profile_source="imported: fixture", feasible=True, reason="")
    values.update(extra)
    return Candidate(**values)


def fixed_plan() -> Plan:
    """Three workloads on CPU, a shared H100 (half used: an idle remainder) and TPU v5e; fixed provenance."""
    search = _candidate("search", "cpu-x86", "vcpu", 4.0, 0.2, replicas=4, units_per_replica=1.0,
                        predicted_p99_ms=25.0, predicted_throughput_rps=80.0, power_w=60.0, energy_usd_per_hour=0.005,
                        carbon_g_per_hour=25.0, energy_source="measured: rapl package-0",
                        profile_source="measured: test CPU")
    ranker = _candidate("ranker", "h100", "gpu", 0.5, 1.25, precision="bf16", batch_size=8, units_per_replica=0.5,
                        predicted_p99_ms=38.0, predicted_throughput_rps=1200.0, power_w=350.0,
                        carbon_g_per_hour=130.0, energy_source="estimated: catalog power model",
                        profile_source="estimated: shared 0.5 of an H100")
    embed = _candidate("embed", "tpu-v5e", "tpu_chip", 1.0, 1.2, precision="bf16", batch_size=32,
                       predicted_p99_ms=900.0, predicted_throughput_rps=50.0, power_w=0.0, energy_unknown=True,
                       energy_source="unknown: no power figure", profile_source="imported: vendor sheet")
    workloads = (
        WorkloadPlan("search", "mlp_digits", "online", 40.0, 100.0, search, (), labels=(("team", "search"),)),
        WorkloadPlan("ranker", "resnet_small", "online", 900.0, 50.0, ranker, (), labels=(("team", "ads"),)),
        WorkloadPlan("embed", "transformer_small", "batch", 20.0, None, embed, ()))
    provenance = {"created_at": "2026-01-01T00:00:00+00:00", "catalog": "profiles/catalog.yaml",
                  "catalog_version": "2026-11-23", "profile_sources": ["estimated", "imported", "measured"],
                  "profiles": "tests/data/profiles_small.csv", "workloads": "tests/data/workloads_ok.yaml"}
    return Plan(status="FEASIBLE", objective="cost", objective_usd_per_hour=3.9, best_bound_usd_per_hour=3.8,
                objective_power_w=410.0, solve_seconds=0.1, workloads=workloads, provenance=provenance,
                carbon_g_per_hour=155.0, unallocated_usd_per_hour=1.25)


def fixed_report(aggregate: str = "team"):
    return build_report(fixed_plan(), COMPARISONS, VERIFICATION, aggregate, *WINDOW)


def test_rows_add_up_and_idle_is_attributed():
    report = fixed_report()
    rows = {(r.scope, r.name, r.hardware): r for r in report.rows}
    total = report.total
    assert total.usd_per_hour == pytest.approx(3.9)     # the plan's $/h, idle included
    assert sum(r.usd_per_hour for r in report.rows if r.scope in ("workload", "idle")) == pytest.approx(3.9)
    assert sum(r.usd_per_hour for r in report.rows if r.scope == "hardware") == pytest.approx(3.9)
    idle = rows[("idle", "__idle__", "h100")]
    assert idle.devices == pytest.approx(0.5) and idle.usd_per_hour == pytest.approx(1.25)
    assert rows[("hardware", "h100", "h100")].devices == pytest.approx(1.0)   # whole devices paid
    assert total.usd_per_month == pytest.approx(3.9 * HOURS_PER_MONTH)


def test_workload_figures():
    rows = {r.name: r for r in fixed_report().rows if r.scope == "workload"}
    search, ranker, embed = rows["search"], rows["ranker"], rows["embed"]
    assert search.energy_basis == "measured" and ranker.energy_basis == "estimated"
    assert embed.energy_basis == "unknown" and embed.energy_kwh_per_month is None
    assert search.energy_kwh_per_month == pytest.approx(60.0 / 1000 * 730)
    assert search.carbon_kg_co2e_per_month == pytest.approx(25.0 / 1000 * 730)
    assert search.utilization == pytest.approx(0.5)
    assert search.slo_headroom_ms == pytest.approx(75.0) and search.slo_headroom_pct == pytest.approx(75.0)
    assert embed.slo_headroom_ms is None                               # batch work has no p99 target
    assert search.usd_per_million_requests == pytest.approx(0.2 / (40 * 3600) * 1e6)
    assert (search.team, ranker.team, embed.team) == ("search", "ads", "unlabelled")
    # An estimate is never shown as a measurement: the total says it mixes bases and leaves unknown out.
    assert fixed_report().total.energy_basis == "measured+estimated+unknown"
    assert fixed_report().total.energy_kwh_per_month == pytest.approx((60 + 350) / 1000 * 730)


def test_comparisons_actuals_and_allocation():
    report = fixed_report()
    best = report.comparisons[0]
    assert best.savings_usd_per_hour == pytest.approx(0.6) and best.savings_pct == pytest.approx(100 * 0.6 / 4.5)
    assert report.comparisons[2].usd_per_hour is None
    ranker = next(a for a in report.actuals if a.name == "ranker")
    assert ranker.measured_p99_ms == 41.0 and ranker.errors == 2 and not ranker.passed
    assert ranker.p99_off_prediction_pct == pytest.approx(100 * 3 / 38)
    by_team = {a.name: a for a in report.allocations}
    assert list(by_team) == ["ads", "search", "unlabelled", "__idle__"]
    hours = 30 * 24
    assert sum(a.total_cost for a in report.allocations) == pytest.approx(3.9 * hours)
    assert by_team["search"].cpu_cost == pytest.approx((0.2 - 0.005) * hours)
    assert by_team["search"].energy_cost == pytest.approx(0.005 * hours)
    assert by_team["search"].cpu_core_hours == pytest.approx(4 * hours)
    assert by_team["ads"].gpu_hours == pytest.approx(0.5 * hours)
    assert by_team["unlabelled"].tpu_chip_hours == pytest.approx(hours)
    assert by_team["__idle__"].gpu_cost == pytest.approx(1.25 * hours)
    assert by_team["ads"].properties["labels"] == {"team": "ads"}
    assert by_team["ads"].window_start == WINDOW[0] and by_team["ads"].minutes == hours * 60
    by_hw = {a.name for a in build_report(fixed_plan(), aggregate="hardware").allocations}
    assert by_hw == {"cpu-x86", "h100", "tpu-v5e", "__idle__"}
    default = build_report(fixed_plan()).allocations[0]      # window: created_at + one 730-hour month
    assert default.window_start == "2026-01-01T00:00:00+00:00" and default.minutes == 730 * 60


def test_provenance_has_solver_status_and_gap():
    p = fixed_report().provenance
    assert p["solver_status"] == "FEASIBLE" and p["solver_gap_pct"] == pytest.approx(100 * 0.1 / 3.9)
    assert p["catalog_version"] == "2026-11-23" and p["created_at"] == "2026-01-01T00:00:00+00:00"


def _golden(name: str, content: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    assert path.is_file(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert content.decode() == path.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1 if intended)"


@pytest.mark.parametrize("fmt", ["csv", "json", "md", "html"])
def test_text_formats_match_golden(fmt):
    _golden(f"cost_report.{fmt}", render(fixed_report(), fmt))


def test_parquet_and_xlsx_content_match_golden(tmp_path):
    report = fixed_report()
    (tmp_path / "r.parquet").write_bytes(render(report, "parquet"))
    (tmp_path / "r.xlsx").write_bytes(render(report, "xlsx"))
    table = pq.read_table(tmp_path / "r.parquet")
    book = load_workbook(tmp_path / "r.xlsx", read_only=True)
    content = {"parquet": {"rows": table.to_pylist(),
                           "metadata": json.loads(table.schema.metadata[b"cost_report_json"])},
               "xlsx": {name: [list(r) for r in book[name].iter_rows(values_only=True)] for name in book.sheetnames}}
    _golden("cost_report.tabular.json", (json.dumps(content, indent=1, sort_keys=True) + "\n").encode())
    assert content["parquet"]["metadata"] == report_to_dict(report)
    assert book.sheetnames == list(_tables(report))


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_json_has_only_plain_values_even_from_numpy():
    import numpy as np
    plan = fixed_plan()
    numpyish = plan.workloads[0].chosen.__class__(**{**plan.workloads[0].chosen.__dict__,
                                                     "usd_per_hour": np.float64(0.2), "replicas": np.int64(4)})
    plan = plan.__class__(**{**plan.__dict__, "workloads": (plan.workloads[0].__class__(
        **{**plan.workloads[0].__dict__, "chosen": numpyish}),) + plan.workloads[1:]})
    data = json.loads(render(build_report(plan, {"x": np.float64(1.0)}, VERIFICATION), "json"))
    assert _plain(data)
    assert type(data["rows"][0]["usd_per_hour"]) is float and type(data["rows"][0]["replicas"]) is int


def test_totals_agree_across_every_format(tmp_path):
    paths = write_all(fixed_report(), tmp_path)
    assert sorted(p.suffix.lstrip(".") for p in paths) == sorted(FORMATS)
    totals = read_back_totals(paths)
    assert set(totals) == set(FORMATS)
    assert all(t == pytest.approx(3.9) for t in totals.values()), totals


def test_html_is_self_contained_and_printable():
    page = render(fixed_report(), "html").decode()
    assert "<svg" in page and "@media print" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page


def test_bad_input_names_field_value_and_fix(tmp_path):
    plan_path = write_plan(tmp_path / "plan.json", fixed_plan())
    with pytest.raises(InputError, match=r"--format='pdf'.*To fix: use one of csv, json, parquet"):
        api.report(plan_path, "pdf", tmp_path / "r.pdf")
    bad = tmp_path / "verify.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"--verify=.*not valid JSON"):
        api.report(plan_path, "csv", tmp_path / "r.csv", verification=bad)
    with pytest.raises(InputError, match=r"--verify=.*file not found"):
        api.report(plan_path, "csv", tmp_path / "r.csv", verification=tmp_path / "missing.json")
    with pytest.raises(InputError, match=r"--window-start='yesterday': not an ISO 8601"):
        api.report(plan_path, "csv", tmp_path / "r.csv", window_start="yesterday")
    with pytest.raises(InputError, match=r"--window-end=.*not after the window start"):
        api.report(plan_path, "csv", tmp_path / "r.csv", window_start=WINDOW[1], window_end=WINDOW[0])
    with pytest.raises(InputError, match=r"--aggregate='namespace'"):
        api.report(plan_path, "all", tmp_path / "all", aggregate="namespace")
    assert not list(tmp_path.glob("r.*")) and not (tmp_path / "all").exists()   # nothing half-written
    assert main(["report", str(plan_path), "--format", "pdf", "--out", str(tmp_path / "x")]) == 2


def test_cli_all_formats_with_verify_and_comparisons(tmp_path):
    plan = api.plan(DATA / "workloads_ok.yaml", DATA / "profiles_small.csv")
    plan_path = write_plan(tmp_path / "plan.json", plan)
    verify = tmp_path / "verify.json"
    verify.write_text(json.dumps({"workloads": [{"name": "digits", "qps_target": 500, "p99_ms": 3.0,
                                                 "predicted_p99_ms": 11.0, "errors": 0, "pass": True}]}))
    out = tmp_path / "reports"
    assert main(["report", str(plan_path), "--format", "all", "--out", str(out), "--verify", str(verify),
                 "--workloads", str(DATA / "workloads_ok.yaml"), "--profiles", str(DATA / "profiles_small.csv"),
                 "--aggregate", "hardware"]) == 0
    totals = read_back_totals(sorted(out.iterdir()))
    assert set(totals) == set(FORMATS)
    assert all(t == pytest.approx(plan.objective_usd_per_hour, abs=1e-6) for t in totals.values())
    data = json.loads((out / "cost_report.json").read_text())
    names = [c["name"] for c in data["comparisons"]]
    assert names[0].startswith("best single hardware (") and names[1] == "all fp32"
    assert all(c["savings_usd_per_hour"] >= -1e-6 for c in data["comparisons"] if c["usd_per_hour"] is not None)
    assert data["plan_vs_actual"]["workloads"][0]["measured_p99_ms"] == 3.0
    with (out / "cost_report.csv").open() as fh:
        assert [r["scope"] for r in csv.DictReader(fh)][-1] == "total"


def test_team_label_round_trips_through_workloads_and_plan_json():
    raw = {"workloads": [{"name": "a", "model": "mlp_digits", "qps": 1, "p99_ms": 10, "labels": {"team": "x"}},
                         {"name": "b", "model": "mlp_digits", "qps": 1, "p99_ms": 10}]}
    ws = parse_workloads(raw)
    assert ws.workloads[0].labels == (("team", "x"),) and ws.workloads[1].labels == ()
    plan = fixed_plan()
    again = plan_from_dict(plan_to_dict(plan))
    assert [w.labels for w in again.workloads] == [w.labels for w in plan.workloads]
    assert again.workloads[0].chosen.energy_source == "measured: rapl package-0"
    with pytest.raises(InputError, match=r"labels.*input should be a valid string"):
        parse_workloads({"workloads": [{**raw["workloads"][0], "labels": {"team": 3}}]})
