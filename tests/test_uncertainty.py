"""Known-answer tests of the PUM/SUS measures in ``nnunet_dumm.uncertainty`` (METHOD.md section 2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from nnunet_dumm.uncertainty import (
    PixelUncertainty,
    PixelWeighting,
    SampleUncertainty,
    fuse_probabilities,
    pixel_uncertainty,
    pixel_weights,
    sample_uncertainty,
)

ATOL = 1e-5


def one_hot_probs(label_maps: list[list], num_classes: int) -> torch.Tensor:
    """Probabilities (M, C, *spatial) that put all mass on the given argmax map of each model."""
    labels = torch.tensor(label_maps)
    return F.one_hot(labels, num_classes).movedim(-1, 1).float()


def random_probs(num_models: int, num_classes: int, spatial: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(num_models, num_classes, *spatial, generator=generator)
    return torch.softmax(logits, dim=1)


# --- fusion ---------------------------------------------------------------------------------------------------


def test_fuse_probabilities_is_the_mean_over_models():
    probs = torch.tensor([[[0.9], [0.1]], [[0.5], [0.5]], [[0.1], [0.9]], [[0.3], [0.7]]])  # (M=4, C=2, 1)
    fused = fuse_probabilities(probs)
    assert fused.shape == (2, 1)
    torch.testing.assert_close(fused, torch.tensor([[0.45], [0.55]]))


# --- pixel-level uncertainty ----------------------------------------------------------------------------------


@pytest.mark.parametrize("num_models", [2, 3, 5])
@pytest.mark.parametrize("measure", ["kl", "variance", "vote"])
def test_identical_models_have_zero_disagreement(measure, num_models):
    single = random_probs(1, 4, (6, 5), seed=0)
    probs = single.expand(num_models, -1, -1, -1).clone()
    u = pixel_uncertainty(probs, measure)
    assert u.shape == (6, 5)
    torch.testing.assert_close(u, torch.zeros(6, 5), atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_classes", [2, 3, 7])
def test_entropy_of_uniform_fused_prediction_is_one(num_classes):
    probs = torch.full((3, num_classes, 4, 4), 1.0 / num_classes)
    u = pixel_uncertainty(probs, PixelUncertainty.ENTROPY)
    torch.testing.assert_close(u, torch.ones(4, 4), atol=ATOL, rtol=0)


def test_entropy_of_one_hot_fused_prediction_is_zero():
    probs = one_hot_probs([[[0, 1], [2, 1]], [[0, 1], [2, 1]]], num_classes=3)
    torch.testing.assert_close(pixel_uncertainty(probs, "entropy"), torch.zeros(2, 2), atol=ATOL, rtol=0)


def test_opposite_one_hot_models_with_two_classes():
    # model 0 says class 0 everywhere, model 1 says class 1 everywhere: fused = (0.5, 0.5)
    probs = one_hot_probs([[[0, 0, 0]], [[1, 1, 1]]], num_classes=2)  # (2, 2, 1, 3)
    ones = torch.ones(1, 3)
    torch.testing.assert_close(pixel_uncertainty(probs, "variance"), ones, atol=ATOL, rtol=0)
    # one of two models disagrees: as much disagreement as two models can have
    torch.testing.assert_close(pixel_uncertainty(probs, "vote"), ones, atol=ATOL, rtol=0)
    torch.testing.assert_close(pixel_uncertainty(probs, "entropy"), ones, atol=ATOL, rtol=0)
    # the raw KL is 0.5 * ln(0.5 / eps) + 0.5 * ln(0.5) >> ln 2 with one-hot inputs: clipped to 1
    torch.testing.assert_close(pixel_uncertainty(probs, "kl"), ones, atol=ATOL, rtol=0)


def test_pixel_measures_known_values_for_soft_predictions():
    # p_1 = (0.9, 0.1), p_2 = (0.5, 0.5) -> p = (0.7, 0.3)
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5]]).reshape(2, 2, 1)
    log2 = math.log(2)
    kl_1 = 0.7 * math.log(0.7 / 0.9) + 0.3 * math.log(0.3 / 0.1)
    kl_2 = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)
    expected = {
        "kl": (kl_1 + kl_2) / 2 / log2,
        "variance": ((0.2**2 + 0.2**2) + (0.2**2 + 0.2**2)) / 2 / (1 - 1 / 2),
        "entropy": -(0.7 * math.log(0.7) + 0.3 * math.log(0.3)) / log2,
        "vote": 0.0,  # both models agree with the pseudo-label (class 0)
    }
    for measure, value in expected.items():
        u = pixel_uncertainty(probs, measure)
        assert u.shape == (1,)
        assert u.item() == pytest.approx(value, abs=1e-5), measure


def test_vote_counts_models_that_disagree_with_the_fused_argmax():
    # 4 models, 3 classes, 1 pixel: argmax maps 0, 0, 0, 2 with the fused argmax 0 -> 1 of at most 3 disagree
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.6, 0.1, 0.3], [0.2, 0.2, 0.6]]).reshape(4, 3, 1)
    assert pixel_uncertainty(probs, PixelUncertainty.VOTE).item() == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("num_models", "num_classes", "spatial"),
    [(2, 2, (8, 8)), (3, 4, (5, 6)), (5, 3, (3, 4, 5)), (4, 8, (2, 3, 3)), (1, 3, (4, 4))],
)
@pytest.mark.parametrize("measure", list(PixelUncertainty))
def test_pixel_uncertainty_is_in_unit_interval_with_spatial_shape(measure, num_models, num_classes, spatial):
    probs = random_probs(num_models, num_classes, spatial, seed=num_models * 10 + num_classes)
    u = pixel_uncertainty(probs, measure)
    assert u.shape == spatial
    assert torch.isfinite(u).all()
    assert u.min() >= 0 and u.max() <= 1


@pytest.mark.parametrize("measure", ["kl", "variance", "vote"])
def test_single_model_has_zero_pixel_disagreement(measure):
    probs = random_probs(1, 3, (4, 4), seed=3)
    torch.testing.assert_close(pixel_uncertainty(probs, measure), torch.zeros(4, 4), atol=ATOL, rtol=0)


# --- sample-level uncertainty ---------------------------------------------------------------------------------


@pytest.mark.parametrize("measure", ["dust", "dice"])
def test_identical_models_have_zero_sample_uncertainty(measure):
    probs = random_probs(1, 3, (6, 6), seed=1).expand(3, -1, -1, -1).clone()
    assert sample_uncertainty(probs, measure) == pytest.approx(0.0, abs=1e-7)


def test_sample_dust_is_mean_squared_deviation_from_fused():
    # opposite one-hot predictions: every (p_m - p)^2 entry is 0.25
    probs = one_hot_probs([[[0, 0], [0, 0]], [[1, 1], [1, 1]]], num_classes=2)
    assert sample_uncertainty(probs, SampleUncertainty.DUST) == pytest.approx(0.25)


def test_sample_entropy_is_mean_normalised_pixel_entropy():
    uniform = torch.full((2, 4, 3, 3), 0.25)
    assert sample_uncertainty(uniform, "entropy") == pytest.approx(1.0, abs=1e-5)
    # one one-hot pixel (entropy 0) and one uniform pixel (entropy 1) -> mean 0.5
    probs = torch.full((2, 4, 2), 0.25)
    probs[:, :, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert sample_uncertainty(probs, "entropy") == pytest.approx(0.5, abs=1e-5)


def test_sample_dice_of_disjoint_foreground_is_one():
    probs = one_hot_probs([[[1, 1, 0, 0]], [[0, 0, 1, 1]]], num_classes=2)
    assert sample_uncertainty(probs, "dice") == pytest.approx(1.0)


def test_sample_dice_counts_class_absent_in_both_maps_as_agreement():
    # C = 3: class 1 identical in both maps, class 2 absent from both -> perfect agreement
    probs = one_hot_probs([[[1, 1, 0, 0]], [[1, 1, 0, 0]]], num_classes=3)
    assert sample_uncertainty(probs, "dice") == pytest.approx(0.0)
    # class 1 disjoint (Dice 0), class 2 absent from both (Dice 1) -> 1 - 0.5
    probs = one_hot_probs([[[1, 1, 0, 0]], [[0, 0, 1, 1]]], num_classes=3)
    assert sample_uncertainty(probs, "dice") == pytest.approx(0.5)
    # both maps all background: nothing to disagree on
    probs = one_hot_probs([[[0, 0, 0, 0]], [[0, 0, 0, 0]]], num_classes=2)
    assert sample_uncertainty(probs, "dice") == pytest.approx(0.0)


def test_sample_dice_partial_overlap_and_pairwise_mean():
    # a = {0, 1}, b = {1, 2}: Dice = 2 * 1 / (2 + 2) = 0.5
    probs = one_hot_probs([[[1, 1, 0, 0]], [[0, 1, 1, 0]]], num_classes=2)
    assert sample_uncertainty(probs, "dice") == pytest.approx(0.5)
    # maps a, a, b with a and b disjoint: pairwise Dice 1, 0, 0 -> 1 - 1/3
    probs = one_hot_probs([[[1, 1, 0, 0]], [[1, 1, 0, 0]], [[0, 0, 1, 1]]], num_classes=2)
    assert sample_uncertainty(probs, "dice") == pytest.approx(2 / 3)


def test_sample_dice_of_single_model_is_zero():
    probs = one_hot_probs([[[1, 0, 1, 0]]], num_classes=2)
    assert sample_uncertainty(probs, "dice") == 0.0


@pytest.mark.parametrize("measure", list(SampleUncertainty))
@pytest.mark.parametrize(("num_models", "num_classes", "spatial"), [(2, 2, (8, 8)), (4, 3, (3, 4, 5)), (3, 5, (6,))])
def test_sample_uncertainty_is_a_float_in_unit_interval(measure, num_models, num_classes, spatial):
    value = sample_uncertainty(random_probs(num_models, num_classes, spatial, seed=7), measure)
    assert isinstance(value, float)
    assert 0.0 <= value <= 1.0


# --- pixel weights --------------------------------------------------------------------------------------------

U = torch.tensor([0.0, 0.125, 0.25, 0.375, 0.5, 1.0])


def test_mask_keeps_exactly_pixels_at_or_below_threshold():
    w = pixel_weights(U, PixelWeighting.MASK, threshold=0.25)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))


def test_no_weighting_gives_ones():
    u = torch.rand(3, 4, 5)
    w = pixel_weights(u, PixelWeighting.NONE, threshold=0.0)
    assert w.shape == u.shape and w.dtype == torch.float32
    assert torch.equal(w, torch.ones(3, 4, 5))


# --- option strings -------------------------------------------------------------------------------------------


def test_enum_strings_are_accepted_like_members():
    probs = random_probs(3, 3, (4, 4), seed=5)
    torch.testing.assert_close(pixel_uncertainty(probs, "kl"), pixel_uncertainty(probs, PixelUncertainty.KL))
    assert sample_uncertainty(probs, "dust") == sample_uncertainty(probs, SampleUncertainty.DUST)
    torch.testing.assert_close(pixel_weights(U, "mask", 0.25), pixel_weights(U, PixelWeighting.MASK, 0.25))


def test_invalid_option_strings_raise_value_error():
    probs = random_probs(2, 2, (3, 3), seed=6)
    with pytest.raises(ValueError):
        pixel_uncertainty(probs, "nope")
    with pytest.raises(ValueError):
        sample_uncertainty(probs, "kl")  # a pixel measure, not a sample measure
    with pytest.raises(ValueError):
        pixel_weights(U, "soft", threshold=0.1)  # removed in 0.2.0
