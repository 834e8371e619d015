from __future__ import annotations

import copy

import pytest
import yaml

from planner.core.catalog import DEFAULT_CATALOG_PATH, HardwareType, load_catalog
from planner.core.errors import InputError, UnknownHardwareError

EXPECTED = {"h100", "h200", "a100-80gb", "a100-40gb", "l4", "t4", "l40s", "a10g",
            "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "cpu-x86", "cpu-n2"}
UNIT_OF_KIND = {"cpu": "vcpu", "gpu": "gpu", "tpu": "tpu_chip"}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_shipped_catalog_loads(catalog):
    assert catalog.version == "2026-11-23"
    assert set(catalog.names()) == EXPECTED
    assert all(isinstance(h, HardwareType) for h in catalog.hardware.values())
    assert catalog.source_path == str(DEFAULT_CATALOG_PATH)


def test_every_entry_is_sourced_and_units_match(catalog):
    for h in catalog.hardware.values():
        assert h.price_source.strip(), h.name
        assert h.spec_source.strip(), h.name
        assert h.power_source.strip(), h.name
        assert h.unit == UNIT_OF_KIND[h.kind], h.name
        assert h.usd_per_hour > 0, h.name
        if h.kind == "cpu":
            assert h.ray_accelerator_type is None
        else:
            assert h.ray_accelerator_type


def test_known_figures(catalog):
    h100 = catalog.get("h100")
    assert h100.usd_per_hour == 6.88
    assert h100.peak_tflops["bf16"] == 989.4
    assert h100.price_includes_host is True
    assert catalog.get("tpu-v5e").ray_accelerator_type == "TPU-V5LITEPOD"
    assert catalog.get("a100-80gb").ray_accelerator_type == "A100-80G"
    a10g = catalog.get("a10g")
    assert a10g.memory_gib is None and "spec not in team reference" in a10g.notes
    for name in ("l40s", "tpu-v5p"):
        assert "UNVERIFIED" in catalog.get(name).notes
    assert "unverified" in catalog.get("h200").power_source
    for name in ("cpu-x86", "cpu-n2"):
        assert "ESTIMATE" in catalog.get(name).spec_source


def test_catalog_is_frozen(catalog):
    with pytest.raises(Exception):
        catalog.get("h100").usd_per_hour = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalog.hardware["x"] = None  # type: ignore[index]


def _write(tmp_path, mutate):
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text())
    data = copy.deepcopy(data)
    mutate(data)
    p = tmp_path / "my_catalog.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_user_catalog_unknown_field(tmp_path):
    p = _write(tmp_path, lambda d: d["hardware"][0].update({"usd_per_hr": 9.99}))
    with pytest.raises(InputError) as ei:
        load_catalog(p)
    msg = str(ei.value)
    assert "usd_per_hr" in msg and "9.99" in msg
    assert "my_catalog.yaml" in msg and "hardware[0] (h100)" in msg
    assert "\n" not in msg


def test_user_catalog_negative_price(tmp_path):
    p = _write(tmp_path, lambda d: d["hardware"][2].update({"usd_per_hour": -1.5}))
    with pytest.raises(InputError) as ei:
        load_catalog(p)
    msg = str(ei.value)
    assert "usd_per_hour" in msg and "-1.5" in msg and "a100-80gb" in msg
    assert "To fix" in msg


def test_user_catalog_duplicate_name(tmp_path):
    def dup(d):
        d["hardware"].append(dict(d["hardware"][0]))
    p = _write(tmp_path, dup)
    with pytest.raises(InputError) as ei:
        load_catalog(p)
    msg = str(ei.value)
    assert "name" in msg and "'h100'" in msg and "duplicate" in msg


def test_user_catalog_kind_unit_mismatch(tmp_path):
    p = _write(tmp_path, lambda d: d["hardware"][0].update({"unit": "vcpu"}))
    with pytest.raises(InputError) as ei:
        load_catalog(p)
    assert "unit" in str(ei.value) and "'vcpu'" in str(ei.value)


def test_user_catalog_unknown_kind_and_precision(tmp_path):
    p = _write(tmp_path, lambda d: d["hardware"][0].update({"kind": "fpga"}))
    with pytest.raises(InputError, match="kind"):
        load_catalog(p)
    p = _write(tmp_path, lambda d: d["hardware"][0]["peak_tflops"].update({"fp64": 34}))
    with pytest.raises(InputError, match="fp64"):
        load_catalog(p)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as ei:
        load_catalog(missing)
    assert str(missing) in str(ei.value)


def test_get_suggests(catalog):
    with pytest.raises(UnknownHardwareError) as ei:
        catalog.get("h10")
    assert "h100" in str(ei.value) and "did you mean" in str(ei.value)
    assert catalog.get("H100").name == "h100"
