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
        merged = dict(self.buckets)
        for le, n in other.buckets:
            merged[le] = merged.get(le, 0.0) + n
        return BatchCounts(tuple(sorted(merged.items())))

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


def scrape_batch_counts(timeout_s: float = 5.0) -> dict[str, BatchCounts]:
    """Sum over every alive node of the connected Ray cluster; nodes that do not answer are skipped."""
    import ray

    total: dict[str, BatchCounts] = {}
    for node in ray.nodes():
        port = node.get("MetricsExportPort")
        if not node.get("Alive") or not port:
            continue
        try:
            text = requests.get(f"http://{node['NodeManagerAddress']}:{port}/metrics", timeout=timeout_s).text
        except requests.RequestException:
            continue
        for app, c in parse_batch_counts(text).items():
            total[app] = total[app] + c if app in total else c
    return total
