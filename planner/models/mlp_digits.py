"""``mlp_digits``: a small MLP trained on scikit-learn's bundled 8x8 digits.

It is the one built-in with real labels, so the planner can report a true
accuracy drop for bf16/int8 instead of a proxy. Training takes a couple of
seconds, happens at first use, and the weights are cached on disk so Ray
workers and repeated CLI runs do not retrain. The cache is written atomically
(temp file + ``os.replace``) because several processes may train at once; a
cache that cannot be read is ignored and rebuilt.
"""
from __future__ import annotations

import functools
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from planner.models import ModelSpec

NAME = "mlp_digits"
CACHE_FILENAME = "mlp_digits-v1.pt"  # bump the version when the architecture or training changes
IN_FEATURES = 64
HIDDEN = 256
CLASSES = 10
SEED = 0
EPOCHS = 20
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
TARGET_ACCURACY = 0.95


def cache_dir() -> Path:
    """``$PLANNER_CACHE_DIR``, or ``~/.cache/cost-planner`` when unset."""
    env = os.environ.get("PLANNER_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cost-planner"


def cache_path() -> Path:
    """Where the trained state_dict lives (read at every build, so env changes take effect)."""
    return cache_dir() / CACHE_FILENAME


@functools.lru_cache(maxsize=1)
def _split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed 75/25 stratified split of the bundled data, features scaled to [0, 1].

    Cached in-process: loading and splitting costs ~50 ms and the split never changes.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (np.asarray(data.data, dtype=np.float32) / 16.0).astype(np.float32)
    y = np.asarray(data.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    tensors = (torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te))
    for t in tensors:
        t.requires_grad_(False)
    return tensors


def _architecture() -> nn.Module:
    """The untrained network, initialised from a fixed seed without touching global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return nn.Sequential(
            nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, CLASSES),
        )


def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    with torch.inference_mode():
        return float((module(x).argmax(dim=1) == y).float().mean().item())


def train() -> dict[str, torch.Tensor]:
    """Train from scratch with Adam on one intra-op thread, then restore the caller's count.

    One thread because these 64-row batches gain nothing from parallelism, are several
    times slower when threads are oversubscribed (Ray workers, a busy 2-core box), and
    the result is then bit-identical whatever the machine's core count. Shuffling uses
    a local ``torch.Generator`` so callers' RNG streams are unaffected.
    """
    x_tr, y_tr, _, _ = _split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _architecture().train()
        opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        gen = torch.Generator().manual_seed(SEED)
        loss_fn = nn.CrossEntropyLoss()
        with torch.enable_grad():
            for _ in range(EPOCHS):
                order = torch.randperm(x_tr.shape[0], generator=gen)
                for start in range(0, x_tr.shape[0], BATCH_SIZE):
                    idx = order[start:start + BATCH_SIZE]
                    opt.zero_grad(set_to_none=True)
                    loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
                    opt.step()
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state_dict if it exists and fits the architecture, else None (retrain)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        _architecture().load_state_dict(state)  # raises on missing keys or wrong shapes
    except Exception:  # corrupt, truncated, foreign or stale file: retraining is the fix
        return None
    return state


def _write_cache(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Atomic write: readers see either no file or a complete one, never a partial save."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; other users' workers may share the cache
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:  # a read-only home must not stop the model from working
        warnings.warn(f"could not cache {NAME} weights at {path}: {exc}; they will be retrained next time",
                      RuntimeWarning, stacklevel=3)


def load_or_train() -> tuple[dict[str, torch.Tensor], bool]:
    """Return (state_dict, trained_now); trained_now is False when the cache was reused."""
    path = cache_path()
    state = _read_cache(path)
    if state is not None:
        return state, False
    state = train()
    _write_cache(path, state)
    return state, True


def build() -> nn.Module:
    """A fresh trained fp32 module in eval mode (fresh because precision prep mutates it)."""
    model = _architecture()
    model.load_state_dict(load_or_train()[0])
    return model.eval()


def example_input(batch_size: int) -> torch.Tensor:
    """``batch_size`` real test rows, cycling through the test split when it runs out."""
    _, _, x_te, _ = _split()
    idx = torch.arange(batch_size) % x_te.shape[0]
    return x_te[idx].clone()


def calibration() -> tuple[torch.Tensor, torch.Tensor | None]:
    """The held-out test split: float32 features and int64 labels."""
    _, _, x_te, y_te = _split()
    return x_te.clone(), y_te.clone()


def spec() -> ModelSpec:
    """The registry entry for ``mlp_digits``."""
    return ModelSpec(
        name=NAME, task="classification", build=build, example_input=example_input,
        item_shape=(IN_FEATURES,), item_dtype="float32", calibration=calibration,
        description="MLP 64-256-256-10 trained on scikit-learn's 8x8 digits (classifier with labels)",
    )
