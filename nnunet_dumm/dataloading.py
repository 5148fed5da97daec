"""Unlabeled batches with exactly nnU-Net's training augmentation and deep-supervision target pyramid.

The per-case label map (the pseudo-label with its mask: ``PseudoLabelMaps``) takes the place of the segmentation in
nnU-Net's data loader, so every spatial transform, mirror and downsampling for deep supervision applies to it exactly
as to a real segmentation and it stays aligned with the augmented image. Padding outside the image counts as
background, as nnU-Net's loss counts it in labeled patches. The map is a view: a patch reads only the blosc2 chunks
it covers of the cached pseudo-label and uncertainty, as nnU-Net's loader reads only the chunks of an image, so 3-D
cases are never decompressed whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

from nnunet_dumm.cache import CorruptCacheEntry, PseudoLabelCache
from nnunet_dumm.label_maps import PseudoLabelMaps

__all__ = ["LabelMapDataset", "LabelMapView", "build_unlabeled_loader"]


class LabelMapView:
    """An int16 ``(1, *spatial)`` label map computed on demand for the indexed region only."""

    dtype = np.dtype(np.int16)

    def __init__(self, maps, channel: int, nonzero_seg, label_maps: PseudoLabelMaps, source: str):
        self._maps, self._channel, self._nonzero = maps, channel, nonzero_seg
        self._label_maps, self._source = label_maps, source
        self.shape = (1, *maps.shape[1:])
        self.ndim = len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        spatial = tuple(index[1:]) + (slice(None),) * (self.ndim - 1 - len(index[1:]))
        try:
            pseudo_label = self._maps[(0, *spatial)]
            uncertainty = self._maps[(self._channel, *spatial)]
        except Exception as e:  # a chunk that does not decode
            raise CorruptCacheEntry(f"{self._source}: cannot be read ({e}); rerun the pass to recompute it") from e
        label_map = self._label_maps.label_map(pseudo_label, uncertainty, self._nonzero[(0, *spatial)])
        return label_map[index[0]] if index and not _is_full(index[0]) else label_map


def _is_full(index) -> bool:
    return isinstance(index, slice) and index == slice(None)


class LabelMapDataset(nnUNetDatasetBlosc2):
    """Preprocessed unlabeled cases whose segmentation is a pseudo-label map from a cache.

    Args:
        folder: the unlabeled preprocessed folder.
        identifiers: the cases to sample from (a SUS round's selection).
        cache_folder: the pseudo-label cache of the round.
        label_maps: how cache entries become label maps (pickled into data-augmentation workers).
    """

    def __init__(self, folder: str, identifiers: Sequence[str], cache_folder: str, label_maps: PseudoLabelMaps):
        super().__init__(folder, list(identifiers))
        self.cache_folder, self.label_maps = cache_folder, label_maps
        self.channel = PseudoLabelCache(cache_folder).channel(label_maps.pixel_uncertainty)

    def load_case(self, identifier):
        data, seg, _, properties = super().load_case(identifier)
        cache = PseudoLabelCache(self.cache_folder)
        # foreground oversampling uses the pseudo-label's classes, sampled when the entry was written
        properties = {**properties, "class_locations": cache.properties(identifier)["class_locations"]}
        maps = LabelMapView(cache.maps(identifier), self.channel, seg, self.label_maps,
                            str(cache.folder / f"{identifier}_maps.b2nd"))
        return data, maps, None, properties


def build_unlabeled_loader(labeled_augmenter, label_manager, dataset: LabelMapDataset, batch_size: int):
    """A loader for ``dataset`` built like nnU-Net's training loader inside ``labeled_augmenter``.

    The transforms (augmentation and the deep-supervision pyramid) and patch sizes are taken from the training
    loader that ``nnUNetTrainer.get_dataloaders`` built, and the augmenter is of the same kind, so the unlabeled
    stream follows nnU-Net's own pipeline whatever that pipeline is. Patches are drawn at random: forcing
    pseudo-label foreground into them measured no gain (docs/results.md, "Removed levers").
    """
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter

    labeled = getattr(labeled_augmenter, "data_loader", None) or labeled_augmenter.generator
    patch_size = labeled.patch_size[1:] if labeled.patch_size_was_2d else labeled.patch_size
    final_patch_size = labeled.final_patch_size[1:] if labeled.patch_size_was_2d else labeled.final_patch_size
    loader = nnUNetDataLoader(
        dataset, batch_size, patch_size, final_patch_size, label_manager,
        oversample_foreground_percent=0, sampling_probabilities=None, pad_sides=None,
        transforms=labeled.transforms,
    )
    if isinstance(labeled_augmenter, SingleThreadedAugmenter):
        return SingleThreadedAugmenter(loader, None)
    return NonDetMultiThreadedAugmenter(
        data_loader=loader, transform=None, num_processes=labeled_augmenter.num_processes,
        num_cached=labeled_augmenter.num_cached, seeds=None, pin_memory=labeled_augmenter.pin_memory,
        wait_time=labeled_augmenter.wait_time,
    )
