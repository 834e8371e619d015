"""cluster.placement's judgements over a cluster snapshot (dict literals): never placeable, short now, who holds it."""
from __future__ import annotations

from cluster.placement import (ClusterView, NodeView, Request, ServeHolder, describe_cluster, holders_from_serve_details,
                               label_matches, never_placeable, shortage)

CPU_NODE = NodeView("cpu", {"CPU": 2.0})
H100_NODE = NodeView("gpu", {"CPU": 8.0, "GPU": 2.0, "accelerator_type:H100": 1.0},
                     {"ray.io/accelerator-type": "H100"})


def view(nodes=(CPU_NODE,), available=None, serve=()) -> ClusterView:
    total: dict[str, float] = {}
    for n in nodes:
        for name, value in n.resources.items():
            total[name] = total.get(name, 0.0) + value
    return ClusterView(tuple(nodes), total, total if available is None else available, tuple(serve))


def test_request_reads_ray_options_as_ray_does() -> None:
    assert Request.of({"num_cpus": 1, "num_gpus": 0.25, "accelerator_type": "H100"}).resources == {
        "CPU": 1.0, "GPU": 0.25, "accelerator_type:H100": 0.001}
    assert Request.of({"num_cpus": 1, "resources": {"TPU": 4}}).resources == {"CPU": 1.0, "TPU": 4.0}
    assert Request.of({}).resources == {"CPU": 1.0}          # a task's default: one CPU
    assert Request.of({"num_cpus": 0}).resources == {}


def test_an_accelerator_no_node_has_is_never_placeable() -> None:
    why = never_placeable(Request.of({"num_cpus": 1, "num_gpus": 1, "accelerator_type": "H100"}), view())
    assert why == "no node has accelerator type H100, and no node has a GPU"
    assert never_placeable(Request.of({"num_gpus": 1, "accelerator_type": "H100"}), view((CPU_NODE, H100_NODE))) == ""


def test_more_cpus_than_the_largest_node_is_never_placeable_even_if_the_sum_has_them() -> None:
    two_small = view((CPU_NODE, NodeView("cpu2", {"CPU": 2.0})))
    assert never_placeable(Request.of({"num_cpus": 3}), two_small) == "no node has 3 CPUs (the largest has 2)"
    assert never_placeable(Request.of({"num_cpus": 2}), two_small) == ""


def test_a_label_selector_limits_the_nodes_that_count() -> None:
    selector = {"ray.io/accelerator-type": "!in(H100)"}
    assert label_matches({}, selector) and not label_matches({"ray.io/accelerator-type": "H100"}, selector)
    assert label_matches({"ray.io/accelerator-type": "H100"}, {"ray.io/accelerator-type": "in(A100,H100)"})
    # 4 CPUs exist only on the H100 node, which CPU work is kept off.
    request = Request({"CPU": 4.0}, selector)
    assert never_placeable(request, view((CPU_NODE, H100_NODE))) == "no node has 4 CPUs (the largest has 2)"


def test_shortage_names_the_serve_applications_and_other_holders() -> None:
    holders = (ServeHolder("digits-classifier", "d", 1, {"CPU": 1.0}), ServeHolder("image-tagger", "t", 1, {"CPU": 1.0}))
    full = view(available={"CPU": 0.0}, serve=holders)
    assert shortage(Request.of({"num_cpus": 1}), full) == (
        "1 CPU: all 2 CPUs of the cluster are held by Serve replicas of applications digits-classifier "
        "(1 replica, 1 CPU), image-tagger (1 replica, 1 CPU)")
    four = view((NodeView("n", {"CPU": 4.0}),), available={"CPU": 1.0}, serve=holders[:1])
    assert shortage(Request.of({"num_cpus": 2}), four) == (
        "2 CPUs: 1 of the cluster's 4 CPUs free, the rest held by Serve replicas of application digits-classifier "
        "(1 replica, 1 CPU); other Ray tasks or actors (2 CPUs)")
    assert shortage(Request.of({"num_cpus": 1}), four) == ""


def test_fractional_replicas_are_summed_not_rounded_up() -> None:
    quarter = Request.of({"num_cpus": 0.25})
    assert shortage(quarter, view(), count=8) == ""                    # 8 x 0.25 = 2 CPUs: fits 2 free
    assert shortage(quarter, view(), count=9).startswith("2.25 CPUs: ")


def test_only_replicas_serve_has_placed_on_a_node_hold_resources() -> None:
    details = {"applications": {"a": {"deployments": {"d": {
        "required_resources": {"CPU": 1},
        "replicas": [{"node_id": "n1", "state": "RUNNING"}, {"node_id": "n1", "state": "STARTING"},
                     {"state": "STARTING"}]}}}}}   # the last one waits for a node
    assert holders_from_serve_details(details) == (ServeHolder("a", "d", 2, {"CPU": 1.0}),)
    assert holders_from_serve_details({}) == ()


def test_the_cluster_in_one_phrase() -> None:
    assert describe_cluster(view()) == "1 node: 2 CPUs, no GPU"
    assert describe_cluster(view((CPU_NODE, H100_NODE))) == "2 nodes: 10 CPUs, 2 GPUs; accelerator type H100"
