"""How much quality a precision costs, as one non-negative number the planner can constrain.

Classifiers with labels report the accuracy drop against fp32 (absolute
fraction), because that is what a user cares about. Everything else reports
the relative L2 error of the outputs against fp32, a label-free proxy that is
0 for identical outputs and about 1 for unrelated ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from planner.models import ModelSpec
from planner.models.precision import prepare_for_precision

BATCH_SIZE = 64  # bounds peak memory for large calibration sets


@dataclass(frozen=True)
class QualityResult:
    """Quality of one precision against fp32 on the spec's calibration set."""

    precision: str
    quality_loss: float  # >= 0; the number the planner constrains
    metric: str  # "accuracy_drop" or "relative_l2_error"
    reference_value: float  # fp32 accuracy, or 0.0 for relative error
    value: float  # accuracy at this precision, or the relative error
    samples: int


def _outputs(spec: ModelSpec, precision: str, device: str, inputs: torch.Tensor) -> torch.Tensor:
    """All calibration outputs at ``precision``, float32 on CPU, computed batch by batch."""
    module, cast = prepare_for_precision(spec, precision, device)
    chunks: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], BATCH_SIZE):
            chunks.append(module(cast(inputs[start:start + BATCH_SIZE])).float().cpu())
    return torch.cat(chunks)


def measure_quality_loss(spec: ModelSpec, precision: str, device: str = "cpu") -> QualityResult:
    """Compare ``precision`` against fp32 on the calibration set (fp32 itself gives exactly 0).

    The fp32 reference always runs on the same ``device`` so the comparison isolates precision.
    """
    inputs, labels = spec.calibration()
    samples = int(inputs.shape[0])
    if labels is None and precision == "fp32":
        return QualityResult(precision, 0.0, "relative_l2_error", 0.0, 0.0, samples)
    reference = _outputs(spec, "fp32", device, inputs)

    if labels is not None:
        ref_acc = float((reference.argmax(dim=1) == labels).float().mean().item())
        if precision == "fp32":
            return QualityResult(precision, 0.0, "accuracy_drop", ref_acc, ref_acc, samples)
        acc = float((_outputs(spec, precision, device, inputs).argmax(dim=1) == labels).float().mean().item())
        return QualityResult(precision, max(0.0, ref_acc - acc), "accuracy_drop", ref_acc, acc, samples)

    out = _outputs(spec, precision, device, inputs)
    ref = reference.double()
    denom = float(torch.linalg.vector_norm(ref).item())
    num = float(torch.linalg.vector_norm(out.double() - ref).item())
    rel = num / denom if denom > 0.0 else (0.0 if num == 0.0 else float("inf"))
    return QualityResult(precision, rel, "relative_l2_error", 0.0, rel, samples)
