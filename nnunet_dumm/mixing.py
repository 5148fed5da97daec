"""Copy-paste between labeled and unlabeled patches (after BCP, Bai et al., CVPR 2023).

A box of each labeled patch, with its true label at full weight, is pasted into an unlabeled patch, whose pseudo-label
and weights stay outside the box. The student then sees labeled and unlabeled content side by side in one image,
which BCP found to close the gap between the two distributions (its largest gain on ACDC with 7 labeled patients).
Applied after nnU-Net's augmentation, to every deep-supervision scale of the targets alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["paste_labeled_into_unlabeled"]


def paste_labeled_into_unlabeled(
    labeled_data: torch.Tensor,
    labeled_targets: Sequence[torch.Tensor],
    unlabeled_data: torch.Tensor,
    unlabeled_targets: Sequence[torch.Tensor],
    box_fraction: float,
    weight_levels: int,
    masked_label: int,
    ignore_label: int | None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Unlabeled patches with a box of a labeled patch pasted in.

    Args:
        labeled_data: ``(B_l, c, *patch)``; labeled_targets: per scale ``(B_l, 1, *scaled)`` true labels.
        unlabeled_data: ``(B_u, c, *patch)``; unlabeled_targets: per scale ``(B_u, 1 or 2, *scaled)`` label maps
            (``PseudoLabelMaps``: label with dropped pixels at ``masked_label``, or label and weight level).
        box_fraction: the box's side relative to the patch on every axis (BCP: 2/3).
        weight_levels, masked_label: the encoding of the unlabeled targets (true labels count fully).
        ignore_label: pixels of the true label with this value are dropped in the box.
        generator: where box positions are drawn from.

    Returns:
        The mixed unlabeled data and targets (new tensors; the inputs are not changed). Unlabeled sample j takes
        its box from labeled sample ``j mod B_l``, at the same place in both patches.
    """
    data = unlabeled_data.clone()
    targets = [t.clone() for t in unlabeled_targets]
    patch = data.shape[2:]
    for j in range(data.shape[0]):
        i = j % labeled_data.shape[0]
        size = [max(1, round(box_fraction * p)) for p in patch]
        start = [int(torch.randint(0, p - s + 1, (1,), generator=generator)) for p, s in zip(patch, size)]
        data[(j, slice(None), *(slice(a, a + s) for a, s in zip(start, size)))] = \
            labeled_data[(i, slice(None), *(slice(a, a + s) for a, s in zip(start, size)))]
        for target, labeled in zip(targets, labeled_targets):
            # the same box on a coarser deep-supervision scale
            scale = [t / p for t, p in zip(target.shape[2:], patch)]
            box = tuple(slice(round(a * f), max(round(a * f) + 1, round((a + s) * f)))
                        for a, s, f in zip(start, size, scale))
            label = labeled[(i, 0, *box)].to(target.dtype)
            ignored = label == ignore_label if ignore_label is not None else torch.zeros_like(label, dtype=torch.bool)
            if target.shape[1] == 1:
                target[(j, 0, *box)] = torch.where(ignored, masked_label, label)
            else:
                target[(j, 0, *box)] = torch.where(ignored, 0, label)
                target[(j, 1, *box)] = torch.where(ignored, 0, weight_levels)
    return data, targets
