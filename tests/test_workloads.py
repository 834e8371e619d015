"""Workload files: the example parses; each kind of mistake gives one clear error naming field and value."""
from __future__ import annotations

import subprocess
import sys

import pytest

from planner.core.errors import InputError
from planner.core.workloads import load_workloads, parse_workloads
from tests.conftest import DATA, REPO

MODELS = ["mlp_digits", "resnet_small", "transformer_small"]
HARDWARE = ["cpu-x86", "h100", "t4"]


def test_example_file_parses_with_every_kind(catalog):
    ws = load_workloads(REPO / "examples" / "workloads.yaml", known_models=MODELS, known_hardware=catalog.names())
    kinds = {w.kind for w in ws.workloads}
    assert kinds == {"online", "batch"}
    batch = next(w for w in ws.workloads if w.kind == "batch")
    assert batch.demand_rps == pytest.approx(batch.items / (batch.deadline_h * 3600))
    assert ws.inventory["cpu-x86"] == 64 and set(ws.inventory) <= set(catalog.names())


def _one(extra: str = "", **fields: object) -> dict:
    base = {"name": "a", "model": "mlp_digits", "qps": 10, "p99_ms": 50}
    base.update(fields)
    return {"workloads": [base]}


@pytest.mark.parametrize("doc, field, value", [
    (_one(qps=-5), "workloads[0:a].qps", -5),
    (_one(colour="red"), "workloads[0:a].colour", "red"),
    (_one(model="mlp_digit"), "workloads[0:a].model", "mlp_digit"),
    ({**_one(), "inventory": {"h1000": 2}}, "inventory.h1000", "h1000"),
    (_one(precisions=["fp64"]), "workloads[0:a].precisions[0]", "fp64"),
    (_one(kind="batch"), "workloads[0:a].items", None),
    (_one(min_replicas=0), "workloads[0:a].min_replicas", 0),
])
def test_bad_workloads_name_field_and_value(doc, field, value):
    with pytest.raises(InputError) as info:
        parse_workloads(doc, "w.yaml", known_models=MODELS, known_hardware=HARDWARE)
    err = info.value
    assert err.field == f"w.yaml: {field}"
    assert err.value == value
    assert "To fix:" in str(err) and "\n" not in str(err)


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(InputError, match="did you mean 'mlp_digits'"):
        parse_workloads(_one(model="mlp_digit"), "w.yaml", known_models=MODELS)


def test_user_model_names_are_accepted_for_later_loading():
    ws = parse_workloads(_one(model="mypkg.models:build"), "w.yaml", known_models=MODELS)
    assert ws.workloads[0].model == "mypkg.models:build"


def test_duplicate_workload_names_are_rejected():
    doc = {"workloads": [_one()["workloads"][0], _one()["workloads"][0]]}
    with pytest.raises(InputError, match="duplicate workload name"):
        parse_workloads(doc, "w.yaml")


@pytest.mark.parametrize("body, needle", [
    ("qps: -5", "qps=-5"),
    ("qps: 5\ncolour: red", "colour='red'"),
    ("qps: 5\nmodel2: x", "model2='x'"),
])
def test_cli_prints_one_error_line_and_no_traceback(tmp_path, body, needle):
    path = tmp_path / "bad.yaml"
    fields = "".join(f"    {line}\n" for line in body.split("\n"))
    path.write_text("workloads:\n  - name: a\n    model: mlp_digits\n    p99_ms: 10\n" + fields)
    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "planner", "plan", "--workloads", str(path),
                           "--profiles", str(DATA / "profiles_small.csv"), "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
