"""PUM: multi-model pseudo-labels with pixel-level uncertainty, cached on disk in the student's preprocessed space.

For every unlabeled case each model predicts softmax maps with nnU-Net's sliding-window prediction (batched, see
``nnunet_dumm.prediction``); the maps are added one model at a time to ``EnsembleStatistics`` (running sums, so
all models' softmax maps are never held at once), which give the pseudo-label, every pixel-level uncertainty
measure and every sample-level measure. One cache entry per case, in nnU-Net's blosc2 format so that a training
patch reads only its chunks:

* ``<case>_maps.b2nd``: uint8 ``(1 + P, *spatial)``: the pseudo-label, then each pixel measure as ``round(255 u)``;
* ``<case>_stats.b2nd``: float16 ``(2 C + 1, *spatial)``: the ensemble's weighted means of softmax, log-softmax and
  squared softmax; ``<case>_votes.b2nd``: uint8 ``(M, *spatial)``, each member's argmax. A later round adds the
  student to these instead of running every teacher again;
* ``<case>.pkl``: sample measures, member names and weights, class locations of the pseudo-label (for foreground
  oversampling); written last, so it marks a finished entry.

A cache folder is keyed by everything that produced it (``sources.json``). Files are written under temporary names
and renamed; several processes (two folds started together, DDP ranks, sharded jobs) fill one cache by claiming
cases, so each case is predicted once.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nnunet_dumm.claims import Claims, process_scratch_folder, remove_stale_scratch_folders
from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.integrity import DamagedFile, fingerprint, first_damaged
from nnunet_dumm.prediction import SlidingWindow, softmax_
from nnunet_dumm.uncertainty import (
    EnsembleStatistics,
    PixelUncertainty,
    PixelWeighting,
    SampleUncertainty,
    pixel_weights,
)

__all__ = [
    "CorruptCacheEntry",
    "EnsembleMember",
    "PIXEL_CHANNELS",
    "PseudoLabelCache",
    "PseudoLabelMaps",
    "TeacherModelsIncompatible",
    "TeacherModelsMissing",
    "TeacherPass",
    "class_location_keys",
    "class_quantile_thresholds",
    "generate_pseudo_labels",
    "load_teacher_members",
    "prediction_groups",
    "member_from_network",
    "resolve_teacher_folds",
    "teachers_that_saw",
]

# channel of each pixel measure in <case>_maps.b2nd (channel 0 is the pseudo-label)
PIXEL_CHANNELS = {measure: 1 + i for i, measure in enumerate(PixelUncertainty)}
_ENTRY_FILES = ("_maps.b2nd", "_stats.b2nd", "_votes.b2nd")
# part of every cache key: a cache written in another layout lies in another folder and is never read
CACHE_FORMAT = 2


class TeacherModelsMissing(RuntimeError):
    """Too few trained teacher models on disk; the message says how to train them."""


class TeacherModelsIncompatible(ValueError):
    """A teacher model folder was trained with other labels or another preprocessing than the student's dataset."""


class CorruptCacheEntry(DamagedFile):
    """A cache entry cannot be read (truncated copy, bit rot); the message names the file. Rerunning recomputes it."""


@dataclass
class EnsembleMember:
    """One model of the pseudo-labelling ensemble: its batched sliding window and nnU-Net's output non-linearity."""

    name: str
    window: SlidingWindow
    label_manager: object

    def predict_probabilities(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Softmax ``(C, *spatial)`` for each preprocessed image ``(c, *spatial)``, as nnUNetv2_predict computes it
        (in place on the float32 logits: label-map datasets only, regions are refused)."""
        return [softmax_(logits) for logits in self.window.predict_logits(images)]


def member_from_network(name: str, network: torch.nn.Module, configuration_manager, label_manager,
                        mirror_axes, device: torch.device, use_mirroring: bool) -> EnsembleMember:
    """An ensemble member that predicts with ``network`` on its configuration's patch size."""
    window = SlidingWindow(network, tuple(configuration_manager.patch_size), mirror_axes if use_mirroring else None,
                           label_manager.num_segmentation_heads, device)
    return EnsembleMember(name, window, label_manager)


def _model_folder(spec: TeacherSpec, dataset_name: str, plans: str, configuration: str) -> Path:
    if spec.model_folder is not None:
        return Path(spec.model_folder)
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    return Path(get_output_folder(dataset_name, spec.trainer, spec.plans or plans, spec.configuration or configuration))


def _folds_on_disk(folder: Path, checkpoint: str) -> list[int | str]:
    """Every ``fold_<k>`` (any k, and ``fold_all``) of a model folder that holds the checkpoint, sorted."""
    folds = [p.name[len("fold_"):] for p in folder.glob("fold_*") if (p / checkpoint).is_file()]
    return sorted((int(f) if f.isdigit() else f for f in folds), key=lambda f: (isinstance(f, str), str(f).zfill(8)))


def teacher_training_cases(folder: Path, fold: int | str, dataset_name: str) -> set[str] | None:
    """The labeled cases a teacher fold trained on, from its dataset's ``splits_final.json`` (fold ``all``: every
    labeled case); None when that cannot be known (a model folder of another dataset)."""
    from nnunetv2.paths import nnUNet_preprocessed

    if folder.parent.name != dataset_name:
        return None
    splits_file = Path(nnUNet_preprocessed) / dataset_name / "splits_final.json"
    if not splits_file.is_file():
        return None
    splits = json.loads(splits_file.read_text())
    if fold == "all":
        return set(splits[0]["train"]) | set(splits[0]["val"])
    return set(splits[int(fold)]["train"]) if int(fold) < len(splits) else None


def teachers_that_saw(teacher_folds: Sequence[tuple[Path, int | str, str]], cases: set[str],
                      dataset_name: str) -> list[tuple[Path, int | str, str]]:
    """The teacher folds whose training cases include any of ``cases`` (or cannot be shown not to)."""
    seen = []
    for folder, fold, checkpoint in teacher_folds:
        training = teacher_training_cases(folder, fold, dataset_name)
        if training is None or training & cases:
            seen.append((folder, fold, checkpoint))
    return seen


def resolve_teacher_folds(
    teachers: Sequence[TeacherSpec], dataset_name: str, plans: str, configuration: str, min_models: int,
    student_validation_cases: set[str] | None = None,
) -> list[tuple[Path, int | str, str]]:
    """``(model folder, fold, checkpoint name)`` of every teacher checkpoint found on disk.

    With ``student_validation_cases`` (leak-free validation) only teachers that never trained on those cases count.

    Raises:
        TeacherModelsMissing: fewer than ``min_models`` checkpoints; the message gives the training commands.
    """
    found, missing_commands = [], []
    for spec in teachers:
        folder = _model_folder(spec, dataset_name, plans, configuration)
        on_disk = _folds_on_disk(folder, spec.checkpoint)
        wanted = spec.folds if spec.folds is not None else on_disk
        found += [(folder, fold, spec.checkpoint) for fold in wanted if fold in on_disk]
        if spec.model_folder is None:
            # what nnU-Net's 5-fold cross-validation would still have to train
            expected = spec.folds if spec.folds is not None else range(5)
            missing_commands += [
                f"nnUNetv2_train {dataset_name} {spec.configuration or configuration} {fold} "
                f"-tr {spec.trainer} -p {spec.plans or plans}"
                for fold in expected if fold not in on_disk
            ]
    if student_validation_cases is not None:
        leaking = teachers_that_saw(found, student_validation_cases, dataset_name)
        found = [t for t in found if t not in leaking]
        if len(found) < min_models:
            raise TeacherModelsMissing(
                f"leak-free validation leaves {len(found)} teacher model(s) that never trained on this fold's "
                f"validation cases; {min_models} needed. With nnU-Net's cross-validation teachers only the "
                "teacher of the same fold qualifies: train it, or lower min_models")
    if len(found) < min_models:
        listing = "\n  ".join(missing_commands) or "(train the configured model folders' folds)"
        raise TeacherModelsMissing(
            f"DUMM needs at least {min_models} trained teacher models; found {len(found)} "
            f"({', '.join(f'{f.name}/fold_{k}' for f, k, _ in found) or 'none'}). Train them first:\n  {listing}"
        )
    return found


def _check_compatible(teacher_plans, teacher_configuration, teacher_dataset_json: dict, student_plans_manager,
                      student_configuration_manager, student_dataset_json: dict, folder: Path) -> None:
    # Teachers predict on the student's preprocessed data, so they must have been trained on the same preprocessing.
    if teacher_dataset_json["labels"] != student_dataset_json["labels"]:
        raise TeacherModelsIncompatible(f"{folder}: teacher labels {teacher_dataset_json['labels']} differ from "
                                        f"the dataset's {student_dataset_json['labels']}")
    pairs = {
        "spacing": (teacher_configuration.spacing, student_configuration_manager.spacing),
        "normalization_schemes": (teacher_configuration.normalization_schemes,
                                  student_configuration_manager.normalization_schemes),
        "use_mask_for_norm": (teacher_configuration.use_mask_for_norm, student_configuration_manager.use_mask_for_norm),
        "transpose_forward": (teacher_plans.transpose_forward, student_plans_manager.transpose_forward),
        "foreground_intensity_properties_per_channel": (
            teacher_plans.foreground_intensity_properties_per_channel,
            student_plans_manager.foreground_intensity_properties_per_channel),
    }
    for name, (teacher_value, student_value) in pairs.items():
        if teacher_value != student_value:
            raise TeacherModelsIncompatible(
                f"{folder}: teacher preprocessing differs from the student's in {name} ({teacher_value} vs "
                f"{student_value}); teachers must share the student's preprocessing (same spacing and normalisation)"
            )


def load_teacher_members(
    teacher_folds: Sequence[tuple[Path, int | str, str]], student_plans_manager, student_configuration_manager,
    student_dataset_json: dict, device: torch.device, use_mirroring: bool,
) -> list[EnsembleMember]:
    """One ensemble member per teacher checkpoint, each with its own copy of its model folder's network.

    A network per fold costs one model's memory per fold; swapping one network's weights for every case and fold
    cost a quarter of the pass in a profile.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    by_folder: dict[tuple[Path, str], list] = {}
    for folder, fold, checkpoint in teacher_folds:
        by_folder.setdefault((folder, checkpoint), []).append(fold)
    members = []
    for (folder, checkpoint), folds in by_folder.items():
        predictor = nnUNetPredictor(device=device, use_mirroring=use_mirroring, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds), checkpoint_name=checkpoint)
        _check_compatible(predictor.plans_manager, predictor.configuration_manager,
                          predictor.dataset_json, student_plans_manager, student_configuration_manager,
                          student_dataset_json, folder)
        for fold, parameters in zip(folds, predictor.list_of_parameters):
            network = copy.deepcopy(predictor.network)
            network.load_state_dict(parameters)
            members.append(member_from_network(
                f"{folder.name}/fold_{fold}/{checkpoint}", network.to(device).eval(), predictor.configuration_manager,
                predictor.label_manager, predictor.allowed_mirroring_axes, device, use_mirroring))
    return members


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def teacher_sources(teacher_folds: Sequence[tuple[Path, int | str, str]], use_mirroring: bool,
                    data_identifier: str) -> dict:
    """What produced a pseudo-label pass; its hash names the cache folder.

    Models are identified by their checkpoints' contents (not by where they lie), so a moved or linked
    ``nnUNet_results`` finds its cache again; the model folder's name is kept for reading.
    """
    return {
        "models": [
            {"model": folder.name, "fold": str(fold), "checkpoint": checkpoint,
             "sha256": _file_digest(folder / f"fold_{fold}" / checkpoint)}
            for folder, fold, checkpoint in teacher_folds
        ],
        "use_mirroring": use_mirroring,
        "data_identifier": data_identifier,
        "cache_format": CACHE_FORMAT,
    }


def sources_key(sources: dict) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:12]


def _disk_full_message(path: Path) -> str:
    return (f"no space left on the device while writing {path}; nothing half-written was kept. Free disk space and "
            "rerun the same command: finished cases are kept and the pass resumes")


class PseudoLabelCache:
    """A folder of cache entries (see the module docstring) plus ``sources.json``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    # --------------------------------------------------------------------------------------------- reading
    def marker(self, case: str) -> Path:
        return self.folder / f"{case}.pkl"

    def done(self, case: str) -> bool:
        return self.marker(case).is_file()

    def intact(self, case: str, checksum: bool = True) -> bool:
        """Finished and undamaged: every file has the size (and CRC-32) recorded when it was written."""
        if not self.done(case):
            return False
        try:
            properties = self._properties(case)
        except CorruptCacheEntry:
            return False
        return first_damaged(self.folder, properties["files"], checksum) is None

    def _properties(self, case: str) -> dict:
        try:
            with open(self.marker(case), "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
            raise self._corrupt(case, self.marker(case), e) from e

    def properties(self, case: str) -> dict:
        """The entry's properties; raises ``CorruptCacheEntry`` if a file of the entry lost bytes or vanished."""
        properties = self._properties(case)
        damaged = first_damaged(self.folder, properties["files"], checksum=False)
        if damaged is not None:
            raise self._corrupt(case, damaged, "size differs from what was written" if damaged.is_file()
                                else "missing")
        return properties

    def _open(self, case: str, suffix: str):
        import blosc2

        path = self.folder / f"{case}{suffix}"
        try:
            return blosc2.open(urlpath=str(path), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
        except Exception as e:  # blosc2 raises anything from RuntimeError to ValueError on a damaged file
            raise self._corrupt(case, path, e) from e

    def _read(self, case: str, suffix: str, index=slice(None)) -> np.ndarray:
        array = self._open(case, suffix)
        try:
            return array[index]
        except Exception as e:
            raise self._corrupt(case, self.folder / f"{case}{suffix}", e) from e

    def _corrupt(self, case: str, path: Path, reason) -> CorruptCacheEntry:
        return CorruptCacheEntry(f"{path}: cache entry is damaged ({reason}); rerun the pass "
                                 f"(nnUNetv2_dumm_pseudo_label, or training) to recompute {case}")

    def maps(self, case: str):
        """The memory-mapped blosc2 array of pseudo-label and pixel measures (read chunk by chunk)."""
        return self._open(case, "_maps.b2nd")

    def pseudo_label(self, case: str) -> np.ndarray:
        return self._read(case, "_maps.b2nd", 0)

    def pixel_uncertainty(self, case: str, measure: PixelUncertainty | str) -> np.ndarray:
        """uint8 ``round(255 u)`` of one measure."""
        return self._read(case, "_maps.b2nd", PIXEL_CHANNELS[PixelUncertainty(measure)])

    def statistics(self, case: str) -> EnsembleStatistics:
        """The ensemble's statistics restored from the cached means (float16) and member argmax maps."""
        properties = self.properties(case)
        votes = torch.from_numpy(self._read(case, "_votes.b2nd"))
        return EnsembleStatistics.from_means_float16(self._read(case, "_stats.b2nd"), list(votes),
                                                     properties["weights"])

    def sample_uncertainty(self, cases: Sequence[str], measure: SampleUncertainty | str) -> dict[str, float]:
        key = f"U_{SampleUncertainty(measure).value}"
        return {case: float(self.properties(case)[key]) for case in cases}

    # --------------------------------------------------------------------------------------------- writing
    def write(self, case: str, stats: EnsembleStatistics, members: Sequence[str], patch_size: Sequence[int],
              class_location_keys: Sequence) -> None:
        """Writes one case's entry: every file under a temporary name, renamed into place, the marker last."""
        import blosc2
        from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
        from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params

        pseudo_label = stats.pseudo_label()
        maps = torch.stack([pseudo_label, *(torch.round(stats.pixel_uncertainty(m) * 255).to(torch.uint8)
                                            for m in PixelUncertainty)]).numpy()
        arrays = {"_maps.b2nd": maps, "_stats.b2nd": stats.means_float16(),
                  "_votes.b2nd": torch.stack(stats.votes).numpy()}
        properties = {
            "members": list(members),
            "weights": list(stats.weights),
            **{f"U_{m.value}": stats.sample_uncertainty(m) for m in SampleUncertainty},
            # nnU-Net's own sampler, as its preprocessing computes class locations of real segmentations
            # (coordinates with a leading channel index, as nnU-Net's loader expects them)
            "class_locations": DefaultPreprocessor._sample_foreground_locations(
                pseudo_label.numpy()[None], list(class_location_keys)),
        }
        scratch = process_scratch_folder(self.folder)
        temporary = {suffix: scratch / f"{case}{suffix}" for suffix in (*arrays, ".pkl")}
        try:
            for suffix, array in arrays.items():
                # nnU-Net's chunking rule for (channels, *3-D spatial) arrays and the configuration's patches
                blocks, chunks = comp_blosc2_params(array.shape, patch_size, array.itemsize)
                blosc2.asarray(np.ascontiguousarray(array), urlpath=str(temporary[suffix]), chunks=chunks,
                               blocks=blocks,
                               cparams={"codec": blosc2.Codec.LZ4HC, "clevel": 5, "nthreads": 1}, mode="w")
            properties["files"] = fingerprint(temporary[s] for s in arrays)  # named as they will be in place
            properties["spatial_shape"] = tuple(stats.spatial)
            with open(temporary[".pkl"], "wb") as f:
                pickle.dump(properties, f)
            for suffix, path in temporary.items():  # the marker (.pkl) goes last
                os.replace(path, self.folder / f"{case}{suffix}")
        except OSError as e:
            for path in temporary.values():
                path.unlink(missing_ok=True)
            if e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, _disk_full_message(self.folder / case)) from e
            raise

    def remove(self, case: str) -> None:
        self.marker(case).unlink(missing_ok=True)  # first, so a half-removed entry is never read as finished
        for suffix in _ENTRY_FILES:
            (self.folder / f"{case}{suffix}").unlink(missing_ok=True)

    def remove_leftovers(self) -> None:
        """Temporary files and claims of jobs killed mid-write (only when no job is writing)."""
        shutil.rmtree(self.folder / ".partial", ignore_errors=True)
        Claims(self.folder).remove_all()

    # --------------------------------------------------------------------------------------------- claims
    def claim(self, case: str) -> bool:
        """Takes a case for this process (``nnunet_dumm.claims``); False if a live process holds it."""
        return Claims(self.folder).claim(case)

    def release(self, case: str) -> None:
        Claims(self.folder).release(case)


@dataclass(frozen=True)
class TeacherPass:
    """The teacher checkpoints of a student configuration and the cache their pseudo-labels go to.

    The cache folder ``nnUNet_preprocessed/<dataset>/dumm_pseudo_labels/<data_identifier>_<key>`` is keyed by
    the checkpoints' contents, mirroring and the student's preprocessing, so every student fold (and every
    sharded job) with the same teachers shares it.
    """

    folds: tuple[tuple[Path, int | str, str], ...]
    sources: dict
    cache: PseudoLabelCache

    @classmethod
    def resolve(cls, teachers: Sequence[TeacherSpec], min_models: int, use_mirroring: bool, plans_manager,
                configuration: str, preprocessed_dataset_folder: str | Path,
                student_validation_cases: set[str] | None = None) -> TeacherPass:
        folds = tuple(resolve_teacher_folds(teachers, plans_manager.dataset_name, plans_manager.plans_name,
                                            configuration, min_models, student_validation_cases))
        data_identifier = plans_manager.get_configuration(configuration).data_identifier
        sources = teacher_sources(folds, use_mirroring, data_identifier)
        folder = Path(preprocessed_dataset_folder) / "dumm_pseudo_labels" / f"{data_identifier}_{sources_key(sources)}"
        return cls(folds, sources, PseudoLabelCache(folder))


def _write_sources(cache: PseudoLabelCache, sources: dict) -> None:
    cache.folder.mkdir(parents=True, exist_ok=True)
    sources_file = cache.folder / "sources.json"
    if sources_file.is_file():
        if json.loads(sources_file.read_text()) != json.loads(json.dumps(sources)):
            raise RuntimeError(f"{sources_file}: the cache was made by other models; refusing to mix them")
        return
    tmp = sources_file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sources, indent=2))
    os.replace(tmp, sources_file)


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
    base: PseudoLabelCache | None = None,
    member_weight: float = 1.0,
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
        member_weight: the weight of each of ``members`` in the ensemble (the base's members keep theirs).
        num_parts, part_id: shard the groups like ``nnUNetv2_predict`` so several jobs fill one cache.
        case_shape: the spatial shape of a case without reading its data (``unlabeled.preprocessed_shape``):
            the groups are planned before any case is loaded.
    """
    _write_sources(cache, sources)
    remove_stale_scratch_folders(cache.folder)
    groups = prediction_groups(list(cases), case_shape, members[0].window)[part_id::num_parts]
    mine = [case for group in groups for case in group]
    for case in [c for c in mine if cache.done(c) and not cache.intact(c)]:
        log(f"pseudo-labels: the cache entry of {case} in {cache.folder} is damaged (size or CRC-32); recomputing it")
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
                        computed += _predict_group(members, group, images, cache, base, member_weight,
                                                   class_location_keys)
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
                names: list[list[str]], weight: float) -> None:
    # its own function so that the member's softmax maps are freed before the next member predicts
    for case_stats, case_names, probs in zip(stats, names, member.predict_probabilities(images)):
        case_stats.add(probs, weight)
        case_names.append(member.name)


def _predict_group(members: Sequence[EnsembleMember], cases: list[str], images: list[torch.Tensor],
                   cache: PseudoLabelCache, base: PseudoLabelCache | None, member_weight: float,
                   class_location_keys: Sequence) -> int:
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
        _add_member(member, images, stats, names, member_weight)
    written = 0
    for case, case_stats, case_names in zip(cases, stats, names):
        if not cache.done(case):
            cache.write(case, case_stats, case_names, members[0].window.patch_size, class_location_keys)
            written += 1
    return written


@dataclass(frozen=True)
class PseudoLabelMaps:
    """How a cache entry becomes the label map that the unlabeled data loader augments like a segmentation.

    The map is int16 ``(num_channels, *spatial)``. Channel 0 is the pseudo-label (-1 outside nnU-Net's nonzero
    crop, as in its own segmentations). Where every weight is 0 or 1 (``mask``, ``none``) that one channel is the
    whole map: a pixel the mask drops takes ``masked_label``, so it travels through nnU-Net's spatial transform as
    one more label, not as a second channel to resample (0.79 -> 0.89 of nnU-Net's labeled loader's patches/s on a
    3-D benchmark, benchmarks/README.md). The soft weightings add channel 1, the pixel weight quantised to
    ``0..weight_levels``. ``weights`` is the one place that decides which pixels a round keeps, for training and
    for the diagnostics alike. ``class_thresholds`` (one per class, from ``class_quantile_thresholds``) replaces
    ``pixel_threshold``.
    """

    pixel_uncertainty: PixelUncertainty
    pixel_weighting: PixelWeighting
    pixel_threshold: float
    weight_levels: int
    num_classes: int
    class_thresholds: tuple[float, ...] | None = None

    @property
    def num_channels(self) -> int:
        return 1 if self.pixel_weighting in (PixelWeighting.MASK, PixelWeighting.NONE) else 2

    @property
    def masked_label(self) -> int:
        """The value of a dropped pixel in a one-channel map: the first value above the classes (the value
        nnU-Net gives an ignore label)."""
        return self.num_classes

    def weights(self, quantised_uncertainty: np.ndarray, pseudo_label: np.ndarray | None = None) -> torch.Tensor:
        """The loss weight in [0, 1] of each pixel, from the cached uint8 ``round(255 u)`` (and its pseudo-label,
        which selects the threshold when there is one per class)."""
        u = torch.from_numpy(np.asarray(quantised_uncertainty)).float() / 255
        threshold = self.pixel_threshold
        if self.class_thresholds is not None:
            if pseudo_label is None:
                raise ValueError("per-class thresholds need the pseudo-label")
            threshold = torch.tensor(self.class_thresholds)[torch.from_numpy(np.asarray(pseudo_label)).long()]
        return pixel_weights(u, self.pixel_weighting, threshold, self.num_classes)

    @cached_property
    def weight_level_table(self) -> np.ndarray:
        """int16 ``(num_classes, 256)``: the quantised weight of each (pseudo-label, cached uncertainty level), by
        ``weights`` itself, so that a patch's weights are one table lookup (the weight is elementwise)."""
        levels = np.tile(np.arange(256, dtype=np.uint8), (self.num_classes, 1))
        classes = np.repeat(np.arange(self.num_classes, dtype=np.uint8)[:, None], 256, 1)
        return torch.round(self.weights(levels, classes) * self.weight_levels).to(torch.int16).numpy()

    def label_map(self, pseudo_label: np.ndarray, quantised_uncertainty: np.ndarray,
                  nonzero: np.ndarray) -> np.ndarray:
        """The label map of a crop from the cached pseudo-label and uncertainty and the case's nonzero mask.

        Every step is one vectorised pass over the crop (boolean-indexed writes cost as much as all else
        together on a 3-D patch)."""
        table, u = self.weight_level_table, quantised_uncertainty
        outside = -(nonzero < 0).view(np.int8).astype(np.int16)  # -1 (every bit set) outside the crop, else 0
        if self.num_channels == 2:
            levels = np.take(table[0], u) if self.class_thresholds is None else table[pseudo_label, u]
            return np.stack([pseudo_label.astype(np.int16) | outside, levels])
        # one threshold keeps the levels below a bound: a comparison, not a lookup
        kept = u < (table[0] > 0).sum() if self.class_thresholds is None else table[pseudo_label, u] > 0
        # the masked label lies above every class: a maximum puts it where the mask drops a pixel
        label = np.maximum(pseudo_label, (~kept).view(np.uint8) * np.uint8(self.masked_label))
        return (label.astype(np.int16) | outside)[None]


def class_quantile_thresholds(cache: PseudoLabelCache, cases: Sequence[str], measure: PixelUncertainty,
                              num_classes: int, keep_quantile: float) -> tuple[float, ...]:
    """Per pseudo-label class, the uncertainty below which ``keep_quantile`` of that class's pixels lie (over
    ``cases``): a mask that keeps the same share of every class, whatever the teachers' confidence."""
    counts = np.zeros((num_classes, 256), dtype=np.int64)
    for case in cases:
        labels = cache.pseudo_label(case).ravel()
        u = cache.pixel_uncertainty(case, measure).ravel()
        counts += np.bincount(labels.astype(np.int64) * 256 + u, minlength=num_classes * 256).reshape(num_classes, 256)
    thresholds = []
    for class_counts in counts:
        total = class_counts.sum()
        level = int(np.searchsorted(np.cumsum(class_counts), keep_quantile * total)) if total else 255
        thresholds.append(min(255, level) / 255)
    return tuple(thresholds)
