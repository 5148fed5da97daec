"""PUM's pass: the ensemble predicts every unlabeled case and each case's statistics go to the cache.

For every unlabeled case each model predicts softmax maps with nnU-Net's sliding-window prediction (batched, see
``nnunet_dumm.prediction``); the maps are added one model at a time to ``EnsembleStatistics`` (running sums, so
all models' softmax maps are never held at once), which give the pseudo-label, every pixel-level uncertainty
measure and every sample-level measure, written to a ``PseudoLabelCache``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from nnunet_dumm.cache import PseudoLabelCache
from nnunet_dumm.claims import remove_stale_scratch_folders
from nnunet_dumm.prediction import SlidingWindow
from nnunet_dumm.teachers import EnsembleMember
from nnunet_dumm.uncertainty import EnsembleStatistics

__all__ = ["class_location_keys", "generate_pseudo_labels", "prediction_groups"]


def prediction_groups(cases: Sequence[str], case_shape: Callable[[str], Sequence[int]],
                      window: SlidingWindow) -> list[list[str]]:
    """Consecutive cases whose tiles fill one forward pass together; a case with more tiles is a group of its own.

    The groups depend only on the case list and the machine's ``NNUNET_DUMM_VOXELS_PER_FORWARD``, never on which
    process predicts what or when: a case is always predicted in the same batches, so its pseudo-labels are the
    same bit for bit whatever the interruptions, shards and concurrent processes (batch composition changes the
    last bits of a CPU convolution).
    """
    budget = window.tiles_per_forward()
    groups: list[list[str]] = []
    tiles = budget
    for case in cases:
        case_tiles = window.num_tiles(case_shape(case))
        if tiles + case_tiles > budget:
            groups.append([])
            tiles = 0
        groups[-1].append(case)
        tiles += case_tiles
    return groups


def generate_pseudo_labels(
    members: Sequence[EnsembleMember],
    cases: Sequence[str],
    load_data: Callable[[str], np.ndarray],
    cache: PseudoLabelCache,
    sources: dict,
    class_location_keys: Sequence,
    *,
    case_shape: Callable[[str], Sequence[int]],
    case_image: Callable[[str], object],
    base: PseudoLabelCache | None = None,
    num_parts: int = 1,
    part_id: int = 0,
    verbose: bool = True,
    log: Callable[[str], None] = print,
    poll_s: float = 2.0,
) -> None:
    """Runs the ensemble over this part's cases that are not in the cache yet (an interrupted pass resumes).

    Cases are predicted in ``prediction_groups``. Several processes may run this on the same cache at once: each
    claims the groups it predicts and then waits until the groups others hold are finished (or their claims go
    stale, then it takes them over).

    Args:
        load_data: returns the preprocessed image ``(c, *spatial)`` of a case.
        sources: what produced the pass; must equal the cache's ``sources.json`` if it exists.
        class_location_keys: the labels (or nnU-Net's annotated-classes key) to sample class locations for.
        base: a cache whose ensemble statistics the new members are added to (a later SUS round: the student
            joins the teachers without running them again); None for a pass of ``members`` alone.
        num_parts, part_id: shard the groups like ``nnUNetv2_predict`` so several jobs fill one cache.
        case_shape: the spatial shape of a case without reading its data (``unlabeled.preprocessed_shape``):
            the groups are planned before any case is loaded.
        case_image: the fingerprint of a case's preprocessed image (``unlabeled.preprocessed_fingerprint``): an
            entry computed from another image (the case was preprocessed again from a changed raw file) is
            recomputed, like a damaged one.
    """
    cache.write_sources(sources)
    remove_stale_scratch_folders(cache.folder)
    groups = prediction_groups(list(cases), case_shape, members[0].window)[part_id::num_parts]
    mine = [case for group in groups for case in group]
    for case in [c for c in mine if cache.done(c) and not cache.current(c, case_image(c))]:
        log(f"pseudo-labels: the cache entry of {case} in {cache.folder} is damaged (size or CRC-32) or was computed "
            "from another preprocessed image; recomputing it")
        cache.remove(case)
    pending = [g for g in groups if not all(cache.done(c) for c in g)]
    if verbose:
        todo = sum(not cache.done(c) for g in pending for c in g)
        log(f"pseudo-labels: {len(members)} model(s){' added to ' + str(base.folder) if base else ''}, "
            f"{len(mine)} cases ({len(mine) - todo} cached) -> {cache.folder}")
    start, computed = time.perf_counter(), 0
    with tqdm(total=sum(len(g) for g in pending), desc="pseudo-labelling", unit="case",
              disable=not verbose) as progress:
        while pending:
            for group in pending:
                if all(cache.done(c) for c in group) or not cache.claim(group[0]):
                    continue
                try:
                    if not all(cache.done(c) for c in group):  # not finished meanwhile by another process
                        images = [torch.from_numpy(np.ascontiguousarray(load_data(c))) for c in group]
                        computed += _predict_group(members, group, images, cache, base, class_location_keys,
                                                   case_image)
                finally:
                    cache.release(group[0])
                progress.update(len(group))
            pending = [g for g in pending if not all(cache.done(c) for c in g)]
            if pending:  # held by other live processes
                progress.set_postfix_str(f"waiting for {len(pending)} group(s) claimed by other processes")
                time.sleep(poll_s)
    if verbose and computed:
        elapsed = time.perf_counter() - start
        log(f"pseudo-labels: {computed} cases in {elapsed:.1f} s ({computed / elapsed:.2f} cases/s, "
            f"{computed * len(members) / elapsed:.2f} case-models/s)")


def class_location_keys(label_manager) -> list:
    """What to sample class locations of a pseudo-label for: the foreground labels, and for a dataset with an
    ignore label nnU-Net's annotated-classes key (its loader draws non-forced patches from annotated pixels)."""
    keys = list(label_manager.foreground_labels)
    if label_manager.has_ignore_label:
        keys.append(tuple([-1] + label_manager.all_labels))
    return keys


def _add_member(member: EnsembleMember, images: list[torch.Tensor], stats: list[EnsembleStatistics],
                names: list[list[str]]) -> None:
    # its own function so that the member's softmax maps are freed before the next member predicts
    for case_stats, case_names, probs in zip(stats, names, member.predict_probabilities(images)):
        case_stats.add(probs)
        case_names.append(member.name)


def _predict_group(members: Sequence[EnsembleMember], cases: list[str], images: list[torch.Tensor],
                   cache: PseudoLabelCache, base: PseudoLabelCache | None, class_location_keys: Sequence,
                   case_image: Callable[[str], object]) -> int:
    """Predicts a group and writes the entries it lacks (an interrupted run may have written some); returns how
    many it wrote."""
    if base is None:
        num_classes = members[0].window.num_classes
        stats = [EnsembleStatistics.empty(num_classes, image.shape[1:]) for image in images]
        names = [[] for _ in cases]
    else:
        stats = [base.statistics(case) for case in cases]
        names = [list(base.properties(case)["members"]) for case in cases]
    for member in members:
        _add_member(member, images, stats, names)
    written = 0
    for case, case_stats, case_names in zip(cases, stats, names):
        if not cache.done(case):
            cache.write(case, case_stats, case_names, members[0].window.patch_size, class_location_keys,
                        case_image(case))
            written += 1
    return written


