"""The unlabeled loss: nnU-Net's Dice + CE against pseudo-labels, with PUM's masked pixels left out."""

from __future__ import annotations

import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn
from torch.nn import functional as F

__all__ = ["WeightedPseudoLabelLoss", "split_unlabeled_target"]


def split_unlabeled_target(target: torch.Tensor, masked_label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``(B, 1, *spatial)`` and pixel weights in {0, 1} of an unlabeled target (``PseudoLabelMaps``:
    ``masked_label`` where the mask drops a pixel)."""
    kept = target != masked_label
    return torch.where(kept, target, 0).long(), kept.float()


class WeightedPseudoLabelLoss(nn.Module):
    """Masked soft Dice + cross-entropy against pseudo-labels (DUST's CE(z, y_hat) * w, with Dice).

    Both terms are weighted means: the cross-entropy is divided by the number of kept pixels rather than all
    pixels (DUST), so the loss scale, and with it lambda(t), does not depend on how many pixels a mask keeps.

    The target is the unlabeled data loader's label map (``PseudoLabelMaps``): the pseudo-label with dropped pixels
    at ``masked_label``, which travels through the spatial augmentation like a segmentation. A dropped pixel is
    removed from both terms; an all-dropped batch gives a finite loss without gradient.

    Args:
        masked_label: the value of a dropped pixel.
        batch_dice, ddp: as in nnU-Net's ``MemoryEfficientSoftDiceLoss`` (taken from the plans/trainer).
    """

    def __init__(self, masked_label: int, batch_dice: bool, ddp: bool = False):
        super().__init__()
        self.masked_label = masked_label
        self.dice = MemoryEfficientSoftDiceLoss(
            apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=ddp
        )

    def forward(self, net_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """net_output: (B, C, *spatial) logits; target: (B, 1, *spatial) as above."""
        labels, weights = split_unlabeled_target(target, self.masked_label)
        dice_loss = self.dice(net_output, labels, loss_mask=weights)
        ce = F.cross_entropy(net_output, labels[:, 0], reduction="none")
        ce_loss = (ce * weights[:, 0]).sum() / weights.sum().clamp_min(1e-8)
        return dice_loss + ce_loss
