"""Pseudo-label diagnostics against true labels, on a hand-made cache entry."""

import numpy as np
import pytest

from nnunet_dumm.cache import CacheContents
from nnunet_dumm.diagnostics import label_rgba, plot_diagnostics, pseudo_label_diagnostics
from nnunet_dumm.label_maps import PseudoLabelMaps
from nnunet_dumm.uncertainty import PixelUncertainty, PixelWeighting, SampleUncertainty


class _OneCaseCache:
    """What the diagnostics read of a cache: its contents, the pseudo-label, each pixel measure, the sample
    measures."""

    contents = CacheContents(tuple(PixelUncertainty))

    def __init__(self, pseudo_label: np.ndarray, uncertainty: np.ndarray):
        self._pseudo_label, self._uncertainty = pseudo_label, uncertainty

    def pseudo_label(self, case: str) -> np.ndarray:
        return self._pseudo_label

    def pixel_uncertainty(self, case: str, measure) -> np.ndarray:
        return self._uncertainty

    def properties(self, case: str) -> dict:
        return {f"U_{m.value}": 0.0 for m in SampleUncertainty}


def test_kept_share_is_given_per_true_class(tmp_path):
    # 10 background pixels, all certain; 4 foreground pixels, 3 of them above the threshold: overall the mask keeps
    # 11 of 14 pixels (79 %), but only a quarter of the foreground
    truth = np.array([0] * 10 + [1] * 4, dtype=np.uint8).reshape(1, 2, 7)
    uncertainty = np.array([0] * 10 + [0, 200, 200, 200], dtype=np.uint8).reshape(1, 2, 7)
    np.save(tmp_path / "case.npy", truth)
    label_maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, num_classes=2)

    diagnostics = pseudo_label_diagnostics(_OneCaseCache(truth.copy(), uncertainty), ["case"], tmp_path, label_maps)

    entropy = diagnostics["pixel_accuracy"]["entropy"]
    assert entropy["kept_fraction"] == 11 / 14
    assert entropy["kept_fraction_per_true_class"] == [1.0, 0.25]


LABELS = {"background": 0, "liver": 1, "tumour": 2}


def _diagnostics_of(tmp_path, pseudo_label: np.ndarray, truth: np.ndarray, **kwargs) -> dict:
    np.save(tmp_path / "case.npy", truth)
    label_maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, num_classes=3)
    cache = _OneCaseCache(pseudo_label, np.zeros(pseudo_label.shape, dtype=np.uint8))
    return pseudo_label_diagnostics(cache, ["case"], tmp_path, label_maps, **kwargs)


def test_pseudo_label_dice_is_given_per_class_by_name(tmp_path):
    truth = np.array([0, 0, 1, 1, 2, 2], dtype=np.uint8).reshape(1, 1, 6)
    pseudo_label = np.array([0, 1, 1, 1, 2, 0], dtype=np.uint8).reshape(1, 1, 6)

    named = _diagnostics_of(tmp_path, pseudo_label, truth, labels=LABELS)
    by_value = _diagnostics_of(tmp_path, pseudo_label, truth)

    assert named["pseudo_label_dice_per_class"] == pytest.approx({"liver": 2 * 2 / 5, "tumour": 2 * 1 / 3})
    assert by_value["pseudo_label_dice_per_class"] == pytest.approx({"1": 2 * 2 / 5, "2": 2 * 1 / 3})
    assert np.mean(list(named["pseudo_label_dice_per_class"].values())) == pytest.approx(
        named["pseudo_label_dice_mean"])


def test_a_class_has_the_same_colour_in_every_label_map_whatever_values_it_holds():
    every_value = label_rgba(np.array([[0, 1, 2, 3]]), num_classes=3)  # 3: the ignore label, no class
    assert len({tuple(colour) for colour in every_value[0]}) == 4
    for value in range(4):
        alone = label_rgba(np.full((2, 2), value, dtype=np.uint8), num_classes=3)
        np.testing.assert_array_equal(alone, np.broadcast_to(every_value[0, value], (2, 2, 4)))


def test_picture_draws_pseudo_and_true_labels_in_the_same_class_colours(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    # the pseudo-label has classes 0 and 1 only; the true label 0, 1, 2 and ignored pixels (3): scaled panel by
    # panel, class 1 would be the top colour of one and a middle colour of the other
    truth = np.array([0, 1, 1, 2, 2, 3], dtype=np.uint8).reshape(1, 1, 6)
    pseudo_label = np.array([0, 1, 1, 1, 1, 1], dtype=np.uint8).reshape(1, 1, 6)
    diagnostics = _diagnostics_of(tmp_path, pseudo_label, truth, ignore_label=3, labels=LABELS)
    drawn, real_imshow = [], Axes.imshow
    monkeypatch.setattr(Axes, "imshow", lambda ax, array, **kw: drawn.append(np.asarray(array)) or real_imshow(
        ax, array, **kw))

    plot_diagnostics(diagnostics, _OneCaseCache(pseudo_label, np.zeros(truth.shape, dtype=np.uint8)),
                     lambda case: np.zeros((1, *truth.shape)), "entropy", "entropy", tmp_path / "d.png", tmp_path)

    assert (tmp_path / "d.png").is_file()
    pseudo_panel, truth_panel = drawn[1], drawn[3]  # per row: image, pseudo-label, uncertainty, true label
    np.testing.assert_array_equal(pseudo_panel, label_rgba(pseudo_label[0], 3))
    np.testing.assert_array_equal(truth_panel, label_rgba(truth[0], 3))
    np.testing.assert_array_equal(pseudo_panel[0, 1], truth_panel[0, 1])  # class 1 in both
