"""Unlabeled batches with exactly nnU-Net's training augmentation and deep-supervision target pyramid.

The per-case label map (pseudo-label and weight, see ``PseudoLabelMaps``) takes the place of the segmentation
in nnU-Net's data loader, so every spatial transform, mirror and downsampling for deep supervision applies to
it exactly as to a real segmentation and it stays aligned with the augmented image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

__all__ = ["LabelMapDataset", "build_unlabeled_loader"]

LabelMapFn = Callable[[str, np.ndarray], np.ndarray]


class LabelMapDataset(nnUNetDatasetBlosc2):
    """Preprocessed unlabeled cases whose segmentation is a label map computed per case.

    Args:
        folder: the unlabeled preprocessed folder.
        identifiers: the cases to sample from (a SUS round's selection).
        label_maps: ``(case, nonzero_seg) -> int16 (K, *spatial)``; must be picklable for worker processes.
    """

    def __init__(self, folder: str, identifiers: Sequence[str], label_maps: LabelMapFn):
        super().__init__(folder, list(identifiers))
        self.label_maps = label_maps

    def load_case(self, identifier):
        data, seg, _, properties = super().load_case(identifier)
        return data, self.label_maps(identifier, seg[0]), None, properties


def build_unlabeled_loader(trainer, dataset: LabelMapDataset, batch_size: int):
    """nnU-Net's training data loader and augmenter, as ``trainer.get_dataloaders`` builds them, for ``dataset``.

    Crops are random (no foreground oversampling): unlabeled cases have no reliable class locations.
    """
    (rotation_for_da, do_dummy_2d_data_aug, initial_patch_size, mirror_axes) = (
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    )
    transforms = trainer.get_training_transforms(
        trainer.configuration_manager.patch_size, rotation_for_da, trainer._get_deep_supervision_scales(),
        mirror_axes, do_dummy_2d_data_aug,
        use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm,
        is_cascaded=False, foreground_labels=trainer.label_manager.foreground_labels,
        regions=None, ignore_label=None,
    )
    loader = nnUNetDataLoader(
        dataset, batch_size, initial_patch_size, trainer.configuration_manager.patch_size, trainer.label_manager,
        oversample_foreground_percent=0.0, sampling_probabilities=None, pad_sides=None, transforms=transforms,
    )
    num_processes = get_allowed_n_proc_DA()
    if num_processes == 0:
        return SingleThreadedAugmenter(loader, None)
    return NonDetMultiThreadedAugmenter(
        data_loader=loader, transform=None, num_processes=num_processes, num_cached=max(6, num_processes // 2),
        seeds=None, pin_memory=trainer.device.type == "cuda", wait_time=0.002,
    )
