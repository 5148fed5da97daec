"""How a cached pseudo-label becomes the label map a student trains on: PUM's mask, fixed or per class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from nnunet_dumm.cache import PseudoLabelCache
from nnunet_dumm.uncertainty import PixelUncertainty, PixelWeighting, pixel_weights

__all__ = ["PseudoLabelMaps", "class_quantile_thresholds", "selection_statistics"]


@dataclass(frozen=True)
class PseudoLabelMaps:
    """How a cache entry becomes the label map that the unlabeled data loader augments like a segmentation.

    The map is int16 ``(1, *spatial)``: the pseudo-label (-1 outside nnU-Net's nonzero crop, as in its own
    segmentations), with ``masked_label`` where the mask drops a pixel, so the mask travels through nnU-Net's spatial
    transform as one more label, not as a second channel to resample (0.79 -> 0.89 of nnU-Net's labeled loader's
    patches/s on a 3-D benchmark, benchmarks/results/pass_cost.md). ``weights`` is the one place that decides which
    pixels a round keeps, for training and for the diagnostics alike. ``class_thresholds`` (one per class, from
    ``class_quantile_thresholds``) replaces ``pixel_threshold``.
    """

    pixel_uncertainty: PixelUncertainty
    pixel_weighting: PixelWeighting
    pixel_threshold: float
    num_classes: int
    class_thresholds: tuple[float, ...] | None = None

    @property
    def masked_label(self) -> int:
        """The value of a dropped pixel: the first value above the classes (the value nnU-Net gives an ignore
        label)."""
        return self.num_classes

    def weights(self, quantised_uncertainty: np.ndarray, pseudo_label: np.ndarray | None = None) -> torch.Tensor:
        """The loss weight (0 or 1) of each pixel, from the cached uint8 ``round(255 u)`` (and its pseudo-label,
        which selects the threshold when there is one per class)."""
        u = torch.from_numpy(np.asarray(quantised_uncertainty)).float() / 255
        threshold = self.pixel_threshold
        if self.class_thresholds is not None:
            if pseudo_label is None:
                raise ValueError("per-class thresholds need the pseudo-label")
            threshold = torch.tensor(self.class_thresholds)[torch.from_numpy(np.asarray(pseudo_label)).long()]
        return pixel_weights(u, self.pixel_weighting, threshold)

    @cached_property
    def kept_table(self) -> np.ndarray:
        """bool ``(num_classes, 256)``: whether a pixel of each (pseudo-label, cached uncertainty level) is kept, by
        ``weights`` itself, so that a patch's mask is one table lookup (the weight is elementwise)."""
        levels = np.tile(np.arange(256, dtype=np.uint8), (self.num_classes, 1))
        classes = np.repeat(np.arange(self.num_classes, dtype=np.uint8)[:, None], 256, 1)
        return (self.weights(levels, classes) > 0).numpy()

    def label_map(self, pseudo_label: np.ndarray, quantised_uncertainty: np.ndarray,
                  nonzero: np.ndarray) -> np.ndarray:
        """The label map of a crop from the cached pseudo-label and uncertainty and the case's nonzero mask.

        Every step is one vectorised pass over the crop (boolean-indexed writes cost as much as all else
        together on a 3-D patch)."""
        table, u = self.kept_table, quantised_uncertainty
        outside = -(nonzero < 0).view(np.int8).astype(np.int16)  # -1 (every bit set) outside the crop, else 0
        # one threshold keeps the levels below a bound: a comparison, not a lookup
        kept = u < table[0].sum() if self.class_thresholds is None else table[pseudo_label, u]
        # the masked label lies above every class: a maximum puts it where the mask drops a pixel
        label = np.maximum(pseudo_label, (~kept).view(np.uint8) * np.uint8(self.masked_label))
        return (label.astype(np.int16) | outside)[None]


def class_quantile_thresholds(cache: PseudoLabelCache, cases: Sequence[str], measure: PixelUncertainty,
                              num_classes: int, keep_quantile: float) -> tuple[float, ...]:
    """Per pseudo-label class, the uncertainty below which ``keep_quantile`` of that class's pixels lie (over
    ``cases``): a mask that keeps the same share of every class, whatever the teachers' confidence."""
    counts = np.zeros((num_classes, 256), dtype=np.int64)
    for case in cases:
        labels = cache.pseudo_label(case).ravel()
        u = cache.pixel_uncertainty(case, measure).ravel()
        counts += np.bincount(labels.astype(np.int64) * 256 + u, minlength=num_classes * 256).reshape(num_classes, 256)
    thresholds = []
    for class_counts in counts:
        total = class_counts.sum()
        level = int(np.searchsorted(np.cumsum(class_counts), keep_quantile * total)) if total else 255
        thresholds.append(min(255, level) / 255)
    return tuple(thresholds)


def selection_statistics(label_maps: PseudoLabelMaps, cache: PseudoLabelCache, cases: Sequence[str]) -> dict:
    """Mean pixel uncertainty and share of pixels the mask keeps over a round's cases (logged every epoch)."""
    uncertainty, kept = [], []
    for case in cases:
        u = cache.pixel_uncertainty(case, label_maps.pixel_uncertainty)
        uncertainty.append(float(u.mean()) / 255)
        kept.append(float((label_maps.weights(u, cache.pseudo_label(case)) > 0).float().mean()))
    return {"mean_uncertainty": float(np.mean(uncertainty)), "kept_fraction": float(np.mean(kept))}
