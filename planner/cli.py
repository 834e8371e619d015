"""The `planner` command line (also `python -m planner`).

Every subcommand is a thin shell over planner.api. A user mistake prints one
line, `error: <what> To fix: <how>`, and exits 2; an infeasible plan exits 3
and writes nothing unless --allow-partial.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from planner.commands import (
    EXIT_USAGE,
    cmd_demo,
    cmd_deploy,
    cmd_estimate,
    cmd_calibrate,
    cmd_pareto,
    cmd_plan,
    cmd_profile,
    cmd_report,
    cmd_rollback,
    cmd_schedule,
    cmd_ui,
    cmd_verify,
    cmd_watch,
    csv_list,
    errors,
)
from planner.core.errors import PlannerError


def _int_list(text: str) -> list[int]:
    try:
        values = [int(p) for p in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,2,4,8") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be positive integers, e.g. 1,2,4,8")
    return values


def _serve_target_args(p: argparse.ArgumentParser) -> None:
    """Where a plan is served: the catalog it was priced with, the Ray cluster, the Serve port."""
    p.add_argument("--catalog")
    p.add_argument("--address", help="Ray cluster address (default: an embedded local Ray)")
    p.add_argument("--port", type=int, default=8000, help="Serve HTTP port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planner", description="Cost-aware hardware planner for ML serving.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="measure models on this cluster's hardware (Ray tasks)")
    p.add_argument("--models", help="comma-separated model names (default: every built-in model)")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--batch-sizes", type=_int_list, default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--hardware", default="cpu-x86", help="catalog name of the hardware being profiled (or imported)")
    p.add_argument("--threads", type=int, default=1, help="vCPUs per CPU replica (what the row records)")
    p.add_argument("--catalog")
    p.add_argument("--address", help="Ray cluster address (default: an embedded local Ray)")
    p.add_argument("--out", default="profiles.csv")
    p.add_argument("--store", help="profile store folder (Parquet): reuse stored points, add new ones")
    p.add_argument("--force", action="store_true", help="measure again even points already in the store")
    p.add_argument("--compare-to", help="baseline profiles CSV or store: flag points slower beyond noise (exit 5)")
    p.add_argument("--training", action="store_true", help="profile training steps instead of inference")
    p.add_argument("--quick", action="store_true", help="short timing windows (less precise; for smoke tests)")
    p.add_argument("--import", dest="import_file", help="import a profiles CSV, perf_analyzer or Model Analyzer export")
    p.add_argument("--import-format", default="auto", choices=["auto", "planner", "perf_analyzer", "model_analyzer"])
    p.add_argument("--export-store", metavar="CSV", help="write every row of --store to this CSV and exit")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("estimate", help="estimate profiles on catalog hardware from measured ones (roofline)")
    p.add_argument("--profiles", required=True, help="measured profiles CSV")
    p.add_argument("--targets", required=True, help="comma-separated catalog names, e.g. l4,a100-80gb")
    p.add_argument("--catalog")
    p.add_argument("--out", default="estimated.csv")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("plan", help="choose hardware, precision, batch size and replicas (CP-SAT)")
    p.add_argument("--workloads", required=True)
    p.add_argument("--profiles", required=True)
    p.add_argument("--catalog")
    p.add_argument("--out", default="plan.json")
    p.add_argument("--time-limit", type=float, default=10.0, help="solver time limit in seconds")
    p.add_argument("--allow-partial", action="store_true", help="write the plan even if some workloads do not fit")
    p.add_argument("--explain", action="store_true", help="say why each workload got its configuration")
    p.add_argument("--inventory", choices=["file", "cluster", "catalog"], default="file",
                   help="hardware to plan on: the workloads file's inventory, the running Ray cluster's "
                        "nodes (owned), or anything in the catalog (rented)")
    p.add_argument("--address", help="Ray cluster address for --inventory cluster (default: RAY_ADDRESS or auto)")
    p.add_argument("--serving-overhead-from", metavar="VERIFY_JSON",
                   help="plan with the serving-path overhead a `planner verify` run measured, not the assumed one")
    p.add_argument("--serving-path", metavar="SERVING_PATH_JSON",
                   help="the serving path `planner calibrate` measured (else the workloads file's, else assumed)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("calibrate", help="measure the serving path (Serve's per-request CPU, the HTTP proxy, "
                                         "latency through it) on the cluster, for `planner plan --serving-path`")
    p.add_argument("--models", default="mlp_digits", help="comma-separated models whose request floor to measure "
                                                          "(the first also probes the path's latency)")
    p.add_argument("--qps", default="5,40", help="offered loads for the path's latency, comma-separated (light,moderate)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load per rate")
    p.add_argument("--address", help="Ray cluster address (default: an embedded local Ray); run on a cluster node")
    p.add_argument("--port", type=int, default=8000, help="Serve's HTTP port")
    p.add_argument("--out", default="serving_path.json")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("schedule", help="schedule batch jobs into cheap or clean hours (CP-SAT)")
    p.add_argument("--workloads", required=True)
    p.add_argument("--profiles", required=True)
    p.add_argument("--plan", help="plan.json whose online serving holds part of the inventory")
    p.add_argument("--catalog")
    p.add_argument("--horizon-h", type=int, help="hours to schedule over (default: the latest deadline)")
    p.add_argument("--time-limit", type=float, default=20.0, help="solver time limit in seconds")
    p.add_argument("--out", default="schedule.json")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("pareto", help="sweep cost against p99 targets or power (one plan per point)")
    p.add_argument("--workloads", required=True)
    p.add_argument("--profiles", required=True)
    p.add_argument("--catalog")
    p.add_argument("--axis", choices=["p99", "energy"], default="p99")
    p.add_argument("--points", type=int, default=6, help="points on the energy axis")
    p.add_argument("--out", default="pareto.csv")
    p.set_defaults(func=cmd_pareto)

    for name, func, text in (("deploy", cmd_deploy, "deploy a plan on Ray Serve"),
                             ("verify", cmd_verify, "drive deployed workloads with Poisson load; compare")):
        p = sub.add_parser(name, help=text)
        p.add_argument("plan")
        _serve_target_args(p)
        p.set_defaults(func=func)
    sub.choices["deploy"].add_argument("--serve-config", default="serve_config.yaml",
                                       help="also write the plan as a Ray Serve config file here")
    sub.choices["deploy"].add_argument("--history", default=".planner/deployments",
                                       help="record the plan as a version here; roll back on failed health checks")
    p = sub.add_parser("watch", help="compare live Serve metrics with the plan; flag drift")
    p.add_argument("plan")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or auto)", default="auto")
    p.add_argument("--interval", type=float, default=30.0, help="seconds per window")
    p.add_argument("--once", action="store_true", help="one window, then exit (6 if drift was found)")
    p.add_argument("--latency-tolerance", type=float, default=1.0, help="flag p99 above (1 + this) x predicted")
    p.add_argument("--demand-tolerance", type=float, default=0.2, help="flag rate above (1 + this) x planned qps")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("rollback", help="deploy the previous healthy plan version again")
    p.add_argument("--history", default=".planner/deployments")
    p.add_argument("--version", type=int, help="this version instead of the previous healthy one")
    p.add_argument("--list", action="store_true", help="list the recorded versions and exit")
    _serve_target_args(p)
    p.set_defaults(func=cmd_rollback)
    verify = sub.choices["verify"]
    verify.add_argument("--url", default="http://127.0.0.1:8000", help="Serve HTTP base URL")
    verify.add_argument("--deploy", action="store_true", help="deploy the plan first (embedded Ray)")
    verify.add_argument("--duration", type=float, default=10.0, help="seconds of load per workload")
    verify.add_argument("--out", default="verify.json")

    p = sub.add_parser("report", help="write a cost report")
    p.add_argument("plan")
    p.add_argument("--format", default="csv", help="csv | json | parquet | xlsx | html | md | all (default csv)")
    p.add_argument("--out", required=True, help="the file; with --format all, a folder for cost_report.<ext>")
    p.add_argument("--verify", metavar="VERIFY_JSON", help="add plan vs actual from a `planner verify` run")
    p.add_argument("--workloads", help="with --profiles: compare with the best single-hardware and all-fp32 plans")
    p.add_argument("--profiles", help="the profiles the plan was made from (with --workloads)")
    p.add_argument("--catalog")
    p.add_argument("--aggregate", default="workload", help="allocate costs by workload | team | hardware")
    p.add_argument("--window-start", help="allocation window start, ISO 8601 (default: the plan's created_at)")
    p.add_argument("--window-end", help="allocation window end, ISO 8601 (default: start + 730 hours)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="profile -> plan -> deploy -> verify -> report, on an embedded Ray")
    p.add_argument("--out", default="out")
    p.add_argument("--workloads", default=None, help="workloads YAML (default: examples/workloads.yaml)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of load per workload in verify")
    p.add_argument("--quick", action="store_true", help="fewer batch sizes (1, 4, 16) for a faster run")
    p.add_argument("--port", type=int, default=8000, help="Serve HTTP port")
    p.add_argument("--cpu-only", action="store_true", help="plan only with this CPU's measurements")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="serve the planning UI (Streamlit) in a browser")
    p.add_argument("--port", type=int, default=8501, help="HTTP port of the UI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PlannerError as exc:
        errors.print(f"error: {exc}", soft_wrap=True, markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
