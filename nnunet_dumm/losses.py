"""The unlabeled loss: nnU-Net's Dice + CE against pseudo-labels, weighted per pixel by PUM."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn
from torch.nn import functional as F

from nnunet_dumm.consistency import CutMix, online_targets

__all__ = ["LabeledPlusPseudoLabelLoss", "StrongViewTerm", "WeightedPseudoLabelLoss", "split_unlabeled_target"]


def split_unlabeled_target(target: torch.Tensor, weight_levels: int, masked_label: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``(B, 1, *spatial)`` and pixel weights in [0, 1] of an unlabeled target in either encoding of
    ``PseudoLabelMaps``: one channel (``masked_label`` where the mask drops a pixel) or label and weight level."""
    if target.shape[1] == 1:
        kept = target != masked_label
        return torch.where(kept, target, 0).long(), kept.float()
    return target[:, :1].long(), target[:, 1:2].float() / weight_levels


class WeightedPseudoLabelLoss(nn.Module):
    """Pixel-weighted soft Dice + cross-entropy against pseudo-labels (DUST's CE(z, y_hat) * exp(-D), with Dice).

    Both terms are weighted means: the cross-entropy is divided by the sum of the weights rather than the pixel
    count (DUST), so the loss scale, and with it lambda(t), does not depend on how many pixels a mask keeps.

    The target is the unlabeled data loader's label map (``PseudoLabelMaps``): the pseudo-label with dropped
    pixels at ``masked_label``, or the pseudo-label and the pixel weight quantised to ``0..weight_levels``; either
    travels through the spatial augmentation like a segmentation. A zero weight removes the pixel from both terms;
    an all-zero batch gives a finite loss without gradient.

    Args:
        weight_levels, masked_label: the encoding of the target.
        batch_dice, ddp: as in nnU-Net's ``MemoryEfficientSoftDiceLoss`` (taken from the plans/trainer).
    """

    def __init__(self, weight_levels: int, masked_label: int, batch_dice: bool, ddp: bool = False):
        super().__init__()
        self.weight_levels, self.masked_label = weight_levels, masked_label
        self.dice = MemoryEfficientSoftDiceLoss(
            apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=ddp
        )

    def forward(self, net_output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """net_output: (B, C, *spatial) logits; target: (B, 1 or 2, *spatial) as above."""
        labels, weights = split_unlabeled_target(target, self.weight_levels, self.masked_label)
        dice_loss = self.dice(net_output, labels, loss_mask=weights)
        ce = F.cross_entropy(net_output, labels[:, 0], reduction="none")
        ce_loss = (ce * weights[:, 0]).sum() / weights.sum().clamp_min(1e-8)
        return dice_loss + ce_loss


@dataclass(frozen=True)
class StrongViewTerm:
    """One step's weak-to-strong consistency (``nnunet_dumm.consistency``): the last ``num_unlabeled`` samples of
    the batch are strong views of the ``num_unlabeled`` before them, mixed by ``mix``; ``weight`` x the pseudo-label
    loss against the student's own confident predictions of the weak views is added to the unlabeled term."""

    num_unlabeled: int
    mix: CutMix
    threshold: float
    masked_label: int
    weight: float


class LabeledPlusPseudoLabelLoss(nn.Module):
    """nnU-Net's supervised loss on the first ``num_labeled`` samples of a batch, plus ``weight`` (lambda(t)) times
    the pseudo-label loss on the rest, for one forward pass over labeled and unlabeled patches together; with
    ``strong`` set, the rest is weak views then strong views, and the strong views' term is added (the weak views'
    outputs, detached, are their targets).

    Targets (one tensor, or one per deep-supervision scale) are stacked along the batch by ``stack_targets``:
    labeled targets get a second, unused channel where the unlabeled maps have two (label, weight); strong views
    have placeholder targets. ``last_terms`` holds the terms of the latest call for logging.
    """

    def __init__(self, supervised: nn.Module, unlabeled: nn.Module):
        super().__init__()
        self.supervised, self.unlabeled = supervised, unlabeled
        self.num_labeled, self.weight = 0, 0.0
        self.strong: StrongViewTerm | None = None
        self.last_terms: dict = {}

    @staticmethod
    def stack_targets(labeled: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
        padding = labeled.new_zeros((labeled.shape[0], unlabeled.shape[1] - labeled.shape[1], *labeled.shape[2:]))
        return torch.cat((torch.cat((labeled, padding), 1), unlabeled.to(labeled.dtype)))

    def forward(self, output, target) -> torch.Tensor:
        deep = isinstance(output, (list, tuple))
        outputs, targets = (output, target) if deep else ([output], [target])
        n, strong = self.num_labeled, self.strong
        end = n + strong.num_unlabeled if strong else None

        def part(tensors, start, stop, channels=slice(None)):
            parts = [t[start:stop, channels] for t in tensors]
            return parts if deep else parts[0]

        supervised = self.supervised(part(outputs, None, n), part(targets, None, n, slice(0, 1)))
        unlabeled = self.unlabeled(part(outputs, n, end), part(targets, n, end))
        self.last_terms = {"sup_loss": supervised.detach().cpu().numpy(),
                           "unsup_loss": unlabeled.detach().cpu().numpy()}
        if strong:
            online = [online_targets(o[n:end], strong.mix, strong.threshold, strong.masked_label) for o in outputs]
            consistency = self.unlabeled(part(outputs, end, None), online if deep else online[0])
            self.last_terms |= {"consistency_loss": consistency.detach().cpu().numpy(),
                                "consistency_kept": (online[0] != strong.masked_label).float().mean().cpu().numpy()}
            unlabeled = unlabeled + strong.weight * consistency
        return supervised + self.weight * unlabeled
