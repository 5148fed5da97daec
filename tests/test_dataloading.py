"""The unlabeled loader: nnU-Net's augmentation and deep-supervision pyramid applied to image and label map alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunet_dumm.cache import CacheContents, PseudoLabelCache
from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
from nnunet_dumm.label_maps import PseudoLabelMaps
from nnunet_dumm.uncertainty import EnsembleStatistics, PixelUncertainty, PixelWeighting
from nnunet_dumm.unlabeled import completed_cases, unlabeled_preprocessed_folder


@pytest.fixture(scope="module")
def trainer(planned):
    from benchmarks.trainers import nnUNetTrainerDUMM_test

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / "Dataset950_DUMMDemo"
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    plans["continue_training"] = False  # run_training inserts this key; nnU-Net's constructor pops it
    trainer = nnUNetTrainerDUMM_test(plans, "2d", 0, load_json(str(preprocessed / "dataset.json")),
                                     torch.device("cpu"))
    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    return trainer


LABEL_MAPS = PseudoLabelMaps(PixelUncertainty.ENTROPY, PixelWeighting.MASK, 0.1, 2)  # masked label: 2


def _bright_pixel_cache(cache_folder: Path, cases: list[str]) -> PseudoLabelCache:
    """A pseudo-label cache computed from the images themselves: label 1 where the image is bright, with an
    uncertain prediction (0.3, 0.7) there (entropy 0.88: masked) and a certain one elsewhere (weight 1)."""
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    folder = str(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    cache = PseudoLabelCache(cache_folder)
    cache.write_sources({"contents": CacheContents((PixelUncertainty.ENTROPY,)).to_dict()})
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
    return build_unlabeled_loader(trainer.dataloader_train, trainer.label_manager, dataset, batch_size)


@pytest.fixture(scope="module")
def cache(trainer, tmp_path_factory):
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    return _bright_pixel_cache(tmp_path_factory.mktemp("bright_cache"), cases)


def test_batches_have_nnunet_shapes_and_the_target_pyramid(trainer, cache):
    """One target channel: the mask is a label value."""
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    batch = next(_loader(trainer, cache, cases))
    patch = tuple(trainer.configuration_manager.patch_size)
    assert batch["data"].shape == (4, 1, *patch)
    scales = trainer._get_deep_supervision_scales()
    assert len(batch["target"]) == len(scales)
    for target, scale in zip(batch["target"], scales):
        assert target.shape == (4, 1, *[round(p * s) for p, s in zip(patch, scale)])


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
