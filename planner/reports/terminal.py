"""Terminal rendering of plans, verification results and profiling progress (rich).

Every figure shown says where it came from: plan rows carry their profile's
source (measured on which device, estimated, imported), and verification rows
are labelled as measured over HTTP.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from planner.core.plan import Plan
from planner.deployment.verification import PREDICTION_BAND, VerificationReport
from planner.reports.cost_report import HOURS_PER_MONTH


def print_plan(console: Console, plan: Plan) -> None:
    table = Table(title=f"Plan: {plan.status}, ${plan.objective_usd_per_hour:.4f}/h "
                        f"(${plan.objective_usd_per_hour * HOURS_PER_MONTH:,.2f}/month), "
                        f"bound ${plan.best_bound_usd_per_hour:.4f}/h, solved in {plan.solve_seconds:.2f}s",
                  title_justify="left")
    for col in ("workload", "hardware", "prec", "batch", "repl", "units", "p99 pred", "p99 target",
                "demand rps", "$/h", "source"):
        table.add_column(col, no_wrap=col in ("workload", "hardware"))
    details: dict[str, str] = {}
    for w in plan.workloads:
        c = w.chosen
        kind, _, detail = c.profile_source.partition(": ")
        mark = details.setdefault(detail, f"[{len(details) + 1}]") if detail else ""
        table.add_row(w.name, c.hardware, c.precision, str(c.batch_size), str(c.replicas), f"{c.devices:g} {c.unit}",
                      f"{c.predicted_p99_ms:.1f}", "-" if w.p99_ms_target is None else f"{w.p99_ms_target:g}",
                      f"{w.qps_target:.1f}", f"{c.usd_per_hour:.4f}", f"{kind}{mark}")
    console.print(table)
    for w in plan.workloads:
        if w.autoscaling is not None:
            a = w.autoscaling
            console.print(f"  {w.name}: Serve autoscaling {a.min_replicas}-{a.max_replicas} replicas over the day; "
                          f"${a.day_usd:.2f}/day vs ${a.peak_provisioned_day_usd:.2f}/day provisioned for the peak "
                          f"({a.savings_pct:.0f}% less)")
    if plan.unallocated_usd_per_hour > 1e-9:
        console.print(f"  + ${plan.unallocated_usd_per_hour:.4f}/h: the unused part of partly shared GPUs "
                      "(paid whole; included in the total)")
    if plan.ingress is not None and plan.ingress.proxies:
        i = plan.ingress
        console.print(f"  + ${i.usd_per_hour:.4f}/h: {i.proxies} HTTP proxies for {i.online_qps:,.0f} online qps "
                      f"({i.proxy_vcpus:.2f} vCPUs of {i.cpu_hardware or 'host CPU'}; serving path {i.source}; "
                      "included in the total)", soft_wrap=True, markup=False)
    for detail, mark in details.items():
        console.print(f"  {mark} {detail}", soft_wrap=True)
    path = "" if plan.serving_path is None else f" ({plan.serving_path.source}: {plan.serving_path.source_detail})"
    console.print("  p99 pred = serving path" + path + " + batch formation + replica queue + batch, means added "
                  "and spreads in quadrature (plan.json: prediction; docs/optimization.md §2)",
                  soft_wrap=True, markup=False)


def _ratio(w) -> str:
    if w.prediction_ratio is None:
        return "-"
    return f"{w.prediction_ratio:.2f} " + ("[green]in band[/]" if w.within_band else "[yellow]out of band[/]")


def print_verification(console: Console, result: VerificationReport) -> None:
    table = Table(title=f"Verification ({result.source})", title_justify="left")
    for col in ("workload", "qps target", "achieved rps", "p50 (ms)", "p99 (ms) [95% CI]**", "p99 pred (ms)",
                "measured / pred***", "p99 target (ms)", "batch (planned / mean seen*)", "errors", "pass"):
        table.add_column(col)

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"
    for w in result.workloads:
        interval = f" [{ms(w.p99_ci_low_ms)}, {'unbounded' if w.p99_ci_high_ms is None else ms(w.p99_ci_high_ms)}]"
        table.add_row(w.name, f"{w.qps_target:.1f}", f"{w.throughput_rps:.1f}", ms(w.p50_ms),
                      ms(w.p99_ms) + (interval if w.p99_ms is not None else ""),
                      ms(w.predicted_p99_ms), _ratio(w), ms(w.p99_ms_target),
                      f"{w.planned_batch_size or '-'} / {'-' if w.mean_batch_size is None else f'{w.mean_batch_size:.2f}'}",
                      str(w.errors),
                      "[green]pass[/]" if w.passed else f"[red]FAIL[/] {w.notes}")
    console.print(table)
    console.print("  * mean batch size measured by Serve (ray_serve_actual_batch_size), each batch at its bucket's "
                  "upper edge: exact for sizes 1-2, an upper bound above")
    console.print("  ** where the true p99 lies with 95% confidence, from this window's requests (order statistics); "
                  "'unbounded' above: too few requests for any of them to bound p99 (fewer than ~300)")
    console.print(f"  *** measured p99 over predicted; within the prediction's band (+-{PREDICTION_BAND:.0%}) or not")
    if result.load_generator is not None:
        console.print(f"  load generator: {result.load_generator.describe()}", markup=False)
    for name, reason in result.skipped:
        console.print(f"  not deployed here: {name}: {reason}")


class ProfileProgress:
    """A progress bar over profiling tasks; `advance` is the Ray wrapper's on_done callback."""

    def __init__(self, console: Console, total: int):
        self.progress = Progress(TextColumn("profiling"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                                 transient=False)
        self.task = self.progress.add_task("", total=total)

    def __enter__(self) -> "ProfileProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def advance(self, outcome: Any) -> None:
        job = outcome.job
        self.progress.update(self.task, advance=1, description=f"{job.model} {job.precision} on {job.hardware}")

    def waiting(self, message: str) -> None:
        """The Ray wrapper's on_wait callback: why no task has started yet, above the bar."""
        self.progress.console.print(Text.assemble(("waiting: ", "yellow"), message), highlight=False)
