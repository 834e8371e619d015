"""Reproduce the committed reference profiles (profiles/reference/*.csv) on a GPU machine.

Runs the profiler core directly, without Ray (the GPU machines we borrow have
torch and NVML but no Ray): every built-in model x fp32/bf16/fp16/int8 x batch
sizes 1..256, inference, plus training steps, with NVML-measured energy.
Inference runs by CUDA-graph replay, as serving does (planner/models/runner.py);
int8 is dynamic W8A8 on torch._int_mm (planner/models/int8_gpu.py).

    python -m bench.gpu_reference --hardware h100 --out profiles/reference/h100.csv

fp32 means fp32: TF32 is switched off for matmuls and cuDNN convolutions, so the
fp32 rows compare with the catalog's fp32 peak.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from planner.core.catalog import load_catalog
from planner.core.profiles import SkippedPoint, write_profiles_csv
from planner.core.workloads import PRECISIONS
from planner.models import builtin_model_names, get_model
from planner.profiling.profiler import TimingBudget, profile_grid
from planner.profiling.training import profile_training_point

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TRAINING_BATCH_SIZES = (8, 32, 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", required=True, help="catalog name of this GPU, e.g. h100")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--out", required=True, help="CSV of measured rows; skipped points go to <out>.skipped.csv")
    parser.add_argument("--models", default=",".join(builtin_model_names()))
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--quick", action="store_true", help="short timing windows (smoke test)")
    args = parser.parse_args(argv)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    hardware = load_catalog().get(args.hardware)
    budget = (TimingBudget(warmup_s=0.05, window_iters=5, window_s=0.02, max_seconds=0.5) if args.quick
              else TimingBudget(warmup_s=0.3, window_s=0.3, max_seconds=6.0))
    energy_window_s = 0.1 if args.quick else 1.0
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows, skipped = [], []
    started = time.perf_counter()

    def show(point: object) -> None:
        if isinstance(point, SkippedPoint):
            print(f"  skip {point.model} {point.precision} b{point.batch_size}: {point.status} {point.reason[:80]}")
        else:
            print(f"  {point.model:18s} {point.precision:5s} b{point.batch_size:<4d} p50 {point.latency_p50_ms:8.3f} ms "
                  f"p99 {point.latency_p99_ms:8.3f} thr {point.throughput_rps:10.0f}/s "
                  f"{point.energy_j_per_item * 1e3:8.3f} mJ/item peak {100 * (point.peak_fraction or 0):5.1f}% "
                  f"cv {point.latency_cv:.3f} [{point.energy_source.split(':')[0]}]", flush=True)

    for model in args.models.split(","):
        spec = get_model(model)
        got, miss = profile_grid(spec, args.precisions.split(","), batch_sizes, hardware, device=args.device,
                                 budget=budget, on_point=show, energy_window_s=energy_window_s)
        rows += got
        skipped += miss
        if not args.no_training:
            for precision in ("fp32", "bf16", "fp16"):
                for b in TRAINING_BATCH_SIZES:
                    row = profile_training_point(spec, precision, b, hardware, device=args.device, budget=budget,
                                                 energy_window_s=energy_window_s)
                    show(row)
                    rows.append(row)
    write_profiles_csv(args.out, rows)
    skipped_path = Path(args.out).with_suffix(".skipped.csv")
    with skipped_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(skipped[0]).keys()) if skipped else ["model"])
        writer.writeheader()
        for point in skipped:
            writer.writerow(asdict(point))
    print(json.dumps({"hardware": args.hardware, "device": torch.cuda.get_device_name(0) if args.device != "cpu"
                      else "cpu", "rows": len(rows), "skipped": len(skipped),
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
