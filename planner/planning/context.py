"""What one solve plans against: the user's spec plus what the run found out (`planner plan`, `planner pareto`).

A `WorkloadSet` is what the workloads file says. A `PlanningContext` adds what
is decided or learnt per run, none of which belongs in the file:

- the inventory actually used, after `--inventory file|cluster|catalog`, and
  which of it is owned (priced at zero);
- the node shapes of a live cluster (planner/planning/packing.py);
- the serving overhead `planner verify` measured per workload (planner/deployment/feedback.py);
- caps only the solver sets, such as the Pareto sweep's power cap.

`candidate_tables` builds every served workload's candidates with every setting of
the spec and the context (shared-GPU rows, queueing, serving overhead, electricity,
objective), so a new setting reaches the plan and the Pareto sweep alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from planner.core.catalog import Catalog
from planner.core.errors import InputError
from planner.core.inventory import NodeShape, with_owned_prices
from planner.core.objectives import OBJECTIVES
from planner.core.profiles import ProfileRow
from planner.core.workloads import Electricity, Workload, WorkloadSet
from planner.planning.candidates import CandidateTable, enumerate_tables
from planner.planning.sharing import shared_rows


@dataclass(frozen=True)
class PlanningContext:
    spec: WorkloadSet
    inventory: Mapping[str, int] | None = None   # None: rent whatever the catalog lists
    owned: frozenset[str] = frozenset()          # inventory already paid for: zero marginal price
    nodes: tuple[NodeShape, ...] = ()            # node shapes of a live cluster
    # Serving-path overhead per workload as `planner verify` measured it; replaces
    # p99_overhead_ms for those workloads.
    measured_overhead_ms: Mapping[str, float] = field(default_factory=dict)
    max_wall_power_w: float | None = None        # cap on power x PUE (set by the Pareto sweep)

    @classmethod
    def of(cls, spec: WorkloadSet) -> "PlanningContext":
        """Plan the spec as its file says: its own inventory, nothing measured, no extra cap."""
        return cls(spec, inventory=spec.inventory, owned=spec.owned)

    def with_spec(self, **changes: object) -> "PlanningContext":
        """The same context over a changed spec (e.g. another objective, scaled targets)."""
        return replace(self, spec=replace(self.spec, **changes))

    @property
    def workloads(self) -> tuple[Workload, ...]:
        return self.spec.workloads

    @property
    def objective(self) -> str:
        return self.spec.objective

    @property
    def max_utilization(self) -> float:
        return self.spec.max_utilization

    @property
    def electricity(self) -> Electricity:
        return self.spec.electricity

    @property
    def budget_usd_per_hour(self) -> float | None:
        return self.spec.budget_usd_per_hour

    @property
    def p99_overhead_ms(self) -> float:
        return self.spec.p99_overhead_ms

    @property
    def needs_energy(self) -> bool:
        """Whether a candidate whose energy nobody knows must be rejected."""
        return OBJECTIVES[self.objective].needs_energy or self.max_wall_power_w is not None


def served(context: PlanningContext) -> PlanningContext:
    """The context without training jobs; InputError if nothing is left to serve."""
    if not any(w.kind == "training" for w in context.workloads):
        return context
    kept = tuple(w for w in context.workloads if w.kind != "training")
    if not kept:
        raise InputError("workloads", "only kind: training", "nothing to serve",
                         "schedule training jobs with `planner schedule`")
    return context.with_spec(workloads=kept)


def candidate_tables(context: PlanningContext, rows: Sequence[ProfileRow],
                     catalog: Catalog) -> dict[str, CandidateTable]:
    """Candidates for every served workload, with owned hardware priced at zero."""
    priced = with_owned_prices(catalog, context.owned)
    rows = list(rows)
    if context.spec.gpu_sharing:
        rows += shared_rows(rows, priced)
    return enumerate_tables(context.workloads, rows, priced, context.inventory, context.max_utilization,
                            context.p99_overhead_ms, context.electricity, context.objective, context.needs_energy,
                            context.spec.queueing, context.measured_overhead_ms)
