"""The benchmarks' training budgets and their trainer presets ``<arm>_<budget>`` (and the tests' ``test`` budget).

Every arm the benchmarks compare gets a preset of every budget, built with the package's ``BudgetPreset`` mixin, so
that stock nnU-Net and DUMM train the same schedule: ``nnUNetTrainerStock_<budget>`` is stock nnU-Net with only the
schedule changed (the baseline and the default teachers of the DUMM presets of the same budget). nnU-Net finds them
through ``benchmarks/_nnunet_ext`` on ``nnUNet_extTrainer`` (``benchmarks.common.enable_benchmark_trainers``).
"""

from __future__ import annotations

import dataclasses

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_dumm.trainers import (
    nnUNetTrainerDUMM,
    nnUNetTrainerDUMM_leakFree,
    nnUNetTrainerDUMM_noMask,
    nnUNetTrainerDUMM_noPUM,
    nnUNetTrainerDUMM_noSUS,
    nnUNetTrainerDUMM_paper,
    nnUNetTrainerPseudoLabel,
)
from nnunet_dumm.trainers.budget import DEMO_BUDGET, BudgetPreset, TrainingBudget, preset_name


def _epochs_of_100(iterations: int) -> TrainingBudget:
    """A schedule of ``iterations`` in epochs of 100 (10 validation iterations), checkpointed every 5 epochs."""
    return TrainingBudget(f"{iterations}it", num_epochs=iterations // 100, iterations_per_epoch=100,
                          val_iterations_per_epoch=10, save_every=5)


BUDGETS = {budget.name: budget for budget in (
    # the tests: a few seconds of training, two teachers
    TrainingBudget("test", num_epochs=4, iterations_per_epoch=3, val_iterations_per_epoch=2, teacher_folds=(0, 1)),
    DEMO_BUDGET,
    # a pipeline check on real data: all arms of one dataset in about 90 minutes on 2 cores, three teachers; 150
    # iterations are far from any plateau (benchmarks/README.md)
    TrainingBudget("cpu", num_epochs=10, iterations_per_epoch=15, val_iterations_per_epoch=3, teacher_folds=(0, 1, 2)),
    # a short GPU check of the same benchmarks, 1000 iterations (1/250 of nnU-Net's schedule), three teachers
    TrainingBudget("gpu", num_epochs=20, iterations_per_epoch=50, val_iterations_per_epoch=5, teacher_folds=(0, 1, 2)),
    # the learning curves and the proxy budgets (validation iterations only feed nnU-Net's pseudo Dice); 5000 is
    # the GPU window's
    *(_epochs_of_100(iterations) for iterations in (500, 1000, 2000, 4000, 5000, 8000, 10000)),
)}
# The benchmarks' proxy preset, per benchmark dataset: the smallest budget whose doubling adds less than 1 Dice point
# to stock nnU-Net fold 0 on the dev split (benchmarks/results/<dataset>_learning_curve_*.md), chosen on one seed:
# ACDC-7 at 64 x 64 63.3 -> 63.2 from 2,000 to 4,000 iterations, ISIC-10 % at 64 px 87.0 -> 86.9 from 1,000 to
# 2,000. Over three seeds ACDC's does not hold (+2.2 from 2,000 to 4,000: acdc_learning_curve_L7_ds4_3seeds.md);
# ISIC's does (+0.3 [-0.2, +0.9] from 1,000 to 2,000: isic_learning_curve_10pct_64px_3seeds.md).
PROXY_BUDGETS = {"acdc": "2000it", "isic": "1000it"}


class nnUNetTrainerDUMM_noTeacherMirroring(nnUNetTrainerDUMM):
    """The teachers' pass without test-time mirroring (a quarter of the forward passes in 2-D, an eighth in 3-D):
    measured against the default (mirroring on) to choose it, not shipped."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, use_mirroring=False)


# the arms the benchmarks compare: stock nnU-Net, every trainer the package ships, and the measured choices
ARMS = (nnUNetTrainer, nnUNetTrainerDUMM, nnUNetTrainerDUMM_paper, nnUNetTrainerDUMM_noSUS, nnUNetTrainerDUMM_noPUM,
        nnUNetTrainerDUMM_noMask, nnUNetTrainerPseudoLabel, nnUNetTrainerDUMM_leakFree,
        nnUNetTrainerDUMM_noTeacherMirroring)


def _make_presets() -> dict[str, type]:
    from nnunet_dumm.trainers import budget as package_presets

    presets = {}
    for budget in BUDGETS.values():
        for arm in ARMS:
            name = preset_name(arm.__name__, budget.name)
            if hasattr(package_presets, name):  # the package ships the demo's own presets
                continue
            presets[name] = type(name, (BudgetPreset, arm), {"__module__": __name__}, budget=budget)
    return presets


PRESETS = _make_presets()
globals().update(PRESETS)


__all__ = ["ARMS", "BUDGETS", "PRESETS", "PROXY_BUDGETS", "nnUNetTrainerDUMM_noTeacherMirroring", *PRESETS]
