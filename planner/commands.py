"""What each `planner` subcommand does: a thin shell over planner.api per command.

planner/cli.py parses the arguments and calls these; exit codes are documented in
docs/formats.md section 8.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console

from planner.core.errors import PlannerError

EXIT_USAGE = 2
EXIT_INFEASIBLE = 3
EXIT_VERIFY_FAILED = 4
EXIT_REGRESSION = 5
EXIT_DRIFT = 6

# Rich falls back to 80 columns when output is not a terminal (make, CI logs), which folds
# the plan table into unreadable slivers; log files can be wider.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


def csv_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def waiting(message: str) -> None:
    """What a deploy or a profile waits for (api's on_status / on_wait), as it waits."""
    from rich.text import Text
    console.print(Text.assemble(("waiting: ", "yellow"), message), highlight=False)


def cmd_profile(args: argparse.Namespace) -> int:
    from planner import api
    from planner.core.profiles import write_profiles_csv
    from planner.profiling.timing import QUICK_BUDGET

    if args.import_file:
        return _import_profiles(args)
    if args.export_store:
        from planner.profiling.store import ProfileStore
        if not args.store:
            from planner.core.errors import InputError
            raise InputError("--export-store", args.export_store, "needs --store", "pass --store DIR to export from")
        path = ProfileStore(args.store).export_csv(args.export_store)
        console.print(f"exported {args.store} -> {path}")
        return 0
    models = csv_list(args.models) if args.models else api.builtin_models()
    precisions = csv_list(args.precisions)
    if args.training:
        result_rows = _profile_training(args, models, precisions)
        write_profiles_csv(args.out, result_rows)
        console.print(f"{len(result_rows)} training-step points measured -> {args.out}")
        return 0
    from planner.reports.terminal import ProfileProgress
    with ProfileProgress(console, total=len(models) * len(precisions)) as progress:
        result = api.profile(models, precisions, args.batch_sizes, hardware=args.hardware, threads=args.threads,
                             catalog=args.catalog, address=args.address, store=args.store, force=args.force,
                             budget=QUICK_BUDGET if args.quick else None, on_progress=progress.advance,
                             on_wait=progress.waiting)
    for err in result.errors:
        errors.print(f"[yellow]warning:[/] {err}")
    for point in result.skipped:
        if point.status in ("unsupported", "oom"):
            console.print(f"  {point.status}: {point.model} {point.precision} batch {point.batch_size}: {point.reason}")
    write_profiles_csv(args.out, result.rows)
    console.print(f"{result.points_measured} points measured, {result.cache_hits} from the store, "
                  f"{result.points_skipped} skipped (of {result.points_total}) on {result.ray} -> {args.out}")
    if args.compare_to:
        return _compare(result.rows, args.compare_to)
    return 0


def _profile_training(args: argparse.Namespace, models: list[str], precisions: list[str]) -> list:
    """Training steps run in this process (no Ray): they are short and exclusive by nature."""
    from planner.core.catalog import load_catalog
    from planner.models import get_model
    from planner.profiling.timing import QUICK_BUDGET, TimingBudget
    from planner.profiling.training import TRAINING_PRECISIONS, profile_training_point

    hardware = load_catalog(args.catalog).get(args.hardware)
    rows = []
    for model in models:
        for precision in precisions:
            if precision not in TRAINING_PRECISIONS:
                console.print(f"  unsupported: {model} {precision} training: not a training precision")
                continue
            for batch_size in args.batch_sizes:
                rows.append(profile_training_point(get_model(model), precision, batch_size, hardware,
                                                   threads=args.threads,
                                                   budget=QUICK_BUDGET if args.quick else TimingBudget()))
    return rows


def _import_profiles(args: argparse.Namespace) -> int:
    from planner.core.profiles import write_profiles_csv
    from planner.profiling import importers
    from planner.profiling.store import ProfileStore

    fmt = args.import_format if args.import_format != "auto" else importers.detect_format(args.import_file)
    if fmt == "planner":
        rows = importers.import_profiles_csv(args.import_file)
    else:
        missing = [flag for flag, value in (("--models", args.models), ("--hardware", args.hardware)) if not value]
        if fmt == "perf_analyzer" and len(args.batch_sizes) != 1:
            missing.append("--batch-sizes (exactly one)")
        if missing:
            from planner.core.errors import InputError
            raise InputError("--import", args.import_file, f"a {fmt} export does not say {', '.join(missing)}",
                             f"pass {', '.join(missing)}")
        precision = csv_list(args.precisions)[0]
        if fmt == "perf_analyzer":
            rows = importers.import_perf_analyzer_csv(args.import_file, model=args.models, hardware=args.hardware,
                                                      precision=precision, batch_size=args.batch_sizes[0])
        else:
            rows = importers.import_model_analyzer_csv(args.import_file, hardware=args.hardware, precision=precision)
    if args.store:
        ProfileStore(args.store).add(rows)
    write_profiles_csv(args.out, rows)
    console.print(f"imported {len(rows)} rows ({fmt}) from {args.import_file} -> {args.out}"
                  + (f" and {args.store}" if args.store else ""))
    return 0


def _compare(rows: Sequence, baseline_path: str) -> int:
    from planner.profiling.regression import compare_profiles, format_report
    from planner.profiling.store import ProfileStore

    path = Path(baseline_path)
    baseline = ProfileStore(path).rows() if path.is_dir() else __import__(
        "planner.profiling.importers", fromlist=["x"]).import_profiles_csv(path)
    report = compare_profiles(list(rows), baseline)
    console.print(format_report(report))
    if report.regressions:
        errors.print(f"{len(report.regressions)} points got slower beyond measurement noise")
        return EXIT_REGRESSION
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from planner.core.catalog import load_catalog
    from planner.core.profiles import write_profiles_csv
    from planner.profiling.estimator import estimate_profiles
    from planner.profiling.importers import import_profiles_csv

    catalog = load_catalog(args.catalog)
    measured = import_profiles_csv(args.profiles, known_hardware=catalog.names())
    targets = [catalog.get(name) for name in csv_list(args.targets)]
    rows = estimate_profiles(measured, dict(catalog.hardware), targets)
    write_profiles_csv(args.out, rows)
    console.print(f"{len(rows)} estimated rows for {', '.join(t.name for t in targets)} -> {args.out} "
                  "(source=estimated, with uncertainty_pct)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from planner import api
    from planner.core.plan import write_plan
    from planner.reports.terminal import print_plan

    plan = api.plan(args.workloads, args.profiles, catalog=args.catalog, time_limit_s=args.time_limit,
                    inventory=args.inventory, address=args.address,
                    serving_overhead_from=args.serving_overhead_from, serving_path=args.serving_path)
    if plan.serving_path is not None:
        console.print(f"serving path: {plan.serving_path.describe()}", soft_wrap=True, markup=False)
    if args.serving_overhead_from:
        console.print(f"fed back: {plan.provenance['serving_overhead']}")
    print_plan(console, plan)
    if args.explain:
        from planner.core.explain import explain_plan
        for explanation in explain_plan(plan, plan.inventory, plan.max_utilization):
            console.print("\n".join(explanation.lines()), soft_wrap=True, markup=False)
    if not plan.ok:
        for line in plan.infeasible:
            errors.print(f"infeasible: {line}", soft_wrap=True)
        if not args.allow_partial:
            errors.print(f"no plan written to {args.out} (pass --allow-partial to write the placed part)")
            return EXIT_INFEASIBLE
    write_plan(args.out, plan)
    console.print(f"plan written to {args.out}")
    return 0 if plan.ok else EXIT_INFEASIBLE


def cmd_calibrate(args: argparse.Namespace) -> int:
    from planner import api
    from planner.core.errors import InputError
    from planner.core.serving_path import write_serving_path

    try:
        rates = tuple(float(q) for q in args.qps.split(","))
    except ValueError:
        raise InputError("--qps", args.qps, "not comma-separated numbers", "write e.g. --qps 5,40") from None
    if not rates or min(rates) <= 0:
        raise InputError("--qps", args.qps, "needs positive rates", "write e.g. --qps 5,40")
    models = [m for m in args.models.split(",") if m]
    path = api.calibrate(models, address=args.address, http_port=args.port, qps=rates, duration_s=args.duration,
                         on_progress=lambda line: console.print(line, markup=False))
    write_serving_path(args.out, path)
    console.print(f"serving path -> {args.out}: {path.describe()}", soft_wrap=True, markup=False)
    console.print(f"plan with it: planner plan ... --serving-path {args.out}")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from planner import api
    from planner.core.io import write_atomically
    from planner.planning.batch_jobs import schedule_to_dict

    schedule, inputs = api.schedule(args.workloads, args.profiles, plan=args.plan, catalog=args.catalog,
                                    horizon_h=args.horizon_h, time_limit_s=args.time_limit)
    table = Table(title=f"batch schedule over {inputs.prices.horizon_h} h ({schedule.status})")
    for column in ("job", "hardware", "precision", "units", "hours", "$", "kg CO2e", "rate from"):
        table.add_column(column, justify="right" if column in ("units", "$", "kg CO2e") else "left")
    for j in sorted(schedule.jobs, key=lambda j: (j.start_h, j.name)):
        table.add_row(j.name, j.option.hardware, j.option.precision, str(j.option.units),
                      f"{j.start_h}-{j.start_h + j.hours}", f"{j.usd:.4f}", f"{j.kg_co2e:.4f}",
                      inputs.sources.get((j.name, j.option.hardware), ""))
    console.print(table)
    console.print(f"${schedule.usd:.4f} in all (bound ${schedule.bound_usd:.4f}, gap {schedule.gap_pct:.2f}%); "
                  f"${schedule.asap_usd:.4f} if every job started at its release: {schedule.savings_pct:.1f}% saved")
    write_atomically(args.out, json.dumps(schedule_to_dict(schedule, inputs), indent=2) + "\n")
    console.print(f"schedule written to {args.out}")
    return 0


def cmd_pareto(args: argparse.Namespace) -> int:
    import csv
    import io
    from dataclasses import asdict

    from planner.core.catalog import load_catalog
    from planner.core.io import write_atomically
    from planner.core.profiles import read_profiles_csv
    from planner.core.workloads import load_workloads
    from planner.models import builtin_model_names
    from planner.planning.context import PlanningContext
    from planner.planning.pareto import cost_vs_energy, cost_vs_p99

    catalog = load_catalog(args.catalog)
    ws = load_workloads(args.workloads, known_models=builtin_model_names(), known_hardware=catalog.names())
    rows = read_profiles_csv(args.profiles, known_hardware=catalog.names())
    context = PlanningContext.of(ws)
    points = (cost_vs_p99(context, rows, catalog) if args.axis == "p99"
              else cost_vs_energy(context, rows, catalog, args.points))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(points[0])), lineterminator="\n")
    writer.writeheader()
    for p in points:
        writer.writerow(asdict(p))
        cost = "-" if p.usd_per_hour is None else f"${p.usd_per_hour:.4f}/h"
        power = "-" if p.wall_power_w is None else f"{p.wall_power_w:.1f} W" + (
            f" + unknown ({p.energy_unknown_workloads} workloads)" if p.energy_unknown_workloads else "")
        label = f"p99 targets x{p.axis_value:g}" if p.axis == "p99_scale" else f"power cap {p.axis_value:.1f} W"
        console.print(f"{label:>24}: {p.status:10s} {cost:>14} {power:>12}")
    write_atomically(args.out, buffer.getvalue())
    console.print(f"Pareto points written to {args.out} (costs from the plan's profiles: see each plan's sources)")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    import time

    from planner import api

    deployment = api.deploy(args.plan, catalog=args.catalog, address=args.address, http_port=args.port,
                            serve_config_path=args.serve_config, history=args.history, on_status=waiting)
    console.print(f"Serve config written to {args.serve_config} (apply elsewhere with: serve deploy "
                  f"{args.serve_config})")
    for name, url in deployment.urls.items():
        console.print(f"deployed {name}: POST {url}")
    for name, reason in deployment.skipped.items():
        console.print(f"not deployed here: {name}: {reason}")
    if args.address:
        return 0  # the cluster keeps serving after this process exits
    console.print("serving on an embedded Ray; press Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from planner import api
    from planner.deployment.history import DeployHistory

    if args.list:
        for e in DeployHistory(args.history).events():
            console.print(f"v{e.version:04d}  {e.at}  {e.status:8s}  {e.note}", markup=False)
        return 0
    version, deployment = api.rollback(args.history, catalog=args.catalog, address=args.address,
                                       http_port=args.port, version=args.version)
    console.print(f"rolled back to version {version}: {', '.join(deployment.urls) or 'nothing deployable here'}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from planner import api

    while True:
        findings = api.watch(args.plan, window_s=args.interval, address=args.address,
                             latency_tolerance=args.latency_tolerance, demand_tolerance=args.demand_tolerance)
        for f in findings:
            console.print(f"drift: {f.workload}: {f.kind}: {f.detail}. To fix: {f.fix}", markup=False)
        if not findings:
            console.print(f"no drift over {args.interval:g} s")
        if args.once:
            return EXIT_DRIFT if findings else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from planner import api
    from planner.deployment.verification import write_verification
    from planner.reports.terminal import print_verification

    target: object = args.url
    if args.deploy:
        target = api.deploy(args.plan, catalog=args.catalog, address=args.address, http_port=args.port,
                            on_status=waiting)
    result = api.verify(args.plan, target, duration_s=args.duration)
    write_verification(args.out, result)
    print_verification(console, result)
    console.print(f"verification written to {args.out}")
    return 0 if result.all_passed else EXIT_VERIFY_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    from planner import api

    path = api.report(args.plan, args.format, args.out, verification=args.verify, workloads=args.workloads,
                      profiles=args.profiles, catalog=args.catalog, aggregate=args.aggregate,
                      window_start=args.window_start, window_end=args.window_end)
    what = "cost reports (csv, json, parquet, xlsx, html, md)" if args.format == "all" else f"{args.format} cost report"
    console.print(f"{what} written to {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from planner.demo import run_demo

    return run_demo(console, Path(args.out), workloads_path=args.workloads, duration_s=args.duration,
                    quick=args.quick, http_port=args.port, use_reference=not args.cpu_only)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the Streamlit planning UI (ui/app.py); replaces this process with `streamlit run`."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("ui")
    folder = Path(spec.origin).parent if spec and spec.origin else Path(__file__).resolve().parent.parent / "ui"
    app = folder / "app.py"
    if not app.is_file():
        raise PlannerError(f"the planning UI is not installed ({app} is missing). To fix: install the project "
                           "with `pip install -e .` from the repository")
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
               "--server.address", args.host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal"]
    console.print(f"planning UI on http://{args.host}:{args.port} (Ctrl-C to stop)")
    sys.stdout.flush()
    os.execv(sys.executable, command)  # signals (Ctrl-C, a test's terminate) then reach Streamlit itself
    return 0  # not reached
