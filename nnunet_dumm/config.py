"""The method's hyperparameters: one typed, documented, frozen config object, saved next to the results.

Data-derived settings stay in nnU-Net's plans and machine settings in environment variables; everything that
defines the method lives here. Trainer variants replace fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_dumm.compat import StrEnum
from nnunet_dumm.selection import RoundSchedule
from nnunet_dumm.uncertainty import PixelThreshold, PixelUncertainty, PixelWeighting, SampleUncertainty

__all__ = ["DUMMConfig", "StudentInit", "TeacherSpec"]


class StudentInit(StrEnum):
    """Where the student's weights start."""

    SCRATCH = "scratch"  # nnU-Net's initialisation, as a stock training
    TEACHER = "teacher"  # the weights of the teacher of the student's fold


@dataclass(frozen=True)
class TeacherSpec:
    """Trained nnU-Net models whose fold checkpoints label the unlabeled images.

    ``plans`` and ``configuration`` default to the student's. ``folds=None`` means every fold of that model
    folder that has the checkpoint on disk. ``model_folder`` overrides the lookup by trainer/plans/configuration
    (any trained nnU-Net model folder of the same dataset).
    """

    trainer: str = "nnUNetTrainer"
    plans: str | None = None
    configuration: str | None = None
    folds: tuple[int | str, ...] | None = None
    checkpoint: str = "checkpoint_final.pth"
    model_folder: str | None = None


@dataclass(frozen=True)
class DUMMConfig:
    """DUMM hyperparameters (see METHOD.md). Defaults were chosen on training data only (README, Results).

    The measures were picked by how well they predict pseudo-label errors of the demo dataset's unlabeled
    training images (true labels kept aside in labelsUnlabeled/, never the test set): the entropy of the fused
    prediction separates wrong from right pixels best (AUROC 0.963 vs kl 0.933, variance 0.884, vote 0.711), and
    1 - pairwise Dice ranks cases by pseudo-label error best (Spearman 0.52 vs entropy 0.45, dust 0.30).

    Attributes:
        teachers: the pseudo-label sources; by default the CV folds of a stock ``nnUNetTrainer`` run.
        min_models: fewer models on disk is an error (multi-model PUM needs disagreement).
        leak_free_validation: for fold k, only teachers that never trained on fold k's validation cases label
            the pool (with nnU-Net's cross-validation teachers: teacher k alone), so the student's validation Dice,
            ``checkpoint_best`` and ``nnUNetv2_find_best_configuration`` are as honest as stock nnU-Net's. Costs
            one teacher pass per fold instead of one shared pass. Test-set results are unaffected either way.
        use_mirroring: mirror test-time augmentation in the teachers' sliding-window prediction.
        pixel_uncertainty: the PUM measure that becomes pixel weights.
        pixel_weighting: how pixel uncertainty becomes a weight (mask, soft exp(-u), both, none).
        pixel_threshold: with masking, pixels whose normalised uncertainty exceeds this are ignored.
        pixel_threshold_mode: ``fixed`` (``pixel_threshold``) or ``class_quantile``: per pseudo-label class and
            round, the ``pixel_keep_quantile`` of that class's uncertainty over the round's cases.
        pixel_keep_quantile: the share of each class's pixels a ``class_quantile`` mask keeps.
        weight_levels: quantisation of the soft weightings' weight map that travels through augmentation (mask
            and none need no weight map: a dropped pixel is a label value).
        sample_uncertainty: the SUS measure U(x) that ranks unlabeled cases.
        round_fractions: SUS rounds: the most reliable fraction of the pool used in each round.
        round_epoch_shares: relative length of each round.
        student_joins_ensemble: from round 2 on, the current student is one more model of the ensemble.
        student_weight: the student's weight in that ensemble (each teacher has weight 1).
        unlabeled_batch_ratio: unlabeled batch size relative to nnU-Net's labeled batch size.
        unlabeled_oversample_foreground: share of unlabeled patches centred on a pseudo-label foreground pixel
            (nnU-Net's ``oversample_foreground_percent`` for labeled patches is 0.33).
        copy_paste: paste a box of each labeled patch (true label, full weight) into an unlabeled patch, after
            BCP (``nnunet_dumm.mixing``); ``copy_paste_box``: the box's side relative to the patch.
        student_init: ``scratch`` (nnU-Net's initialisation) or ``teacher``: the student starts from the weights
            of the teacher of its fold (the first teacher if that fold has none).
        consistency_weight: weight, relative to the pseudo-label term, of weak-to-strong consistency
            (``nnunet_dumm.consistency``, after FixMatch/UniMatch): the student's own confident predictions of its
            unlabeled patches become the targets of strongly perturbed copies of them, in the same forward pass
            (1.5x the samples of a DUMM step). 0 turns it off (the paper's method).
        consistency_threshold: the softmax maximum from which the student's own prediction is a target.
        schedule_factor: the student trains this multiple of nnU-Net's (or the budget preset's) epochs: labeled
            plus pseudo-labeled images are many more cases than the labeled ones whose plateau set the budget.
        lambda_max: weight of the unlabeled loss after ramp-up.
        rampup_fraction: fraction of all epochs over which lambda(t) ramps up from ~0.
    """

    teachers: tuple[TeacherSpec, ...] = (TeacherSpec(),)
    min_models: int = 2
    leak_free_validation: bool = False
    use_mirroring: bool = True
    pixel_uncertainty: PixelUncertainty = PixelUncertainty.ENTROPY
    pixel_weighting: PixelWeighting = PixelWeighting.MASK
    pixel_threshold: float = 0.1
    pixel_threshold_mode: PixelThreshold = PixelThreshold.FIXED
    pixel_keep_quantile: float = 0.9
    weight_levels: int = 8
    sample_uncertainty: SampleUncertainty = SampleUncertainty.DICE
    round_fractions: tuple[float, ...] = (0.5, 1.0)
    round_epoch_shares: tuple[float, ...] = (1.0, 1.0)
    student_joins_ensemble: bool = True
    student_weight: float = 1.0
    unlabeled_batch_ratio: float = 1.0
    unlabeled_oversample_foreground: float = 0.0
    copy_paste: bool = False
    copy_paste_box: float = 2 / 3
    student_init: StudentInit = StudentInit.SCRATCH
    consistency_weight: float = 0.0
    consistency_threshold: float = 0.95
    schedule_factor: float = 1.0
    lambda_max: float = 1.0
    rampup_fraction: float = 0.2
    schedule: RoundSchedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Enums may arrive as strings (JSON); normalise and validate every value with a message naming the field.
        for name, enum in (("pixel_uncertainty", PixelUncertainty), ("pixel_weighting", PixelWeighting),
                           ("sample_uncertainty", SampleUncertainty), ("pixel_threshold_mode", PixelThreshold),
                           ("student_init", StudentInit)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                raise ValueError(f"DUMMConfig.{name}={value!r}; choose one of {[e.value for e in enum]}") from None
        object.__setattr__(self, "teachers", tuple(
            t if isinstance(t, TeacherSpec) else TeacherSpec(**{**t, "folds": _tuple_or_none(t.get("folds"))})
            for t in self.teachers))
        object.__setattr__(self, "round_fractions", tuple(self.round_fractions))
        object.__setattr__(self, "round_epoch_shares", tuple(self.round_epoch_shares))
        checks = {
            "teachers": len(self.teachers) >= 1,
            "min_models": self.min_models >= 1,
            "pixel_threshold": 0 <= self.pixel_threshold <= 1,
            "pixel_keep_quantile": 0 < self.pixel_keep_quantile <= 1,
            "copy_paste_box": 0 < self.copy_paste_box <= 1,
            "weight_levels": 1 <= self.weight_levels <= 255,
            "student_weight": self.student_weight > 0,
            "unlabeled_batch_ratio": self.unlabeled_batch_ratio > 0,
            "unlabeled_oversample_foreground": 0 <= self.unlabeled_oversample_foreground <= 1,
            "consistency_weight": self.consistency_weight >= 0,
            "consistency_threshold": 0 <= self.consistency_threshold <= 1,
            "schedule_factor": self.schedule_factor > 0,
            "lambda_max": self.lambda_max >= 0,
            "rampup_fraction": 0 <= self.rampup_fraction <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"DUMMConfig.{name}={getattr(self, name)!r} is out of range")
        try:
            object.__setattr__(self, "schedule", RoundSchedule(self.round_fractions, self.round_epoch_shares))
        except ValueError as e:
            raise ValueError(f"DUMMConfig.round_fractions/round_epoch_shares: {e}") from None

    def replace_teacher_trainers(self, rename: Callable[[str], str]) -> DUMMConfig:
        """The same config with teachers looked up under other trainer names, ``rename(trainer)`` (teachers given
        by model folder stay as they are)."""
        teachers = tuple(t if t.model_folder else dataclasses.replace(t, trainer=rename(t.trainer))
                         for t in self.teachers)
        return dataclasses.replace(self, teachers=teachers)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("schedule")
        return json.loads(json.dumps(d))  # enums to strings, tuples to lists

    @classmethod
    def from_dict(cls, d: dict) -> DUMMConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls) if f.init}
        if unknown:
            raise ValueError(f"unknown DUMMConfig fields: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DUMMConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _tuple_or_none(value):
    return None if value is None else tuple(value)
