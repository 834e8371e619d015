"""``transformer_small``: a 2-layer transformer encoder that embeds 64 token ids into 128 floats.

It stands in for attention-heavy text embedding serving. Untrained and seeded,
so quality is the relative L2 error of its embeddings against fp32.
``enable_nested_tensor=False`` because inputs are never padded and the nested
tensor path only adds a warning and a code path the profiler would not expect.
"""
from __future__ import annotations

import torch
from torch import nn

from planner.models import ModelSpec

NAME = "transformer_small"
SEED = 2
INPUT_SEED = 21
CALIBRATION_SEED = 22
CALIBRATION_SAMPLES = 256
VOCAB = 1000
SEQ_LEN = 64
D_MODEL = 128
HEADS = 4
LAYERS = 2
FF = 256


class TransformerSmall(nn.Module):
    """Token + learned positional embedding, encoder stack, mean pooling over positions."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D_MODEL)
        self.positions = nn.Embedding(SEQ_LEN, D_MODEL)
        layer = nn.TransformerEncoderLayer(
            d_model=D_MODEL, nhead=HEADS, dim_feedforward=FF, dropout=0.0, batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=LAYERS, enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(pos).unsqueeze(0)
        return self.encoder(x).mean(dim=1)


def build() -> nn.Module:
    """A fresh seeded fp32 module in eval mode; global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = TransformerSmall()
    return model.eval()


def _ids(batch_size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (batch_size, SEQ_LEN), generator=gen, dtype=torch.int64)


def example_input(batch_size: int) -> torch.Tensor:
    """Seeded random token ids, shape (batch_size, 64), int64."""
    return _ids(batch_size, INPUT_SEED)


def calibration() -> tuple[torch.Tensor, torch.Tensor | None]:
    """256 seeded token sequences (a different seed from example_input); no labels."""
    return _ids(CALIBRATION_SAMPLES, CALIBRATION_SEED), None


def spec() -> ModelSpec:
    """The registry entry for ``transformer_small``."""
    return ModelSpec(
        name=NAME, task="embedding", build=build, example_input=example_input,
        item_shape=(SEQ_LEN,), item_dtype="int64", calibration=calibration,
        description="transformer encoder (vocab 1000, seq 64, d 128, 4 heads, 2 layers) -> 128-d mean-pooled embedding",
    )
