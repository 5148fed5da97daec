"""Tests of the masked pseudo-label loss against nnU-Net's own Dice + CE (``nnunet_dumm.losses``), and of the
student's step: two forward/backward passes give the gradient of one joint pass (``nnUNetTrainerDUMM.train_step``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunet_dumm.losses import WeightedPseudoLabelLoss

MASKED = 9  # the masked label of the targets: above every class of these tests
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


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_without_masked_pixels_it_equals_nnunet_dice_and_ce(batch_dice, ndim):
    logits, labels = make_batch(3, 4, SPATIAL[ndim], seed=ndim)
    ours = WeightedPseudoLabelLoss(MASKED, batch_dice=batch_dice, ddp=False)(logits, labels)
    reference = nnunet_loss(batch_dice)(logits, labels)
    assert ours.ndim == 0
    torch.testing.assert_close(ours, reference)


def test_without_masked_pixels_its_gradients_equal_nnunet():
    logits, labels = make_batch(2, 3, (5, 5), seed=11)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    WeightedPseudoLabelLoss(MASKED, batch_dice=False)(a, labels).backward()
    nnunet_loss(False)(b, labels).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_batch_dice_setting_is_used():
    # with different per-sample foreground the two Dice forms differ, so the flag must reach the Dice term
    logits, labels = make_batch(3, 3, (6, 6), seed=4)
    labels[0] = 0
    batch = WeightedPseudoLabelLoss(MASKED, batch_dice=True)(logits, labels)
    per_sample = WeightedPseudoLabelLoss(MASKED, batch_dice=False)(logits, labels)
    assert not torch.isclose(batch, per_sample)


@pytest.mark.parametrize("batch_dice", [True, False])
def test_masked_pixels_do_not_influence_the_loss(batch_dice):
    logits, labels = make_batch(2, 3, (6, 6), seed=5)
    target = labels.clone()
    target[:, :, :3] = MASKED  # top half of every image dropped
    loss = WeightedPseudoLabelLoss(MASKED, batch_dice=batch_dice)

    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    value.backward()

    changed = logits.clone()
    changed[:, :, :3] = 10 * torch.randn_like(changed[:, :, :3])
    torch.testing.assert_close(loss(changed, target), value.detach())
    assert torch.all(x.grad[:, :, :3] == 0)
    assert x.grad[:, :, 3:].abs().sum() > 0


def test_masked_region_is_excluded_not_just_down_weighted():
    # the loss with the top half masked equals the loss computed on the bottom half alone
    logits, labels = make_batch(2, 3, (6, 6), seed=8)
    target = labels.clone()
    target[:, :, :3] = MASKED
    loss = WeightedPseudoLabelLoss(MASKED, batch_dice=False)
    torch.testing.assert_close(loss(logits, target), loss(logits[:, :, 3:], labels[:, :, 3:]))


@pytest.mark.parametrize("batch_dice", [True, False])
def test_an_all_masked_batch_gives_a_finite_loss_and_zero_gradient(batch_dice):
    logits, labels = make_batch(2, 4, (5, 4, 3), seed=6)
    x = logits.clone().requires_grad_(True)
    value = WeightedPseudoLabelLoss(MASKED, batch_dice=batch_dice)(x, torch.full_like(labels, MASKED))
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(x.grad).all()
    assert torch.all(x.grad == 0)


def test_inside_nnunet_deep_supervision_wrapper():
    weight_factors = (1.0, 0.5, 0.25)
    logits, labels = make_batch(2, 3, (8, 8), seed=7)
    dropped = torch.rand(labels.shape, generator=torch.Generator().manual_seed(1)) < 0.3
    target = torch.where(dropped, MASKED, labels)
    outputs = [logits, logits[:, :, ::2, ::2].clone(), logits[:, :, ::4, ::4].clone()]
    targets = [target, target[:, :, ::2, ::2], target[:, :, ::4, ::4]]
    loss = WeightedPseudoLabelLoss(MASKED, batch_dice=True)

    wrapped = DeepSupervisionWrapper(loss, weight_factors)(outputs, targets)
    expected = sum(w * loss(o, t) for w, o, t in zip(weight_factors, outputs, targets, strict=True))
    assert torch.isfinite(wrapped)
    torch.testing.assert_close(wrapped, expected)

    # without masked pixels the wrapped loss equals nnU-Net's wrapped Dice + CE
    full = [labels, labels[:, :, ::2, ::2], labels[:, :, ::4, ::4]]
    reference = DeepSupervisionWrapper(nnunet_loss(True), weight_factors)(outputs, full)
    torch.testing.assert_close(DeepSupervisionWrapper(loss, weight_factors)(outputs, full), reference)


def test_accepts_float_targets_like_nnunet_loaders():
    # nnU-Net's loaders may deliver the segmentation as a float tensor; the result must not change
    logits, labels = make_batch(2, 3, (4, 4), seed=10)
    target = torch.where(labels == 2, MASKED, labels)
    loss = WeightedPseudoLabelLoss(MASKED, batch_dice=False)
    torch.testing.assert_close(loss(logits, target.float()), loss(logits, target))


# --- the student's step ---------------------------------------------------------------------------------------


def _instance_norm_unet() -> torch.nn.Module:
    """A small nnU-Net network (instance norm, deep supervision), as nnU-Net's plans build it."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    return PlainConvUNet(1, 3, (4, 8, 16), torch.nn.Conv2d, 3, (1, 2, 2), 2, 3, (2, 2), True,
                         torch.nn.InstanceNorm2d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU,
                         {"inplace": True}, deep_supervision=True)


def test_two_passes_give_the_gradient_of_one_joint_pass():
    """``train_step`` backpropagates the labeled and the unlabeled batch one after the other (the activation memory
    of one batch); with instance norm this is the loss and gradient of one pass over both batches together."""
    from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM

    weight_factors = (1.0, 0.5, 0.0)  # nnU-Net's: the lowest resolution does not count
    supervised = DeepSupervisionWrapper(nnunet_loss(True), weight_factors)
    unlabeled = DeepSupervisionWrapper(WeightedPseudoLabelLoss(MASKED, batch_dice=True), weight_factors)
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(5, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (5, 1, 16, 16), generator=generator)
    labels[3:][torch.rand(2, 1, 16, 16, generator=generator) < 0.3] = MASKED  # the unlabeled batch's mask

    def pyramid(target):
        return [target, target[:, :, ::2, ::2], target[:, :, ::4, ::4]]

    weight = 0.37
    joint = _instance_norm_unet()
    outputs = joint(images)
    loss = supervised([o[:3] for o in outputs], pyramid(labels[:3])) + \
        weight * unlabeled([o[3:] for o in outputs], pyramid(labels[3:]))
    loss.backward()

    separate = _instance_norm_unet()
    trainer = SimpleNamespace(device=torch.device("cpu"), network=separate, grad_scaler=None)
    step = nnUNetTrainerDUMM._accumulate_gradient
    sup = step(trainer, {"data": images[:3], "target": pyramid(labels[:3])}, supervised, 1.0)
    unsup = step(trainer, {"data": images[3:], "target": pyramid(labels[3:])}, unlabeled, weight)
    torch.testing.assert_close(sup + weight * unsup, loss.detach())
    for (name, a), b in zip(joint.named_parameters(), separate.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
