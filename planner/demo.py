"""`planner demo`: the whole pipeline on an embedded local Ray, end to end.

profile (Ray tasks on this CPU) -> plan (CP-SAT) -> deploy (Ray Serve)
-> verify (real HTTP Poisson load) -> reports, all into one output folder.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from planner import api
from planner.core.catalog import load_catalog
from planner.core.errors import ClusterError
from planner.core.plan import write_plan
from planner.core.profiles import write_profiles_csv
from planner.core.serving_path import write_serving_path
from planner.core.workloads import load_workloads
from planner.deployment.verification import PREDICTION_BAND, write_verification
from planner.models import builtin_model_names
from planner.profiling.reference import ESTIMATE_TARGETS, reference_and_estimated_rows
from planner.profiling.timing import TimingBudget
from planner.reports.terminal import ProfileProgress, print_plan, print_verification

EXAMPLE_WORKLOADS = Path(__file__).resolve().parent.parent / "examples" / "workloads.yaml"
# Requests per verified workload: enough for a bounded 95% interval around p99 (order statistics:
# the upper bound exists from about 380 requests).
MIN_REQUESTS = 400
# The load generator's CPU per request, for the share of this machine it takes, where calibrate did
# not measure it (its load ran in this process): assumed, and said so.
ASSUMED_LOADGEN_CPU_MS_PER_REQUEST = 1.0
# Profiling budget per point: the stability rule of the default budget, capped at 2.5 s a point
# (the default's 8 s) so the demo stays under 5 minutes on 2 cores; a point not stable by then
# is recorded as such in profiles.csv.
DEMO_BUDGET = TimingBudget(max_seconds=2.5)
# Other processes' CPU during verification above which the window is flagged as not quiet.
BUSY_MACHINE_VCPUS = 0.2


def run_demo(console: Console, out: Path, workloads_path: str | Path | None = None, duration_s: float = 8.0,
             quick: bool = False, http_port: int = 8000, use_reference: bool = True) -> int:
    from cluster.runtime import ensure_ray, shutdown_ray

    started = time.perf_counter()
    catalog = load_catalog()
    workloads = load_workloads(workloads_path or EXAMPLE_WORKLOADS, known_models=builtin_model_names(),
                               known_hardware=catalog.names())
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    console.rule("[bold]cost-aware planner demo")
    console.print(f"workloads: {workloads.source_path} ({len(workloads.workloads)} workloads), "
                  f"catalog {catalog.version}, output: {out}/")

    console.print(ensure_ray())  # as many logical CPUs as this machine has cores, no more
    try:
        # 1. Profile each model at every precision some workload allows, on this machine's CPU.
        models = sorted({w.model for w in workloads.workloads})
        batch_sizes = (1, 4, 16) if quick else (1, 2, 4, 8, 16)
        rows = []
        with ProfileProgress(console, total=sum(
                len({p for w in workloads.workloads if w.model == m for p in w.precisions}) for m in models)) as bar:
            for model in models:
                using = [w for w in workloads.workloads if w.model == model]
                precisions = sorted({p for w in using for p in w.precisions})
                targets = [w.p99_ms for w in using if w.p99_ms is not None]
                # Bigger batches only get slower; stop once one batch outlasts every target (None: batch jobs).
                cap = max(targets) if len(targets) == len(using) else None
                result = api.profile([model], precisions, batch_sizes, hardware="cpu-x86", threads=1,
                                     catalog=catalog, max_batch_latency_ms=cap, max_concurrent=cores,
                                     on_progress=bar.advance, budget=DEMO_BUDGET)
                rows.extend(result.rows)
                for err in result.errors:
                    console.print(f"[yellow]warning:[/] {err}")
        write_profiles_csv(out / "profiles.csv", rows)
        console.print(f"profiled {len(rows)} points on this CPU (measured; energy estimated) -> {out}/profiles.csv")

        # 2. Hardware this machine lacks: GPU rows measured elsewhere (committed reference data),
        #    and roofline estimates for catalog GPUs nobody measured, each labelled as such.
        planning_rows = list(rows)
        if use_reference:
            reference, estimated = reference_and_estimated_rows(catalog, models)
            planning_rows += reference + estimated
            write_profiles_csv(out / "profiles_planned.csv", planning_rows)
            console.print(f"plus {len(reference)} GPU rows measured on H100/H200 (imported from profiles/reference/) "
                          f"and {len(estimated)} estimated for {', '.join(ESTIMATE_TARGETS)} "
                          f"-> {out}/profiles_planned.csv")

        # 3. The cluster plan, for the cluster the workloads file describes. Its serving path was not
        #    measured (this machine is not that cluster): it is the file's, or assumed, and says so.
        plan = api.plan(workloads, planning_rows, catalog=catalog)
        print_plan(console, plan)
        if not plan.ok:
            for line in plan.infeasible:
                console.print(f"[red]infeasible:[/] {line}")
            console.print("no plan written; edit the workloads and run again")
            return 3
        write_plan(out / "plan.json", plan)

        # 4. This machine deploys the part of the plan it can run: the online workloads planned on
        #    CPUs, planned again for this machine (its cores less what Ray and the load generator
        #    take), with the serving path measured here at the traffic its own proxy will carry.
        local_names = _local_online(plan, catalog)
        if not local_names:
            console.print("no online workload of the plan runs on a CPU: nothing to deploy on this machine")
            return 0
        local_qps = sum(w.qps_target for w in plan.workloads if w.name in local_names)
        mix: dict[str, float] = {}
        for w in plan.workloads:
            if w.name in local_names:
                mix[w.model] = mix.get(w.model, 0.0) + w.qps_target
        with console.status("measuring the serving path on this machine (planner calibrate)"):
            # At the traffic this machine will carry (each model's probe at its workloads' share), and a
            # quarter of it: what the plan predicts from, measured before anything is deployed.
            path = api.calibrate(sorted(mix), http_port=http_port, qps=(max(2.0, local_qps / 4), local_qps),
                                 duration_s=15.0 if quick else 20.0, mix=mix)
        write_serving_path(out / "serving_path.json", path)
        console.print(f"serving path -> {out}/serving_path.json: {path.describe()}", soft_wrap=True, markup=False)
        # 5. Deploy, and verify with real HTTP load.
        local = _plan_for_this_machine(workloads, plan, planning_rows, catalog, path, local_names, cores)
        write_plan(out / "plan_local.json", local)
        console.print(f"this machine: {', '.join(w.name for w in local.workloads)} -> {out}/plan_local.json "
                      f"({local.provenance.get('this_machine', '')})", soft_wrap=True)
        with console.status("deploying on Ray Serve"):
            deployment = api.deploy(local, catalog=catalog, http_port=http_port,
                                    serve_config_path=out / "serve_config.yaml")
        console.print(f"deployed {len(deployment.urls)} workloads at {deployment.base_url}/<workload>")
        window = max(duration_s, MIN_REQUESTS / min(w.qps_target for w in local.workloads))
        with console.status(f"driving open-loop Poisson load for {window:.0f}s (>= {MIN_REQUESTS} requests each)"):
            verification = api.verify(local, deployment, duration_s=window)
        verification = replace(verification, skipped=verification.skipped + _not_here(plan, local, catalog))
        write_verification(out / "verify.json", verification)
        print_verification(console, verification)
        site = verification.load_generator
        if site is not None and (site.other_vcpus or 0.0) > BUSY_MACHINE_VCPUS:
            console.print(f"[yellow]warning:[/] other processes on this machine took {site.other_vcpus:.2f} vCPUs "
                          "during the window; the latencies measured include their contention. To fix: run the "
                          "demo on a quiet machine")
        console.print(_prediction_error_line(verification, "First window, predictions made before any load "
                                                           "(-> verify.json)"), soft_wrap=True)
        feedback_note, replan = _feed_back(local, verification, local_workloads(workloads, local, cores, path),
                                           planning_rows, catalog, out)
        if replan is not None:
            # Calibration, not prediction: the fed-back overhead comes from the window just measured.
            with console.status(f"calibration: a second window against the fed-back predictions ({window:.0f}s)"):
                second = api.verify(replan, deployment, duration_s=window)
            write_verification(out / "verify_feedback.json", second)
            feedback_note += " " + _prediction_error_line(second, "Calibration (second window, fed back; "
                                                                  "-> verify_feedback.json)")

        # 6. Reports: every format, with plan vs actual and the plans this one is compared with.
        with console.status("cost reports: pricing the best single-hardware and all-fp32 plans"):
            comparisons = api.plan_comparisons(workloads, planning_rows, catalog=catalog)
            api.report(plan, "all", out, verification=verification, comparisons=comparisons)
        console.print(_report_totals_line(out, plan.objective_usd_per_hour, comparisons))
    finally:
        with console.status("stopping Serve and Ray"):
            shutdown_ray()
    console.print(f"wrote {out}/plan.json, plan_local.json, serving_path.json, serve_config.yaml, profiles.csv, verify.json, "
                  "cost_report.{csv,json,parquet,xlsx,html,md} "
                  f"in {time.perf_counter() - started:.0f}s")
    missed = [w for w in verification.workloads if not w.passed]
    if missed:
        # The pipeline ran; a missed SLO is a finding the demo reports, not a failure of the demo.
        # (`planner verify` exits 4 on it, for scripts that gate on it.)
        console.print(f"[yellow]{len(missed)} workload(s) missed a target under load:[/] "
                      + "; ".join(f"{w.name}: {w.notes}" for w in missed)
                      + ".")
    if feedback_note:
        console.print(feedback_note)
    return 0


def _report_totals_line(out: Path, plan_usd_per_hour: float, comparisons: dict) -> str:
    """One line: the total each report file states (read back from the files), and whether they agree."""
    from planner.reports.cost_report import FORMATS
    from planner.reports.formats import STEM, read_back_totals

    totals = read_back_totals(out / f"{STEM}.{fmt}" for fmt in FORMATS)
    agree = len(totals) == len(FORMATS) and all(abs(t - plan_usd_per_hour) < 1e-4 for t in totals.values())
    against = "; ".join(f"{name}: " + ("no feasible plan" if usd is None else f"${usd:.4f}/h")
                        for name, usd in comparisons.items())
    verdict = "agree" if agree else f"DISAGREE ({totals})"
    return (f"cost reports -> {out}/{STEM}.{{{','.join(FORMATS)}}}: totals read back from all {len(totals)} files "
            f"{verdict} at ${plan_usd_per_hour:.4f}/h (${plan_usd_per_hour * 730:,.2f}/month); against {against}")


def _prediction_error_line(verification, label: str) -> str:
    ratios = [f"{w.name} {w.prediction_ratio:.2f}" for w in verification.workloads if w.prediction_ratio is not None]
    inside = sum(bool(w.within_band) for w in verification.workloads)
    return (f"{label}: measured/predicted p99 {', '.join(ratios)}; {inside} of {len(verification.workloads)} "
            f"within the prediction's band (+-{PREDICTION_BAND:.0%}).")


def _not_here(plan, local, catalog) -> tuple[tuple[str, str], ...]:
    """Why each workload of the cluster plan was not deployed and verified on this machine."""
    here = {w.name for w in local.workloads}
    reasons = []
    for w in plan.workloads:
        if w.name in here:
            continue
        hardware = catalog.get(w.chosen.hardware)
        reasons.append((w.name, f"planned on {hardware.display_name}; this machine has none" if hardware.is_accelerator
                        else "batch work: planned as throughput by its deadline, not served over HTTP here"))
    return tuple(reasons)


def _local_online(plan, catalog) -> list[str]:
    """Online workloads the plan put on CPUs: what this machine can serve itself."""
    return [w.name for w in plan.workloads
            if w.kind == "online" and not catalog.get(w.chosen.hardware).is_accelerator]


def local_workloads(workloads, local_plan, cores: int, path):
    """The workloads file cut to what this machine serves, with this machine's CPUs as the inventory."""
    usable = float(local_plan.provenance.get("usable_vcpus", cores))
    names = {w.name for w in local_plan.workloads}
    return replace(workloads, workloads=tuple(w for w in workloads.workloads if w.name in names),
                   inventory={"cpu-x86": usable}, owned=frozenset(), serving_path=path)


def _plan_for_this_machine(workloads, plan, rows, catalog, path, names, cores: int):
    """The online CPU workloads planned again for this machine: its cores less Ray's idle use and the
    load generator's (both measured by calibrate), and only their own traffic through its proxy."""
    qps = sum(w.qps_target for w in plan.workloads if w.name in names)
    measured = path.loadgen_cpu_ms is not None
    per_request = path.loadgen_cpu_ms if measured else ASSUMED_LOADGEN_CPU_MS_PER_REQUEST
    loadgen = qps * per_request / 1000.0
    usable = max(0.0, cores - path.system_vcpus - loadgen)
    spec = replace(workloads, workloads=tuple(w for w in workloads.workloads if w.name in names),
                   inventory={"cpu-x86": usable}, owned=frozenset(), serving_path=path)
    local = api.plan(spec, [r for r in rows if not catalog.get(r.hardware).is_accelerator], catalog=catalog)
    if not local.ok:
        raise ClusterError("this machine cannot serve its part of the plan with the serving path measured here "
                           f"({path.describe()}): " + "; ".join(local.infeasible) + ". To fix: run the demo on a "
                           "machine with more (or quieter) cores, or lower those workloads' qps")
    note = (f"{cores} cores less Ray's {path.system_vcpus:.2f} vCPUs idle (measured) and the load generator's "
            f"{loadgen:.2f} ({'measured' if measured else 'assumed'} {per_request:.2f} ms per request): {usable:.2f} vCPUs")
    return replace(local, provenance={**local.provenance, "this_machine": note, "usable_vcpus": round(usable, 3)})


def _feed_back(plan, verification, workloads, planning_rows, catalog, out: Path):
    """Measured p99 off its prediction by > 25%: re-plan with the serving overhead verify measured.

    The verification is fed in as the object `api.verify` returned (verify.json is an output,
    not a hand-off). Writes out/plan_feedback.json and returns (what changed, the re-plan if
    every deployed workload kept its configuration, so the running deployment can be judged against it).
    """
    from planner.deployment.feedback import overhead_feedback_from

    feedback = overhead_feedback_from(verification, api.planning_context(workloads).p99_overhead_ms)
    if not feedback.needed:
        return "", None
    replan = api.plan(workloads, planning_rows, catalog=catalog, serving_overhead_from=verification)
    if not replan.ok:
        return (f"fed back: {feedback.describe()}; with it, no plan meets every target "
                f"({'; '.join(replan.infeasible)})"), None
    write_plan(out / "plan_feedback.json", replan)
    before = {w.name: w.chosen.describe() for w in plan.workloads}
    changed = [f"{w.name}: {before.get(w.name)} -> {w.chosen.describe()}" for w in replan.workloads
               if before.get(w.name) != w.chosen.describe()]
    verified = set(feedback.by_workload)
    keeps_deployment = not any(w.name in verified and before.get(w.name) != w.chosen.describe()
                               for w in replan.workloads)
    note = (f"fed back: {feedback.describe()}. Re-planned with it -> {out}/plan_feedback.json: "
            + ("; ".join(changed) if changed else "same configuration for every workload, all targets still hold")
            + f" (${replan.objective_usd_per_hour:.2f}/h).")
    return note, (replan if keeps_deployment else None)
