"""Print the README's table of reference GPU profiles (profiles/reference/*.csv) as Markdown.

    python -m bench.reference_table
"""
from __future__ import annotations

from pathlib import Path

from planner.core.profiles import read_profiles_csv

REFERENCE = Path(__file__).resolve().parent.parent / "profiles" / "reference"


def main() -> int:
    print("| GPU | model | precision | p50 @ b1 (ms) | p99 @ b1 (ms) | items/s @ b256 | mJ/item @ b256 (NVML) "
          "| % of peak @ b256 | quality loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(REFERENCE.glob("*.csv")):
        if path.name.endswith(".skipped.csv"):
            continue
        rows = [r for r in read_profiles_csv(path) if r.mode == "inference"]
        by_key = {(r.model, r.precision, r.batch_size): r for r in rows}
        for model, precision in sorted({(r.model, r.precision) for r in rows}):
            one, big = by_key.get((model, precision, 1)), by_key.get((model, precision, 256))
            if not one or not big:
                continue
            peak = f"{100 * big.peak_fraction:.1f}" if big.peak_fraction is not None else "-"
            print(f"| {path.stem} | {model} | {precision} | {one.latency_p50_ms:.3f} | {one.latency_p99_ms:.3f} "
                  f"| {big.throughput_rps:,.0f} | {1e3 * big.energy_j_per_item:.2f} | {peak} | {big.quality_loss:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
