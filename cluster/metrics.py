"""Ray Serve's own metrics, read from every node's Prometheus endpoint: what batch sizes ran.

Serve records each ``@serve.batch`` call's size in the histogram
``ray_serve_actual_batch_size`` (labels: application, deployment, replica). Each
node exports its processes' metrics on ``MetricsExportPort`` (``ray.nodes()``);
summing its buckets over nodes and replicas gives, per application, how many
batches ran and how large they were. `planner verify` reads it
before and after its load window; the difference is that window's batches.

Metrics reach the endpoint every ``metrics_report_interval_ms`` (10 s by default;
the embedded Ray sets 1 s: cluster/runtime.py), so a reading waits that long.
"""
from __future__ import annotations

from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

BATCH_METRIC = "ray_serve_actual_batch_size"


def _merge(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Two cumulative histograms (upper edge, count) summed edge by edge."""
    merged = dict(a)
    for le, n in b:
        merged[le] = merged.get(le, 0.0) + n
    return tuple(sorted(merged.items()))


@dataclass(frozen=True)
class BatchCounts:
    """Cumulative bucket counts of batch sizes: {upper edge: batches of at most that size}."""
    buckets: tuple[tuple[float, float], ...]

    @property
    def batches(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def __sub__(self, other: "BatchCounts") -> "BatchCounts":
        theirs = dict(other.buckets)
        return BatchCounts(tuple((le, n - theirs.get(le, 0.0)) for le, n in self.buckets))

    def __add__(self, other: "BatchCounts") -> "BatchCounts":
        return BatchCounts(_merge(self.buckets, other.buckets))

    @property
    def mean_batch_size(self) -> float | None:
        """Mean batch size, each batch counted at its bucket's upper edge (exact for sizes 1 and 2).

        Not ``_sum / _count``: Ray 2.60 exports this histogram's ``_sum`` wrong (measured: ten
        batches of one item export a sum of 5.0), so only the buckets are used.
        """
        if self.batches <= 0:
            return None
        total, below = 0.0, 0.0
        for le, cumulative in self.buckets:
            if le != float("inf"):
                total += (cumulative - below) * le
                below = cumulative
        return total / self.batches


def parse_batch_counts(text: str) -> dict[str, BatchCounts]:
    """Per application: bucket counts summed over replicas, from one Prometheus exposition text."""
    counts: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != BATCH_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                app = counts.setdefault(sample.labels.get("application", ""), {})
                le = float(sample.labels["le"])
                app[le] = app.get(le, 0.0) + sample.value
    return {app: BatchCounts(tuple(sorted(b.items()))) for app, b in counts.items()}


def _node_metric_texts(timeout_s: float) -> list[str]:
    """The Prometheus text of every alive node of the connected cluster; nodes that do not answer are skipped."""
    import ray

    texts = []
    for node in ray.nodes():
        port = node.get("MetricsExportPort")
        if not node.get("Alive") or not port:
            continue
        try:
            texts.append(requests.get(f"http://{node['NodeManagerAddress']}:{port}/metrics", timeout=timeout_s).text)
        except requests.RequestException:
            continue
    return texts


def _summed_over_nodes(parse, timeout_s: float) -> dict:
    """One parser's per-application values from every node's metrics, added up (values support +)."""
    total: dict = {}
    for text in _node_metric_texts(timeout_s):
        for app, value in parse(text).items():
            total[app] = total[app] + value if app in total else value
    return total


def scrape_batch_counts(timeout_s: float = 5.0) -> dict[str, BatchCounts]:
    """Batch-size buckets per application, summed over every node of the cluster."""
    return _summed_over_nodes(parse_batch_counts, timeout_s)

HTTP_LATENCY_METRIC = "ray_serve_http_request_latency_ms"


@dataclass(frozen=True)
class HttpWindow:
    """Cumulative HTTP request counts per application: latency buckets of successes, and errors."""
    buckets: tuple[tuple[float, float], ...]   # (upper edge ms, requests with status 200 at most that slow)
    errors: float

    def __sub__(self, other: "HttpWindow") -> "HttpWindow":
        theirs = dict(other.buckets)
        return HttpWindow(tuple((le, n - theirs.get(le, 0.0)) for le, n in self.buckets), self.errors - other.errors)

    def __add__(self, other: "HttpWindow") -> "HttpWindow":
        return HttpWindow(_merge(self.buckets, other.buckets), self.errors + other.errors)

    @property
    def requests(self) -> float:
        return (self.buckets[-1][1] if self.buckets else 0.0) + self.errors

    def percentile_ms(self, q: float) -> float | None:
        """The bucket upper edge below which q% of successful requests fall (an upper bound)."""
        total = self.buckets[-1][1] if self.buckets else 0.0
        if total <= 0:
            return None
        for le, cumulative in self.buckets:
            if cumulative >= total * q / 100.0:
                return le
        return float("inf")


def parse_http_windows(text: str) -> dict[str, HttpWindow]:
    buckets: dict[str, dict[float, float]] = {}
    errors: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != HTTP_LATENCY_METRIC:
            continue
        for sample in family.samples:
            app = sample.labels.get("application", "")
            ok = sample.labels.get("status_code") == "200"
            if sample.name.endswith("_bucket") and ok:
                le = float(sample.labels["le"])
                per = buckets.setdefault(app, {})
                per[le] = per.get(le, 0.0) + sample.value
            elif sample.name.endswith("_count") and not ok:
                errors[app] = errors.get(app, 0.0) + sample.value
    return {app: HttpWindow(tuple(sorted(buckets.get(app, {}).items())), errors.get(app, 0.0))
            for app in set(buckets) | set(errors)}


def scrape_http_windows(timeout_s: float = 5.0) -> dict[str, HttpWindow]:
    """HTTP latency buckets and errors per application, summed over every node of the cluster."""
    return _summed_over_nodes(parse_http_windows, timeout_s)
