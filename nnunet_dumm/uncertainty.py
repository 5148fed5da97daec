"""PUM and SUS measures: multi-model fusion, pixel-level and sample-level uncertainty, pixel weights.

All functions are pure and take ``probs`` of shape ``(M, C, *spatial)``: the softmax maps of M models over C
classes for one case. Pixel-level measures are normalised to ``[0, 1]`` so that one threshold means the same
for every measure and every number of classes.
"""

from __future__ import annotations

import math
from enum import StrEnum

import torch

__all__ = [
    "PixelUncertainty",
    "PixelWeighting",
    "SampleUncertainty",
    "fuse_probabilities",
    "pixel_uncertainty",
    "pixel_weights",
    "sample_uncertainty",
]

_EPS = 1e-6


class PixelUncertainty(StrEnum):
    """Pixel-level disagreement between models (METHOD.md section 2)."""

    KL = "kl"  # mean_m KL(p || p_m) / log C, clipped to 1 (the URPC/DUST form, models in place of decoders)
    VARIANCE = "variance"  # mean_m ||p_m - p||^2 / (1 - 1/C), the spread of the models' softmax vectors
    ENTROPY = "entropy"  # H(p) / log C, entropy of the fused prediction
    VOTE = "vote"  # fraction of models whose argmax differs from the pseudo-label


class SampleUncertainty(StrEnum):
    """Sample-level uncertainty U(x) used by SUS to rank unlabeled cases."""

    DUST = "dust"  # mean_m mean_{c, pixels} (p_m - p)^2: DUST's snapshot form with models as snapshots
    DICE = "dice"  # 1 - mean pairwise foreground Dice of the models' argmax maps (ST++'s form)
    ENTROPY = "entropy"  # mean normalised pixel entropy of the fused prediction


class PixelWeighting(StrEnum):
    """How a pixel uncertainty u becomes a loss weight w."""

    MASK = "mask"  # w = 1 if u <= threshold else 0 (uncertain pixels ignored)
    SOFT = "soft"  # w = exp(-u * ln C), i.e. exp(-u_nats): DUST's exp(-D)
    MASK_AND_SOFT = "mask_and_soft"
    NONE = "none"  # every pixel counts fully (plain pseudo-labelling)


def fuse_probabilities(probs: torch.Tensor) -> torch.Tensor:
    """Fused prediction p = mean_m p_m, shape ``(C, *spatial)``."""
    return probs.mean(0)


def pixel_uncertainty(probs: torch.Tensor, measure: PixelUncertainty | str) -> torch.Tensor:
    """Pixel-level uncertainty in ``[0, 1]``, shape ``spatial``."""
    measure = PixelUncertainty(measure)
    num_models, num_classes = probs.shape[:2]
    fused = fuse_probabilities(probs)
    log_c = math.log(num_classes)
    if measure is PixelUncertainty.KL:
        log_fused = torch.log(fused.clamp_min(_EPS))
        kl = (fused[None] * (log_fused[None] - torch.log(probs.clamp_min(_EPS)))).sum(1).mean(0)
        return (kl / log_c).clamp(0, 1)
    if measure is PixelUncertainty.VARIANCE:
        spread = ((probs - fused[None]) ** 2).sum(1).mean(0)
        return (spread / (1 - 1 / num_classes)).clamp(0, 1)
    if measure is PixelUncertainty.ENTROPY:
        entropy = -(fused * torch.log(fused.clamp_min(_EPS))).sum(0)
        return (entropy / log_c).clamp(0, 1)
    pseudo_label = fused.argmax(0)
    return (probs.argmax(1) != pseudo_label[None]).float().mean(0)


def _foreground_dice(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> float:
    scores = []
    for c in range(1, num_classes):
        a_c, b_c = a == c, b == c
        denominator = a_c.sum() + b_c.sum()
        # a class absent from both maps is perfect agreement
        scores.append(1.0 if denominator == 0 else float(2 * (a_c & b_c).sum() / denominator))
    return sum(scores) / len(scores)


def sample_uncertainty(probs: torch.Tensor, measure: SampleUncertainty | str) -> float:
    """Sample-level uncertainty U(x) of one case (lower = more reliable)."""
    measure = SampleUncertainty(measure)
    num_models, num_classes = probs.shape[:2]
    if measure is SampleUncertainty.DUST:
        return float(((probs - fuse_probabilities(probs)[None]) ** 2).mean())
    if measure is SampleUncertainty.ENTROPY:
        return float(pixel_uncertainty(probs, PixelUncertainty.ENTROPY).mean())
    if num_models < 2:
        return 0.0
    labels = probs.argmax(1)
    pairs = [(m, n) for m in range(num_models) for n in range(m + 1, num_models)]
    return 1.0 - sum(_foreground_dice(labels[m], labels[n], num_classes) for m, n in pairs) / len(pairs)


def pixel_weights(
    uncertainty: torch.Tensor, weighting: PixelWeighting | str, threshold: float, num_classes: int
) -> torch.Tensor:
    """Loss weights in ``[0, 1]`` from a normalised pixel uncertainty map."""
    weighting = PixelWeighting(weighting)
    weights = torch.ones_like(uncertainty, dtype=torch.float32)
    if weighting in (PixelWeighting.SOFT, PixelWeighting.MASK_AND_SOFT):
        weights = torch.exp(-uncertainty.float() * math.log(num_classes))
    if weighting in (PixelWeighting.MASK, PixelWeighting.MASK_AND_SOFT):
        weights = weights * (uncertainty <= threshold)
    return weights
