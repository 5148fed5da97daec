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

from nnunet_dumm.selection import RoundSchedule
from nnunet_dumm.uncertainty import PixelThreshold, PixelUncertainty, PixelWeighting, SampleUncertainty

__all__ = ["DUMMConfig", "LegacyConfigError", "PAPER_CONFIG", "TeacherSpec"]


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


# Fields and values of earlier versions that measured no gain on either dev split and left the package
# (docs/results.md, "Removed levers"; their code last lived in commit 32f5456). A saved config that holds one at
# the default it had then loads; one that used it names the lever.
LAST_COMMIT_WITH_REMOVED_LEVERS = "32f5456"
_REMOVED_FIELDS = {"copy_paste": False, "copy_paste_box": 2 / 3, "student_init": "scratch", "consistency_weight": 0.0,
                   "consistency_threshold": 0.95, "schedule_factor": 1.0, "unlabeled_oversample_foreground": 0.0,
                   "student_weight": 1.0, "weight_levels": 8}
_REMOVED_VALUES = {"pixel_weighting": ("soft", "mask_and_soft"), "sample_uncertainty": ("dice_fg",)}


class LegacyConfigError(ValueError):
    """A saved config uses a lever or option this version no longer has; the message names it."""


@dataclass(frozen=True)
class DUMMConfig:
    """DUMM hyperparameters (docs/method.md). The defaults are the recommended method, chosen on the benchmarks'
    training-side dev splits (docs/results.md); ``PAPER_CONFIG`` is the setting as published.

    The measures were picked by how well they predict pseudo-label errors of the demo dataset's unlabeled
    training images (true labels kept aside in labelsUnlabeled/, never the test set): the entropy of the fused
    prediction separates wrong from right pixels best (AUROC 0.963 vs kl 0.933, variance 0.884, vote 0.711), and
    1 - pairwise Dice ranks cases by pseudo-label error best (Spearman 0.52 vs entropy 0.45, dust 0.30).
    The class-quantile mask beat the paper's fixed threshold by 6.9 Dice points [+4.8, +9.2] on the ACDC-7 dev
    split (three seeds) and was level with it on the ISIC-10 % dev split.

    Attributes:
        teachers: the pseudo-label sources; by default the CV folds of a stock ``nnUNetTrainer`` run.
        min_models: fewer models on disk is an error (multi-model PUM needs disagreement).
        leak_free_validation: for fold k, only teachers that never trained on fold k's validation cases label
            the pool (with nnU-Net's cross-validation teachers: teacher k alone), so the student's validation Dice,
            ``checkpoint_best`` and ``nnUNetv2_find_best_configuration`` are as honest as stock nnU-Net's. Costs
            one teacher pass per fold instead of one shared pass. Test-set results are unaffected either way.
        use_mirroring: mirror test-time augmentation in the teachers' sliding-window prediction.
        pixel_uncertainty: the PUM measure that decides which pseudo-label pixels count.
        pixel_weighting: ``mask`` (uncertain pixels are left out of the loss) or ``none`` (every pixel counts).
        pixel_threshold_mode: ``class_quantile``: per pseudo-label class and round, the ``pixel_keep_quantile``
            most certain pixels of that class (over the round's cases) are kept; ``fixed``: pixels whose
            normalised uncertainty exceeds ``pixel_threshold`` are dropped (the paper).
        pixel_keep_quantile: the share of each class's pixels a ``class_quantile`` mask keeps.
        pixel_threshold: the ``fixed`` mask's threshold.
        sample_uncertainty: the SUS measure U(x) that ranks unlabeled cases.
        round_fractions: SUS rounds: the most reliable fraction of the pool used in each round.
        round_epoch_shares: relative length of each round.
        student_joins_ensemble: from round 2 on, the current student is one more model of the ensemble.
        unlabeled_batch_ratio: unlabeled batch size relative to nnU-Net's labeled batch size.
        lambda_max: weight of the unlabeled loss after ramp-up.
        rampup_fraction: fraction of all epochs over which lambda(t) ramps up from ~0.
    """

    teachers: tuple[TeacherSpec, ...] = (TeacherSpec(),)
    min_models: int = 2
    leak_free_validation: bool = False
    use_mirroring: bool = True
    pixel_uncertainty: PixelUncertainty = PixelUncertainty.ENTROPY
    pixel_weighting: PixelWeighting = PixelWeighting.MASK
    pixel_threshold_mode: PixelThreshold = PixelThreshold.CLASS_QUANTILE
    pixel_keep_quantile: float = 0.9
    pixel_threshold: float = 0.1
    sample_uncertainty: SampleUncertainty = SampleUncertainty.DICE
    round_fractions: tuple[float, ...] = (0.5, 1.0)
    round_epoch_shares: tuple[float, ...] = (1.0, 1.0)
    student_joins_ensemble: bool = True
    unlabeled_batch_ratio: float = 1.0
    lambda_max: float = 1.0
    rampup_fraction: float = 0.2
    schedule: RoundSchedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Enums may arrive as strings (JSON); normalise and validate every value with a message naming the field.
        for name, enum in (("pixel_uncertainty", PixelUncertainty), ("pixel_weighting", PixelWeighting),
                           ("sample_uncertainty", SampleUncertainty), ("pixel_threshold_mode", PixelThreshold)):
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
            "unlabeled_batch_ratio": self.unlabeled_batch_ratio > 0,
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

    def method_differs(self, other: DUMMConfig) -> list[str]:
        """The fields other than the teachers in which two configs differ (what a trainer's method changes)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [name for name in mine if name != "teachers" and mine[name] != theirs[name]]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("schedule")
        return json.loads(json.dumps(d))  # enums to strings, tuples to lists

    @classmethod
    def from_dict(cls, d: dict) -> DUMMConfig:
        """A config from its dict; a removed field at the default it had is dropped (configs saved by earlier
        versions load), a removed lever that was in use raises ``LegacyConfigError``."""
        d = dict(d)
        for name, default in _REMOVED_FIELDS.items():
            value = d.pop(name, default)
            if value != default:
                raise LegacyConfigError(_removed_message(f"{name}={value!r}"))
        for name, values in _REMOVED_VALUES.items():
            if d.get(name) in values:
                raise LegacyConfigError(_removed_message(f"{name}={d[name]!r}"))
        unknown = set(d) - {f.name for f in dataclasses.fields(cls) if f.init}
        if unknown:
            raise ValueError(f"unknown DUMMConfig fields: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DUMMConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _removed_message(what: str) -> str:
    return (f"this config uses {what}, a lever that measured no gain on the benchmarks' dev splits and was removed "
            f"from nnunet_dumm in 0.2.0 (docs/results.md, 'Removed levers'). To continue such a fold, install the "
            f"last version that had it: git checkout {LAST_COMMIT_WITH_REMOVED_LEVERS} of the nnunet_dumm repository")


# The setting as published: PUM's entropy mask at a fixed 0.1 (nnUNetTrainerDUMM_paper; nnUNetTrainerDUMM before 0.2.0)
PAPER_CONFIG = DUMMConfig(pixel_threshold_mode=PixelThreshold.FIXED)


def _tuple_or_none(value):
    return None if value is None else tuple(value)
