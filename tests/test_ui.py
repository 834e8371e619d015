"""The planning UI (ui/app.py) through Streamlit's AppTest, and its pure page logic.

AppTest runs the real script in-process (real loader, real CP-SAT, the committed
reference profiles); nothing here starts Ray: the Deploy page's and the profiling
run's buttons are never pressed.
"""
from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from ui import plan_view, workloads_view

APP = str(REPO / "ui" / "app.py")
EXAMPLE_SERVED = [w["name"] for w in yaml.safe_load((REPO / "examples" / "workloads.yaml").read_text())["workloads"]
                  if w["kind"] != "training"]


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _planned(at: AppTest) -> AppTest:
    at.button(key="load_example").click().run()
    at.button(key="plan").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_example_workloads_plan_to_one_row_per_served_workload(app: AppTest) -> None:
    at = _planned(app)
    assert at.success[0].value.startswith("Valid: 5 workloads")
    table = at.table[0].value
    assert list(table.index) == EXAMPLE_SERVED
    assert {"hardware", "precision", "batch", "replicas", "$/h", "source"} <= set(table.columns)
    assert set(table["source"]) <= {"measured", "estimated", "imported"}
    assert _metric(at, "status") in ("OPTIMAL", "FEASIBLE")
    assert float(_metric(at, "$/hour")) > 0


def test_bad_yaml_shows_an_error_not_an_exception(app: AppTest) -> None:
    app.text_area(key="yaml_editor").set_value("workloads: [\n  - {name: a").run()
    assert not app.exception
    assert "not valid YAML" in app.error[0].value


def test_bad_field_names_the_field_and_the_fix(app: AppTest) -> None:
    text = workloads_view.example_text().replace("model: mlp_digits", "model: mlp_digit")
    app.text_area(key="yaml_editor").set_value(text).run()
    assert not app.exception
    message = app.error[0].value
    assert "workloads[0:digits-classifier].model" in message and "did you mean 'mlp_digits'" in message
    # The Plan page asks for valid workloads instead of planning stale ones.
    assert any("Load valid workloads" in i.value for i in app.info)


def test_what_if_change_replans(app: AppTest) -> None:
    at = _planned(app)
    before = float(_metric(at, "$/hour"))
    # Half the demand: fewer replicas and proxies (twice the demand needs more vCPUs for the HTTP
    # proxies than the example's inventory has).
    at.slider(key="qps_scale").set_value(0.5).run()
    assert not at.exception
    after = float(_metric(at, "$/hour"))
    assert after < before
    assert list(at.table[0].value.index) == EXAMPLE_SERVED
    # Only CPU allowed: the 20,000 qps workload no longer fits, and the page says so.
    at.multiselect(key="allowed_hardware").set_value(["cpu-x86"]).run()
    assert not at.exception
    assert any("video-frames" in w.value for w in at.warning)


def test_pareto_sweep_and_explanations_render(app: AppTest) -> None:
    at = _planned(app)
    assert any(name in t.value for t in at.text for name in EXAMPLE_SERVED)  # "why" per workload
    at.button(key="pareto_p99").click().run()
    assert not at.exception and not at.error
    sweep = next(d.value for d in at.dataframe if "axis" in d.value.columns)
    assert list(sweep["axis"].unique()) == ["p99_scale"] and len(sweep) >= 4
    assert sweep.dropna(subset=["usd_per_hour"])["usd_per_hour"].is_monotonic_decreasing


def test_catalog_inventory_source_plans_without_the_file_limits(app: AppTest) -> None:
    at = _planned(app)
    at.radio(key="inventory_source").set_value("catalog").run()
    assert not at.exception and not at.error
    assert list(at.table[0].value.index) == EXAMPLE_SERVED


def test_table_edit_is_written_back_and_validated(app: AppTest) -> None:
    app.button(key="load_example").click().run()
    rows = workloads_view.table_rows(app.text_area(key="yaml_editor").value)
    edited = workloads_view.apply_table_edits(rows, {"edited_rows": {0: {"qps": 45.0}}, "deleted_rows": [3]})
    app.text_area(key="yaml_editor").set_value(workloads_view.text_with_rows(app.text_area(key="yaml_editor").value,
                                                                          edited)).run()
    assert not app.exception and not app.error
    assert app.success[0].value.startswith("Valid: 4 workloads")


def test_reports_page_offers_every_format(app: AppTest) -> None:
    at = _planned(app)
    labels = {b.label for b in at.get("download_button")}
    assert {f"Download {fmt}" for fmt in plan_view.report_formats()} <= labels


# --- the pure page logic ------------------------------------------------------------------

def test_apply_table_edits_edits_adds_and_deletes() -> None:
    rows = [{"name": "a", "qps": 1.0}, {"name": "b", "qps": 2.0}]
    out = workloads_view.apply_table_edits(rows, {"edited_rows": {"1": {"qps": 5.0}},
                                                  "added_rows": [{"name": "c"}], "deleted_rows": [0]})
    assert [r["name"] for r in out] == ["b", "c"] and out[0]["qps"] == 5.0
    assert rows[1]["qps"] == 2.0  # the input is not changed


def test_text_with_rows_keeps_fields_the_table_does_not_show(catalog) -> None:
    text = "objective: cost\nworkloads:\n  - {name: a, model: mlp_digits, kind: online, qps: 5, p99_ms: 50,\n" \
           "     precisions: [fp32], max_quality_loss: 0.01, min_replicas: 1,\n" \
           "     variants: [{model: resnet_small, quality_loss: 0.02}]}\n"
    rows = workloads_view.table_rows(text)
    assert rows[0]["precisions"] == "fp32" and rows[0]["items"] is None
    rows[0].update(precisions="fp32, int8", min_replicas=2.0)
    ws = workloads_view.parse_text(workloads_view.text_with_rows(text, rows), catalog)
    w = ws.workloads[0]
    assert w.precisions == ("fp32", "int8") and w.min_replicas == 2 and w.variants == (("resnet_small", 0.02),)


def test_what_if_scales_demand_and_targets_and_prices_carbon(catalog) -> None:
    ws = workloads_view.parse_text(workloads_view.example_text(), catalog)
    changed = plan_view.apply_what_if(ws, plan_view.WhatIf(qps_scale=2.0, p99_scale=0.5, budget_usd_per_hour=3.0,
                                                           usd_per_kwh=0.2, carbon_usd_per_kg=0.1))
    pairs = list(zip(ws.workloads, changed.workloads))
    assert all(new.qps == old.qps * 2 for old, new in pairs if old.qps is not None)
    assert all(new.p99_ms == old.p99_ms * 0.5 for old, new in pairs if old.p99_ms is not None)
    assert all(new.items == old.items * 2 for old, new in pairs if old.items is not None)
    assert changed.budget_usd_per_hour == 3.0 and changed.electricity.usd_per_kwh == 0.2
    assert changed.objective == "cost+carbon" and changed.electricity.carbon_usd_per_kg == 0.1
    assert plan_view.apply_what_if(ws, plan_view.WhatIf()) == ws


def test_report_bytes_parse_for_the_text_formats(catalog) -> None:
    from planner import api

    plan = api.plan(REPO / "tests" / "data" / "workloads_ok.yaml", REPO / "tests" / "data" / "profiles_small.csv",
                    time_limit_s=2.0)
    assert plan.ok
    header = next(csv.reader(io.StringIO(plan_view.report_bytes(plan, "csv").decode())))
    assert "usd_per_hour" in header
    assert json.loads(plan_view.report_bytes(plan, "json"))
    for fmt in plan_view.report_formats():
        assert plan_view.report_bytes(plan, fmt), fmt


def test_reports_carry_plan_vs_actual_once_verified(catalog) -> None:
    from planner import api

    plan = api.plan(REPO / "tests" / "data" / "workloads_ok.yaml", REPO / "tests" / "data" / "profiles_small.csv",
                    time_limit_s=2.0)
    w = plan.workloads[0]
    measured = {"workloads": [{"name": w.name, "qps_target": w.qps_target, "throughput_rps": w.qps_target,
                               "p50_ms": 5.0, "p99_ms": 12.0, "predicted_p99_ms": w.chosen.predicted_p99_ms,
                               "errors": 0, "pass": True}]}
    assert not json.loads(plan_view.report_bytes(plan, "json"))["plan_vs_actual"]["workloads"]
    actual = json.loads(plan_view.report_bytes(plan, "json", measured))["plan_vs_actual"]["workloads"]
    assert actual[0]["name"] == w.name and actual[0]["measured_p99_ms"] == 12.0


def test_a_bad_profiles_csv_names_the_cell(catalog) -> None:
    from planner.core.errors import InputError
    from ui import profiles_view

    good = (REPO / "tests" / "data" / "profiles_small.csv").read_text()
    rows = profiles_view.rows_from_upload(good.encode(), "mine.csv", catalog)
    assert rows and {r.source for r in rows} <= {"measured", "estimated", "imported"}
    header, first, *rest = good.splitlines()
    cells = first.split(",")
    cells[header.split(",").index("batch_size")] = "many"
    with pytest.raises(InputError, match="batch_size"):
        profiles_view.rows_from_upload("\n".join([header, ",".join(cells), *rest]).encode(), "bad.csv", catalog)


def test_verification_rows_put_predicted_beside_measured() -> None:
    from planner.deployment.verification import VerificationReport, summarise

    row = summarise("digits", "http://127.0.0.1:8000/digits", 10.0, 2.0, [5.0] * 19 + [20.0], 0, 2.0, 100.0, 12.5)
    shown = plan_view.verification_rows(VerificationReport(workloads=(row,), source="measured over HTTP"))
    assert shown[0]["p99 predicted (ms)"] == 12.5 and shown[0]["p99 measured (ms)"] is not None
    assert list(shown[0]).index("p99 measured (ms)") == list(shown[0]).index("p99 predicted (ms)") + 1
