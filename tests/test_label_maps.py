"""PUM's mask as the student sees it: the label map of a cache entry, and the per-class quantile thresholds of the
recommended method (``nnunet_dumm.label_maps``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_dumm.cache import CacheContents, PseudoLabelCache
from nnunet_dumm.label_maps import PseudoLabelMaps, class_quantile_thresholds
from nnunet_dumm.uncertainty import EnsembleStatistics, PixelUncertainty, PixelWeighting


@pytest.mark.parametrize("weighting", list(PixelWeighting))
@pytest.mark.parametrize("class_thresholds", [None, (0.5, 0.05, 0.2)])
def test_label_map_is_the_pseudo_label_with_the_masked_label_where_the_weight_is_zero(weighting, class_thresholds):
    """The loader's table lookup puts the masked label exactly where ``weights`` is 0; -1 outside the nonzero crop,
    masked or not (nnU-Net's background there, as in its own segmentations)."""
    maps = PseudoLabelMaps(PixelUncertainty.KL, weighting, 0.3, 3, class_thresholds)
    generator = np.random.default_rng(0)
    pseudo_label = generator.integers(0, 3, (4, 9, 7), dtype=np.uint8)
    uncertainty = generator.integers(0, 256, (4, 9, 7), dtype=np.uint8)
    nonzero = np.where(generator.random((4, 9, 7)) < 0.2, -1, 0).astype(np.int16)
    label_map = maps.label_map(pseudo_label, uncertainty, nonzero)
    weights = maps.weights(uncertainty, pseudo_label).numpy()
    assert label_map.shape == (1, 4, 9, 7)
    masked = np.where(weights == 0, maps.masked_label, pseudo_label.astype(np.int16))
    np.testing.assert_array_equal(label_map[0], np.where(nonzero < 0, -1, masked))
    assert set(np.unique(weights)) == ({1.0} if weighting == PixelWeighting.NONE else {0.0, 1.0})


def test_class_quantile_thresholds_keep_the_same_share_of_every_class(tmp_path):
    cache = PseudoLabelCache(tmp_path)
    cache.write_sources({"contents": CacheContents((PixelUncertainty.ENTROPY,)).to_dict()})
    # class 0 pixels very certain, class 1 pixels uncertain: one fixed threshold would drop all of class 1
    probs = torch.zeros(2, 2, 1, 10, 10)
    probs[:, 0, :, :5], probs[:, 1, :, :5] = 0.99, 0.01
    probs[:, 0, :, 5:], probs[:, 1, :, 5:] = 0.35, 0.65
    probs[1, :, 0, 5:, :] += torch.linspace(-0.05, 0.05, 10)[None, None, :] * torch.tensor([1, -1])[:, None, None]
    cache.write("case", EnsembleStatistics.from_probabilities(probs), ["a", "b"], (10, 10), [1])
    thresholds = class_quantile_thresholds(cache, ["case"], PixelUncertainty.ENTROPY, 2, 0.8)
    maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 2, thresholds)
    u, labels = cache.pixel_uncertainty("case", "entropy"), cache.pseudo_label("case")
    kept = maps.weights(u, labels).numpy() > 0
    for c in (0, 1):
        assert kept[labels == c].mean() >= 0.8
    fixed = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 2)
    assert not (fixed.weights(u).numpy() > 0)[labels == 1].any()
