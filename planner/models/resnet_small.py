"""``resnet_small``: a ResNet-style CNN for 3x32x32 images, randomly initialised from a seed.

It stands in for convolution-heavy vision serving: the planner needs its
latency/throughput shape and how precision changes its outputs, not a trained
accuracy, so it is untrained (no downloads) and quality is measured as the
relative L2 error of its logits against fp32.
"""
from __future__ import annotations

import torch
from torch import nn

from planner.models import ModelSpec

NAME = "resnet_small"
SEED = 1
INPUT_SEED = 11
CALIBRATION_SEED = 12
CALIBRATION_SAMPLES = 256
ITEM_SHAPE = (3, 32, 32)
STAGE_CHANNELS = (32, 64, 128)
BLOCKS_PER_STAGE = 2
CLASSES = 10


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Stem conv 3->32, stages of (32, 64, 128) channels (stride 2 at stages 2 and 3), pool, linear."""

    def __init__(self, classes: int = CLASSES):
        super().__init__()
        first = STAGE_CHANNELS[0]
        self.stem = nn.Sequential(
            nn.Conv2d(ITEM_SHAPE[0], first, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(first), nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        in_ch = first
        for stage, out_ch in enumerate(STAGE_CHANNELS):
            for i in range(BLOCKS_PER_STAGE):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build() -> nn.Module:
    """A fresh seeded fp32 module in eval mode; global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = ResNetSmall()
    return model.eval()


def _normal(batch_size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *ITEM_SHAPE), generator=gen, dtype=torch.float32)


def example_input(batch_size: int) -> torch.Tensor:
    """Seeded standard-normal images, shape (batch_size, 3, 32, 32)."""
    return _normal(batch_size, INPUT_SEED)


def calibration() -> tuple[torch.Tensor, torch.Tensor | None]:
    """256 seeded images (a different seed from example_input); no labels."""
    return _normal(CALIBRATION_SAMPLES, CALIBRATION_SEED), None


def spec() -> ModelSpec:
    """The registry entry for ``resnet_small``."""
    return ModelSpec(
        name=NAME, task="classification", build=build, example_input=example_input,
        item_shape=ITEM_SHAPE, item_dtype="float32", calibration=calibration,
        description="ResNet-style CNN (3 stages x 2 BasicBlocks, 32/64/128 ch) on 3x32x32, seeded untrained",
    )
