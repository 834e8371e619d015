"""The Python API: what the CLI does, a few calls away, returning typed results.

    import planner
    rows = planner.profile(["mlp_digits"], precisions=["fp32", "bf16"])          # Ray tasks
    plan = planner.plan("examples/workloads.yaml", rows)                          # CP-SAT
    deployment = planner.deploy(plan)                                             # Ray Serve
    result = planner.verify(plan, deployment, duration_s=10)                      # HTTP load
    planner.report(plan, "all", "out/", verification="out/verify.json")    # cost_report.{csv,...,html,md}

Ray is started (embedded, local) on first need unless an address is given.
Heavy imports (torch, ray) happen inside the functions that need them, so
planning from a CSV stays fast and light.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from planner.core.catalog import Catalog, load_catalog
from planner.core.errors import InputError
from planner.core.plan import Plan, read_plan
from planner.core.profiles import ProfileRow, SkippedPoint, read_profiles_csv
from planner.core.workloads import WorkloadSet, load_workloads
from planner.deployment.verification import VerificationReport, summarise
from planner.planning.context import PlanningContext, candidate_tables, served
from planner.planning.optimizer import SolverSettings, optimize
from planner.profiling.timing import TimingBudget

if TYPE_CHECKING:
    from planner.planning.batch_jobs import BatchInputs
    from planner.core.serving_path import ServingPath
    from planner.planning.batch_schedule import Schedule

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)


def _catalog(catalog: Catalog | str | Path | None) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def builtin_models() -> list[str]:
    from planner.models import builtin_model_names
    return builtin_model_names()


@dataclass(frozen=True)
class ProfileResult:
    rows: tuple[ProfileRow, ...]          # measured now, or reused from the store (cache hits)
    skipped: tuple[SkippedPoint, ...]     # unsupported, oom, pruned or failed grid points, with reasons
    points_measured: int
    cache_hits: int
    errors: tuple[str, ...] = ()
    ray: str = ""                         # where it ran: "cluster at ..." or "embedded local Ray (...)"

    @property
    def points_skipped(self) -> int:
        return len(self.skipped)

    @property
    def points_total(self) -> int:
        return self.points_measured + self.cache_hits + self.points_skipped


def profile(models: Sequence[str], precisions: Sequence[str] = ("fp32", "bf16"),
            batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, hardware: str = "cpu-x86", threads: int = 1,
            catalog: Catalog | str | Path | None = None, address: str | None = None,
            max_batch_latency_ms: float | None = None, max_concurrent: int | None = None,
            store: str | Path | None = None, force: bool = False, budget: TimingBudget | None = None,
            on_progress: Callable[[object], None] | None = None, on_wait: Callable[[str], None] | None = None,
            wait_timeout_s: float | None = None) -> ProfileResult:
    """Profile each model x precision over the batch sizes as Ray tasks on `hardware`.

    With `store`, points already stored for the same device and framework are
    reused (cache hits) unless `force`; new rows and skipped points are added.
    Hardware the cluster has no node for is refused at once (ClusterError). While no task can
    start (others hold what they need), `on_wait` gets a line every few seconds naming what is
    missing and who holds it (default: a logged warning); after `wait_timeout_s` (default
    cluster.profiling.WAIT_TIMEOUT_S, 3 minutes) of that, ClusterError.
    """
    from cluster.profiling import WAIT_TIMEOUT_S, ProfileJob, run_profile_jobs
    from cluster.runtime import ensure_ray
    from planner.models import get_model
    from planner.profiling.store import ProfileStore

    cat = _catalog(catalog)
    cat.get(hardware)
    for name in models:
        get_model(name)  # fail fast, in the driver, on an unknown model
    if threads < 1:
        raise InputError("--threads", threads, "must be >= 1", "give the vCPUs per CPU replica")
    the_store = ProfileStore(store) if store else None
    stored = [] if (the_store is None or force) else [r for r in the_store.rows() if r.hardware == hardware]
    where = ensure_ray(address)
    jobs = [ProfileJob(m, p, hardware, tuple(batch_sizes), threads, max_batch_latency_ms,
                       cached=tuple(r for r in stored if r.model == m and r.precision == p and r.mode == "inference"
                                    and r.units_per_replica == cat.get(hardware).units_per_replica(threads)))
            for m in models for p in precisions]
    outcomes = run_profile_jobs(jobs, cat, on_done=on_progress, max_concurrent=max_concurrent, budget=budget,
                                on_wait=on_wait, wait_timeout_s=WAIT_TIMEOUT_S if wait_timeout_s is None
                                else wait_timeout_s)
    rows = tuple(r for o in outcomes for r in o.rows)
    skipped = tuple(p for o in outcomes for p in o.skipped)
    hits = sum(o.cache_hits for o in outcomes)
    if the_store is not None:
        the_store.add(rows, skipped)
    return ProfileResult(rows=rows, skipped=skipped, points_measured=len(rows) - hits, cache_hits=hits,
                         errors=tuple(f"{o.job.model}/{o.job.precision}: {o.error}" for o in outcomes if o.error),
                         ray=where)


def plan(workloads: WorkloadSet | str | Path, profiles: Iterable[ProfileRow] | ProfileResult | str | Path,
         catalog: Catalog | str | Path | None = None, time_limit_s: float = 10.0,
         num_workers: int = 2, inventory: str = "file", address: str | None = None,
         serving_overhead_from: VerificationReport | str | Path | None = None,
         serving_path: ServingPath | str | Path | None = None) -> Plan:
    """Choose hardware, precision, batch size and replicas per workload (never raises on infeasible).

    `inventory`: "file" (the workloads file's), "cluster" (the running Ray cluster's nodes, all
    owned; `address` to attach) or "catalog" (rent anything at catalog prices); planner/core/inventory.py.
    `serving_overhead_from`: a verify.json, or the report `verify` returned; the serving-path
    overhead it measured replaces the workloads file's assumed one (planner/deployment/feedback.py).
    `serving_path`: what `calibrate` measured (or its serving_path.json); else the workloads file's
    `serving_path`, else its `serving_overhead_ms`, else an assumed path, labelled so.
    """
    cat = _catalog(catalog)
    provenance: dict[str, object] = {"catalog": cat.source_path, "catalog_version": cat.version,
                                     "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not isinstance(workloads, WorkloadSet):
        provenance["workloads"] = str(workloads)
    if isinstance(profiles, (str, Path)):
        provenance["profiles"] = str(profiles)
    spec, rows = _workloads_and_rows(workloads, profiles, cat)
    sources = sorted({r.source for r in rows})
    provenance["profile_sources"] = sources
    context = served(planning_context(spec, inventory, cat, address))
    provenance["inventory_source"] = inventory
    if serving_path is not None:
        from planner.core.serving_path import read_serving_path
        measured = serving_path if not isinstance(serving_path, (str, Path)) else read_serving_path(serving_path)
        context = replace(context, serving_path=measured)
        if isinstance(serving_path, (str, Path)):
            provenance["serving_path"] = str(serving_path)
    if serving_overhead_from is not None:
        from planner.deployment.feedback import overhead_feedback_from
        feedback = overhead_feedback_from(serving_overhead_from, context.p99_overhead_ms)
        context = replace(context, measured_overhead_ms=feedback.by_workload)
        provenance["serving_overhead"] = f"{feedback.describe()}, from {feedback.origin}"
    candidates = candidate_tables(context, rows, cat)
    return optimize(context, candidates, SolverSettings(time_limit_s=time_limit_s, num_workers=num_workers),
                    provenance)


def _workloads_and_rows(workloads: WorkloadSet | str | Path,
                        profiles: Iterable[ProfileRow] | ProfileResult | str | Path,
                        catalog: Catalog) -> tuple[WorkloadSet, list[ProfileRow]]:
    """Read a workloads file and a profiles CSV (or take them as given), checking names against the catalog."""
    if not isinstance(workloads, WorkloadSet):
        from planner.models import builtin_model_names
        workloads = load_workloads(workloads, known_models=builtin_model_names(), known_hardware=catalog.names())
    if isinstance(profiles, (str, Path)):
        return workloads, read_profiles_csv(profiles, known_hardware=catalog.names())
    return workloads, list(profiles.rows if isinstance(profiles, ProfileResult) else profiles)


def planning_context(workloads: WorkloadSet, inventory: str = "file", catalog: Catalog | str | Path | None = None,
                     address: str | None = None) -> PlanningContext:
    """What a plan or a Pareto sweep of `workloads` plans against, with the inventory from `inventory`:

    "file" (the workloads file's), "cluster" (the running Ray cluster's nodes, all owned;
    `address` to attach) or "catalog" (rent anything at catalog prices); planner/core/inventory.py.
    """
    from planner.core.inventory import SOURCES
    context = PlanningContext.of(workloads)
    if inventory == "file":
        return context
    if inventory == "catalog":
        return replace(context, inventory=None, owned=frozenset())
    if inventory == "cluster":
        from cluster.runtime import cluster_inventory
        found = cluster_inventory(_catalog(catalog), address)
        return replace(context, inventory=found.counts, owned=frozenset(found.counts), nodes=found.nodes)
    raise InputError("--inventory", inventory, "unknown inventory source", f"use one of {', '.join(SOURCES)}")


@dataclass(frozen=True)
class Deployment:
    """What `deploy` put on Serve: URLs of deployed workloads and why others were left out."""
    base_url: str
    urls: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _as_plan(plan_or_path: Plan | str | Path) -> Plan:
    return plan_or_path if isinstance(plan_or_path, Plan) else read_plan(plan_or_path)


def deploy(plan: Plan | str | Path, catalog: Catalog | str | Path | None = None, address: str | None = None,
           http_port: int = 8000, serve_config_path: str | Path | None = None,
           history: str | Path | None = None, on_status: Callable[[str], None] | None = None) -> Deployment:
    """Deploy the plan's locally deployable workloads on Ray Serve (starts an embedded Ray if needed).

    An embedded Ray gets the machine's cores, nothing more: a plan whose CPU replicas need more
    is a ClusterError naming both. Before Serve starts anything, the plan's replicas are checked
    against what the cluster has free (cluster.placement.check_placeable): ClusterError naming
    each workload that does not fit, what it needs, what is free and who holds the rest. While
    replicas start, `on_status` gets Serve's status of those not yet running every few seconds
    after the first ten (default: a logged warning).
    With `serve_config_path`, first writes the whole plan as a Ray Serve config file there
    (`serve deploy` applies it unchanged to a running cluster; cluster/serve_config.py).
    With `history` (a folder), the plan is recorded as a new version; a deploy that fails its
    health checks (Serve cannot start it, or a probe request fails) is recorded as failed and
    the last healthy version is deployed again, then ClusterError says so. A plan refused for
    want of room is not a version: nothing was changed.
    """
    from cluster.placement import plan_cpus, refuse_unplaceable
    from cluster.runtime import ensure_ray
    from cluster.serving import deploy_plan

    the_plan = _as_plan(plan)
    if not the_plan.workloads:
        raise InputError("plan", the_plan.status, "the plan places no workload", "fix the plan's infeasibility first")
    cat = _catalog(catalog)
    ensure_ray(address, cpus_needed=plan_cpus(the_plan, cat))
    if serve_config_path is not None:
        import ray

        from cluster.serve_config import write_serve_config
        from planner.core.inventory import cpu_only_label_selector
        # Written for the cluster it is connected to: CPU replicas kept off its accelerator nodes.
        write_serve_config(serve_config_path, the_plan, cat, http_port, cpu_only_label_selector(ray.nodes()))
    if history is None:
        deployed, skipped = deploy_plan(the_plan, cat, http_port=http_port, on_status=on_status)
    else:
        refuse_unplaceable(the_plan, cat)   # before a version is recorded: a refusal changes nothing
        deployed, skipped = _deploy_or_roll_back(the_plan, cat, http_port, history, on_status)
    return Deployment(base_url=f"http://127.0.0.1:{http_port}", urls={d.name: d.url for d in deployed},
                      skipped={s.name: s.reason for s in skipped})


def _deploy_or_roll_back(the_plan: Plan, catalog: Catalog, http_port: int, history: str | Path,
                         on_status: Callable[[str], None] | None = None):
    """Deploy with a version history: planner/deployment/history.py decides, cluster/serving.py acts."""
    from cluster.serving import deploy_plan, health_check, remove_workloads_not_in
    from planner.deployment.history import DeployHistory, deploy_recorded

    def check(result) -> None:
        deployed, _ = result
        health_check(deployed, {w.name: _request_body(w.model) for w in the_plan.workloads})

    return deploy_recorded(DeployHistory(history), the_plan,
                           lambda p: deploy_plan(p, catalog, http_port=http_port, on_status=on_status),
                           check, remove_workloads_not_in)


def rollback(history: str | Path, catalog: Catalog | str | Path | None = None, address: str | None = None,
             http_port: int = 8000, version: int | None = None) -> tuple[int, Deployment]:
    """Deploy the previous healthy plan version again (or `version`); returns (the version restored, deployment)."""
    from cluster.serving import remove_workloads_not_in
    from planner.deployment.history import DeployHistory

    log = DeployHistory(history)
    target = log.rollback_target(version)
    restored = log.plan(target)
    current = log.latest_healthy()
    import ray
    if current is not None and (ray.is_initialized() or address):
        from cluster.runtime import ensure_ray
        ensure_ray(address)
        remove_workloads_not_in(log.plan(current), restored)
    deployment = deploy(restored, catalog=catalog, address=address, http_port=http_port)
    log.record(restored, "healthy", f"rollback to v{target}")
    return target, deployment


def _request_body(model: str) -> bytes:
    from planner.models import get_model
    item = get_model(model).example_input(1)[0]
    return json.dumps({"inputs": item.tolist()}).encode()


def verify(plan: Plan | str | Path, deployment: Deployment | str, duration_s: float = 10.0,
           warmup_requests: int = 5) -> VerificationReport:
    """Drive every deployed workload with open-loop Poisson load at its planned qps; measure it.

    On this process's embedded Ray, on a machine of 2+ cores, the load comes from a process of its
    own pinned to one core at Ray's worker niceness (cluster/loadgen.py); the report's
    `load_generator` says where it ran.
    """
    from cluster.loadgen import drive_for_verification

    the_plan = _as_plan(plan)
    if isinstance(deployment, str):
        base = deployment.rstrip("/")
        deployment = Deployment(base_url=base, urls={w.name: f"{base}/{w.name}" for w in the_plan.workloads})
    workloads = [w for w in the_plan.workloads if w.name in deployment.urls]
    targets = [(deployment.urls[w.name], _request_body(w.model), w.qps_target) for w in workloads]
    before = _batch_counts()
    results, site = drive_for_verification(targets, duration_s, warmup_requests=warmup_requests)
    after = _batch_counts(wait_s=2.5)  # one report interval of the embedded Ray, and a margin
    from cluster.metrics import BatchCounts
    rows = []
    for w, r in zip(workloads, results):
        row = summarise(w.name, r.url, w.qps_target, duration_s, r.latencies_ms, r.errors, r.elapsed_s,
                        w.p99_ms_target, w.chosen.predicted_p99_ms, r.error_samples)
        seen = (after[w.name] - before.get(w.name, BatchCounts(())) if w.name in after else None)
        rows.append(replace(row, planned_batch_size=w.chosen.batch_size,
                             mean_batch_size=None if seen is None else seen.mean_batch_size,
                             batches=None if seen is None else int(seen.batches)))
    rows = tuple(rows)
    from planner.profiling.profiler import cpu_name
    return VerificationReport(workloads=rows, skipped=tuple(deployment.skipped.items()),
                              source=f"measured over HTTP from {deployment.base_url} on {cpu_name()}",
                              load_generator=site)


def calibrate(models: Sequence[str], address: str | None = None, http_port: int = 8000,
              qps: Sequence[float] = (5.0, 40.0), duration_s: float = 15.0,
              on_progress: Callable[[str], None] = lambda _: None,
              mix: Mapping[str, float] | None = None) -> ServingPath:
    """Measure the serving path on the cluster (cluster/calibration.py): the request floor per model,
    the HTTP proxy's CPU per request, and the path's latency at each offered load in `qps` (split
    across the models in proportion to `mix`, e.g. their planned qps)."""
    from cluster.calibration import calibrate as measure
    from cluster.runtime import ensure_ray

    ensure_ray(address)
    return measure(models, http_port=http_port, qps=qps, duration_s=duration_s, on_progress=on_progress, mix=mix)


def schedule(workloads: WorkloadSet | str | Path, profiles: Iterable[ProfileRow] | ProfileResult | str | Path,
             plan: Plan | str | Path | None = None, catalog: Catalog | str | Path | None = None,
             horizon_h: int | None = None, time_limit_s: float = 20.0) -> tuple["Schedule", "BatchInputs"]:
    """Schedule the file's batch jobs into the cheapest hours, in the capacity the plan's serving leaves."""
    from planner.planning.batch_jobs import batch_inputs
    from planner.planning.batch_schedule import schedule_jobs

    cat = _catalog(catalog)
    workloads, rows = _workloads_and_rows(workloads, profiles, cat)
    if horizon_h is not None and horizon_h < 1:
        raise InputError("--horizon-h", horizon_h, "must be >= 1", "give the scheduling horizon in hours")
    the_plan = _as_plan(plan) if plan is not None else None
    inputs = batch_inputs(workloads, rows, cat, the_plan, horizon_h)
    return schedule_jobs(inputs.jobs, inputs.prices, inputs.capacity, time_limit_s=time_limit_s), inputs


def watch(plan: Plan | str | Path, window_s: float = 30.0, address: str | None = None,
          latency_tolerance: float = 1.0, demand_tolerance: float = 0.2) -> list:
    """One window of live Serve metrics compared with the plan (planner/deployment/drift.py): the drift found."""
    import time

    from cluster.metrics import HttpWindow, scrape_http_windows
    from cluster.runtime import ensure_ray
    from planner.deployment.drift import LiveWindow, check_drift

    the_plan = _as_plan(plan)
    ensure_ray(address)
    before = scrape_http_windows()
    started = time.perf_counter()
    time.sleep(window_s)
    after = scrape_http_windows()
    seconds = time.perf_counter() - started
    live = {}
    for name, now in after.items():
        seen = now - before.get(name, HttpWindow((), 0.0))
        live[name] = LiveWindow(seconds, seen.requests, seen.errors, seen.percentile_ms(99))
    return check_drift(the_plan, live, latency_tolerance, demand_tolerance)


def _batch_counts(wait_s: float = 0.0) -> dict:
    """Serve's batch-size counters per application, or {} where the metrics cannot be read."""
    import time

    from cluster.metrics import scrape_batch_counts
    time.sleep(wait_s)
    try:
        return scrape_batch_counts()
    except Exception:  # noqa: BLE001 - metrics are a bonus to verification, never its failure
        return {}


def plan_comparisons(workloads: WorkloadSet | str | Path,
                     profiles: Iterable[ProfileRow] | ProfileResult | str | Path,
                     catalog: Catalog | str | Path | None = None, time_limit_s: float = 5.0,
                     num_workers: int = 2) -> dict[str, float | None]:
    """$/h of the plans a cost report compares with (planner/planning/comparisons.py): the best
    single-hardware plan and the all-fp32 plan, None where no such plan meets every target."""
    from planner.planning.comparisons import baseline_costs

    cat = _catalog(catalog)
    spec, rows = _workloads_and_rows(workloads, profiles, cat)
    return baseline_costs(PlanningContext.of(spec), rows, cat,
                          SolverSettings(time_limit_s=time_limit_s, num_workers=num_workers))


def cost_report(plan: Plan | str | Path, verification: VerificationReport | dict | str | Path | None = None,
                comparisons: dict[str, float | None] | None = None, aggregate: str = "workload",
                window_start: datetime | str | None = None, window_end: datetime | str | None = None):
    """The cost report's content (planner/reports/cost_report.py), to render with planner.reports.formats.render."""
    from planner.deployment.verification import verification_data
    from planner.reports.cost_report import build_report

    source = str(verification) if isinstance(verification, (str, Path)) else "verify.json"
    data = None if verification is None else verification_data(verification)
    return build_report(_as_plan(plan), comparisons, data, aggregate, window_start, window_end, source)


def report(plan: Plan | str | Path, fmt: str, out: str | Path,
           verification: VerificationReport | dict | str | Path | None = None,
           workloads: WorkloadSet | str | Path | None = None,
           profiles: Iterable[ProfileRow] | ProfileResult | str | Path | None = None,
           catalog: Catalog | str | Path | None = None, comparisons: dict[str, float | None] | None = None,
           aggregate: str = "workload", window_start: datetime | str | None = None,
           window_end: datetime | str | None = None) -> Path:
    """Write the cost report; returns the file written (for fmt "all": the folder of cost_report.<ext>).

    fmt: csv | json | parquet | xlsx | html | md | all. `verification` (a verify.json or the
    report verify returned) adds plan vs actual; `workloads` and `profiles` (those the plan was
    made from) add the comparison with the best single-hardware and the all-fp32 plans, unless
    `comparisons` ($/h by name) is given. Nothing is written if any part fails.
    """
    from planner.reports.formats import ALL, check_format, write_all, write_report

    check_format(fmt)
    if comparisons is None and (workloads is None) != (profiles is None):
        raise InputError("--workloads" if workloads is None else "--profiles", None,
                         "comparisons need both the workloads and the profiles the plan was made from",
                         "pass both --workloads and --profiles, or neither")
    if comparisons is None and workloads is not None and profiles is not None:
        comparisons = plan_comparisons(workloads, profiles, catalog)
    content = cost_report(plan, verification, comparisons, aggregate, window_start, window_end)
    if fmt == ALL:
        write_all(content, out)
        return Path(out)
    return write_report(content, fmt, out)
