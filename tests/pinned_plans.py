"""The plans the refactor of issue 13 must not change: scenarios and their summary.

`python -m tests.pinned_plans` rewrites tests/data/golden/pinned_plans.json from the code
as it is; tests/test_pinned_plans.py compares the code with that file. Every scenario plans
examples/workloads.yaml (or a variant of it, written from the same YAML) with the committed
profiles: this CPU's reference rows, the H100/H200 rows and the estimates the demo derives.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden" / "pinned_plans.json"
EXAMPLE = REPO / "examples" / "workloads.yaml"

# name -> (edits to the example YAML's top level, inventory source)
SCENARIOS: dict[str, tuple[dict, str]] = {
    "example": ({}, "file"),
    "sharing-catalog": ({"gpu_sharing": True}, "catalog"),
    "sharing-file": ({"gpu_sharing": True}, "file"),
    "energy-budget": ({"objective": "energy", "budget_usd_per_hour": 6.0,
                       "electricity": {"usd_per_kwh": 0.12, "pue": 1.2}}, "file"),
    "cost-carbon": ({"objective": "cost+carbon", "gpu_sharing": True,
                     "electricity": {"usd_per_kwh": 0.1, "pue": 1.1, "carbon_usd_per_kg": 0.5}}, "catalog"),
    "http-proxies": ({"http_proxies": 1, "serving_overhead_ms": 4}, "file"),
    "http-proxies-many": ({"http_proxies": 400, "serving_overhead_ms": 4}, "catalog"),
    "no-queueing": ({"queueing": False}, "catalog"),
    "tight-inventory": ({"inventory": {"cpu-x86": 3, "t4": 1}}, "file"),
}


def committed_rows():
    """CPU, H100 and H200 reference rows, plus the demo's estimates from the H100 rows."""
    from planner.core.catalog import load_catalog
    from planner.profiling.estimator import estimate_profiles
    from planner.profiling.importers import import_profiles_csv

    catalog = load_catalog()
    reference_dir = REPO / "profiles" / "reference"
    rows = [r for name in ("cpu-x86.csv", "h100.csv", "h200.csv")
            for r in import_profiles_csv(reference_dir / name, known_hardware=catalog.names())
            if r.mode == "inference"]
    h100 = [r for r in rows if r.hardware == "h100"]
    targets = [catalog.get(n) for n in ("l4", "t4", "a100-80gb", "l40s", "tpu-v5e")]
    return catalog, rows + estimate_profiles(h100, dict(catalog.hardware), targets)


def summary(plan) -> dict:
    return {
        "status": plan.status,
        "usd_per_hour": round(plan.objective_usd_per_hour, 6),
        "objective_value": round(plan.objective_value, 6),
        "unallocated_usd_per_hour": round(plan.unallocated_usd_per_hour, 6),
        "infeasible": list(plan.infeasible),
        "workloads": {
            w.name: {"model": w.model, "hardware": w.chosen.hardware, "precision": w.chosen.precision,
                     "batch_size": w.chosen.batch_size, "replicas": w.chosen.replicas,
                     "devices": round(w.chosen.devices, 6), "usd_per_hour": round(w.chosen.usd_per_hour, 6),
                     "predicted_p99_ms": round(w.chosen.predicted_p99_ms, 4),
                     "alternatives": len(w.alternatives),
                     "feasible_alternatives": sum(1 for a in w.alternatives if a.feasible),
                     "reasons": sorted({a.reason.split(" ")[0] for a in w.alternatives if a.reason})}
            for w in plan.workloads},
    }


def plan_scenarios(tmp: Path) -> dict[str, dict]:
    from planner import api

    catalog, rows = committed_rows()
    base = yaml.safe_load(EXAMPLE.read_text())
    out = {}
    for name, (edits, inventory) in SCENARIOS.items():
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**base, **edits}))
        out[name] = summary(api.plan(path, rows, catalog=catalog, inventory=inventory, time_limit_s=20.0))
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(plan_scenarios(Path(tmp)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
