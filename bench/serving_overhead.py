"""What does Serve cost? Deployed throughput at saturation over the profiler's raw throughput.

One configuration (default resnet_small fp32, batch 8, one 1-vCPU replica),
deployed exactly as `planner deploy` deploys it (cluster.serving.ModelServer
with the options of cluster.serving.replica_options, on an embedded Ray started
by cluster.runtime.ensure_ray, so with the product's Serve fast-path settings),
saturated closed-loop by many concurrent callers through a DeploymentHandle
(Serve's router, queue, batching and replica; no HTTP), and once over HTTP
through the proxy (JSON bodies, then raw-bytes bodies).

Paired windows. On a shared VM the speed of a core drifts by 20-30% within
seconds, so one raw figure against one served figure measures the drift as
much as Serve. The bench alternates, on the replica's own core and in the
replica's own process: profiler point (planner.profiling.profiler.profile_point, the
figure the planner plans with), saturated serving window, profiler point, ...
and judges each serving window against the mean of the two profiler points
around it. The ratio printed is the median over the windows.

Where the rest goes: each window also reads the replica process's CPU time
(getrusage in the replica), so "replica CPU per request" minus the profiler's
time per item is Serve's per-request cost on the replica's core. The floor
(--floor, default on) deploys the same replica with the model swapped for a
precomputed output: its saturated rate is what Serve's per-request path alone
allows on one core, and model / (model + floor) is the highest ratio any
deployment of single-item requests through Serve could reach here.

Cores (--pin, the default on machines with 2+ cores): the replica gets a core
of its own (its reserved vCPU, as on a cluster where clients run elsewhere) and
the load generator and this run's own Ray processes (those it started: never
another Ray on the machine) share the others.

    python -m bench.serving_overhead [--model resnet_small] [--batch 8] [--windows 5] [--seconds 4]
                                     [--no-pin] [--no-floor] [--compare-serve-defaults]
                                     [--ingress proxy,haproxy,direct]

--compare-serve-defaults runs everything twice, with the fast-path settings
(cluster.runtime.SERVE_FAST_PATH_ENV) and with Serve's own defaults, side by side.

--ingress runs everything once per HTTP ingress mode (bench/ingress.py says what each is and
changes), each in a fresh process with its own embedded Ray, and prints them side by side:
`proxy` (Serve's Python HTTP proxy, the default), `haproxy` (RAY_SERVE_ENABLE_HA_PROXY=1: HAProxy
in front of the replicas' own HTTP servers), `direct` (RAY_SERVE_ENABLE_DIRECT_INGRESS=1: the
callers post straight to the replica's own HTTP server, as an external load balancer would). A
mode that cannot run here says why in one line.

Last line: {"ratio": median handle/raw, "ratios": [...], "http_ratio": ..., "floor_rps": ..., ...}; with
--ingress, those of the `proxy` run (else the first that ran) and "ingress": {mode: {"http_ratio": ...,
"http_rps": ..., "http_bytes_ratio": ..., "http_bytes_rps": ..., ...} or {"not_run": why}}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import requests


def _saturate_handle(handle, item, seconds: float, concurrency: int) -> float:
    """Requests/s of closed-loop callers through the handle (the same saturation `planner calibrate` uses)."""
    from cluster.calibration import saturate

    started = time.perf_counter()
    done = saturate(handle, item, seconds, concurrency)
    return done / (time.perf_counter() - started)


def _saturate_http(url: str, body: bytes, content_type: str, seconds: float,
                   concurrency: int) -> tuple[float, int]:
    """Closed-loop HTTP callers; the body is serialised once, so the callers' core is not spent on JSON.
    Answers with status 200 per second, and how many answers were not 200."""
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": content_type}

    def caller() -> tuple[int, int]:
        ok, failed, session = 0, 0, requests.Session()
        while time.perf_counter() < deadline:
            if session.post(url, data=body, headers=headers, timeout=30).status_code == 200:
                ok += 1
            else:
                failed += 1
        return ok, failed

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        counts = list(pool.map(lambda _: caller(), range(concurrency)))
    return sum(ok for ok, _ in counts) / (time.perf_counter() - started), sum(failed for _, failed in counts)


def _pin_process(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` onto `cores` (sched_setaffinity is per thread on Linux)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that just ended
            pass


def _own_ray_processes() -> list[int]:
    """The processes of the embedded Ray this process started: its descendants (GCS, raylet, agents,
    workers, Serve's proxy, replicas and HAProxy). Another Ray on the machine (another user's, another
    benchmark's) is left where it runs."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_s_of(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (those that ended meanwhile count 0)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
    return total


def _own_cpu_s() -> float:
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measurable_server():
    from ray import serve

    from cluster.serving import ModelServer
    from planner.core.catalog import load_catalog
    from planner.models import get_model

    @serve.deployment
    class MeasurableServer(ModelServer.func_or_class):
        """The production replica, plus a way onto a core of its own, its CPU clock and the profiler in place."""

        def __init__(self, *args, floor: bool = False):
            super().__init__(*args)
            self._floor = floor

        def _make_runner(self, max_batch_size: int):
            run, execution = super()._make_runner(max_batch_size)
            if not getattr(self, "_floor", False):
                return run, execution
            # The floor: every step of the request path but the model (stack, cast, tolist stay).
            out = run(self._example_item.unsqueeze(0))
            return (lambda batch: out.expand(batch.shape[0], *out.shape[1:])), "none (floor)"

        def pin(self, cores: list[int]) -> int:
            _pin_process(os.getpid(), set(cores))
            return os.getpid()

        def cpu_s(self) -> float:
            import resource
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

        def profile_here(self, batch: int) -> float:
            from planner.profiling.profiler import profile_point
            row = profile_point(get_model(self.model_name), self.precision, batch, load_catalog().get("cpu-x86"),
                                threads=1, quality_loss=0.0, energy_window_s=0.1)
            return row.throughput_rps

    return MeasurableServer


def measure(args, replica_core: set[int], others: set[int], label: str, ingress: str = "proxy") -> dict:
    """One embedded Ray: paired profiler/serving windows, HTTP through `ingress` (bench/ingress.py), and the floor."""
    from ray import serve

    from bench.ingress import MODES, wait_until_routed
    from cluster.runtime import ensure_ray, shutdown_ray
    from cluster.serving import BINARY_CONTENT_TYPE, replica_options
    from planner.core.catalog import load_catalog
    from planner.models import get_model

    server = _measurable_server()
    spec = get_model(args.model)
    # Saturated, a replica never waits for a partial batch; 10 ms only bounds the warm-up's.
    options = {"num_replicas": 1,
               **replica_options(load_catalog().get("cpu-x86"), 1, args.batch, batch_wait_timeout_ms=10.0)}
    ensure_ray(num_cpus=4)
    result: dict = {"label": label}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})

        replica_pid = None

        def pin_ray() -> None:
            """Everything of this Ray but the replica onto the other cores (again after HAProxy reloads,
            each of which starts a new haproxy process)."""
            for pid in _own_ray_processes():
                if pid != replica_pid:
                    _pin_process(pid, others)

        def start(name: str, floor: bool):
            nonlocal replica_pid
            app = server.options(name=name, **options).bind(args.model, args.precision, 1, "cpu", floor=floor)
            handle = serve.run(app, name=name, route_prefix=f"/{name}", blocking=False)
            if args.pin:
                replica_pid = handle.pin.remote(sorted(replica_core)).result(timeout_s=60)
                pin_ray()
            return handle

        handle = start("overhead", floor=False)
        print(f"[{label}] deployment options (as planner deploy): {json.dumps(options)}", flush=True)
        item = spec.example_input(1)[0]
        concurrency = 2 * args.batch
        _saturate_handle(handle, item, 2.0, concurrency)  # warm up the path

        def raw() -> float:
            return handle.profile_here.remote(args.batch).result(timeout_s=120)

        def served_window(h) -> tuple[float, float]:
            """Items/s and replica CPU ms per request over one saturated window."""
            cpu0, t0 = h.cpu_s.remote().result(), time.perf_counter()
            rps = _saturate_handle(h, item, args.seconds, concurrency)
            cpu1, t1 = h.cpu_s.remote().result(), time.perf_counter()
            return rps, (cpu1 - cpu0) * 1000.0 / (rps * (t1 - t0))

        from cluster.metrics import scrape_batch_counts
        raws, served, cpu_ms = [raw()], [], []
        before = scrape_batch_counts().get("overhead")
        for window in range(args.windows):
            rps, cpu = served_window(handle)
            served.append(rps)
            cpu_ms.append(cpu)
            raws.append(raw())
            pair = served[-1] / ((raws[-2] + raws[-1]) / 2)
            print(f"[{label}] window {window + 1}: profiler {raws[-2]:.1f} | served {served[-1]:.1f} | profiler "
                  f"{raws[-1]:.1f} items/s -> {pair:.3f}; replica CPU {cpu:.2f} ms per request", flush=True)
        time.sleep(2.5)
        after = scrape_batch_counts().get("overhead")
        seen = (after - before).mean_batch_size if after and before else None
        ratios = [s / ((a + b) / 2) for s, a, b in zip(served, raws, raws[1:])]
        model_ms = 1000.0 / statistics.median(raws)
        result.update(ratio=statistics.median(ratios), ratios=ratios, raw_rps=raws, handle_rps=served,
                      replica_cpu_ms_per_request=statistics.median(cpu_ms), model_ms_per_item=model_ms,
                      mean_batch_seen=seen)
        url = wait_until_routed(ingress, "overhead", args.port)
        if args.pin:
            pin_ray()
        print(f"[{label}] HTTP: {MODES[ingress].path}, POST {url}", flush=True)
        http, http_errors = {}, 0
        for kind, body, content_type in (
                ("json", json.dumps({"inputs": item.tolist()}).encode(), "application/json"),
                ("bytes", item.numpy().astype(item.numpy().dtype.newbyteorder("<")).tobytes(),  # wire order
                 BINARY_CONTENT_TYPE)):
            _saturate_http(url, body, content_type, 1.0, concurrency)  # warm up the path and its connections
            # Where the CPU goes over the window: the replica's process, the rest of this run's Ray (the
            # proxy or HAProxy, the controller, raylet, GCS), and the callers (this process's threads).
            rest = [pid for pid in _own_ray_processes() if pid != replica_pid]
            replica0, rest0, callers0 = handle.cpu_s.remote().result(), _cpu_s_of(rest), _own_cpu_s()
            t0 = time.perf_counter()
            rps, errors = _saturate_http(url, body, content_type, args.seconds, concurrency)
            elapsed = time.perf_counter() - t0
            per_request = 1000.0 / max(1.0, rps * elapsed + errors)
            cpu = {"replica": (handle.cpu_s.remote().result() - replica0) * per_request,
                   "ingress_and_ray": (_cpu_s_of(rest) - rest0) * per_request,
                   "callers": (_own_cpu_s() - callers0) * per_request}
            http_errors += errors
            raws.append(raw())
            http[kind] = (rps, rps / ((raws[-2] + raws[-1]) / 2), cpu)
            failed = f" ({errors} answers not 200)" if errors else ""
            print(f"[{label}] Serve over HTTP ({kind} bodies), saturated: {rps:.1f} items/s -> {http[kind][1]:.3f}"
                  f"{failed}; CPU per request: replica {cpu['replica']:.2f} ms, ingress and the rest of Ray "
                  f"{cpu['ingress_and_ray']:.2f} ms, callers {cpu['callers']:.2f} ms", flush=True)
        result.update(http_rps=http["json"][0], http_ratio=http["json"][1],
                      http_bytes_rps=http["bytes"][0], http_bytes_ratio=http["bytes"][1], http_errors=http_errors,
                      http_cpu_ms_per_request={kind: http[kind][2] for kind in http})
        if args.floor:
            serve.delete("overhead")
            floor = start("floor", floor=True)
            _saturate_handle(floor, item, 2.0, concurrency)
            floor_rps, floor_cpu = _median_pair([served_window(floor) for _ in range(3)])
            result.update(floor_rps=floor_rps, floor_cpu_ms_per_request=floor_cpu,
                          ceiling=model_ms / (model_ms + 1000.0 / floor_rps))
            print(f"[{label}] floor (same replica, no model): {floor_rps:.1f} requests/s, replica CPU "
                  f"{floor_cpu:.2f} ms per request -> ceiling model/(model+floor) = {result['ceiling']:.3f}",
                  flush=True)
    finally:
        shutdown_ray()
    return result


# Serve's own defaults for the keys cluster.runtime.SERVE_FAST_PATH_ENV sets (ray/serve/_private/constants.py).
SERVE_DEFAULTS_ENV = {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "0", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1",
                      "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1"}


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    ordered = sorted(pairs)
    return ordered[len(ordered) // 2]


def _round(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _child_argv(argv: list[str], drop: tuple[str, ...]) -> list[str]:
    """This run's arguments without the options in `drop` (and their values)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in drop:
            skip = not arg.startswith("--compare")  # --compare-serve-defaults takes no value
        elif not any(arg.startswith(f"{option}=") for option in drop):
            out.append(arg)
    return out


def _run_child(argv_child: list[str], env: dict[str, str]) -> dict:
    """`python -m bench.serving_overhead argv_child` in a fresh process: its progress lines ("[...") shown
    as they come, its last line's JSON returned; RuntimeError with its exit status and last error line."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "bench.serving_overhead", *argv_child], env=env,
                                 stdout=subprocess.PIPE, stderr=err, text=True)
        last = ""
        for line in child.stdout:
            if line.startswith("["):
                print(line, end="", flush=True)
            if line.strip():
                last = line
        code = child.wait()
        err.seek(0)
        errors = [line.strip() for line in err.read().splitlines() if line.strip()]
    try:
        if code == 0:
            return json.loads(last)
    except json.JSONDecodeError:
        pass
    cause = next((line for line in reversed(errors) if "Error" in line or "error" in line), errors[-1] if errors else "")
    raise RuntimeError(f"the measuring process failed (exit {code}): {cause[:300]}")


def _compare_ingress(args, modes: list[str], argv: list[str]) -> int:
    """Each ingress mode in a fresh process (Serve reads its switches at import, in every Ray process), side by side."""
    from bench.ingress import MODES, child_env, unavailable

    argv_child = _child_argv(argv, ("--ingress",))
    load_before = os.getloadavg()[0]
    runs: dict[str, dict] = {}
    for mode in modes:
        reason = unavailable(mode)
        if reason is None:
            try:
                runs[mode] = _run_child([*argv_child, "--ingress-child", mode], child_env(mode, dict(os.environ)))
                continue
            except RuntimeError as exc:
                reason = str(exc)
        print(f"[{mode}] not run: {reason}", flush=True)
        runs[mode] = {"not_run": reason}
    measured = [m for m in modes if "not_run" not in runs[m]]
    print()
    print(f"measured on this machine's CPU ({os.cpu_count()} cores), {args.model} {args.precision} batch {args.batch}, "
          f"one 1-vCPU replica{' pinned to its own core (callers and the ingress on the others)' if args.pin else ''}; "
          "HTTP ratio = saturated HTTP items/s over the profiler's raw items/s (one item per request); "
          f"machine load (1-min average) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: above ~0.5 "
          "something else shares these cores and the modes are not compared on equal terms")
    print(f"{'ingress':10}{'HTTP json':>11}{'req/s':>8}{'HTTP bytes':>12}{'req/s':>8}{'handle ratio':>14}"
          f"{'floor req/s':>13}  path")
    for mode in modes:
        r = runs[mode]
        if "not_run" in r:
            print(f"{mode:10}not run: {r['not_run']}")
            continue
        print(f"{mode:10}{r['http_ratio']:>11.3f}{r['http_rps']:>8.0f}{r['http_bytes_ratio']:>12.3f}"
              f"{r['http_bytes_rps']:>8.0f}{r['ratio']:>14.3f}{r.get('floor_rps', float('nan')):>13.0f}  "
              f"{MODES[mode].path}")
    print("CPU per HTTP request, ms (JSON | bytes bodies): the replica's process; the ingress and the rest of this "
          "run's Ray; the callers")
    for mode in measured:
        cpu = runs[mode].get("http_cpu_ms_per_request", {})
        print(f"{mode:10}" + "   ".join(
            f"{part} {cpu['json'][key]:.2f} | {cpu['bytes'][key]:.2f}"
            for part, key in (("replica", "replica"), ("ingress+Ray", "ingress_and_ray"), ("callers", "callers"))))
    if "proxy" in measured:
        for mode in (m for m in measured if m != "proxy"):
            print(f"{mode} / proxy: HTTP json {runs[mode]['http_ratio'] / runs['proxy']['http_ratio']:.2f}x, "
                  f"HTTP bytes {runs[mode]['http_bytes_ratio'] / runs['proxy']['http_bytes_ratio']:.2f}x")
    head = runs["proxy"] if "proxy" in measured else (runs[measured[0]] if measured else {})
    summary = {k: v for k, v in head.items() if k not in ("ingress", "ingress_mode")}
    summary["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    summary["ingress"] = {
        mode: ({"not_run": runs[mode]["not_run"]} if mode not in measured else
               {"path": MODES[mode].path, "env": MODES[mode].env,
                **{k: runs[mode].get(k) for k in ("http_ratio", "http_rps", "http_bytes_ratio", "http_bytes_rps",
                                                  "http_errors", "http_cpu_ms_per_request", "ratio", "floor_rps",
                                                  "ceiling")}})
        for mode in modes}
    print(json.dumps(summary))
    return 0 if measured else 1


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--windows", type=int, default=5, help="serving windows, each between two profiler points")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each serving window")
    parser.add_argument("--port", type=int, default=8126)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2,
                        help="give the replica a core of its own (default on 2+ cores)")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the replica with the model swapped out (Serve's per-request floor)")
    parser.add_argument("--compare-serve-defaults", action="store_true",
                        help="measure again with Serve's default request path, side by side")
    parser.add_argument("--ingress", metavar="MODES",
                        help="HTTP ingress modes to measure side by side, each in a fresh process: any of "
                             "proxy,haproxy,direct (bench/ingress.py)")
    parser.add_argument("--ingress-child", choices=("proxy", "haproxy", "direct"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingress:
        from bench.ingress import parse_modes
        if args.compare_serve_defaults:
            parser.error("--ingress and --compare-serve-defaults: one comparison at a time")
        try:
            modes = parse_modes(args.ingress)
        except ValueError as exc:
            parser.error(str(exc))
        return _compare_ingress(args, modes, argv)

    all_cores = os.sched_getaffinity(0)
    replica_core = {max(all_cores)}
    others = (all_cores - replica_core) or all_cores
    if args.pin:
        _pin_process(os.getpid(), others)
        print(f"pinning: the replica on core {min(replica_core)}; callers and this run's Ray processes on cores "
              f"{sorted(others)}", flush=True)

    from cluster.runtime import SERVE_FAST_PATH_ENV
    settings = "fast path" if all(os.environ.get(k, v) == v for k, v in SERVE_FAST_PATH_ENV.items()) \
        else "Serve defaults"
    runs = [measure(args, replica_core, others, args.ingress_child or settings, args.ingress_child or "proxy")]
    if args.compare_serve_defaults:
        # A fresh process (Ray reads these when its processes start), with Serve's own defaults.
        _pin_process(os.getpid(), all_cores)  # the child picks its own cores from what it inherits
        child = _run_child(_child_argv(argv, ("--compare-serve-defaults",)), {**os.environ, **SERVE_DEFAULTS_ENV})
        runs.append({"label": "Serve defaults", **child})
    print()
    print(f"measured on this machine's CPU ({os.cpu_count()} cores), {args.model} {args.precision} batch "
          f"{args.batch}, one 1-vCPU replica{' pinned to its own core' if args.pin else ''}; ratios are served "
          "items/s over the profiler's raw items/s; ceiling = model / (model + floor)")
    print(f"{'':16}{'handle ratio':>14}{'HTTP json':>11}{'HTTP bytes':>12}{'replica CPU/req':>17}"
          f"{'model/item':>12}{'floor req/s':>13}{'ceiling':>9}")
    for r in runs:
        print(f"{r['label']:16}{r['ratio']:>14.3f}{r['http_ratio']:>11.3f}{r['http_bytes_ratio']:>12.3f}"
              f"{r['replica_cpu_ms_per_request']:>14.2f} ms{r['model_ms_per_item']:>9.2f} ms"
              f"{r.get('floor_rps', float('nan')):>13.0f}{r.get('ceiling', float('nan')):>9.3f}")
    if len(runs) == 2:
        print(f"fast path / Serve defaults: handle {runs[0]['ratio'] / runs[1]['ratio']:.2f}x, "
              f"HTTP json {runs[0]['http_ratio'] / runs[1]['http_ratio']:.2f}x")
    head = runs[0]
    summary = {k: _round(v) for k, v in head.items() if k != "label"}
    summary.update(model=args.model, precision=args.precision, batch=args.batch, pinned=args.pin,
                   serve_settings=settings, source=f"measured on this machine's CPU ({os.cpu_count()} cores)")
    if args.ingress_child:
        summary["ingress_mode"] = args.ingress_child
    if len(runs) == 2:
        summary["serve_defaults"] = {k: v for k, v in runs[1].items() if k != "label"}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
