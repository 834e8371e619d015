"""FAULT: a node lost while profiling. The other results are stored; lost points are retried or reported."""
from __future__ import annotations

import pytest

from planner import api
from planner.profiling.store import ProfileStore


@pytest.fixture
def two_worker_cluster():
    """Head with no CPUs for tasks + two 1-CPU worker nodes; replaces the session's Ray, then restores it."""
    import ray
    from ray.cluster_utils import Cluster

    was_initialised = ray.is_initialized()
    if was_initialised:
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=0, include_dashboard=False, object_store_memory=100 * 2**20))
    workers = [cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20, memory=2 * 2**30) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_initialised:
            from cluster.runtime import ensure_ray
            ensure_ray(num_cpus=4)


def test_losing_a_node_mid_profile_keeps_the_rest(two_worker_cluster, tmp_path):
    from planner.profiling.timing import QUICK_BUDGET

    cluster, workers = two_worker_cluster
    removed = []

    def on_progress(outcome) -> None:
        if not removed:  # after the first result, one worker node dies (with whatever it was running)
            cluster.remove_node(workers[0], allow_graceful=False)
            removed.append(workers[0])

    result = api.profile(["mlp_digits"], precisions=["fp32", "bf16", "int8"], batch_sizes=[1, 2],
                         store=tmp_path / "store", budget=QUICK_BUDGET, on_progress=on_progress)
    assert removed
    points = 3 * 2
    # Every point is accounted for: measured (first try or retried on the surviving node) or
    # reported as an error with the reason; nothing silently missing.
    errors = [p for p in result.skipped if p.status == "error"]
    assert len(result.rows) + len(errors) == points
    assert len(result.rows) >= 2 and all("task failed" in p.reason for p in errors)
    stored = ProfileStore(tmp_path / "store").rows()
    assert {r.key for r in stored} == {r.key for r in result.rows}  # what was measured is kept
