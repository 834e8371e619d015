"""Check, on a GPU, that CUDA-graph replay computes what eager PyTorch computes, padding included.

For every built-in model and precision: eager output vs graph replay at a full
bucket and at a smaller batch padded up to it. Prints the worst relative
difference per (model, precision); the last line is one JSON object.

    python -m bench.gpu_runner_check [--device cuda:0]
"""
from __future__ import annotations

import argparse
import json

import torch

from planner.models import builtin_model_names, get_model
from planner.models.precision import PRECISIONS, prepare_for_precision, supported_precisions
from planner.models.runner import make_runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    args = parser.parse_args(argv)
    worst: dict[str, float | str] = {}
    for name in builtin_model_names():
        spec = get_model(name)
        for precision in PRECISIONS:
            key = f"{name}/{precision}"
            if supported_precisions(args.device)[precision] is not None:
                worst[key] = "unsupported"
                continue
            module, cast = prepare_for_precision(spec, precision, args.device)
            batch = cast(spec.example_input(16).to(args.device))
            run, mode = make_runner(module, batch[0], args.device, 16)
            diffs = []
            for n in (16, 5):
                with torch.inference_mode():
                    ref = module(batch[:n]).float()
                got = run(batch[:n]).float()
                diffs.append(float((got - ref).norm() / ref.norm().clamp(min=1e-12)))
            worst[key] = max(diffs)
            print(f"{key:28s} {mode:12s} max relative difference {max(diffs):.2e}", flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name(0), "worst_relative_difference": worst}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
