"""Shortened training schedules, nnU-Net style (``nnUNetTrainer_Xepochs``): a preset is a class that changes only
the budget of a trainer, and the demo's presets.

A DUMM preset takes its teachers from the presets of the same budget (stock teachers ``nnUNetTrainerStock_<budget>``),
so that a short student never waits for teachers of nnU-Net's full schedule. The benchmarks define their own
budgets with the same mixin (``benchmarks/trainers.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM
from nnunet_dumm.trainers.variants import nnUNetTrainerDUMM_paper

__all__ = ["DEMO_BUDGET", "BudgetPreset", "TrainingBudget", "nnUNetTrainerDUMM_demo", "nnUNetTrainerDUMM_paper_demo",
           "nnUNetTrainerStock_demo", "preset_name"]


@dataclass(frozen=True)
class TrainingBudget:
    """How long nnU-Net trains: epochs, training and validation iterations per epoch, and how often it writes
    ``checkpoint_latest.pth`` (nnU-Net's 50 epochs would mean never in a short schedule: a killed run restarts).
    ``teacher_folds``: the stock folds a DUMM preset of this budget learns from (None: every cross-validation
    fold), for quick checks that train fewer teachers."""

    name: str
    num_epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    save_every: int = 50
    teacher_folds: tuple[int, ...] | None = None

    @property
    def iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch


def preset_name(trainer: str, budget: str) -> str:
    """The budget preset of a trainer: ``<trainer>_<budget>``; stock nnU-Net's is ``nnUNetTrainerStock_<budget>``
    (a teacher named ``nnUNetTrainer`` in a config means stock nnU-Net)."""
    return f"{'nnUNetTrainerStock' if trainer == nnUNetTrainer.__name__ else trainer}_{budget}"


class BudgetPreset:
    """Mixin of a budget preset: ``class X(BudgetPreset, <arm>, budget=TrainingBudget(...))`` trains ``<arm>`` on
    that budget, with teachers of the same budget."""

    budget: ClassVar[TrainingBudget]

    def __init_subclass__(cls, budget: TrainingBudget | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if budget is None:  # a subclass of a preset (e.g. a user's own variant) keeps its budget
            return
        cls.budget = budget
        arm = cls.__bases__[-1]
        cls.__doc__ = f"{arm.__name__} with the '{budget.name}' budget {budget}"
        if issubclass(cls, nnUNetTrainerDUMM):
            config = arm.dumm_config.replace_teacher_trainers(lambda t: preset_name(t, budget.name))
            if budget.teacher_folds is not None:
                config = dataclasses.replace(config, teachers=tuple(
                    t if t.folds is not None or t.model_folder else dataclasses.replace(t, folds=budget.teacher_folds)
                    for t in config.teachers))
            cls.dumm_config = config

    # the five-argument signature nnU-Net requires of every trainer
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.budget.num_epochs
        self.num_iterations_per_epoch = self.budget.iterations_per_epoch
        self.num_val_iterations_per_epoch = self.budget.val_iterations_per_epoch
        self.save_every = self.budget.save_every


# `make demo` on 2 CPU cores (64 x 64 images): 250 iterations per model
DEMO_BUDGET = TrainingBudget("demo", num_epochs=10, iterations_per_epoch=25, val_iterations_per_epoch=5)


# the demo's teachers and its labeled-only baseline, its default student and the paper's setting
class nnUNetTrainerStock_demo(BudgetPreset, nnUNetTrainer, budget=DEMO_BUDGET): ...
class nnUNetTrainerDUMM_demo(BudgetPreset, nnUNetTrainerDUMM, budget=DEMO_BUDGET): ...
class nnUNetTrainerDUMM_paper_demo(BudgetPreset, nnUNetTrainerDUMM_paper, budget=DEMO_BUDGET): ...
