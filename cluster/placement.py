"""Can the cluster ever place a task or replica, is there room now, and who holds the rest: in words, at once.

Ray never refuses what it cannot place: a request for `accelerator_type:H100` on a cluster
without one, or for more CPUs than any node has, waits forever as "infeasible", and so does one
behind Serve replicas holding every CPU. This module reads the cluster once (`read_cluster`: the
node table, free resources, Serve's applications) into a `ClusterView` of plain data, and the
rest are pure functions of that view (tested with dict literals):

- `never_placeable(request, view)`: why no node can ever run a request ('' if one can);
- `shortage(request, view)`: what is missing now, and who holds it;
- `check_placeable(plan, catalog)`: every problem a deploy of the plan would meet, before Serve
  starts anything (the plan's replicas against what is free, counting what the applications it
  replaces free up).

Who holds what, without the dashboard (an embedded Ray has include_dashboard=False):
`ray.util.state` is the dashboard's REST API and fails at once without it (ServerUnavailable,
checked on 2.60), so holders come from what works without it: Serve's controller (every
application's deployments, each replica's node and required resources) and Ray's totals
(`ray.cluster_resources()`, `ray.available_resources()`). What Serve does not hold is reported as
"other Ray tasks or actors". Free resources are summed over the cluster: a request split across
two half-free nodes reads as free here and still waits (Ray places a task or replica on one node).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from planner.core.catalog import Catalog
    from planner.core.plan import Plan

EPSILON = 1e-6                 # Ray keeps resources to 1e-4; sums of fractions must not read as short
ACCELERATOR_PREFIX = "accelerator_type:"
# Replica states in which Serve has placed a replica on a node (its resources are taken).
PLACED_REPLICA_STATES = frozenset({"STARTING", "UPDATING", "RECOVERING", "RUNNING", "PENDING_MIGRATION"})


@dataclass(frozen=True)
class Request:
    """What one Ray task or actor asks for: resources (Ray's names) and an optional label selector."""
    resources: Mapping[str, float]
    label_selector: Mapping[str, str] | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any], default_cpus: float = 1.0) -> "Request":
        """From `.options(...)` / `ray_actor_options`, as Ray turns them into a resource request."""
        resources: dict[str, float] = {}
        cpus = options.get("num_cpus", default_cpus)
        if cpus:
            resources["CPU"] = float(cpus)
        if options.get("num_gpus"):
            resources["GPU"] = float(options["num_gpus"])
        for name, amount in (options.get("resources") or {}).items():
            resources[name] = float(amount)
        if options.get("accelerator_type"):
            resources[f"{ACCELERATOR_PREFIX}{options['accelerator_type']}"] = 0.001
        if options.get("memory"):
            resources["memory"] = float(options["memory"])
        return cls(resources, options.get("label_selector"))

    def describe(self) -> str:
        return ", ".join(amount(name, value) for name, value in self.resources.items()) or "nothing"


@dataclass(frozen=True)
class NodeView:
    node_id: str
    resources: Mapping[str, float]      # the node's totals
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServeHolder:
    """One Serve deployment's replicas placed on nodes, and what each takes."""
    application: str
    deployment: str
    replicas: int
    per_replica: Mapping[str, float]

    def holds(self, resource: str) -> float:
        return self.replicas * self.per_replica.get(resource, 0.0)


@dataclass(frozen=True)
class ClusterView:
    nodes: tuple[NodeView, ...]
    total: Mapping[str, float]
    available: Mapping[str, float]
    serve: tuple[ServeHolder, ...] = ()


# -- reading the cluster (the only part that talks to Ray) ----------------------------------------

def read_cluster() -> ClusterView:
    import ray

    nodes = tuple(NodeView(str(n["NodeID"]), {k: float(v) for k, v in n.get("Resources", {}).items()},
                           dict(n.get("Labels") or {}))
                  for n in ray.nodes() if n.get("Alive", True))
    return ClusterView(nodes, {k: float(v) for k, v in ray.cluster_resources().items()},
                       {k: float(v) for k, v in ray.available_resources().items()}, serve_holders())


def serve_holders() -> tuple[ServeHolder, ...]:
    """Serve's deployments with the replicas it has placed, from its controller; () if Serve is not running.

    `_get_global_client().get_serve_details()` is what the dashboard's Serve REST API serves; the
    controller answers it without the dashboard. Private in 2.60, so any failure reads as "nothing
    known" (the messages then say "other Ray tasks or actors").
    """
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
        details = client.get_serve_details() if client is not None else {}
    except Exception:  # noqa: BLE001 - naming the holders is a help to the message, never its failure
        return ()
    return holders_from_serve_details(details)


def holders_from_serve_details(details: Mapping[str, Any]) -> tuple[ServeHolder, ...]:
    holders = []
    for app_name, app in (details.get("applications") or {}).items():
        for name, deployment in (app.get("deployments") or {}).items():
            placed = sum(1 for r in deployment.get("replicas") or ()
                         if r.get("node_id") and r.get("state") in PLACED_REPLICA_STATES)
            per_replica = deployment.get("required_resources") or Request.of(
                (deployment.get("deployment_config") or {}).get("ray_actor_options") or {}).resources
            if placed:
                holders.append(ServeHolder(app_name, name, placed, {k: float(v) for k, v in per_replica.items()}))
    return tuple(holders)


# -- words --------------------------------------------------------------------------------------

def amount(resource: str, value: float) -> str:
    """'1 CPU', '2.5 CPUs', '1 GPU', '4 TPU chips', 'accelerator type H100', '2.0 GiB of memory'."""
    if resource.startswith(ACCELERATOR_PREFIX):
        return f"accelerator type {resource[len(ACCELERATOR_PREFIX):]}"
    if resource == "memory":
        return f"{value / 2**30:.1f} GiB of memory"
    unit = {"CPU": "CPU", "GPU": "GPU", "TPU": "TPU chip"}.get(resource)
    if unit is None:
        return f"{value:g} of resource '{resource}'"
    return f"{value:g} {unit}{'' if abs(value - 1) < EPSILON else 's'}"


def describe_cluster(view: ClusterView) -> str:
    """'1 node: 2 CPUs, no GPU' or '3 nodes: 6 CPUs, 2 GPUs, 4 TPU chips; accelerator types H100, TPU-V5LITEPOD'."""
    parts = [amount(r, view.total[r]) for r in ("CPU", "GPU", "TPU") if view.total.get(r)]
    if not view.total.get("GPU"):
        parts.append("no GPU")
    kinds = sorted(k[len(ACCELERATOR_PREFIX):] for k in view.total if k.startswith(ACCELERATOR_PREFIX))
    text = f"{len(view.nodes)} node{'' if len(view.nodes) == 1 else 's'}: {', '.join(parts)}"
    return text + (f"; accelerator type{'' if len(kinds) == 1 else 's'} {', '.join(kinds)}" if kinds else "")


def holders(resource: str, view: ClusterView, exclude: Sequence[str] = ()) -> list[str]:
    """Who holds `resource`: Serve applications (replicas, amount), then everything else Ray has handed out."""
    serve_by_app: dict[str, tuple[int, float]] = {}
    for h in view.serve:
        if h.holds(resource) > EPSILON and h.application not in exclude:
            replicas, held = serve_by_app.get(h.application, (0, 0.0))
            serve_by_app[h.application] = (replicas + h.replicas, held + h.holds(resource))
    found = []
    if serve_by_app:
        found.append("Serve replicas of application" + ("s " if len(serve_by_app) > 1 else " ") + ", ".join(
            f"{app} ({replicas} replica{'' if replicas == 1 else 's'}, {amount(resource, held)})"
            for app, (replicas, held) in sorted(serve_by_app.items())))
    in_use = view.total.get(resource, 0.0) - view.available.get(resource, 0.0)
    other = in_use - sum(h.holds(resource) for h in view.serve)
    if other > EPSILON:
        found.append(f"other Ray tasks or actors ({amount(resource, other)})")
    return found


# -- the checks -----------------------------------------------------------------------------------

def label_matches(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    """Ray's label selector values: 'v', '!v', 'in(a,b)', '!in(a,b)'."""
    for key, expr in (selector or {}).items():
        negate = expr.startswith("!")
        body = expr[1:] if negate else expr
        values = {v.strip() for v in body[3:-1].split(",")} if body.startswith("in(") and body.endswith(")") \
            else {body}
        if (labels.get(key) in values) == negate:
            return False
    return True


def _fits(have: Mapping[str, float], need: Mapping[str, float]) -> bool:
    return all(have.get(name, 0.0) + EPSILON >= value for name, value in need.items())


def never_placeable(request: Request, view: ClusterView) -> str:
    """'' if some alive node could run `request` once it is free; else what no node has, in words."""
    nodes = [n for n in view.nodes if label_matches(n.labels, request.label_selector)]
    if any(_fits(n.resources, request.resources) for n in nodes):
        return ""
    if not nodes:
        return f"no node matches its label selector {dict(request.label_selector or {})}"
    missing = []
    for name, value in sorted(request.resources.items(), key=lambda kv: not kv[0].startswith(ACCELERATOR_PREFIX)):
        best = max(n.resources.get(name, 0.0) for n in nodes)
        if best + EPSILON >= value:
            continue
        if name.startswith(ACCELERATOR_PREFIX):
            missing.append(f"no node has {amount(name, value)}")
        elif best <= EPSILON:
            missing.append(f"no node has {'a ' + name if name in ('GPU', 'TPU') else amount(name, value)}")
        else:
            missing.append(f"no node has {amount(name, value)} (the largest has {best:g})")
    return ", and ".join(missing) or f"no single node has all of {request.describe()}"


def shortage(request: Request, view: ClusterView, count: int = 1, free: Mapping[str, float] | None = None,
             exclude: Sequence[str] = (), claims: Sequence[tuple[str, Mapping[str, float]]] = ()) -> str:
    """'' if `count` such requests fit in what is free; else what is missing: '1 CPU: all 2 CPUs of the
    cluster are held by Serve replicas of application a (2 replicas, 2 CPUs)'.

    `free`: what to count as free (default: the cluster's available resources); `exclude`: Serve
    applications not to name (counted as free by the caller); `claims`: (name, resources) the
    caller's own earlier items take out of `free` (a plan's workloads placed before this one).
    """
    free = view.available if free is None else free
    parts = []
    for name, value in request.resources.items():
        if name.startswith(ACCELERATOR_PREFIX):
            continue  # a marker (0.001 per task), not capacity: the GPU or TPU count is what runs out
        need, have, total = value * count, max(0.0, free.get(name, 0.0)), view.total.get(name, 0.0)
        if have + EPSILON >= need:
            continue
        taken = [f"{who} ({amount(name, res[name])})" for who, res in claims if res.get(name, 0.0) > EPSILON]
        who = ([f"workloads of this plan placed before it: {', '.join(taken)}"] if taken else []) \
            + holders(name, view, exclude)
        held = f"held by {'; '.join(who)}" if who else "in use"
        if have <= EPSILON:
            parts.append(f"{amount(name, need)}: all {amount(name, total)} of the cluster are {held}")
        else:
            parts.append(f"{amount(name, need)}: {have:g} of the cluster's {amount(name, total)} free, the rest {held}")
    return "; ".join(parts)


@dataclass(frozen=True)
class PlacementProblem:
    """One workload of a plan that the cluster cannot place now (or ever), and why."""
    workload: str
    message: str

    def __str__(self) -> str:
        return self.message


def check_placeable(plan: "Plan", catalog: "Catalog", view: ClusterView | None = None) -> list[PlacementProblem]:
    """Every workload of `plan` whose replicas the connected cluster cannot place: [] if all fit.

    Per workload deployable here (cluster.serving.locally_deployable), its replicas' request
    (replicas x ray_actor_options: num_cpus, num_gpus, accelerator type, TPU chips; fractions
    summed, never rounded up per replica) against what is free: the cluster's available
    resources plus what Serve applications of the same names hold (a redeploy replaces them),
    less what the plan's earlier workloads take. A replica no node can ever hold is a problem
    whatever is free. Workloads left out (hardware the cluster lacks, a backend that cannot serve)
    are deploy_plan's to report.
    """
    from cluster.replicas import deployment_options, locally_deployable
    from planner.core.errors import PlannerError
    from planner.core.inventory import cpu_only_label_selector

    view = read_cluster() if view is None else view
    names = {w.name for w in plan.workloads}
    free = dict(view.available)
    for h in view.serve:
        if h.application in names:
            for name, value in h.per_replica.items():
                free[name] = free.get(name, 0.0) + h.replicas * value
    selector = cpu_only_label_selector([{"Alive": True, "Resources": n.resources, "Labels": n.labels}
                                        for n in view.nodes])
    problems: list[PlacementProblem] = []
    placed_before: list[tuple[str, dict[str, float]]] = []
    for w in plan.workloads:
        try:
            if locally_deployable(w, catalog, view.total):
                continue
        except PlannerError:
            continue
        options = deployment_options(w, catalog, selector)
        request = Request.of(options["ray_actor_options"])
        replicas = options.get("num_replicas") or options["autoscaling_config"]["initial_replicas"]
        each = f"{replicas} replica{'' if replicas == 1 else 's'} x {request.describe()}"
        never = never_placeable(request, view)
        if never:
            problems.append(PlacementProblem(w.name, f"workload '{w.name}' ({each}) can never be placed on this "
                                                     f"cluster: {never} (the cluster: {describe_cluster(view)}). "
                                                     "To fix: re-plan for this cluster (--inventory cluster), or "
                                                     "deploy on a cluster with such nodes (--address)"))
            continue
        short = shortage(request, view, replicas, free, exclude=sorted(names), claims=placed_before)
        if short:
            problems.append(PlacementProblem(w.name, f"workload '{w.name}' ({each}) does not fit in what is free "
                                                     f"now, missing {short}. To fix: free them (`serve shutdown`, "
                                                     "or delete those applications), deploy on a cluster with "
                                                     "room (--address), or re-plan for what is free"))
            continue
        taken = {name: replicas * value for name, value in request.resources.items()}
        for name, value in taken.items():
            free[name] = free.get(name, 0.0) - value
        placed_before.append((w.name, taken))
    return problems


def plan_cpus(plan: "Plan", catalog: "Catalog") -> float:
    """CPUs the replicas of the plan's CPU workloads ask for in all (fractions summed): what an embedded
    Ray must have to host them (cluster.runtime.ensure_ray's `cpus_needed`)."""
    from cluster.replicas import deployment_options

    total = 0.0
    for w in plan.workloads:
        if catalog.get(w.chosen.hardware).is_accelerator:
            continue
        options = deployment_options(w, catalog)
        replicas = options.get("num_replicas") or options["autoscaling_config"]["initial_replicas"]
        total += replicas * Request.of(options["ray_actor_options"]).resources.get("CPU", 0.0)
    return total


def refuse_unplaceable(plan: "Plan", catalog: "Catalog", view: ClusterView | None = None) -> None:
    """ClusterError listing check_placeable's problems, one per line; nothing if the plan fits."""
    from planner.core.errors import ClusterError

    problems = check_placeable(plan, catalog, view)
    if problems:
        raise ClusterError("the cluster cannot place this plan's replicas now:\n" +
                           "\n".join(f"  - {p}" for p in problems))
