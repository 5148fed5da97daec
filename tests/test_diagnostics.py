"""Pseudo-label diagnostics against true labels, on a hand-made cache entry."""

import numpy as np

from nnunet_dumm.diagnostics import pseudo_label_diagnostics
from nnunet_dumm.pseudo_labels import PseudoLabelMaps
from nnunet_dumm.uncertainty import PixelUncertainty, PixelWeighting, SampleUncertainty


class _OneCaseCache:
    """What the diagnostics read of a cache: the pseudo-label, each pixel measure, the sample measures."""

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
    label_maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 0, num_classes=2)

    diagnostics = pseudo_label_diagnostics(_OneCaseCache(truth.copy(), uncertainty), ["case"], tmp_path, label_maps)

    entropy = diagnostics["pixel_accuracy"]["entropy"]
    assert entropy["kept_fraction"] == 11 / 14
    assert entropy["kept_fraction_per_true_class"] == [1.0, 0.25]
