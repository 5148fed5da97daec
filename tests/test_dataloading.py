"""The unlabeled loader: nnU-Net's augmentation and deep-supervision pyramid applied to image and label map alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json

from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader
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
    return trainer


class BrightPixelLabels:
    """A label map computed from the image itself: label 1 and weight 6 where the image is bright."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, case: str, nonzero_seg: np.ndarray) -> np.ndarray:
        from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

        image = nnUNetDatasetBlosc2(self.folder, [case]).load_case(case)[0][0]
        bright = (image > np.percentile(image, 70)).astype(np.int16)
        return np.stack([bright, 6 * bright])


def _loader(trainer, selection, batch_size=4):
    folder = str(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    dataset = LabelMapDataset(folder, selection, BrightPixelLabels(folder))
    return build_unlabeled_loader(trainer, dataset, batch_size)


def test_batches_have_nnunet_shapes_and_the_target_pyramid(trainer):
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    batch = next(_loader(trainer, cases))
    patch = tuple(trainer.configuration_manager.patch_size)
    assert batch["data"].shape == (4, 1, *patch)
    scales = trainer._get_deep_supervision_scales()
    assert len(batch["target"]) == len(scales)
    for target, scale in zip(batch["target"], scales):
        assert target.shape == (4, 2, *[round(p * s) for p, s in zip(patch, scale)])


def test_label_map_stays_aligned_with_the_augmented_image(trainer):
    cases = completed_cases(unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d"))
    loader = _loader(trainer, cases)
    separations, consistent = [], []
    for _ in range(10):
        batch = next(loader)
        image, target = batch["data"][:, 0], batch["target"][0]
        for b in range(image.shape[0]):
            label, weight = target[b, 0], target[b, 1]
            inside = label == 1
            if inside.sum() > 10 and (~inside).sum() > 10:
                separations.append(float(image[b][inside].mean() - image[b][~inside].mean()) / float(image[b].std()))
            consistent.append(float((weight == 6 * label).float().mean()))
    # Bright pixels stay under label 1 through rotation, scaling and mirroring; a misaligned map would mix them.
    assert np.median(separations) > 1.0
    # Both channels go through the same geometry: the weight is exactly 6 x the label almost everywhere.
    assert np.mean(consistent) > 0.99


def test_only_selected_cases_are_sampled(trainer):
    selection = ["demo_ul_001", "demo_ul_004"]
    loader = _loader(trainer, selection)
    keys = {k for _ in range(5) for k in next(loader)["keys"]}
    assert keys <= set(selection)
    assert keys == set(selection)
