"""The model registry: built-in models and user models named ``package.module:factory``.

Everything downstream (profiling, quality measurement, serving) needs the same
five things about a model: how to build it, how to make a deterministic input
batch, the shape/dtype of one item (to validate HTTP requests), and a held-out
calibration set (to measure what a lower precision costs in quality). A
``ModelSpec`` bundles them so no caller has to know which model it is holding.

Built-in models are imported lazily, so ``import planner.models`` stays cheap
and does not load scikit-learn's data or train anything.
"""
from __future__ import annotations

import copy
import difflib
import importlib
from dataclasses import dataclass
from typing import Callable

import torch

from planner.core.errors import UnknownModelError

__all__ = ["ModelSpec", "builtin_model_names", "get_model"]

#: Item dtypes an HTTP input may have; anything else is rejected at ``get_model`` time.
_ITEM_DTYPES: dict[torch.dtype, str] = {torch.float32: "float32", torch.int64: "int64"}

#: Built-in name -> module (under ``planner.models``) whose ``spec()`` returns its ModelSpec.
_BUILTINS: dict[str, str] = {
    "mlp_digits": "mlp_digits",
    "resnet_small": "resnet_small",
    "transformer_small": "transformer_small",
}

_USER_SPEC_HINT = (
    "name a user model as 'package.module:factory', where factory() returns "
    "(torch_module, example_input_fn) and example_input_fn(batch_size) returns a Tensor"
)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the planner needs to know about one model, independent of which model it is.

    ``build`` must return a *fresh* fp32 module in eval mode on every call, because
    precision preparation converts modules in place.
    """

    name: str
    task: str  # "classification" or "embedding"
    build: Callable[[], torch.nn.Module]
    example_input: Callable[[int], torch.Tensor]
    item_shape: tuple[int, ...]
    item_dtype: str  # "float32" or "int64"
    calibration: Callable[[], tuple[torch.Tensor, torch.Tensor | None]]
    description: str


def builtin_model_names() -> list[str]:
    """Names accepted by ``get_model`` without a ``module:factory`` spec, sorted."""
    return sorted(_BUILTINS)


def get_model(name: str) -> ModelSpec:
    """Return the ModelSpec for a built-in name or a ``package.module:factory`` user spec.

    Raises ``UnknownModelError`` (never a raw traceback) when the name is unknown or
    the user spec cannot be imported, called or validated.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(
            "model", name, "a model name must be a non-empty string",
            f"use one of {', '.join(builtin_model_names())}, or {_USER_SPEC_HINT}",
        )
    name = name.strip()
    if name in _BUILTINS:
        module = importlib.import_module(f"{__name__}.{_BUILTINS[name]}")
        spec: ModelSpec = module.spec()
        return spec
    if ":" in name:
        return _user_model(name)
    close = difflib.get_close_matches(name, builtin_model_names(), n=1, cutoff=0.5)
    suggestion = f"did you mean {close[0]!r}? Otherwise use" if close else "use"
    raise UnknownModelError(
        "model", name,
        f"no built-in model has this name (built-in models: {', '.join(builtin_model_names())})",
        f"{suggestion} one of the built-in names, or {_USER_SPEC_HINT}",
    )


def _user_error(spec: str, problem: str, fix: str = _USER_SPEC_HINT) -> UnknownModelError:
    """One place that builds user-spec errors so every message has the same shape."""
    return UnknownModelError("model", spec, problem, fix)


def _user_model(spec: str) -> ModelSpec:
    """Import, call and validate a user factory, and wrap it as an 'embedding' ModelSpec.

    The factory is called once here; ``build`` hands out deep copies so that converting
    one copy to bf16 or int8 never changes the module another caller holds.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise _user_error(spec, "a user model spec needs exactly one ':' between a module and a factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's module, not ours
        raise _user_error(
            spec, f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})",
            # Ray workers import it too, and they do not start in the user's directory.
            "put the folder that holds the module on PYTHONPATH (e.g. `export PYTHONPATH=$PWD`) or install "
            "it as a package, so that Ray's workers can import it as well as this process; " + _USER_SPEC_HINT,
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise _user_error(spec, f"module {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise _user_error(spec, f"{spec} is a {type(factory).__name__}, not a callable factory")
    try:
        result = factory()
    except Exception as exc:
        raise _user_error(spec, f"calling the factory failed ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(result, tuple) and len(result) == 2):
        raise _user_error(spec, f"the factory returned {type(result).__name__}, not a 2-tuple")
    torch_module, example_fn = result
    if not isinstance(torch_module, torch.nn.Module):
        raise _user_error(spec, f"the factory's first item is {type(torch_module).__name__}, not a torch.nn.Module")
    if not callable(example_fn):
        raise _user_error(spec, f"the factory's second item is {type(example_fn).__name__}, not a callable")
    item_shape, item_dtype = _validate_user_io(spec, torch_module, example_fn)

    prototype = copy.deepcopy(torch_module).float().eval()

    def build() -> torch.nn.Module:
        return copy.deepcopy(prototype).eval()

    def calibration() -> tuple[torch.Tensor, torch.Tensor | None]:
        return example_fn(64), None

    return ModelSpec(
        name=spec, task="embedding", build=build, example_input=example_fn,
        item_shape=item_shape, item_dtype=item_dtype, calibration=calibration,
        description=f"user model from {spec}",
    )


def _validate_user_io(
    spec: str, module: torch.nn.Module, example_fn: Callable[[int], torch.Tensor]
) -> tuple[tuple[int, ...], str]:
    """Check example_fn(1) and one forward pass now, so failures surface at name resolution."""
    try:
        sample = example_fn(1)
    except Exception as exc:
        raise _user_error(spec, f"example_input_fn(1) failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(sample, torch.Tensor):
        raise _user_error(spec, f"example_input_fn(1) returned {type(sample).__name__}, not a Tensor")
    if sample.dim() < 1 or sample.shape[0] != 1:
        raise _user_error(spec, f"example_input_fn(1) returned shape {tuple(sample.shape)}; the first dim must be the batch size 1")
    if sample.dtype not in _ITEM_DTYPES:
        raise _user_error(spec, f"example_input_fn(1) returned dtype {sample.dtype}; only float32 and int64 inputs are supported")
    try:
        with torch.inference_mode():
            out = copy.deepcopy(module).float().eval()(sample)
    except Exception as exc:
        raise _user_error(spec, f"a forward pass on example_input_fn(1) failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(out, torch.Tensor):
        raise _user_error(spec, f"the module returned {type(out).__name__}, not a Tensor")
    return tuple(int(d) for d in sample.shape[1:]), _ITEM_DTYPES[sample.dtype]
