"""The unlabeled loader: nnU-Net's augmentation and deep-supervision pyramid applied to image and label map alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
from nnunet_dumm.pseudo_labels import PseudoLabelCache, PseudoLabelMaps
from nnunet_dumm.uncertainty import EnsembleStatistics, PixelUncertainty, PixelWeighting
from nnunet_dumm.unlabeled import completed_cases, unlabeled_preprocessed_folder


@pytest.fixture(scope="module")
def trainer(planned):
    from nnunet_dumm.trainers.variants import nnUNetTrainerDUMM_test

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / "Dataset950_DUMMDemo"
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False  # run_training inserts this key; nnU-Net's constructor pops it
    trainer = nnUNetTrainerDUMM_test(plans, "2d", 0, load_json(str(preprocessed / "dataset.json")),
                                     torch.device("cpu"))
    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    return trainer


LABEL_MAPS = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 8, 2)  # masked label: 2


def _bright_pixel_cache(cache_folder: Path, cases: list[str]) -> PseudoLabelCache:
    """A pseudo-label cache computed from the images themselves: label 1 where the image is bright, with an
    uncertain prediction (0.3, 0.7) there (entropy 0.88: masked) and a certain one elsewhere (weight 1)."""
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    folder = str(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    cache = PseudoLabelCache(cache_folder)
    cache.folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        image = torch.from_numpy(nnUNetDatasetBlosc2(folder, [case]).load_case(case)[0][:][0])
        bright = image > torch.quantile(image.flatten(), 0.7)
        probs = torch.stack([torch.where(bright, 0.3, 1.0), torch.where(bright, 0.7, 0.0)])
        stats = EnsembleStatistics.empty(2, image.shape)
        stats.add(probs)
        cache.write(case, stats, ["bright"], (32, 32), [1])
    return cache


def _loader(trainer, cache, selection, batch_size=4, label_maps=LABEL_MAPS):
    folder = str(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    dataset = LabelMapDataset(folder, selection, str(cache.folder), label_maps)
    return build_unlabeled_loader(trainer.dataloader_train, trainer.label_manager, dataset, batch_size, 0.0)


@pytest.fixture(scope="module")
def cache(trainer, tmp_path_factory):
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    return _bright_pixel_cache(tmp_path_factory.mktemp("bright_cache"), cases)


@pytest.mark.parametrize("weighting, channels", [("mask", 1), ("soft", 2)])
def test_batches_have_nnunet_shapes_and_the_target_pyramid(trainer, cache, weighting, channels):
    """One target channel where weights are binary (the mask is a label value), two where they are soft."""
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    label_maps = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting(weighting), 0.1, 8, 2)
    batch = next(_loader(trainer, cache, cases, label_maps=label_maps))
    patch = tuple(trainer.configuration_manager.patch_size)
    assert batch["data"].shape == (4, 1, *patch)
    scales = trainer._get_deep_supervision_scales()
    assert len(batch["target"]) == len(scales)
    for target, scale in zip(batch["target"], scales):
        assert target.shape == (4, channels, *[round(p * s) for p, s in zip(patch, scale)])


def test_label_map_stays_aligned_with_the_augmented_image(trainer, cache):
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    loader = _loader(trainer, cache, cases)
    separations, consistent = [], []
    for _ in range(10):
        batch = next(loader)
        image, target = batch["data"][:, 0], batch["target"][0]
        for b in range(image.shape[0]):
            label = target[b, 0]
            masked = label == LABEL_MAPS.masked_label
            if masked.sum() > 10 and (~masked).sum() > 10:
                separations.append(float(image[b][masked].mean() - image[b][~masked].mean()) / float(image[b].std()))
            # bright pixels (pseudo-label 1, uncertain) are masked; dark ones background, as is the padding
            consistent.append(float(((label == LABEL_MAPS.masked_label) | (label == 0)).float().mean()))
    # Masked (bright) pixels stay masked through rotation, scaling and mirroring; a misaligned map would mix them.
    assert np.median(separations) > 1.0
    # The mask replaced every uncertain pseudo-label; no label 1 is left, and no value was invented
    assert np.mean(consistent) == 1.0


def test_only_selected_cases_are_sampled(trainer, cache):
    selection = ["demo_ul_001", "demo_ul_004"]
    loader = _loader(trainer, cache, selection)
    keys = {k for _ in range(5) for k in next(loader)["keys"]}
    assert keys <= set(selection)
    assert keys == set(selection)


@pytest.mark.parametrize("weighting", list(PixelWeighting))
@pytest.mark.parametrize("class_thresholds", [None, (0.5, 0.05, 0.2)])
def test_label_map_is_the_pseudo_label_and_the_quantised_pixel_weights(weighting, class_thresholds):
    """The loader's table lookup gives each pixel exactly ``round(weights * levels)``: a second channel for the soft
    weightings, the masked label in the label channel for the binary ones; -1 outside the nonzero crop, masked or
    not (nnU-Net's background there, as in its own segmentations)."""
    maps = PseudoLabelMaps(PixelUncertainty.KL, weighting, 0.3, 100, 3, class_thresholds)
    generator = np.random.default_rng(0)
    pseudo_label = generator.integers(0, 3, (4, 9, 7), dtype=np.uint8)
    uncertainty = generator.integers(0, 256, (4, 9, 7), dtype=np.uint8)
    nonzero = np.where(generator.random((4, 9, 7)) < 0.2, -1, 0).astype(np.int16)
    label_map = maps.label_map(pseudo_label, uncertainty, nonzero)
    levels = torch.round(maps.weights(uncertainty, pseudo_label) * 100).to(torch.int16).numpy()
    label = np.where(nonzero < 0, -1, pseudo_label.astype(np.int16))
    if weighting in (PixelWeighting.MASK, PixelWeighting.NONE):
        assert label_map.shape == (1, 4, 9, 7)
        masked = np.where(levels == 0, maps.masked_label, pseudo_label.astype(np.int16))
        np.testing.assert_array_equal(label_map[0], np.where(nonzero < 0, -1, masked))
        assert set(np.unique(levels)) == ({100} if weighting == PixelWeighting.NONE else {0, 100})
    else:
        assert label_map.shape == (2, 4, 9, 7)
        np.testing.assert_array_equal(label_map[0], label)
        np.testing.assert_array_equal(label_map[1], levels)
        assert len(np.unique(levels)) > 10
