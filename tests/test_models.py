"""Tests for the model registry, precision preparation and quality measurement.

Real torch, no mocks. The MLP cache goes to a per-module temp dir so tests never
touch ``~/.cache``; fp16 on the ResNet is only smoke-tested at batch 1 because
CPU fp16 convolutions are ~50x slower than fp32.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
import torch
from torch import nn

from planner.core.errors import InputError, UnknownModelError, UnsupportedPrecision
from planner.models import ModelSpec, builtin_model_names, get_model, mlp_digits
from planner.models.precision import PRECISIONS, prepare_for_precision, supported_precisions
from planner.models.quality import measure_quality_loss

OUTPUT_DIM = {"mlp_digits": 10, "resnet_small": 10, "transformer_small": 128}
RELATIVE_ERROR_LIMIT = 0.1
ACCURACY_DROP_LIMIT = 0.05


# --- user factories, referenced by name as "tests.test_models:<factory>" -------------

def tiny_factory() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    """A user model: seeded 16 -> 32 -> 8 MLP and a seeded input function."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))

    def example_input(batch_size: int) -> torch.Tensor:
        return torch.randn(batch_size, 16, generator=torch.Generator().manual_seed(3))

    return module, example_input


def wrong_return_factory() -> nn.Module:
    return nn.Linear(2, 2)


def raising_factory() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    raise RuntimeError("boom")


def float64_factory() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    return nn.Linear(4, 2), lambda b: torch.zeros(b, 4, dtype=torch.float64)


NOT_CALLABLE = 42


# --- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One shared cache per module, so the MLP trains once for all tests that build it.

    Also one torch thread: on a 2-core box shared with other jobs, oversubscribed
    intra-op threads make these small models several times slower.
    """
    path = tmp_path_factory.mktemp("planner-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PLANNER_CACHE_DIR", str(path))
            yield path
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def specs() -> dict[str, ModelSpec]:
    return {name: get_model(name) for name in builtin_model_names()}


# --- registry and built-ins -------------------------------------------------------------

def test_builtin_names() -> None:
    assert builtin_model_names() == ["mlp_digits", "resnet_small", "transformer_small"]


@pytest.mark.parametrize("name", sorted(OUTPUT_DIM))
def test_builtin_builds_and_shapes(specs: dict[str, ModelSpec], name: str) -> None:
    spec = specs[name]
    module = spec.build()
    assert not module.training
    for batch in (1, 8):
        x = spec.example_input(batch)
        assert tuple(x.shape) == (batch, *spec.item_shape)
        assert str(x.dtype) == f"torch.{spec.item_dtype}"
        assert torch.equal(x, spec.example_input(batch)), "example_input must be deterministic"
        with torch.inference_mode():
            y = module(x)
        assert tuple(y.shape) == (batch, OUTPUT_DIM[name])
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all()
    with torch.inference_mode():
        again = spec.build()(spec.example_input(8))
        assert torch.equal(module(spec.example_input(8)), again), "build must be deterministic"


def test_mlp_accuracy_and_calibration(specs: dict[str, ModelSpec]) -> None:
    x, y = specs["mlp_digits"].calibration()
    assert y is not None and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (450, 64) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert mlp_digits.accuracy(specs["mlp_digits"].build(), x, y) >= 0.95
    big = specs["mlp_digits"].example_input(1000)  # more than the 450 test rows: cycles
    assert big.shape == (1000, 64) and torch.equal(big[450:900], x)


def test_unlabelled_calibration(specs: dict[str, ModelSpec]) -> None:
    for name in ("resnet_small", "transformer_small"):
        x, y = specs[name].calibration()
        assert y is None and x.shape[0] == 256


# --- precision --------------------------------------------------------------------------

def test_supported_precisions() -> None:
    assert supported_precisions("cpu") == {p: None for p in PRECISIONS}
    other = supported_precisions("meta")
    assert other["fp32"] is None and "NVIDIA GPUs" in (other["int8"] or "")


def test_unknown_precision_and_int8_where_it_cannot_run(specs: dict[str, ModelSpec]) -> None:
    with pytest.raises(UnsupportedPrecision, match="fp8.*fp32, bf16, fp16, int8"):
        prepare_for_precision(specs["mlp_digits"], "fp8")
    with pytest.raises(UnsupportedPrecision, match="int8.*CPUs.*NVIDIA GPUs"):
        prepare_for_precision(specs["mlp_digits"], "int8", device="meta")
    with pytest.raises(InputError, match="device"):
        supported_precisions("not-a-device")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_prepared_outputs_are_float32(specs: dict[str, ModelSpec], precision: str) -> None:
    for name in sorted(OUTPUT_DIM):
        spec = specs[name]
        module, cast = prepare_for_precision(spec, precision)
        x = cast(spec.example_input(1))
        if spec.item_dtype == "int64":
            assert x.dtype == torch.int64
        with torch.inference_mode():
            y = module(x)
        assert y.dtype == torch.float32 and tuple(y.shape) == (1, OUTPUT_DIM[name])


# --- quality ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OUTPUT_DIM))
def test_quality_loss(specs: dict[str, ModelSpec], name: str) -> None:
    spec = specs[name]
    results = {p: measure_quality_loss(spec, p) for p in ("fp32", "bf16", "int8")}
    if name == "mlp_digits":  # fp16 is cheap here; on the ResNet it takes ~15 s on CPU
        results["fp16"] = measure_quality_loss(spec, "fp16")
    for precision, r in results.items():
        print(f"{name:18s} {precision:5s} {r.metric:18s} loss={r.quality_loss:.6f} "
              f"value={r.value:.6f} ref={r.reference_value:.4f} n={r.samples}")
    assert results["fp32"].quality_loss == 0.0
    limit = ACCURACY_DROP_LIMIT if name == "mlp_digits" else RELATIVE_ERROR_LIMIT
    expected_metric = "accuracy_drop" if name == "mlp_digits" else "relative_l2_error"
    for precision, r in results.items():
        assert r.precision == precision and r.metric == expected_metric
        assert 0.0 <= r.quality_loss < limit
    if name == "mlp_digits":
        assert results["fp32"].value == results["fp32"].reference_value >= 0.95
    else:
        assert results["bf16"].quality_loss > 0.0, "bf16 should perturb the outputs a little"


# --- errors and user models -------------------------------------------------------------

def test_unknown_model_message() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model("resnet_smal")
    message = str(info.value)
    assert "resnet_smal" in message and "did you mean 'resnet_small'" in message
    assert "mlp_digits" in message and "package.module:factory" in message
    assert isinstance(info.value, InputError) and info.value.field == "model"


def test_unknown_model_without_close_match() -> None:
    with pytest.raises(UnknownModelError, match="zzzz") as info:
        get_model("zzzz")
    assert "did you mean" not in str(info.value)


def test_user_model_spec() -> None:
    spec = get_model("tests.test_models:tiny_factory")
    assert spec.task == "embedding" and spec.item_shape == (16,) and spec.item_dtype == "float32"
    x, labels = spec.calibration()
    assert labels is None and x.shape == (64, 16)
    a, b = spec.build(), spec.build()
    assert a is not b, "build must hand out fresh copies"
    with torch.inference_mode():
        assert spec.build()(spec.example_input(8)).shape == (8, 8)
    assert measure_quality_loss(spec, "fp32").quality_loss == 0.0
    for precision in ("bf16", "int8"):
        assert 0.0 <= measure_quality_loss(spec, precision).quality_loss < RELATIVE_ERROR_LIMIT


@pytest.mark.parametrize("bad, fragment", [
    ("no_such_pkg_xyz.mod:factory", "cannot import module"),
    ("tests.test_models:missing_factory", "has no attribute"),
    ("tests.test_models:NOT_CALLABLE", "not a callable"),
    ("tests.test_models:wrong_return_factory", "not a 2-tuple"),
    ("tests.test_models:raising_factory", "boom"),
    ("tests.test_models:float64_factory", "float64"),
    ("tests.test_models:", "exactly one ':'"),
])
def test_bad_user_specs(bad: str, fragment: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        get_model(bad)
    assert fragment in str(info.value) and bad in str(info.value)


# --- MLP weight cache ---------------------------------------------------------------------

def test_mlp_cache_written_reused_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(tmp_path / "cache"))
    path = mlp_digits.cache_path()
    assert path == tmp_path / "cache" / "mlp_digits-v1.pt" and not path.exists()

    state, trained = mlp_digits.load_or_train()
    assert trained and path.is_file()
    stamp = path.stat().st_mtime_ns

    again, trained_again = mlp_digits.load_or_train()
    assert not trained_again and path.stat().st_mtime_ns == stamp
    assert all(torch.equal(state[k], again[k]) for k in state)

    path.write_bytes(b"not a torch file")  # unreadable cache: retrain and overwrite
    _, retrained = mlp_digits.load_or_train()
    assert retrained and mlp_digits.load_or_train()[1] is False
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temp files left behind"


# --- GPU int8 recipe and execution (the arithmetic runs on CPU too, so it is tested here) --------

@pytest.mark.parametrize("rows", [1, 5, 40])
def test_int8_gpu_linear_matches_fp32_with_padding(rows: int) -> None:
    from planner.models.int8_gpu import Int8DynamicLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(60, 10)  # K=60 and N=10 are not multiples of 8: both padded
    x = torch.randn(rows, 60)
    q = Int8DynamicLinear(linear)
    with torch.inference_mode():
        ref, got = linear(x), q(x)
    assert got.shape == ref.shape == (rows, 10)
    assert float((got - ref).norm() / ref.norm()) < 0.02
    assert q.weight.shape == linear.weight.shape


def test_int8_gpu_recipe_quality_close_to_cpu_int8(specs: dict[str, ModelSpec]) -> None:
    from planner.models.int8_gpu import quantize_linears_int8

    spec = specs["transformer_small"]
    x = spec.example_input(8)
    with torch.inference_mode():
        ref = spec.build().eval()(x)
        cpu_int8 = prepare_for_precision(spec, "int8")[0](x)
        gpu_recipe = quantize_linears_int8(spec.build().eval())
        from planner.models.precision import _disable_encoder_fast_path
        _disable_encoder_fast_path(gpu_recipe)
        got = gpu_recipe(x)
    err = lambda y: float((y - ref).norm() / ref.norm())  # noqa: E731
    assert err(got) < 0.02 and err(got) < 3 * err(cpu_int8)


def test_op_count_sees_through_fused_attention(specs: dict[str, ModelSpec]) -> None:
    from planner.models.runner import count_device_ops, count_ops

    mlp, tf, resnet = specs["mlp_digits"], specs["transformer_small"], specs["resnet_small"]
    assert count_device_ops(mlp.build().eval(), mlp.example_input(2)) == 5  # 3 Linear + 2 ReLU
    fast = torch.backends.mha.get_fastpath_enabled()
    assert count_device_ops(tf.build().eval(), tf.example_input(2)) > 20  # not the one fused op
    assert torch.backends.mha.get_fastpath_enabled() == fast
    counted = count_ops(resnet.build().eval(), resnet.example_input(2))
    assert counted.conv_ops == sum(isinstance(m, torch.nn.Conv2d) for m in resnet.build().modules())


def test_op_count_skips_ops_that_launch_nothing() -> None:
    from planner.models.runner import count_ops

    # Eval-mode dropout hands its input back (no kernel); in-place ReLU returns its input but runs.
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.ReLU(inplace=True)).eval()
    assert count_ops(model, torch.randn(2, 4)).ops == 2


def test_runner_is_eager_on_cpu(specs: dict[str, ModelSpec]) -> None:
    from planner.models.runner import EAGER, make_runner

    spec = specs["mlp_digits"]
    module = spec.build().eval()
    batch = spec.example_input(3)
    run, mode = make_runner(module, batch[0], "cpu", 8)
    assert mode == EAGER and torch.equal(run(batch), module(batch))
