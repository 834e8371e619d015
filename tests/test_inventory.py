"""Inventory sources: file entries (rentable / owned), Ray's node table, the catalog."""
from __future__ import annotations

import pytest

from planner import api
from planner.core.catalog import load_catalog
from planner.core.errors import InputError
from planner.core.inventory import OWNED_PRICE_SOURCE, inventory_from_nodes, parse_inventory_entry, with_owned_prices
from planner.core.profiles import ProfileRow
from planner.core.workloads import parse_workloads


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_entries_count_owned_rent_and_errors():
    assert parse_inventory_entry("inventory.h100", 4) == (4, False)
    assert parse_inventory_entry("inventory.h100", {"owned": 2}) == (2, True)
    assert parse_inventory_entry("inventory.h100", {"rent": 3}) == (3, False)
    with pytest.raises(InputError, match="inventory.h100.*two catalog entries"):
        parse_inventory_entry("inventory.h100", {"owned": 2, "rent": 2})
    with pytest.raises(InputError, match="inventory.h100=-1.*>= 0"):
        parse_inventory_entry("inventory.h100", -1)
    with pytest.raises(InputError, match="inventory.h100.owned"):
        parse_inventory_entry("inventory.h100", {"owned": "two"})


def test_owned_hardware_costs_only_its_energy(catalog):
    owned = with_owned_prices(catalog, ["h100"])
    assert owned.get("h100").usd_per_hour == 0.0 and owned.get("h100").price_source == OWNED_PRICE_SOURCE
    assert owned.get("l4").usd_per_hour == catalog.get("l4").usd_per_hour
    rows = [ProfileRow("m", "h100", "fp32", 8, 2.0, 3.0, 4000.0, 1.0, 0.1, 0.0, "imported"),
            ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 200.0, 0.1, 0.01, 0.0, "imported")]

    def plan_with(inventory):
        doc = {"electricity": {"usd_per_kwh": 0.2}, "inventory": inventory,
               "workloads": [{"name": "w", "model": "m", "qps": 50, "p99_ms": 200}]}
        return api.plan(parse_workloads(doc, "w.yaml"), rows, catalog)

    rented = plan_with({"h100": 1, "cpu-x86": 8})
    assert rented.workloads[0].chosen.hardware == "cpu-x86"  # 1 vCPU is far cheaper than renting an H100
    mine = plan_with({"h100": {"owned": 1}, "cpu-x86": 8})
    chosen = mine.workloads[0].chosen
    assert chosen.hardware == "h100" and 0 < chosen.usd_per_hour < 0.2  # energy at $0.2/kWh only
    assert mine.inventory == {"h100": 1, "cpu-x86": 8}


def test_catalog_source_drops_the_file_inventory(catalog):
    rows = [ProfileRow("m", "cpu-x86", "fp32", 1, 5.0, 6.0, 200.0, 0.1, 0.01, 0.0, "imported")]
    doc = {"inventory": {"cpu-x86": 1}, "workloads": [{"name": "w", "model": "m", "qps": 1000, "p99_ms": 500}]}
    assert not api.plan(parse_workloads(doc, "w.yaml"), rows, catalog).ok
    unbounded = api.plan(parse_workloads(doc, "w.yaml"), rows, catalog, inventory="catalog")
    assert unbounded.ok and unbounded.workloads[0].chosen.replicas >= 7
    with pytest.raises(InputError, match="--inventory.*file, cluster, catalog"):
        api.plan(parse_workloads(doc, "w.yaml"), rows, catalog, inventory="mine")


def test_node_table_to_counts_and_shapes(catalog):
    # A node table as ray.nodes() returns it (hand-written: no such cluster exists here).
    nodes = [{"NodeID": "a" * 20, "Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0, "accelerator_type:H100": 1.0}},
             {"NodeID": "b" * 20, "Alive": True, "Resources": {"CPU": 8.0}},
             {"NodeID": "c" * 20, "Alive": False, "Resources": {"CPU": 64.0}}]
    found = inventory_from_nodes(nodes, catalog)
    assert found.counts == {"cpu-x86": 24, "h100": 2}
    assert [dict(n.units) for n in found.nodes] == [{"cpu-x86": 16.0, "h100": 2.0}, {"cpu-x86": 8.0}]
    with pytest.raises(InputError, match="accelerator_type.*B300.*ray_accelerator_type: B300"):
        inventory_from_nodes([{"NodeID": "d", "Resources": {"GPU": 1.0, "accelerator_type:B300": 1.0}}], catalog)
    with pytest.raises(InputError, match="no alive node"):
        inventory_from_nodes([], catalog)


def test_pareto_sweep_prices_owned_hardware_like_the_plan(catalog):
    from planner.planning.pareto import cost_vs_p99

    rows = [ProfileRow("m", "h100", "fp32", 8, 2.0, 3.0, 4000.0, 1.0, 0.1, 0.0, "imported")]
    doc = {"electricity": {"usd_per_kwh": 0.2}, "inventory": {"h100": {"owned": 1}},
           "workloads": [{"name": "w", "model": "m", "qps": 50, "p99_ms": 200}]}
    ws = parse_workloads(doc, "w.yaml")
    plan_cost = api.plan(ws, rows, catalog).objective_usd_per_hour
    sweep = [p.usd_per_hour for p in cost_vs_p99(api.planning_context(ws), rows, catalog) if p.usd_per_hour is not None]
    assert sweep and max(sweep) < 0.2 and plan_cost in [pytest.approx(c) for c in sweep]  # energy only
