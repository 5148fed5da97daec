"""PUM: multi-model pseudo-labels with pixel-level uncertainty, cached on disk in the student's preprocessed space.

For every unlabeled case each model predicts softmax maps with nnU-Net's own sliding-window prediction; the
maps are fused, turned into a pseudo-label, every pixel-level uncertainty measure (quantised to uint8) and
every sample-level measure, and written as one ``<case>.npz``. Only one case's predictions are in memory at a
time, so memory does not grow with the pool. A finished case is never recomputed: the cache folder is keyed by
everything that produced it (``sources.json``), and each file is written under a temporary name, then renamed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.uncertainty import (
    PixelUncertainty,
    PixelWeighting,
    SampleUncertainty,
    fuse_probabilities,
    pixel_uncertainty,
    pixel_weights,
    sample_uncertainty,
)

__all__ = [
    "EnsembleMember",
    "PseudoLabelCache",
    "PseudoLabelMaps",
    "TeacherModelsIncompatible",
    "TeacherModelsMissing",
    "TeacherPass",
    "generate_pseudo_labels",
    "load_teacher_members",
    "resolve_teacher_folds",
]


class TeacherModelsMissing(RuntimeError):
    """Too few trained teacher models on disk; the message says how to train them."""


class TeacherModelsIncompatible(ValueError):
    """A teacher model folder was trained with other labels or another preprocessing than the student's dataset."""


@dataclass
class EnsembleMember:
    """One model of the pseudo-labelling ensemble: an initialised nnunetv2 ``nnUNetPredictor`` with its network."""

    name: str
    predictor: object

    def predict_probabilities(self, data: torch.Tensor) -> torch.Tensor:
        """Softmax ``(C, *spatial)`` for preprocessed data ``(c, *spatial)``, as nnUNetv2_predict computes it."""
        with torch.no_grad():
            logits = self.predictor.predict_sliding_window_return_logits(data)
        # fp16 logits from the sliding window: cast before the softmax
        return self.predictor.label_manager.apply_inference_nonlin(logits.float())


def _model_folder(spec: TeacherSpec, dataset_name: str, plans: str, configuration: str) -> Path:
    if spec.model_folder is not None:
        return Path(spec.model_folder)
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    return Path(get_output_folder(dataset_name, spec.trainer, spec.plans or plans, spec.configuration or configuration))


def resolve_teacher_folds(
    teachers: Sequence[TeacherSpec], dataset_name: str, plans: str, configuration: str, min_models: int
) -> list[tuple[Path, int | str, str]]:
    """``(model folder, fold, checkpoint name)`` of every teacher checkpoint found on disk.

    Raises:
        TeacherModelsMissing: fewer than ``min_models`` checkpoints; the message gives the training commands.
    """
    found, missing_commands = [], []
    for spec in teachers:
        folder = _model_folder(spec, dataset_name, plans, configuration)
        folds = spec.folds if spec.folds is not None else tuple(range(5))
        for fold in folds:
            if (folder / f"fold_{fold}" / spec.checkpoint).is_file():
                found.append((folder, fold, spec.checkpoint))
            elif spec.model_folder is None:
                missing_commands.append(
                    f"nnUNetv2_train {dataset_name} {spec.configuration or configuration} {fold} "
                    f"-tr {spec.trainer} -p {spec.plans or plans}"
                )
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
    """One ensemble member per teacher checkpoint, with one predictor (network) per model folder."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    by_folder: dict[tuple[Path, str], list] = {}
    for folder, fold, checkpoint in teacher_folds:
        by_folder.setdefault((folder, checkpoint), []).append(fold)
    members = []
    for (folder, checkpoint), folds in by_folder.items():
        predictor = nnUNetPredictor(device=device, use_mirroring=use_mirroring, perform_everything_on_device=False,
                                    allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds), checkpoint_name=checkpoint)
        _check_compatible(predictor.plans_manager, predictor.configuration_manager,
                          predictor.dataset_json, student_plans_manager, student_configuration_manager,
                          student_dataset_json, folder)
        for fold, parameters in zip(folds, predictor.list_of_parameters):
            # A network per fold: swapping one network's weights for every case and fold costs a load_state_dict
            # each time (a quarter of the pass in a profile); a copy costs one model's memory per fold.
            member_predictor = copy.copy(predictor)
            member_predictor.network = copy.deepcopy(predictor.network)
            member_predictor.network.load_state_dict(parameters)
            member_predictor.list_of_parameters = [parameters]
            members.append(EnsembleMember(f"{folder.name}/fold_{fold}/{checkpoint}", member_predictor))
    return members


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def teacher_sources(teacher_folds: Sequence[tuple[Path, int | str, str]], use_mirroring: bool,
                    data_identifier: str) -> dict:
    """What produced a pseudo-label pass; its hash names the cache folder."""
    return {
        "models": [
            {"folder": str(folder), "fold": str(fold), "checkpoint": checkpoint,
             "sha256": _file_digest(folder / f"fold_{fold}" / checkpoint)}
            for folder, fold, checkpoint in teacher_folds
        ],
        "use_mirroring": use_mirroring,
        "data_identifier": data_identifier,
    }


def sources_key(sources: dict) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:12]


class PseudoLabelCache:
    """A folder of ``<case>.npz`` pseudo-label entries plus ``sources.json``.

    Each entry holds ``pseudo_label`` (uint8, the preprocessed case's spatial shape), ``u_<measure>`` for every
    PixelUncertainty (uint8, ``round(255 * u)``) and ``U_<measure>`` for every SampleUncertainty (float).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def entry(self, case: str) -> Path:
        return self.folder / f"{case}.npz"

    def done(self, case: str) -> bool:
        return self.entry(case).is_file()

    def load(self, case: str) -> dict[str, np.ndarray]:
        with np.load(self.entry(case)) as f:
            return {k: f[k] for k in f.files}

    def sample_uncertainty(self, cases: Sequence[str], measure: SampleUncertainty | str) -> dict[str, float]:
        key = f"U_{SampleUncertainty(measure).value}"
        out = {}
        for case in cases:
            with np.load(self.entry(case)) as f:
                out[case] = float(f[key])
        return out

    def write(self, case: str, entry: dict[str, np.ndarray]) -> None:
        # np.savez appends .npz to names without it: keep the suffix so the temporary name is what gets renamed
        tmp = self.folder / f".{case}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, **entry)
        os.replace(tmp, self.entry(case))


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
                configuration: str, preprocessed_dataset_folder: str | Path) -> TeacherPass:
        folds = tuple(resolve_teacher_folds(teachers, plans_manager.dataset_name, plans_manager.plans_name,
                                            configuration, min_models))
        data_identifier = plans_manager.get_configuration(configuration).data_identifier
        sources = teacher_sources(folds, use_mirroring, data_identifier)
        folder = Path(preprocessed_dataset_folder) / "dumm_pseudo_labels" / f"{data_identifier}_{sources_key(sources)}"
        return cls(folds, sources, PseudoLabelCache(folder))


def pseudo_label_entry(probs: torch.Tensor) -> dict[str, np.ndarray]:
    """The cached representation of one case from its per-model softmax maps ``(M, C, *spatial)``."""
    entry = {"pseudo_label": fuse_probabilities(probs).argmax(0).to(torch.uint8).numpy()}
    for measure in PixelUncertainty:
        u = pixel_uncertainty(probs, measure)
        entry[f"u_{measure.value}"] = torch.round(u * 255).to(torch.uint8).numpy()
    for measure in SampleUncertainty:
        entry[f"U_{measure.value}"] = np.float64(sample_uncertainty(probs, measure))
    return entry


def generate_pseudo_labels(
    members: Sequence[EnsembleMember],
    cases: Sequence[str],
    load_data: Callable[[str], np.ndarray],
    cache: PseudoLabelCache,
    sources: dict,
    num_parts: int = 1,
    part_id: int = 0,
    verbose: bool = True,
    log: Callable[[str], None] = print,
) -> None:
    """Runs the ensemble over this part's cases that are not in the cache yet (an interrupted pass resumes).

    Args:
        load_data: returns the preprocessed image ``(c, *spatial)`` of a case.
        sources: what produced the pass; must equal the cache's ``sources.json`` if it exists.
        num_parts, part_id: shard the cases like ``nnUNetv2_predict`` so several jobs fill one cache.
    """
    cache.folder.mkdir(parents=True, exist_ok=True)
    sources_file = cache.folder / "sources.json"
    if sources_file.is_file():
        if json.loads(sources_file.read_text()) != json.loads(json.dumps(sources)):
            raise RuntimeError(f"{sources_file}: the cache was made by other models; refusing to mix them")
    else:
        tmp = sources_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sources, indent=2))
        os.replace(tmp, sources_file)
    mine = list(cases)[part_id::num_parts]
    todo = [c for c in mine if not cache.done(c)]
    if verbose:
        log(f"pseudo-labels: {len(members)} models, {len(mine)} cases ({len(mine) - len(todo)} cached) "
            f"-> {cache.folder}")
    start = time.perf_counter()
    for case in tqdm(todo, desc="pseudo-labelling", unit="case", disable=not verbose):
        data = torch.from_numpy(np.ascontiguousarray(load_data(case)))
        probs = torch.stack([m.predict_probabilities(data) for m in members])
        cache.write(case, pseudo_label_entry(probs))
    if verbose and todo:
        elapsed = time.perf_counter() - start
        log(f"pseudo-labels: {len(todo)} cases in {elapsed:.1f} s ({len(todo) / elapsed:.2f} cases/s, "
            f"{len(todo) * len(members) / elapsed:.2f} case-models/s)")


@dataclass(frozen=True)
class PseudoLabelMaps:
    """The per-case label map that the unlabeled data loader augments like a segmentation.

    Returns int16 ``(2, *spatial)``: channel 0 the pseudo-label (-1 outside nnU-Net's nonzero crop, as in its
    own segmentations), channel 1 the pixel weight quantised to ``0..weight_levels``.
    """

    cache_folder: str
    pixel_uncertainty: PixelUncertainty
    pixel_weighting: PixelWeighting
    pixel_threshold: float
    weight_levels: int
    num_classes: int

    def weights(self, entry: dict[str, np.ndarray]) -> torch.Tensor:
        """The loss weight of every pixel of a cache entry, in [0, 1]."""
        u = torch.from_numpy(entry[f"u_{self.pixel_uncertainty.value}"]).float() / 255
        return pixel_weights(u, self.pixel_weighting, self.pixel_threshold, self.num_classes)

    def __call__(self, case: str, nonzero_seg: np.ndarray) -> np.ndarray:
        entry = PseudoLabelCache(self.cache_folder).load(case)
        label_map = np.empty((2, *entry["pseudo_label"].shape), dtype=np.int16)
        label_map[0] = entry["pseudo_label"]
        label_map[0][nonzero_seg < 0] = -1
        label_map[1] = torch.round(self.weights(entry) * self.weight_levels).to(torch.int16).numpy()
        return label_map
