"""Tests of the pixel-weighted pseudo-label loss against nnU-Net's own Dice + CE (``nnunet_dumm.losses``)."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunet_dumm.losses import LabeledPlusPseudoLabelLoss, WeightedPseudoLabelLoss

WEIGHT_LEVELS = 8
MASKED = 9  # the masked label of one-channel targets: above every class of these tests
SPATIAL = {2: (6, 7), 3: (4, 5, 3)}


def nnunet_loss(batch_dice: bool) -> DC_and_CE_loss:
    """The loss nnU-Net's stock trainer builds for region-free, ignore-label-free datasets."""
    return DC_and_CE_loss(
        {"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False},
        {},
        weight_ce=1,
        weight_dice=1,
        ignore_label=None,
        dice_class=MemoryEfficientSoftDiceLoss,
    )


def make_batch(batch: int, num_classes: int, spatial: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C, *spatial) and labels (B, 1, *spatial) as the data loader delivers them."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(batch, num_classes, *spatial, generator=generator)
    labels = torch.randint(0, num_classes, (batch, 1, *spatial), generator=generator)
    return logits, labels


def with_weights(labels: torch.Tensor, levels: torch.Tensor | int) -> torch.Tensor:
    """Two-channel target: label and weight level."""
    weights = torch.as_tensor(levels).expand_as(labels).to(labels.dtype)
    return torch.cat([labels, weights], dim=1)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_full_weight_equals_nnunet_dice_and_ce(batch_dice, ndim):
    logits, labels = make_batch(3, 4, SPATIAL[ndim], seed=ndim)
    target = with_weights(labels, WEIGHT_LEVELS)
    ours = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=batch_dice, ddp=False)(logits, target)
    reference = nnunet_loss(batch_dice)(logits, target[:, :1])
    assert ours.ndim == 0
    torch.testing.assert_close(ours, reference)


def test_full_weight_gradients_equal_nnunet():
    logits, labels = make_batch(2, 3, (5, 5), seed=11)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=False)(a, with_weights(labels, WEIGHT_LEVELS)).backward()
    nnunet_loss(False)(b, labels).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_batch_dice_setting_is_used():
    # with different per-sample foreground the two Dice forms differ, so the flag must reach the Dice term
    logits, labels = make_batch(3, 3, (6, 6), seed=4)
    labels[0] = 0
    target = with_weights(labels, WEIGHT_LEVELS)
    batch = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=True)(logits, target)
    per_sample = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=False)(logits, target)
    assert not torch.isclose(batch, per_sample)


@pytest.mark.parametrize("batch_dice", [True, False])
def test_zero_weight_pixels_do_not_influence_the_loss(batch_dice):
    logits, labels = make_batch(2, 3, (6, 6), seed=5)
    levels = torch.full_like(labels, WEIGHT_LEVELS)
    levels[:, :, :3] = 0  # top half of every image ignored
    levels[1, :, 4, 2] = 3  # a partial weight somewhere in the kept half
    target = torch.cat([labels, levels], dim=1)
    loss = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=batch_dice)

    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()

    changed = logits.clone()
    changed[:, :, :3] = 10 * torch.randn_like(changed[:, :, :3])
    other_labels = target.clone()
    other_labels[:, 0, :3] = (other_labels[:, 0, :3] + 1) % 3  # labels under zero weight do not matter either
    torch.testing.assert_close(loss(changed, other_labels), value.detach())

    assert torch.all(x.grad[:, :, :3] == 0)
    assert x.grad[:, :, 3:].abs().sum() > 0


def test_zero_weight_region_is_excluded_not_just_down_weighted():
    # the loss with the top half masked equals the loss computed on the bottom half alone
    logits, labels = make_batch(2, 3, (6, 6), seed=8)
    levels = torch.full_like(labels, WEIGHT_LEVELS)
    levels[:, :, :3] = 0
    loss = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=False)
    masked = loss(logits, torch.cat([labels, levels], dim=1))
    cropped = loss(logits[:, :, 3:], with_weights(labels[:, :, 3:], WEIGHT_LEVELS))
    torch.testing.assert_close(masked, cropped)


def test_partial_weights_scale_cross_entropy_as_weighted_mean():
    # C = 2, two pixels with weights 1 and 1/4: CE is the weighted mean, the weights mask the soft Dice sums
    logits, labels = make_batch(1, 2, (1, 2), seed=9)
    ce = torch.nn.functional.cross_entropy(logits, labels[:, 0], reduction="none")[0, 0]  # (2,)
    loss = WeightedPseudoLabelLoss(4, MASKED, batch_dice=False)
    levels = torch.tensor([[[[4, 1]]]])
    value = loss(logits, torch.cat([labels, levels], dim=1))
    weights = torch.tensor([1.0, 0.25])
    expected_ce = (ce * weights).sum() / weights.sum()
    probs = torch.softmax(logits, 1)[0, 1:, 0]  # foreground probability (1, 2)
    onehot = (labels[0, :, 0] == 1).float()
    intersect = (probs * onehot * weights).sum()
    dice = (2 * intersect + 1e-5) / ((probs * weights).sum() + (onehot * weights).sum() + 1e-5)
    torch.testing.assert_close(value, expected_ce - dice)


@pytest.mark.parametrize("batch_dice", [True, False])
def test_all_zero_weights_give_finite_loss_and_zero_gradient(batch_dice):
    logits, labels = make_batch(2, 4, (5, 4, 3), seed=6)
    x = logits.clone().requires_grad_(True)
    value = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=batch_dice)(x, with_weights(labels, 0))
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad == 0)


def test_inside_nnunet_deep_supervision_wrapper():
    weight_factors = (1.0, 0.5, 0.25)
    logits, labels = make_batch(2, 3, (8, 8), seed=7)
    levels = torch.randint(0, WEIGHT_LEVELS + 1, labels.shape, generator=torch.Generator().manual_seed(1))
    target = torch.cat([labels, levels], dim=1)
    outputs = [logits, logits[:, :, ::2, ::2].clone(), logits[:, :, ::4, ::4].clone()]
    targets = [target, target[:, :, ::2, ::2], target[:, :, ::4, ::4]]
    loss = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=True)

    wrapped = DeepSupervisionWrapper(loss, weight_factors)(outputs, targets)
    expected = sum(w * loss(o, t) for w, o, t in zip(weight_factors, outputs, targets, strict=True))
    assert torch.isfinite(wrapped)
    torch.testing.assert_close(wrapped, expected)

    # with full weights the wrapped loss equals nnU-Net's wrapped Dice + CE
    full = [with_weights(t[:, :1], WEIGHT_LEVELS) for t in targets]
    reference = DeepSupervisionWrapper(nnunet_loss(True), weight_factors)(outputs, [t[:, :1] for t in targets])
    torch.testing.assert_close(DeepSupervisionWrapper(loss, weight_factors)(outputs, full), reference)


def test_accepts_float_targets_like_nnunet_loaders():
    # nnU-Net's loaders may deliver the segmentation as a float tensor; the result must not change
    logits, labels = make_batch(2, 3, (4, 4), seed=10)
    target = with_weights(labels, WEIGHT_LEVELS)
    loss = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=False)
    torch.testing.assert_close(loss(logits, target.float()), loss(logits, target))


@pytest.mark.parametrize("batch_dice", [True, False])
def test_one_channel_target_with_masked_pixels_equals_binary_weights(batch_dice):
    """The mask and none weightings encode a dropped pixel as MASKED in the label channel: the same loss and
    gradient as the two-channel map with weight 0 there."""
    logits, labels = make_batch(2, 4, (6, 5), seed=12)
    dropped = torch.rand(labels.shape, generator=torch.Generator().manual_seed(2)) < 0.3
    one_channel = torch.where(dropped, MASKED, labels)
    two_channels = torch.cat([labels, torch.where(dropped, 0, WEIGHT_LEVELS)], dim=1)
    loss = WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=batch_dice)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours, reference = loss(a, one_channel), loss(b, two_channels)
    ours.backward()
    reference.backward()
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(a.grad, b.grad)


def test_labeled_targets_stack_with_either_encoding():
    labeled = torch.randint(0, 3, (2, 1, 4, 4))
    for channels in (1, 2):
        unlabeled = torch.randint(0, 3, (3, channels, 4, 4))
        stacked = LabeledPlusPseudoLabelLoss.stack_targets(labeled, unlabeled)
        assert stacked.shape == (5, channels, 4, 4)
        torch.testing.assert_close(stacked[:2, :1], labeled)
        torch.testing.assert_close(stacked[2:], unlabeled)


def test_strong_views_learn_the_students_own_confident_predictions_of_the_weak_views():
    """With a strong-view term the batch is labeled, weak, strong: the strong views' targets are the weak views'
    detached outputs (confident pixels, mixed like the strong views), at every deep-supervision scale."""
    from nnunet_dumm.consistency import CutMix, online_targets
    from nnunet_dumm.losses import StrongViewTerm

    weight_factors = (1.0, 0.5)
    supervised = DeepSupervisionWrapper(nnunet_loss(True), weight_factors)
    unlabeled = DeepSupervisionWrapper(WeightedPseudoLabelLoss(WEIGHT_LEVELS, MASKED, batch_dice=True), weight_factors)
    combined = LabeledPlusPseudoLabelLoss(supervised, unlabeled)
    logits, labels = make_batch(2 + 3 + 3, 3, (8, 8), seed=20)
    logits = logits.requires_grad_(True)
    outputs = [logits, logits[:, :, ::2, ::2]]
    targets = [labels, labels[:, :, ::2, ::2]]
    mix = CutMix((1, 2, 0), (((0, 0), (4, 4)), None, ((2, 4), (6, 4))), (8, 8))
    combined.num_labeled, combined.weight = 2, 0.5
    combined.strong = StrongViewTerm(3, mix, 0.6, MASKED, 2.0)
    value = combined(outputs, targets)

    online = [online_targets(o[2:5], mix, 0.6, MASKED) for o in outputs]
    assert not online[0].requires_grad
    assert 0 < (online[0] != MASKED).float().mean() < 1  # some pixels confident, some not
    expected = (supervised([o[:2] for o in outputs], [t[:2] for t in targets])
                + 0.5 * (unlabeled([o[2:5] for o in outputs], [t[2:5] for t in targets])
                         + 2.0 * unlabeled([o[5:] for o in outputs], online)))
    torch.testing.assert_close(value, expected)
    assert set(combined.last_terms) == {"sup_loss", "unsup_loss", "consistency_loss", "consistency_kept"}

    # no gradient reaches the weak views through their role as targets: the weak views' gradient is that of their
    # own pseudo-label term alone
    value.backward()
    alone = logits.detach().clone().requires_grad_(True)
    (0.5 * unlabeled([alone[2:5], alone[2:5, :, ::2, ::2]], [t[2:5] for t in targets])).backward()
    torch.testing.assert_close(logits.grad[2:5], alone.grad[2:5])
