"""Named trainer variants and training-budget presets, nnU-Net style: each class changes one thing.

Ablations (full nnU-Net schedule):
* ``nnUNetTrainerDUMM``: full method (PUM + SUS).
* ``nnUNetTrainerDUMM_noSUS``: all unlabeled cases from the first epoch, one round.
* ``nnUNetTrainerDUMM_noPUM``: one teacher (fold 0), no pixel weighting; SUS ranks by entropy.
* ``nnUNetTrainerPseudoLabel``: plain single-model pseudo-labelling (Lee 2013): fold 0, one round, no weighting.

Budget presets ``<arm>_<budget>`` (``test``, ``demo``, ``cpu``, ``gpu``) shorten nnU-Net's schedule for every arm alike,
including ``nnUNetTrainerStock_<budget>``: stock nnU-Net with only the schedule changed (the baseline and the
default teachers of the DUMM presets of the same budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM, with_config


@dataclass(frozen=True)
class TrainingBudget:
    """How long nnU-Net trains: epochs, training and validation iterations per epoch."""

    num_epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int


BUDGETS = {
    # integration tests: a few seconds of training
    "test": TrainingBudget(num_epochs=4, iterations_per_epoch=3, val_iterations_per_epoch=2),
    # the demo on 2 CPU cores (64 x 64 images)
    "demo": TrainingBudget(num_epochs=10, iterations_per_epoch=25, val_iterations_per_epoch=5),
    # CPU benchmarks on real data: all arms of one dataset in about 90 minutes on 2 cores (benchmarks/README.md);
    # 150 iterations, 1/1667 of nnU-Net's default schedule: the fixed costs (pseudo-label passes, start-up, final
    # validation, test prediction) already take about an hour there
    "cpu": TrainingBudget(num_epochs=10, iterations_per_epoch=15, val_iterations_per_epoch=3),
    # a short GPU check of the same benchmarks, 1000 iterations (1/250 of nnU-Net's schedule): on one H200 with 16
    # cores the stock rows and DUMM of ACDC (half resolution, 40 unlabeled volumes) took 9 minutes, all rows ~15
    "gpu": TrainingBudget(num_epochs=20, iterations_per_epoch=50, val_iterations_per_epoch=5),
}

_ONE_ROUND = {"round_fractions": (1.0,), "round_epoch_shares": (1.0,)}
_SINGLE_MODEL = {"min_models": 1, "pixel_weighting": "none", "student_joins_ensemble": False,
                 "sample_uncertainty": "entropy"}

nnUNetTrainerDUMM_noSUS = with_config("nnUNetTrainerDUMM_noSUS", __name__, nnUNetTrainerDUMM, **_ONE_ROUND)
nnUNetTrainerDUMM_noPUM = with_config("nnUNetTrainerDUMM_noPUM", __name__, nnUNetTrainerDUMM,
                                      teachers=(TeacherSpec(folds=(0,)),), **_SINGLE_MODEL)
nnUNetTrainerPseudoLabel = with_config("nnUNetTrainerPseudoLabel", __name__, nnUNetTrainerDUMM,
                                       teachers=(TeacherSpec(folds=(0,)),), **_SINGLE_MODEL, **_ONE_ROUND)


class _BudgetMixin:
    budget: ClassVar[TrainingBudget]

    # the five-argument signature nnU-Net requires of every trainer
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.budget.num_epochs
        self.num_iterations_per_epoch = self.budget.iterations_per_epoch
        self.num_val_iterations_per_epoch = self.budget.val_iterations_per_epoch


def _budget_preset(base: type, budget_name: str) -> type:
    name = f"{'nnUNetTrainerStock' if base is nnUNetTrainer else base.__name__}_{budget_name}"
    namespace = {"budget": BUDGETS[budget_name], "__module__": __name__, "__qualname__": name,
                 "__doc__": f"{base.__name__} with the '{budget_name}' budget {BUDGETS[budget_name]}"}
    if issubclass(base, nnUNetTrainerDUMM):
        # teachers trained with the same budget, by default
        namespace["dumm_config"] = base.dumm_config.replace_teacher_trainer(f"nnUNetTrainerStock_{budget_name}")
    return type(name, (_BudgetMixin, base), namespace)


ARMS = (nnUNetTrainer, nnUNetTrainerDUMM, nnUNetTrainerDUMM_noSUS, nnUNetTrainerDUMM_noPUM, nnUNetTrainerPseudoLabel)
PRESETS = {}
for _budget in BUDGETS:
    for _arm in ARMS:
        _preset = _budget_preset(_arm, _budget)
        PRESETS[_preset.__name__] = _preset
globals().update(PRESETS)

__all__ = ["BUDGETS", "TrainingBudget", "nnUNetTrainerDUMM_noSUS", "nnUNetTrainerDUMM_noPUM",
           "nnUNetTrainerPseudoLabel", *PRESETS]
