"""Fit the estimator's cross-kind GPU fixed-cost constants, and check the form on a second GPU.

    fixed cost of a batch on a GPU = launch + (ops - convs) x t_op + convs x t_conv

fitted by least squares on relative error over the fp32/bf16/fp16 model pairs of
profiles/reference/h200.csv (the floor of each batch curve, CUDA-graph replay).
Op counts come from counting each built-in model's forward at that precision on
this machine (the op graph does not depend on the device; int8 is left out:
its GPU recipe differs from the CPU's). The same fit on the H100 data is the
check: if the form is right, an independent GPU with the same SMs gives the same
constants. The constants in planner/profiling/estimator.py are the H200 ones.

    python -m bench.estimator_calibration

Last line: {"h200": {"launch_us", "op_us", "conv_us", "max_abs_err_pct"}, "h100": {...}}
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from bench.estimator_error import REFERENCE, _inference
from planner.core.profiles import read_profiles_csv
from planner.models import builtin_model_names, get_model
from planner.models.precision import prepare_for_precision
from planner.models.runner import count_ops
from planner.profiling.estimator import fit_batch_curve

PRECISIONS = ("fp32", "bf16", "fp16")


def op_counts() -> dict[tuple[str, str], tuple[int, int]]:
    counts = {}
    for name in builtin_model_names():
        spec = get_model(name)
        for precision in PRECISIONS:
            module, cast = prepare_for_precision(spec, precision, "cpu")
            got = count_ops(module, cast(spec.example_input(1)))
            counts[(name, precision)] = (got.ops, got.conv_ops)
    return counts


def fit(hardware: str, counts: dict[tuple[str, str], tuple[int, int]]) -> dict[str, float]:
    groups: dict[tuple[str, str], list] = {}
    for r in _inference(read_profiles_csv(REFERENCE / f"{hardware}.csv")):
        if (r.model, r.precision) in counts:
            groups.setdefault((r.model, r.precision), []).append(r)
    design, floor_us = [], []
    for key, rows in sorted(groups.items()):
        ops, convs = counts[key]
        design.append([1.0, ops - convs, convs])
        floor_us.append(fit_batch_curve(rows).overhead_ms * 1e3)
    a, y = np.array(design), np.array(floor_us)
    weight = 1.0 / y  # relative error: a 20 us model matters as much as a 300 us one
    x, *_ = np.linalg.lstsq(a * weight[:, None], y * weight, rcond=None)
    errors = (a @ x - y) / y * 100.0
    for key, err in zip(sorted(groups), errors):
        print(f"  {hardware} {key[0]:18s} {key[1]:5s} fit error {err:+.1f}%")
    return {"launch_us": round(float(x[0]), 2), "op_us": round(float(x[1]), 2), "conv_us": round(float(x[2]), 2),
            "max_abs_err_pct": round(float(np.abs(errors).max()), 1), "pairs": len(y)}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    counts = op_counts()
    result = {hw: fit(hw, counts) for hw in ("h200", "h100") if (REFERENCE / f"{hw}.csv").exists()}
    for hw, r in result.items():
        print(f"{hw}: launch {r['launch_us']} us, {r['op_us']} us per op, {r['conv_us']} us per convolution "
              f"(worst fit error {r['max_abs_err_pct']}% over {r['pairs']} pairs)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
