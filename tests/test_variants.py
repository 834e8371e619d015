"""Model variants: a workload may be served by another model within its quality limit."""
from __future__ import annotations

import pytest

from planner import api
from planner.core.catalog import load_catalog
from planner.core.errors import InputError
from planner.core.plan import plan_from_dict, plan_to_dict
from planner.core.profiles import ProfileRow
from planner.core.workloads import parse_workloads
from tests.conftest import REPLICAS_ONLY


def _rows():
    # The full model: 100 items/s per vCPU; the distilled one: 400 items/s, its bf16 loses 0.004 more.
    full = ProfileRow("big", "cpu-x86", "fp32", 1, 10.0, 12.0, 100.0, 0.1, 0.01, 0.0, "imported", latency_cv=0.1)
    small = ProfileRow("small", "cpu-x86", "fp32", 1, 2.5, 3.0, 400.0, 0.05, 0.003, 0.0, "imported", latency_cv=0.1)
    small_bf16 = ProfileRow("small", "cpu-x86", "bf16", 1, 2.0, 2.5, 500.0, 0.05, 0.002, 0.004, "imported",
                            latency_cv=0.1)
    return [full, small, small_bf16]


def _plan(max_quality_loss, precisions=("fp32", "bf16")):
    doc = {**REPLICAS_ONLY, "workloads": [{"name": "w", "model": "big", "qps": 400, "p99_ms": 500, "precisions": list(precisions),
                          "max_quality_loss": max_quality_loss,
                          "variants": [{"model": "small", "quality_loss": 0.02}]}]}
    return api.plan(parse_workloads(doc, "w.yaml"), _rows(), load_catalog())


def test_variant_chosen_when_its_quality_is_within_the_limit():
    plan = _plan(0.03)
    w = plan.workloads[0]
    assert w.model == "small" and w.chosen.model == "small"
    assert w.chosen.precision == "bf16" and w.chosen.quality_loss == pytest.approx(0.024)  # 0.02 + 0.004
    assert w.chosen.replicas == 1  # 500/s x 0.8 carries 400 qps; the full model needs 5 vCPUs
    again = plan_from_dict(plan_to_dict(plan))
    assert again.workloads[0].model == "small"  # deploy and verify serve the variant
    assert "small cpu-x86" in w.chosen.describe()


def test_variant_over_the_limit_is_rejected_and_the_model_itself_serves():
    plan = _plan(0.022)  # the variant at fp32 (0.02) fits, its bf16 (0.024) does not
    assert plan.workloads[0].chosen.model == "small" and plan.workloads[0].chosen.precision == "fp32"
    plan = _plan(0.01)
    assert plan.workloads[0].model == "big" and plan.workloads[0].chosen.model == ""
    assert plan.workloads[0].chosen.replicas == 5


def test_variant_errors_name_the_field():
    doc = {"workloads": [{"name": "w", "model": "mlp_digits", "qps": 1, "p99_ms": 100,
                          "variants": [{"model": "mlp_digit", "quality_loss": 0.01}]}]}
    with pytest.raises(InputError, match=r"variants\[0\].model.*did you mean 'mlp_digits'"):
        parse_workloads(doc, "w.yaml", known_models=["mlp_digits", "resnet_small"])
    doc["workloads"][0]["variants"] = [{"model": "mlp_digits", "quality_loss": 0.01}]
    with pytest.raises(InputError, match="variants.*own model"):
        parse_workloads(doc, "w.yaml")
