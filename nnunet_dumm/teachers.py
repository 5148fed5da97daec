"""Teachers: which trained nnU-Net checkpoints label the unlabeled pool, checked and loaded as ensemble members.

By default the teachers are the cross-validation folds of a stock nnU-Net run of the same dataset, configuration
and plans (``TeacherSpec``); any trained model folder with the student's preprocessing can be one. A teacher pass is
identified by the checkpoints' contents (``teacher_sources``), which names the cache its pseudo-labels go to.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nnunet_dumm.cache import CACHE_FORMAT, CacheContents, PseudoLabelCache, sources_key
from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.prediction import SlidingWindow, softmax_

__all__ = [
    "EnsembleMember",
    "TeacherModelsIncompatible",
    "TeacherModelsMissing",
    "TeacherPass",
    "load_teacher_members",
    "member_from_network",
    "resolve_teacher_folds",
    "teacher_sources",
    "teachers_that_saw",
    "weights_digest",
]


class TeacherModelsMissing(RuntimeError):
    """Too few trained teacher models on disk; the message says how to train them."""


class TeacherModelsIncompatible(ValueError):
    """A teacher model folder was trained with other labels or another preprocessing than the student's dataset."""


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


def _cross_validation_folds(dataset_name: str) -> list[int]:
    """The folds of the dataset's ``splits_final.json``; nnU-Net's five where no fold has written it yet."""
    from nnunetv2.paths import nnUNet_preprocessed

    splits_file = Path(nnUNet_preprocessed) / dataset_name / "splits_final.json"
    return list(range(len(json.loads(splits_file.read_text())) if splits_file.is_file() else 5))


def resolve_teacher_folds(
    teachers: Sequence[TeacherSpec], dataset_name: str, plans: str, configuration: str, min_models: int,
    student_validation_cases: set[str] | None = None,
) -> list[tuple[Path, int | str, str]]:
    """``(model folder, fold, checkpoint name)`` of every teacher checkpoint the student uses.

    A teacher given by trainer without ``folds`` (the default: your stock cross-validation) is every fold of the
    dataset's ``splits_final.json``, and each must have its checkpoint (so a student never starts on two of five
    teachers, or beside a teacher that is still training); folds beyond the split on disk (``fold_all``) join them.
    Explicit ``folds`` take those on disk; a model folder without ``folds`` takes every fold on disk. With
    ``student_validation_cases`` (leak-free validation) only teachers that never trained on those cases count.

    Raises:
        TeacherModelsMissing: a cross-validation teacher lacks its checkpoint, or fewer than ``min_models``
            checkpoints were found; the message gives the training commands.
    """
    found, missing, strict = [], [], False
    for spec in teachers:
        folder = _model_folder(spec, dataset_name, plans, configuration)
        on_disk = _folds_on_disk(folder, spec.checkpoint)
        if spec.folds is None and spec.model_folder is None:
            cross_validation = _cross_validation_folds(dataset_name)
            wanted = [*cross_validation, *(fold for fold in on_disk if fold not in cross_validation)]
            strict = strict or any(fold not in on_disk for fold in wanted)
        else:
            wanted = spec.folds if spec.folds is not None else on_disk
        found += [(folder, fold, spec.checkpoint) for fold in wanted if fold in on_disk]
        if spec.model_folder is None:
            missing += [(spec, folder, fold) for fold in wanted if fold not in on_disk]
    if student_validation_cases is not None:
        found = [t for t in found if t not in teachers_that_saw(found, student_validation_cases, dataset_name)]
        missing = [m for m in missing if teacher_training_cases(m[1], m[2], dataset_name) is not None
                   and not teacher_training_cases(m[1], m[2], dataset_name) & student_validation_cases]
        strict = strict and bool(missing)
        if len(found) < min_models and not missing:
            raise TeacherModelsMissing(
                f"leak-free validation leaves {len(found)} teacher model(s) that never trained on this fold's "
                f"validation cases; {min_models} needed. With nnU-Net's cross-validation teachers only the "
                "teacher of the same fold qualifies: train it, or lower min_models")
    if strict or len(found) < min_models:
        raise TeacherModelsMissing(_missing_message(found, missing, min_models, strict, dataset_name, plans,
                                                    configuration))
    return found


def _missing_message(found: list, missing: list, min_models: int, strict: bool, dataset_name: str, plans: str,
                     configuration: str) -> str:
    def state(folder: Path, fold) -> str:
        latest = folder / f"fold_{fold}" / "checkpoint_latest.pth"
        return f"fold {fold} (still training, or interrupted: {latest.name} only)" if latest.is_file() else \
            f"fold {fold}"

    have = ", ".join(f"{f.name}/fold_{k}" for f, k, _ in found) or "none"
    if strict:
        lacking = ", ".join(state(folder, fold) for _, folder, fold in missing)
        head = (f"DUMM's default teachers are every cross-validation fold of your stock run, and {lacking} "
                f"{'has' if len(missing) == 1 else 'have'} no {missing[0][0].checkpoint} yet (found {len(found)}: "
                f"{have}). Train them first, or name the folds to use in DUMMConfig.teachers "
                "(TeacherSpec(folds=...)):")
    else:
        head = (f"DUMM needs at least {min_models} trained teacher models; found {len(found)} ({have}). Train them "
                "first:")
    commands = [f"nnUNetv2_train {dataset_name} {spec.configuration or configuration} {fold} -tr {spec.trainer} "
                f"-p {spec.plans or plans}" for spec, _, fold in missing]
    return "\n  ".join([head, *(commands or ["(train the configured model folders' folds)"])])


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


def weights_digest(network: torch.nn.Module) -> str:
    """A digest of a network's weights: keys a later round's pseudo-labels by the student that made them."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:16]


def teacher_sources(teacher_folds: Sequence[tuple[Path, int | str, str]], use_mirroring: bool,
                    data_identifier: str, contents: CacheContents) -> dict:
    """What produced a pseudo-label pass and what its entries keep; its hash names the cache folder.

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
        "contents": contents.to_dict(),
        "cache_format": CACHE_FORMAT,
    }

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
    def resolve(cls, config, plans_manager, configuration: str, preprocessed_dataset_folder: str | Path,
                student_validation_cases: set[str] | None = None) -> TeacherPass:
        """The teachers of a ``DUMMConfig`` for a student configuration, and their cache."""
        folds = tuple(resolve_teacher_folds(config.teachers, plans_manager.dataset_name, plans_manager.plans_name,
                                            configuration, config.min_models, student_validation_cases))
        data_identifier = plans_manager.get_configuration(configuration).data_identifier
        sources = teacher_sources(folds, config.use_mirroring, data_identifier, CacheContents.of_round(config, 0))
        folder = Path(preprocessed_dataset_folder) / "dumm_pseudo_labels" / f"{data_identifier}_{sources_key(sources)}"
        return cls(folds, sources, PseudoLabelCache(folder))

