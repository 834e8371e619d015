"""What every solve of a workload set starts from, in one place (`planner plan`, `planner pareto`).

The served workloads (training jobs are only scheduled, never served), the
catalog re-priced for owned hardware, and the candidate tables built with
every setting of the workload file (shared-GPU rows, queueing, serving
overhead, electricity, objective). Keeping this here means a new setting
reaches both the plan and the Pareto sweep, not one of them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from planner.planning.candidate_tables import CandidateTable, enumerate_tables
from planner.planning.candidates import ENERGY_OBJECTIVES
from planner.core.catalog import Catalog
from planner.core.errors import InputError
from planner.core.inventory import with_owned_prices
from planner.core.profiles import ProfileRow
from planner.planning.sharing import shared_rows
from planner.core.workloads import WorkloadSet


def served(workloads: WorkloadSet) -> WorkloadSet:
    """The workload set without training jobs; InputError if nothing is left to serve."""
    if not any(w.kind == "training" for w in workloads.workloads):
        return workloads
    kept = tuple(w for w in workloads.workloads if w.kind != "training")
    if not kept:
        raise InputError("workloads", "only kind: training", "nothing to serve",
                         "schedule training jobs with `planner schedule`")
    return replace(workloads, workloads=kept)


def candidate_tables(workloads: WorkloadSet, rows: Sequence[ProfileRow],
                     catalog: Catalog) -> dict[str, CandidateTable]:
    """Candidates for every served workload, with owned hardware priced at zero."""
    priced = with_owned_prices(catalog, workloads.owned)
    rows = list(rows)
    if workloads.gpu_sharing:
        rows += shared_rows(rows, priced)
    needs_energy = workloads.objective in ENERGY_OBJECTIVES or workloads.max_wall_power_w is not None
    return enumerate_tables(workloads.workloads, rows, priced, workloads.inventory, workloads.max_utilization,
                            workloads.p99_overhead_ms, workloads.electricity, workloads.objective, needs_energy,
                            workloads.queueing, workloads.measured_overhead_ms)
