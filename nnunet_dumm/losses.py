"""The unlabeled loss: nnU-Net's Dice + CE against pseudo-labels, weighted per pixel by PUM."""

from __future__ import annotations

import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn
from torch.nn import functional as F

__all__ = ["WeightedPseudoLabelLoss"]


class WeightedPseudoLabelLoss(nn.Module):
    """Pixel-weighted soft Dice + cross-entropy against pseudo-labels (DUST's CE(z, y_hat) * exp(-D), with Dice).

    Both terms are weighted means: the cross-entropy is divided by the sum of the weights rather than the pixel
    count (DUST), so the loss scale, and with it lambda(t), does not depend on how many pixels a mask keeps.

    The target has two channels, as produced by the unlabeled data loader: channel 0 the pseudo-label,
    channel 1 the pixel weight quantised to ``0..weight_levels`` (it travels through the spatial augmentation
    like a segmentation). A zero weight removes the pixel from both terms; an all-zero batch gives a finite
    loss without gradient.

    Args:
        weight_levels: the quantisation of channel 1.
        batch_dice, ddp: as in nnU-Net's ``MemoryEfficientSoftDiceLoss`` (taken from the plans/trainer).
    """

    def __init__(self, weight_levels: int, batch_dice: bool, ddp: bool = False):
        super().__init__()
        self.weight_levels = weight_levels
        self.dice = MemoryEfficientSoftDiceLoss(
            apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=ddp
        )

    def forward(self, net_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """net_output: (B, C, *spatial) logits; target: (B, 2, *spatial) integer label and weight level."""
        labels = target[:, :1].long()
        weights = target[:, 1:2].float() / self.weight_levels
        dice_loss = self.dice(net_output, labels, loss_mask=weights)
        ce = F.cross_entropy(net_output, labels[:, 0], reduction="none")
        ce_loss = (ce * weights[:, 0]).sum() / weights.sum().clamp_min(1e-8)
        return dice_loss + ce_loss
