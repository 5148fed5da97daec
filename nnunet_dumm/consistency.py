"""Weak-to-strong consistency on unlabeled patches (FixMatch, Sohn et al., NeurIPS 2020; UniMatch, Yang et al.,
CVPR 2023), on top of the ensemble's pseudo-labels.

DUMM's pseudo-labels are fixed before the student trains, so the student learns to reproduce its teachers' ensemble
and cannot get past it. Here the student also labels its unlabeled batch itself, online: its own prediction of the
patch nnU-Net augmented (the weak view, already in the training batch) is the target, where it is confident, for a
strongly perturbed copy of that patch (intensity jitter, blur, noise and CutMix between patches of the batch, the
strong view). The targets improve as the student does, and the student must give the same answer under perturbations
that the teachers never saw. The two views are one forward pass: the weak view's outputs are detached and become the
strong view's targets inside the loss, at every deep-supervision scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["CutMix", "online_targets", "strong_view"]

# UniMatch's strong view: colour jitter with probability 0.8, blur 0.5, CutMix 0.5 with a box of 2-40 % of the patch
JITTER_PROBABILITY = 0.8
BLUR_PROBABILITY = 0.5
CUTMIX_PROBABILITY = 0.5
CUTMIX_AREA = (0.02, 0.4)


@dataclass(frozen=True)
class CutMix:
    """Which patch of the batch each strong view takes a box from (``partner``), and the box (start and size per
    spatial axis of the full-resolution ``patch_shape``; ``None`` where a sample was not mixed)."""

    partner: tuple[int, ...]
    boxes: tuple[tuple[tuple[int, ...], tuple[int, ...]] | None, ...]
    patch_shape: tuple[int, ...]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, c, *spatial), at the patch's resolution or a coarser deep-supervision scale of it, mixed like
        the strong view (the boxes scaled to its shape, as nnunet_dumm.mixing does)."""
        if not any(self.boxes):
            return x
        mixed = x.clone()
        for i, box in enumerate(self.boxes):
            if box is not None:
                region = _scaled_box(box, self.patch_shape, tuple(x.shape[2:]))
                mixed[(i, slice(None), *region)] = x[(self.partner[i], slice(None), *region)]
        return mixed

    @classmethod
    def draw(cls, batch_size: int, patch_shape: tuple[int, ...], probability: float = CUTMIX_PROBABILITY,
             area: tuple[float, float] = CUTMIX_AREA, generator: torch.Generator | None = None) -> CutMix:
        """A partner per patch (a permutation of the batch) and, with ``probability``, a box of ``area`` (share of
        the patch, drawn uniformly) with the patch's aspect ratio at a uniform position."""
        partner = torch.randperm(batch_size, generator=generator).tolist()
        boxes = []
        for _ in range(batch_size):
            if float(torch.rand((), generator=generator)) >= probability:
                boxes.append(None)
                continue
            share = area[0] + (area[1] - area[0]) * float(torch.rand((), generator=generator))
            size = [max(1, round(p * share ** (1 / len(patch_shape)))) for p in patch_shape]
            start = [int(torch.randint(0, p - s + 1, (1,), generator=generator)) for p, s in zip(patch_shape, size)]
            boxes.append((tuple(start), tuple(size)))
        return cls(tuple(partner), tuple(boxes), tuple(patch_shape))


def _scaled_box(box: tuple[tuple[int, ...], tuple[int, ...]], patch: tuple[int, ...],
                shape: tuple[int, ...]) -> tuple[slice, ...]:
    start, size = box
    scale = [t / p for t, p in zip(shape, patch)]
    return tuple(slice(round(a * f), max(round(a * f) + 1, round((a + s) * f))) for a, s, f in zip(start, size, scale))


def strong_view(data: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, CutMix]:
    """The strong view of a batch of augmented patches ``(B, c, *spatial)`` (nnU-Net-normalised intensities):
    per patch, with UniMatch's probabilities, contrast (about the patch mean) and brightness jitter (x 0.5-1.5
    each) plus Gaussian noise (sigma up to 0.1), Gaussian blur (sigma 0.1-2 voxels), then CutMix with another
    perturbed patch of the batch. Intensity changes keep every voxel where it is, so the weak view's prediction
    stays aligned; CutMix is returned to mix the targets."""
    views = []
    for patch in data:
        view = patch
        if float(torch.rand((), generator=generator)) < JITTER_PROBABILITY:
            brightness, contrast = (0.5 + torch.rand(2, generator=generator)).tolist()
            mean = view.mean(dim=tuple(range(1, view.ndim)), keepdim=True)
            noise = 0.1 * float(torch.rand((), generator=generator)) * torch.randn(view.shape, generator=generator)
            view = ((view - mean) * contrast + mean) * brightness + noise
        if float(torch.rand((), generator=generator)) < BLUR_PROBABILITY:
            view = _gaussian_blur(view, 0.1 + 1.9 * float(torch.rand((), generator=generator)))
        views.append(view)
    perturbed = torch.stack(views)
    mix = CutMix.draw(data.shape[0], tuple(data.shape[2:]), generator=generator)
    return mix.apply(perturbed), mix


def _gaussian_blur(patch: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(c, *spatial)`` along every spatial axis (edges replicated)."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=patch.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = patch
    for axis in range(1, patch.ndim):
        moved = out.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        flat = F.conv1d(F.pad(flat, (radius, radius), mode="replicate"), kernel.view(1, 1, -1))
        out = flat.reshape(moved.shape).movedim(-1, axis)
    return out


def online_targets(weak_logits: torch.Tensor, mix: CutMix, threshold: float, masked_label: int) -> torch.Tensor:
    """The strong view's targets from the student's own logits of the weak view ``(B, C, *spatial)`` (any
    deep-supervision scale): the argmax where the softmax maximum reaches ``threshold``, ``masked_label`` (dropped,
    the one-channel encoding of ``PseudoLabelMaps``) elsewhere, mixed like the strong view. No gradient flows."""
    confidence, label = torch.softmax(weak_logits.detach().float(), 1).max(1, keepdim=True)
    return mix.apply(torch.where(confidence >= threshold, label, masked_label))
