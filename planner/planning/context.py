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

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from planner.core.catalog import Catalog
from planner.core.errors import InputError
from planner.core.inventory import NodeShape, with_owned_prices
from planner.core.objectives import OBJECTIVES
from planner.core.profiles import ProfileRow
from planner.core.serving_path import ASSUMED, Ingress, PathPoint, ServingPath, ServingTerms, plan_ingress, stated
from planner.core.workloads import Electricity, Workload, WorkloadSet
from planner.planning.candidates import FEASIBLE, CandidateTable, enumerate_tables
from planner.planning.sharing import cpu_shared_rows, shared_rows


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
    serving_path: ServingPath | None = None      # measured by `planner calibrate`; None: stated or assumed

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
        """The serving path's p99 at this plan's load per proxy (what verify's feedback compares with)."""
        path = self.path
        proxies = plan_ingress(path, self.spec.online_qps, self.max_utilization).proxies
        return path.at(self.spec.online_qps / max(1, proxies, self.spec.http_proxies or 0)).p99_ms

    @property
    def path(self) -> ServingPath:
        """The serving path planned with: measured if given, else the workloads file's, else assumed."""
        if self.serving_path is not None:
            return self.serving_path
        if self.spec.serving_path is not None:
            return self.spec.serving_path
        if self.spec.serving_overhead_ms is not None:
            return stated(self.spec.serving_overhead_ms)
        return ASSUMED

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


class CandidateTables(dict):
    """Candidates per workload name, with the ingress they were evaluated against."""
    ingress: Ingress | None = None
    replica_inventory: Mapping[str, float] | None = None   # the inventory less what the proxies take


def ingress_for(context: PlanningContext, catalog: Catalog, proxies: int = 0) -> Ingress:
    """The HTTP proxies all online traffic needs, on the cheapest CPU the plan may use (serving_path.plan_ingress)."""
    cpus = [h for h in catalog.hardware.values() if not h.is_accelerator
            and (context.inventory is None or context.inventory.get(h.name, 0) > 0)]
    cpu = min(cpus, key=lambda h: (h.usd_per_hour, h.name)) if cpus else None
    minimum = max(context.spec.http_proxies or 0, proxies)
    ingress = plan_ingress(context.path, context.spec.online_qps, context.max_utilization,
                           nodes=len(context.nodes) or None, cpu_hardware=cpu.name if cpu else "",
                           cpu_usd_per_vcpu_hour=cpu.usd_per_hour if cpu else 0.0,
                           cpu_available=None if context.inventory is None or cpu is None
                           else float(context.inventory.get(cpu.name, 0)))
    # No CPU hardware to plan on: the proxies run on the accelerator nodes' host CPUs, which the
    # accelerators' prices already include (and which this inventory does not count).
    if ingress.proxies < minimum:  # the workloads file's http_proxies: at least that many
        ingress = replace(ingress, proxies=minimum, qps_per_proxy=ingress.online_qps / minimum,
                          path=context.path.at(ingress.online_qps / minimum))
    return ingress


def replica_inventory(inventory: Mapping[str, float] | None, ingress: Ingress | None) -> Mapping[str, float] | None:
    """What is left for replicas once the proxies have their CPU."""
    if inventory is None or ingress is None or not ingress.cpu_hardware or ingress.cpu_hardware not in inventory:
        return inventory
    left = dict(inventory)
    left[ingress.cpu_hardware] = max(0.0, left[ingress.cpu_hardware] - ingress.proxy_vcpus)
    return left


def serving_terms_by_workload(context: PlanningContext, ingress: Ingress) -> dict[str, ServingTerms]:
    """Each workload's serving terms: the path at the plan's load, its model's floor, or what verify fed back."""
    path = context.path
    terms = {}
    for w in context.workloads:
        floor, busy = path.floor_ms(w.model), path.saturated_floor_ms(w.model)
        if w.name in context.measured_overhead_ms:
            ms = context.measured_overhead_ms[w.name]
            terms[w.name] = ServingTerms(PathPoint(ingress.qps_per_proxy, ms, ms, ms, ms), floor,
                                         "fed back: the p99 overhead planner verify measured", busy)
        else:
            terms[w.name] = ServingTerms(ingress.path, floor, path.source, busy)
    return terms


def candidate_tables(context: PlanningContext, rows: Sequence[ProfileRow], catalog: Catalog) -> CandidateTables:
    """Candidates for every served workload, with owned hardware priced at zero, after the ingress has its CPU."""
    priced = with_owned_prices(catalog, context.owned)
    rows = list(rows)
    if context.spec.gpu_sharing:
        rows += shared_rows(rows, priced)
    if context.spec.cpu_sharing:
        rows += cpu_shared_rows(rows, priced)

    def evaluate(ingress: Ingress) -> CandidateTables:
        inventory = replica_inventory(context.inventory, ingress)
        tables = CandidateTables(enumerate_tables(
            context.workloads, rows, priced, inventory, context.max_utilization, ServingTerms(ingress.path, 0.0, ""),
            context.electricity, context.objective, context.needs_energy, context.spec.queueing,
            serving_terms_by_workload(context, ingress)))
        tables.ingress, tables.replica_inventory = ingress, inventory
        return tables

    def missed(tables: CandidateTables) -> int:
        return sum(not (t.code == FEASIBLE).any() for t in tables.values())

    best = evaluate(ingress_for(context, priced))
    # Proxies sized only for throughput run at max_utilization, where their queue's tail can break
    # a tight target. More proxies cost no more CPU (the same requests) but shorten that queue:
    # take the fewest that leave the fewest workloads without a feasible configuration.
    base = best.ingress.proxies
    for factor in PROXY_FACTORS:
        if not missed(best) or base == 0:
            break
        more = ingress_for(context, priced, proxies=math.ceil(base * factor))
        if context.nodes and more.proxies > len(context.nodes) * context.path.proxies_per_node:
            break
        tables = evaluate(more)
        if missed(tables) < missed(best):
            best = tables
    return best


# More proxies tried, as multiples of the fewest that carry the traffic, when a target is missed.
PROXY_FACTORS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
