"""PUM and SUS measures: multi-model fusion, pixel-level and sample-level uncertainty, pixel weights.

Every measure is computed from ``EnsembleStatistics``: running sums over the ensemble's members of one
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
    "PIXEL_MEASURE_SUMS",
    "PixelThreshold",
    "PixelUncertainty",
    "PixelWeighting",
    "SAMPLE_MEASURE_SUMS",
    "SUMS",
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
    NONE = "none"  # every pixel counts fully (plain pseudo-labelling)


def _slabs(spatial: Sequence[int], num_channels: int) -> Iterator[tuple[slice, ...]]:
    """Index tuples ``(slice over the first spatial axis,)`` covering the volume in slabs of bounded size."""
    per_row = max(1, num_channels * math.prod(spatial[1:]))
    rows = max(1, _SLAB_VALUES // per_row)
    for start in range(0, spatial[0], rows):
        yield (slice(start, min(start + rows, spatial[0])),)


# The sums each measure needs besides the fused prediction's (``sum_p``); what a cache keeps for a later round
PIXEL_MEASURE_SUMS = {PixelUncertainty.KL: ("log_p",), PixelUncertainty.VARIANCE: ("p2",),
                      PixelUncertainty.ENTROPY: (), PixelUncertainty.VOTE: ("votes",)}
SAMPLE_MEASURE_SUMS = {SampleUncertainty.DUST: ("p2",), SampleUncertainty.DICE: ("votes",),
                       SampleUncertainty.ENTROPY: ()}
SUMS = ("log_p", "p2", "votes")


@dataclass
class EnsembleStatistics:
    """Sufficient statistics of an ensemble's softmax maps for one case.

    With M members and softmax maps p_m of shape ``(C, *spatial)``: ``sum_p`` = sum p_m, ``sum_log_p`` = sum
    log max(p_m, eps) (both ``(C, *spatial)``), ``sum_p2`` = sum_m sum_c p_m,c^2 (``spatial``), ``votes[m]`` =
    argmax_c p_m (uint8, one map per member). The fused prediction is p = sum_p / M; every measure below is exact in
    terms of these sums. Statistics restored from a cache may lack the optional ones (None): a measure that needs
    them is then not available (``has``).
    """

    sum_p: torch.Tensor
    sum_log_p: torch.Tensor | None
    sum_p2: torch.Tensor | None
    votes: list[torch.Tensor] | None = field(default_factory=list)
    num_members: int = 0

    @classmethod
    def empty(cls, num_classes: int, spatial: Sequence[int]) -> EnsembleStatistics:
        return cls(torch.zeros((num_classes, *spatial)), torch.zeros((num_classes, *spatial)),
                   torch.zeros(tuple(spatial)))

    @classmethod
    def from_probabilities(cls, probs: torch.Tensor) -> EnsembleStatistics:
        """Statistics of stacked members ``(M, C, *spatial)``."""
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

    def has(self, sums: Sequence[str]) -> bool:
        """Whether the optional sums named (``SUMS``) are kept."""
        kept = {"log_p": self.sum_log_p is not None, "p2": self.sum_p2 is not None, "votes": self.votes is not None}
        return all(kept[name] for name in sums)

    def add(self, probs: torch.Tensor) -> None:
        """Adds one member's softmax ``(C, *spatial)`` to every kept sum (in place, slab by slab)."""
        if tuple(probs.shape) != tuple(self.sum_p.shape):
            raise ValueError(f"member shape {tuple(probs.shape)} differs from {tuple(self.sum_p.shape)}")
        if self.num_classes > 255:
            raise ValueError("at most 255 classes: member argmax maps are stored as uint8")
        votes = torch.empty(self.spatial, dtype=torch.uint8)
        for slab in _slabs(self.spatial, self.num_classes):
            p = probs[(slice(None), *slab)].float()
            self.sum_p[(slice(None), *slab)] += p
            if self.sum_log_p is not None:
                self.sum_log_p[(slice(None), *slab)] += torch.log(p.clamp_min(_EPS))
            if self.sum_p2 is not None:
                self.sum_p2[slab] += (p * p).sum(0)
            votes[slab] = p.argmax(0).to(torch.uint8)
        if self.votes is not None:
            self.votes.append(votes)
        self.num_members += 1

    # --------------------------------------------------------------------------------------- per slab
    def _fused(self, slab: tuple[slice, ...]) -> torch.Tensor:
        return self.sum_p[(slice(None), *slab)] / self.num_members

    def _pixel(self, measure: PixelUncertainty, slab: tuple[slice, ...], fused: torch.Tensor) -> torch.Tensor:
        num_classes, total = self.num_classes, self.num_members
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
        disagreeing = sum((v[slab] != pseudo_label).float() for v in self.votes)
        # at least one member agrees with the fused argmax in practice, so M - 1 is the attainable maximum:
        # 1 when all but one model disagree (two models: 0 or 1, not 0 or 0.5)
        if total <= 1:  # one model cannot disagree with itself
            return torch.zeros_like(disagreeing)
        return (disagreeing / (total - 1)).clamp(0, 1)

    def cached_means(self, sums: Sequence[str]) -> dict[str, np.ndarray]:
        """What a cache entry keeps for a later round: the mean softmax ``"p"`` (float16 ``(C, *spatial)``) and the
        optional ``sums`` named: ``"log_p"`` (mean log-softmax, float16 ``(C, *spatial)``), ``"p2"`` (mean squared
        softmax, float16 ``(1, *spatial)``), ``"votes"`` (uint8 ``(M, *spatial)``). ``from_cached_means`` restores
        the sums."""
        means = {"p": self.sum_p, "log_p": self.sum_log_p, "p2": None if self.sum_p2 is None else self.sum_p2[None]}
        out = {}
        for name in ("p", *(n for n in SUMS if n in sums and n != "votes")):
            out[name] = np.empty(tuple(means[name].shape), dtype=np.float16)
            for slab in _slabs(self.spatial, means[name].shape[0]):
                out[name][(slice(None), *slab)] = (means[name][(slice(None), *slab)] / self.num_members).numpy()
        if "votes" in sums:
            out["votes"] = torch.stack(self.votes).numpy()
        return out

    @classmethod
    def from_cached_means(cls, means: dict[str, np.ndarray], num_members: int) -> EnsembleStatistics:
        def sums(name: str) -> torch.Tensor | None:
            if name not in means:
                return None
            restored = torch.from_numpy(means[name].astype(np.float32))
            restored *= num_members
            return restored

        p2 = sums("p2")
        votes = list(torch.from_numpy(means["votes"])) if "votes" in means else None
        return cls(sums("p"), sums("log_p"), None if p2 is None else p2[0], votes, num_members)

    # --------------------------------------------------------------------------------------- whole case
    def pseudo_label(self) -> torch.Tensor:
        """argmax_c of the fused prediction, uint8 ``spatial``."""
        out = torch.empty(self.spatial, dtype=torch.uint8)
        for slab in _slabs(self.spatial, self.num_classes):
            out[slab] = self._fused(slab).argmax(0).to(torch.uint8)
        return out

    def fused(self) -> torch.Tensor:
        """The fused prediction p = sum_m p_m / M, ``(C, *spatial)``."""
        return self.sum_p / self.num_members

    def pixel_uncertainty(self, measure: PixelUncertainty | str) -> torch.Tensor:
        """Pixel-level uncertainty in ``[0, 1]``, shape ``spatial``."""
        measure = PixelUncertainty(measure)
        if not self.has(PIXEL_MEASURE_SUMS[measure]):
            raise ValueError(f"the {measure.value} measure needs the sums {PIXEL_MEASURE_SUMS[measure]}, not kept here")
        out = torch.empty(self.spatial)
        for slab in _slabs(self.spatial, self.num_classes):
            out[slab] = self._pixel(measure, slab, self._fused(slab))
        return out

    def sample_uncertainty(self, measure: SampleUncertainty | str) -> float:
        """Sample-level uncertainty U(x) of the case (lower = more reliable)."""
        measure = SampleUncertainty(measure)
        if not self.has(SAMPLE_MEASURE_SUMS[measure]):
            raise ValueError(f"the {measure.value} measure needs the sums {SAMPLE_MEASURE_SUMS[measure]}, "
                             "not kept here")
        if measure is SampleUncertainty.DICE:
            return self._pairwise_dice_disagreement()
        total, count = 0.0, 0
        for slab in _slabs(self.spatial, self.num_classes):
            fused = self._fused(slab)
            if measure is SampleUncertainty.DUST:
                # mean over members, classes and pixels of (p_m - p)^2
                values = (self.sum_p2[slab] / self.num_members - (fused * fused).sum(0)) / self.num_classes
            else:
                values = self._pixel(PixelUncertainty.ENTROPY, slab, fused)
            # numpy's sequential pairwise sum: the same bits however many threads torch uses
            total += float(np.sum(values.numpy(), dtype=np.float64))
            count += values.numel()
        return total / count

    def _pairwise_dice_disagreement(self) -> float:
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
            # a class absent from both maps is perfect agreement
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


def pixel_weights(uncertainty: torch.Tensor, weighting: PixelWeighting | str,
                  threshold: float | torch.Tensor) -> torch.Tensor:
    """Loss weights in ``{0, 1}`` from a normalised pixel uncertainty map (``threshold``: a number, or one per
    pixel)."""
    if PixelWeighting(weighting) is PixelWeighting.NONE:
        return torch.ones_like(uncertainty, dtype=torch.float32)
    return (uncertainty <= threshold).float()
