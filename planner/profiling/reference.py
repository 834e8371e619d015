"""Committed reference profiles, and estimates from them for accelerators nobody measured.

profiles/reference/ holds rows measured on GPUs this machine may lack (bench/gpu_reference.py
made them). The demo plans with them beside its fresh CPU run, and the UI shows them by default;
both take them from here so the two see the same rows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from planner.core.catalog import Catalog
from planner.core.profiles import ProfileRow
from planner.profiling.estimator import estimate_profiles
from planner.profiling.importers import import_profiles_csv

REPO = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO / "profiles" / "reference"
REFERENCE_CPU = REFERENCE_DIR / "cpu-x86.csv"
# Estimated from the H100 rows: the catalog's accelerators that no reference file measures.
ESTIMATE_TARGETS = ("l4", "t4", "a100-80gb", "l40s", "tpu-v5e")


def reference_and_estimated_rows(catalog: Catalog, models: Sequence[str]) -> tuple[list[ProfileRow],
                                                                                   list[ProfileRow]]:
    """Inference rows measured on reference GPUs, and estimates from the H100 rows for other GPUs/TPUs."""
    # GPU files only: the demo has just measured this machine's CPU, so the committed CPU reference is not needed.
    # Paths relative to the repository, so plan.json's provenance reads the same on every machine.
    reference = [r for path in sorted(REFERENCE_DIR.glob("*.csv")) if not path.name.endswith(".skipped.csv")
                 for r in import_profiles_csv(path.relative_to(REPO) if Path.cwd() == REPO else path,
                                              known_hardware=catalog.names())
                 if r.mode == "inference" and r.model in models and catalog.get(r.hardware).is_accelerator]
    h100 = [r for r in reference if r.hardware == "h100"]
    estimated = estimate_profiles(h100, dict(catalog.hardware), [catalog.get(n) for n in ESTIMATE_TARGETS])
    return reference, estimated
