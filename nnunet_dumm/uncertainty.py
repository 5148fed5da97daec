"""PUM and SUS measures: multi-model fusion, pixel-level and sample-level uncertainty, pixel weights.

Every measure is computed from ``EnsembleStatistics``: weighted running sums over the ensemble's members of one
case (sum of softmax, of log-softmax, of squared softmax, and each member's argmax). Members are added one at a
time, so a pass never holds all models' softmax maps at once, and a later round adds one more member (the
student) to the cached sums of the teachers instead of running the teachers again. Pixel-level measures are
normalised to ``[0, 1]`` so that one threshold means the same for every measure and every number of classes.

``pixel_uncertainty`` / ``sample_uncertainty`` take stacked probabilities ``(M, C, *spatial)`` of equally weighted
models, for callers that have them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nnunet_dumm.compat import StrEnum

__all__ = [
    "EnsembleStatistics",
    "PixelThreshold",
    "PixelUncertainty",
    "PixelWeighting",
    "SampleUncertainty",
    "fuse_probabilities",
    "pixel_uncertainty",
    "pixel_weights",
    "sample_uncertainty",
]

_EPS = 1e-6
# Measures are computed in slabs along the first spatial axis with at most this many values per temporary, so
# that a large 3-D case with many classes needs no full-size temporaries beyond the sums themselves.
_SLAB_VALUES = 1 << 24


class PixelUncertainty(StrEnum):
    """Pixel-level disagreement between models (METHOD.md section 2)."""

    KL = "kl"  # mean_m KL(p || p_m) / log C, clipped to 1 (the URPC/DUST form, models in place of decoders)
    VARIANCE = "variance"  # mean_m ||p_m - p||^2 / (1 - 1/C), the spread of the models' softmax vectors
    ENTROPY = "entropy"  # H(p) / log C, entropy of the fused prediction
    VOTE = "vote"  # weight of the models whose argmax differs from the pseudo-label, over its maximum W - min w_m


class SampleUncertainty(StrEnum):
    """Sample-level uncertainty U(x) used by SUS to rank unlabeled cases."""

    DUST = "dust"  # mean_m mean_{c, pixels} (p_m - p)^2: DUST's snapshot form with models as snapshots
    DICE = "dice"  # 1 - mean pairwise foreground Dice of the models' argmax maps (ST++'s form)
    # the same over the classes either model of a pair predicts: agreeing that a class is absent is no evidence
    # of reliability, and a case where no model sees any foreground counts as unreliable (U = 1)
    DICE_FOREGROUND = "dice_fg"
    ENTROPY = "entropy"  # mean normalised pixel entropy of the fused prediction


class PixelThreshold(StrEnum):
    """Where the mask's threshold on the pixel uncertainty lies."""

    FIXED = "fixed"  # pixel_threshold for every class and round
    # per pseudo-label class, the pixel_keep_quantile of that class's uncertainty over the round's cases: adapts to
    # the number of classes, to how sure the teachers are, and from round to round
    CLASS_QUANTILE = "class_quantile"


class PixelWeighting(StrEnum):
    """How a pixel uncertainty u becomes a loss weight w."""

    MASK = "mask"  # w = 1 if u <= threshold else 0 (uncertain pixels ignored)
    SOFT = "soft"  # w = exp(-u * ln C), i.e. exp(-u_nats): DUST's exp(-D)
    MASK_AND_SOFT = "mask_and_soft"
    NONE = "none"  # every pixel counts fully (plain pseudo-labelling)


def _slabs(spatial: Sequence[int], num_channels: int) -> Iterator[tuple[slice, ...]]:
    """Index tuples ``(slice over the first spatial axis,)`` covering the volume in slabs of bounded size."""
    per_row = max(1, num_channels * math.prod(spatial[1:]))
    rows = max(1, _SLAB_VALUES // per_row)
    for start in range(0, spatial[0], rows):
        yield (slice(start, min(start + rows, spatial[0])),)


@dataclass
class EnsembleStatistics:
    """Weighted sufficient statistics of an ensemble's softmax maps for one case.

    With member weights w_m (W = sum w_m) and softmax maps p_m of shape ``(C, *spatial)``:
    ``sum_p`` = sum w_m p_m, ``sum_log_p`` = sum w_m log max(p_m, eps) (both ``(C, *spatial)``),
    ``sum_p2`` = sum w_m sum_c p_m,c^2 (``spatial``), ``votes[m]`` = argmax_c p_m (uint8, one map per member).
    The fused prediction is p = sum_p / W; every measure below is exact in terms of these sums.
    """

    sum_p: torch.Tensor
    sum_log_p: torch.Tensor
    sum_p2: torch.Tensor
    votes: list[torch.Tensor] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, num_classes: int, spatial: Sequence[int]) -> EnsembleStatistics:
        return cls(torch.zeros((num_classes, *spatial)), torch.zeros((num_classes, *spatial)),
                   torch.zeros(tuple(spatial)))

    @classmethod
    def from_probabilities(cls, probs: torch.Tensor) -> EnsembleStatistics:
        """Statistics of stacked, equally weighted members ``(M, C, *spatial)``."""
        stats = cls.empty(probs.shape[1], probs.shape[2:])
        for member in probs:
            stats.add(member)
        return stats

    @property
    def num_classes(self) -> int:
        return self.sum_p.shape[0]

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.sum_p.shape[1:])

    @property
    def total_weight(self) -> float:
        return float(sum(self.weights))

    def add(self, probs: torch.Tensor, weight: float = 1.0) -> None:
        """Adds one member's softmax ``(C, *spatial)`` with weight ``weight`` (in place, slab by slab)."""
        if tuple(probs.shape) != tuple(self.sum_p.shape):
            raise ValueError(f"member shape {tuple(probs.shape)} differs from {tuple(self.sum_p.shape)}")
        if self.num_classes > 255:
            raise ValueError("at most 255 classes: member argmax maps are stored as uint8")
        votes = torch.empty(self.spatial, dtype=torch.uint8)
        for slab in _slabs(self.spatial, self.num_classes):
            p = probs[(slice(None), *slab)].float()
            self.sum_p[(slice(None), *slab)] += weight * p
            self.sum_log_p[(slice(None), *slab)] += weight * torch.log(p.clamp_min(_EPS))
            self.sum_p2[slab] += weight * (p * p).sum(0)
            votes[slab] = p.argmax(0).to(torch.uint8)
        self.votes.append(votes)
        self.weights.append(float(weight))

    # --------------------------------------------------------------------------------------- per slab
    def _fused(self, slab: tuple[slice, ...]) -> torch.Tensor:
        return self.sum_p[(slice(None), *slab)] / self.total_weight

    def _pixel(self, measure: PixelUncertainty, slab: tuple[slice, ...], fused: torch.Tensor) -> torch.Tensor:
        num_classes, total = self.num_classes, self.total_weight
        if measure is PixelUncertainty.KL:
            log_fused = torch.log(fused.clamp_min(_EPS))
            kl = (fused * (log_fused - self.sum_log_p[(slice(None), *slab)] / total)).sum(0)
            return (kl / math.log(num_classes)).clamp(0, 1)
        if measure is PixelUncertainty.VARIANCE:
            spread = self.sum_p2[slab] / total - (fused * fused).sum(0)
            return (spread / (1 - 1 / num_classes)).clamp(0, 1)
        if measure is PixelUncertainty.ENTROPY:
            entropy = -(fused * torch.log(fused.clamp_min(_EPS))).sum(0)
            return (entropy / math.log(num_classes)).clamp(0, 1)
        pseudo_label = fused.argmax(0)
        disagreeing = sum(w * (v[slab] != pseudo_label).float() for v, w in zip(self.votes, self.weights))
        # at least one member agrees with the fused argmax in practice, so W - min w_m is the attainable maximum:
        # 1 when all but one model disagree (two models: 0 or 1, not 0 or 0.5)
        attainable = total - min(self.weights)
        if attainable <= 0:  # one model cannot disagree with itself
            return torch.zeros_like(disagreeing)
        return (disagreeing / attainable).clamp(0, 1)

    def means_float16(self) -> np.ndarray:
        """The sums over W stacked as float16 ``(2 C + 1, *spatial)`` (mean softmax, log-softmax, squared softmax):
        what a cache entry keeps for later rounds (``from_means_float16`` restores the sums)."""
        num_classes, total = self.num_classes, self.total_weight
        out = np.empty((2 * num_classes + 1, *self.spatial), dtype=np.float16)
        for slab in _slabs(self.spatial, 2 * num_classes + 1):
            out[(slice(0, num_classes), *slab)] = (self.sum_p[(slice(None), *slab)] / total).numpy()
            out[(slice(num_classes, 2 * num_classes), *slab)] = (self.sum_log_p[(slice(None), *slab)] / total).numpy()
            out[(2 * num_classes, *slab)] = (self.sum_p2[slab] / total).numpy()
        return out

    @classmethod
    def from_means_float16(cls, means: np.ndarray, votes: list[torch.Tensor], weights: list[float]
                           ) -> EnsembleStatistics:
        num_classes, total = (means.shape[0] - 1) // 2, float(sum(weights))
        sums = torch.from_numpy(means.astype(np.float32))
        sums *= total
        return cls(sums[:num_classes], sums[num_classes:2 * num_classes], sums[2 * num_classes], list(votes),
                   list(weights))

    # --------------------------------------------------------------------------------------- whole case
    def pseudo_label(self) -> torch.Tensor:
        """argmax_c of the fused prediction, uint8 ``spatial``."""
        out = torch.empty(self.spatial, dtype=torch.uint8)
        for slab in _slabs(self.spatial, self.num_classes):
            out[slab] = self._fused(slab).argmax(0).to(torch.uint8)
        return out

    def fused(self) -> torch.Tensor:
        """The fused prediction p = sum_m w_m p_m / W, ``(C, *spatial)``."""
        return self.sum_p / self.total_weight

    def pixel_uncertainty(self, measure: PixelUncertainty | str) -> torch.Tensor:
        """Pixel-level uncertainty in ``[0, 1]``, shape ``spatial``."""
        measure = PixelUncertainty(measure)
        out = torch.empty(self.spatial)
        for slab in _slabs(self.spatial, self.num_classes):
            out[slab] = self._pixel(measure, slab, self._fused(slab))
        return out

    def sample_uncertainty(self, measure: SampleUncertainty | str) -> float:
        """Sample-level uncertainty U(x) of the case (lower = more reliable)."""
        measure = SampleUncertainty(measure)
        if measure in (SampleUncertainty.DICE, SampleUncertainty.DICE_FOREGROUND):
            return self._pairwise_dice_disagreement(foreground_only=measure is SampleUncertainty.DICE_FOREGROUND)
        total, count = 0.0, 0
        for slab in _slabs(self.spatial, self.num_classes):
            fused = self._fused(slab)
            if measure is SampleUncertainty.DUST:
                # mean over members, classes and pixels of (p_m - p)^2
                values = (self.sum_p2[slab] / self.total_weight - (fused * fused).sum(0)) / self.num_classes
            else:
                values = self._pixel(PixelUncertainty.ENTROPY, slab, fused)
            # numpy's sequential pairwise sum: the same bits however many threads torch uses
            total += float(np.sum(values.numpy(), dtype=np.float64))
            count += values.numel()
        return total / count

    def _pairwise_dice_disagreement(self, foreground_only: bool) -> float:
        num_models = len(self.votes)
        if num_models < 2:
            return 0.0
        num_classes = self.num_classes
        pairs = [(m, n) for m in range(num_models) for n in range(m + 1, num_models)]
        overlap = np.zeros((len(pairs), num_classes), dtype=np.int64)
        sizes = np.zeros((num_models, num_classes), dtype=np.int64)
        for slab in _slabs(self.spatial, num_classes * num_models):
            one_hot = [torch.stack([v[slab] == c for c in range(1, num_classes)]) for v in self.votes]
            for m, hot in enumerate(one_hot):
                sizes[m, 1:] += hot.flatten(1).sum(1).numpy()
            for k, (m, n) in enumerate(pairs):
                overlap[k, 1:] += (one_hot[m] & one_hot[n]).flatten(1).sum(1).numpy()
        dice = []
        for k, (m, n) in enumerate(pairs):
            denominator = sizes[m, 1:] + sizes[n, 1:]
            per_class = 2 * overlap[k, 1:] / np.maximum(denominator, 1)
            if foreground_only:  # only the classes the pair predicts; none at all: no agreement to count
                dice.append(per_class[denominator > 0].mean() if (denominator > 0).any() else 0.0)
            else:  # a class absent from both maps is perfect agreement
                dice.append(np.where(denominator == 0, 1.0, per_class).mean())
        return 1.0 - float(np.mean(dice))


def fuse_probabilities(probs: torch.Tensor) -> torch.Tensor:
    """Fused prediction p = mean_m p_m of stacked members ``(M, C, *spatial)``; shape ``(C, *spatial)``."""
    return probs.mean(0)


def pixel_uncertainty(probs: torch.Tensor, measure: PixelUncertainty | str) -> torch.Tensor:
    """Pixel-level uncertainty in ``[0, 1]`` of stacked, equally weighted members; shape ``spatial``."""
    return EnsembleStatistics.from_probabilities(probs).pixel_uncertainty(measure)


def sample_uncertainty(probs: torch.Tensor, measure: SampleUncertainty | str) -> float:
    """Sample-level uncertainty U(x) of stacked, equally weighted members (lower = more reliable)."""
    return EnsembleStatistics.from_probabilities(probs).sample_uncertainty(measure)


def pixel_weights(
    uncertainty: torch.Tensor, weighting: PixelWeighting | str, threshold: float | torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Loss weights in ``[0, 1]`` from a normalised pixel uncertainty map (``threshold``: a number, or one per
    pixel)."""
    weighting = PixelWeighting(weighting)
    weights = torch.ones_like(uncertainty, dtype=torch.float32)
    if weighting in (PixelWeighting.SOFT, PixelWeighting.MASK_AND_SOFT):
        weights = torch.exp(-uncertainty.float() * math.log(num_classes))
    if weighting in (PixelWeighting.MASK, PixelWeighting.MASK_AND_SOFT):
        weights = weights * (uncertainty <= threshold)
    return weights
