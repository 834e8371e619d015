"""Where a plan's hardware comes from: a file, the running Ray cluster, or the catalog to rent.

Three sources (``planner plan --inventory file|cluster|catalog``):

- ``file`` (default): the workloads file's ``inventory``. A count (``h100: 4``) is
  rentable up to that many at the catalog's price; ``{owned: 4}`` is hardware
  already paid for, at zero marginal price (its energy still counts, at the
  file's $/kWh); ``{rent: 4}`` is the same as ``4``.
- ``cluster``: the nodes of the running Ray cluster, read through Ray's node
  table: vCPUs (``CPU``) as the catalog's CPU type, GPUs and TPU chips by their
  Ray accelerator type. All of it is owned. The node shapes are kept with the
  counts (``ClusterInventory.nodes``) for plans that pack replicas onto nodes.
- ``catalog``: no limit; every catalog device may be rented at its price.

Owned hardware is priced at zero by re-pricing a copy of the catalog, so every
cost model downstream (candidates, CP-SAT, reports) stays the same.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Sequence

from planner.core.catalog import Catalog
from planner.core.errors import InputError

OWNED_PRICE_SOURCE = "owned: zero marginal price (energy still counted at electricity.usd_per_kwh)"
SOURCES = ("file", "cluster", "catalog")


# vCPUs a GPU or TPU replica's process takes on its node besides the accelerator: what the backends
# ask Ray for (planner/backends) and what node packing reserves for it (planner/planning/packing.py).
ACCELERATOR_REPLICA_CPUS = 0.5


@dataclass(frozen=True)
class NodeShape:
    node_id: str
    units: Mapping[str, float]     # catalog hardware name -> units on this node (vCPUs, GPUs, TPU chips)


@dataclass(frozen=True)
class ClusterInventory:
    counts: dict[str, int]
    nodes: tuple[NodeShape, ...]


def parse_inventory_entry(where: str, value: object) -> tuple[int, bool]:
    """(count, owned) from `4`, `{owned: 4}` or `{rent: 4}`; InputError naming the field otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, dict)):
        raise InputError(where, value, "expected a count or {owned: N} / {rent: N}",
                         "write e.g. 'h100: 4' (rentable) or 'h100: {owned: 4}'")
    if isinstance(value, int):
        count, owned = value, False
    else:
        keys = set(value)
        if len(keys) != 1 or not keys <= {"owned", "rent"}:
            fix = ("list owned and rentable units of one type as two catalog entries (e.g. copy h100 as "
                   "h100-owned in --catalog)") if keys == {"owned", "rent"} else "use exactly one of owned: N or rent: N"
            raise InputError(where, value, "expected exactly one of owned / rent", fix)
        (key,) = keys
        count, owned = value[key], key == "owned"
        if isinstance(count, bool) or not isinstance(count, int):
            raise InputError(f"{where}.{key}", count, "not a whole number", "give the number of units")
    if count < 0:
        raise InputError(where, count, "must be >= 0", "give the number of units available (GPUs, TPU chips or vCPUs)")
    return count, owned


def with_owned_prices(catalog: Catalog, owned: Iterable[str]) -> Catalog:
    """A copy of the catalog where owned hardware costs nothing per hour (energy aside)."""
    owned = set(owned)
    if not owned:
        return catalog
    hardware = {name: (replace(hw, usd_per_hour=0.0, spot_usd_per_hour=0.0, price_source=OWNED_PRICE_SOURCE)
                       if name in owned else hw) for name, hw in catalog.hardware.items()}
    return Catalog(version=catalog.version, source_path=catalog.source_path, hardware=hardware)


def inventory_from_nodes(nodes: Sequence[Mapping], catalog: Catalog, cpu_hardware: str = "cpu-x86") -> ClusterInventory:
    """Counts and node shapes from Ray's node table (``ray.nodes()``: dicts with Alive, NodeID, Resources).

    GPUs and TPU chips are named by the node's ``accelerator_type:<X>`` resource, matched to the
    catalog's ``ray_accelerator_type``; an accelerator the catalog does not know is an error, not
    a silent omission.
    """
    by_accelerator = {hw.ray_accelerator_type: hw.name for hw in catalog.hardware.values() if hw.ray_accelerator_type}
    catalog.get(cpu_hardware)
    counts: dict[str, int] = {}
    shapes = []
    for node in nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources", {})
        units: dict[str, float] = {}
        if resources.get("CPU"):
            units[cpu_hardware] = float(resources["CPU"])
        accelerators = [key.split(":", 1)[1] for key in resources if key.startswith("accelerator_type:")]
        devices = float(resources.get("GPU", 0) or resources.get("TPU", 0))
        if devices and not accelerators:
            raise InputError(f"node {node.get('NodeID', '?')[:12]}", "GPU/TPU without accelerator_type",
                             "Ray reports devices but not their type", "start the node with --resources "
                             "'{\"accelerator_type:H100\": 1}' or on a machine Ray can identify")
        if accelerators:
            accelerator = accelerators[0]  # Ray gives a node one accelerator_type resource
            if accelerator not in by_accelerator:
                raise InputError(f"node {node.get('NodeID', '?')[:12]}.accelerator_type", accelerator,
                                 "not in the catalog", f"add an entry with ray_accelerator_type: {accelerator} "
                                 "to the catalog (--catalog)")
            if devices:
                units[by_accelerator[accelerator]] = devices
        for hw, n in units.items():
            counts[hw] = counts.get(hw, 0) + int(n)
        shapes.append(NodeShape(str(node.get("NodeID", "")), units))
    if not counts:
        raise InputError("--inventory", "cluster", "the Ray cluster has no alive node with CPUs or accelerators",
                         "start the cluster's nodes, or use --inventory file|catalog")
    return ClusterInventory(counts, tuple(shapes))


ACCELERATOR_LABEL = "ray.io/accelerator-type"


def cpu_only_label_selector(nodes: Sequence[Mapping]) -> dict[str, str] | None:
    """A Ray label selector that keeps CPU-only work off accelerator nodes, or None if it cannot.

    Accelerator nodes carry the ``ray.io/accelerator-type`` label (Ray sets it on nodes with
    GPUs/TPUs it detects; simulated nodes set it by hand). CPU work that lands there takes
    CPUs an accelerator replica needs to be fed. Returns None when no alive node with CPUs
    lacks the label (e.g. a laptop with a GPU: CPU work must then share) or when there is no
    accelerator node at all (nothing to avoid).
    """
    alive = [n for n in nodes if n.get("Alive", True)]
    kinds = sorted({str(n.get("Labels", {}).get(ACCELERATOR_LABEL)) for n in alive
                    if n.get("Labels", {}).get(ACCELERATOR_LABEL)})
    plain_cpu_nodes = [n for n in alive if n.get("Resources", {}).get("CPU")
                       and not n.get("Labels", {}).get(ACCELERATOR_LABEL)]
    if not kinds or not plain_cpu_nodes:
        return None
    return {ACCELERATOR_LABEL: f"!in({','.join(kinds)})"}
