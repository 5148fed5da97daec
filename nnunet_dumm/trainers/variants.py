"""Named trainer variants and training-budget presets, nnU-Net style: each class changes one thing.

Ablations (full nnU-Net schedule):
* ``nnUNetTrainerDUMM``: full method (PUM + SUS).
* ``nnUNetTrainerDUMM_noSUS``: all unlabeled cases from the first epoch, one round.
* ``nnUNetTrainerDUMM_noPUM``: one teacher (fold 0), no pixel weighting; SUS ranks by entropy.
* ``nnUNetTrainerPseudoLabel``: plain single-model pseudo-labelling (Lee 2013): fold 0, one round, no weighting.

The candidates for the trainer the README recommends are arms too, with every budget preset DUMM has:
``nnUNetTrainerDUMM_noMask`` (DUMM with every pseudo-label pixel counted) and ``nnUNetTrainerDUMM_classQuantile``
(the mask keeps the most certain 90 % of each class). The other levers beyond the paper have the test and proxy
budgets.

Budget presets ``<arm>_<budget>`` shorten nnU-Net's schedule for every arm alike, including
``nnUNetTrainerStock_<budget>``: stock nnU-Net with only the schedule changed (the baseline and the default
teachers of the DUMM presets of the same budget). Each preset is written out as its own class statement so that
it can be found by name in this file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM


@dataclass(frozen=True)
class TrainingBudget:
    """How long nnU-Net trains: epochs, training and validation iterations per epoch, and how often it writes
    ``checkpoint_latest.pth`` (nnU-Net's 50 epochs would mean never in a short schedule: a killed run restarts)."""

    num_epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    save_every: int = 50

    @property
    def iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch


def _epochs_of_100(iterations: int) -> TrainingBudget:
    """A schedule of ``iterations`` in epochs of 100 (10 validation iterations), checkpointed every 5 epochs."""
    return TrainingBudget(num_epochs=iterations // 100, iterations_per_epoch=100, val_iterations_per_epoch=10,
                          save_every=5)


BUDGETS = {
    # integration tests: a few seconds of training
    "test": TrainingBudget(num_epochs=4, iterations_per_epoch=3, val_iterations_per_epoch=2),
    # the demo on 2 CPU cores (64 x 64 images)
    "demo": TrainingBudget(num_epochs=10, iterations_per_epoch=25, val_iterations_per_epoch=5),
    # a pipeline check on real data: all arms of one dataset in about 90 minutes on 2 cores; 150 iterations are
    # far from any plateau (benchmarks/README.md)
    "cpu": TrainingBudget(num_epochs=10, iterations_per_epoch=15, val_iterations_per_epoch=3),
    # a short GPU check of the same benchmarks, 1000 iterations (1/250 of nnU-Net's schedule): on one H200 with 16
    # cores the stock rows and DUMM of ACDC (half resolution, 40 unlabeled volumes) took 9 minutes, all rows ~15
    "gpu": TrainingBudget(num_epochs=20, iterations_per_epoch=50, val_iterations_per_epoch=5),
    # the learning curve of stock nnU-Net that decides the proxy budget (benchmarks/learning_curve.py); validation
    # iterations only feed nnU-Net's pseudo Dice (checkpoint_best), not any reported number
    "500it": _epochs_of_100(iterations=500),
    "1000it": _epochs_of_100(iterations=1000),
    "2000it": _epochs_of_100(iterations=2000),
    "4000it": _epochs_of_100(iterations=4000),
    "8000it": _epochs_of_100(iterations=8000),
    # a GPU window (about 10 minutes on one H200, several models at once): 5x the gpu preset's iterations
    "5000it": _epochs_of_100(iterations=5000),
    "10000it": _epochs_of_100(iterations=10000),
}
# The benchmarks' proxy preset, per benchmark dataset: the smallest budget whose doubling adds less than 1 Dice point
# to stock nnU-Net fold 0 on the dev split (benchmarks/results/<dataset>_learning_curve_*.md), chosen on one seed:
# ACDC-7 at 64 x 64 63.3 -> 63.2 from 2,000 to 4,000 iterations, ISIC-10 % at 64 px 87.0 -> 86.9 from 1,000 to
# 2,000. Every arm gets it; stock also gets twice it. Over three seeds ACDC's does not hold (+2.2 from 2,000 to 4,000:
# acdc_learning_curve_L7_ds4_3seeds.md); it stays until 8,000 iterations over three seeds say where the plateau is.
# Half the features per stage does not plateau sooner (+1.7 from 4,000 to 8,000 over three seeds:
# acdc_learning_curve_L7_ds4_nnUNetPlans_features0.5_3seeds.md).
# ISIC's holds over three seeds (+0.3 [-0.2, +0.9] from 1,000 to 2,000: isic_learning_curve_10pct_64px_3seeds.md).
PROXY_BUDGETS = {"acdc": "2000it", "isic": "1000it"}
# Budgets every arm has besides the proxy ones (benchmarks/run_quality.py --proxy-budget): ACDC's next doubling
CANDIDATE_PROXY_BUDGETS = ("4000it",)

_ONE_ROUND = {"round_fractions": (1.0,), "round_epoch_shares": (1.0,)}
_SINGLE_MODEL = {"teachers": (TeacherSpec(folds=(0,)),), "min_models": 1, "pixel_weighting": "none",
                 "student_joins_ensemble": False, "sample_uncertainty": "entropy"}


class nnUNetTrainerDUMM_noSUS(nnUNetTrainerDUMM):
    """DUMM without SUS: every unlabeled case from the first epoch, in one round."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_ONE_ROUND)


class nnUNetTrainerDUMM_noPUM(nnUNetTrainerDUMM):
    """DUMM without PUM: one teacher (fold 0), no pixel weighting; SUS ranks its cases by entropy."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_SINGLE_MODEL)


class nnUNetTrainerPseudoLabel(nnUNetTrainerDUMM):
    """Plain single-model pseudo-labelling (Lee 2013): fold-0 teacher, one round, every pixel counts."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_SINGLE_MODEL, **_ONE_ROUND)


class nnUNetTrainerDUMM_leakFree(nnUNetTrainerDUMM):
    """DUMM whose validation is as honest as stock nnU-Net's: for fold k only the teachers that never trained on
    fold k's validation cases (the stock teacher of fold k) label the pool; PUM then measures that one model's
    uncertainty (entropy), and SUS ranks by entropy."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, leak_free_validation=True, min_models=1,
                                      sample_uncertainty="entropy")


# --- levers beyond the paper (issue: DUMM that beats the stock ensemble); each changes one thing, the default only
# once the dev split says so (benchmarks/README.md, "Choosing the method on the dev split")
class nnUNetTrainerDUMM_fgOversample(nnUNetTrainerDUMM):
    """A third of the unlabeled patches centred on a pseudo-label foreground pixel, as nnU-Net does for labeled ones."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, unlabeled_oversample_foreground=0.33)


class nnUNetTrainerDUMM_classQuantile(nnUNetTrainerDUMM):
    """The mask keeps the 90 % most certain pixels of every pseudo-label class, per round (not a fixed 0.1): the fixed
    threshold drops most of the foreground, no mask keeps the most uncertain tenth. On the ACDC-7 dev split, three
    seeds: +6.9 [+4.8, +9.2] Dice over DUMM and +4.7 [+2.6, +7.1] over ``_noMask``; on ISIC's, -0.3 [-1.1, +0.5] vs
    DUMM (one seed). The trainer the README recommends."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, pixel_threshold_mode="class_quantile",
                                      pixel_keep_quantile=0.9)


class nnUNetTrainerDUMM_noMask(nnUNetTrainerDUMM):
    """The ensemble's pseudo-labels with every pixel counted (SUS rounds as in DUMM). The fixed mask keeps the
    background and drops the foreground (on the ACDC pool it kept 98.8 % of the background pixels and 29.8 % of the
    RV's); on the ACDC-7 dev split this is +2.2 [+0.7, +3.4] Dice over DUMM over three seeds; on ISIC's dev split no
    measurable difference (one seed). ``_classQuantile``, a mask that adapts to each class, is ahead of it on the ACDC
    dev split and is the trainer the README recommends."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, pixel_weighting="none")


class nnUNetTrainerDUMM_fgSUS(nnUNetTrainerDUMM):
    """SUS ranks by pairwise Dice over the classes the models predict: empty agreement is not reliability."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, sample_uncertainty="dice_fg")


class nnUNetTrainerDUMM_copyPaste(nnUNetTrainerDUMM):
    """Labeled boxes (2/3 of the patch, true labels) pasted into the unlabeled patches, after BCP (CVPR 2023)."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, copy_paste=True)


class nnUNetTrainerDUMM_teacherInit(nnUNetTrainerDUMM):
    """The student starts from the weights of the teacher of its fold instead of nnU-Net's initialisation."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, student_init="teacher")


class nnUNetTrainerDUMM_gen2(nnUNetTrainerDUMM):
    """A second generation (the FLARE 2022 recipe with nnU-Net): the fold models of a finished DUMM run are the
    teachers; their ensemble labels the pool again and SUS ranks it anew."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config,
                                      teachers=(TeacherSpec(trainer=nnUNetTrainerDUMM.__name__),))


class nnUNetTrainerDUMM_consistency(nnUNetTrainerDUMM):
    """DUMM + weak-to-strong consistency (FixMatch/UniMatch): the student's own confident predictions (softmax >= 0.95)
    of its unlabeled patches are targets for strongly perturbed copies of them, so that its targets improve as it
    does instead of staying the teachers' (``nnunet_dumm.consistency``)."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, consistency_weight=1.0)


class nnUNetTrainerDUMM_longer(nnUNetTrainerDUMM):
    """The student trains twice the epochs of its teachers: labeled plus pseudo-labeled images are many more cases
    than the labeled ones whose plateau set the schedule ("a schedule that grows with the data")."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, schedule_factor=2.0)


class nnUNetTrainerDUMM_refresh(nnUNetTrainerDUMM):
    """Self-training with refreshed labels (DUST refreshes them every 10 epochs): four rounds (half the pool, then
    all of it three times), and at each transition the current student joins the teachers' cached ensemble with the
    weight of all five default teachers together, so its improving predictions move the pseudo-labels."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, round_fractions=(0.5, 1.0, 1.0, 1.0),
                                      round_epoch_shares=(1.0, 1.0, 1.0, 1.0), student_weight=5.0)


class nnUNetTrainerDUMM_longerRefresh(nnUNetTrainerDUMM):
    """``_longer`` and ``_refresh`` together: twice the epochs, in four rounds whose labels the student refreshes."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM_refresh.dumm_config,
                                      schedule_factor=nnUNetTrainerDUMM_longer.dumm_config.schedule_factor)


def preset_name(trainer: str, budget: str) -> str:
    """The budget preset of a trainer: ``<trainer>_<budget>``; stock nnU-Net's is ``nnUNetTrainerStock_<budget>``
    (a teacher named ``nnUNetTrainer`` in a config means stock nnU-Net)."""
    return f"{'nnUNetTrainerStock' if trainer == nnUNetTrainer.__name__ else trainer}_{budget}"


class _BudgetPreset:
    """Mixin of a budget preset: ``class X(_BudgetPreset, <arm>, budget="cpu")`` trains ``<arm>`` on that budget.

    DUMM presets take their teachers from the presets of the same budget: stock teachers from
    ``nnUNetTrainerStock_<budget>``, a second generation's from ``nnUNetTrainerDUMM_<budget>``.
    """

    budget: ClassVar[TrainingBudget]

    def __init_subclass__(cls, budget: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if budget is None:  # a subclass of a preset (e.g. a user's own variant) keeps its budget
            return
        cls.budget = BUDGETS[budget]
        arm = cls.__bases__[-1]
        cls.__doc__ = f"{arm.__name__} with the '{budget}' budget {cls.budget}"
        if issubclass(cls, nnUNetTrainerDUMM):
            cls.dumm_config = arm.dumm_config.replace_teacher_trainers(lambda trainer: preset_name(trainer, budget))

    # the five-argument signature nnU-Net requires of every trainer
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.budget.num_epochs
        self.num_iterations_per_epoch = self.budget.iterations_per_epoch
        self.num_val_iterations_per_epoch = self.budget.val_iterations_per_epoch
        self.save_every = self.budget.save_every


# --- test
class nnUNetTrainerStock_test(_BudgetPreset, nnUNetTrainer, budget="test"): ...
class nnUNetTrainerDUMM_test(_BudgetPreset, nnUNetTrainerDUMM, budget="test"): ...
class nnUNetTrainerDUMM_noSUS_test(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="test"): ...
class nnUNetTrainerDUMM_noPUM_test(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="test"): ...
class nnUNetTrainerPseudoLabel_test(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="test"): ...
class nnUNetTrainerDUMM_leakFree_test(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="test"): ...
class nnUNetTrainerDUMM_noMask_test(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="test"): ...
class nnUNetTrainerDUMM_classQuantile_test(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="test"): ...
class nnUNetTrainerDUMM_fgOversample_test(_BudgetPreset, nnUNetTrainerDUMM_fgOversample, budget="test"): ...
class nnUNetTrainerDUMM_fgSUS_test(_BudgetPreset, nnUNetTrainerDUMM_fgSUS, budget="test"): ...
class nnUNetTrainerDUMM_copyPaste_test(_BudgetPreset, nnUNetTrainerDUMM_copyPaste, budget="test"): ...
class nnUNetTrainerDUMM_teacherInit_test(_BudgetPreset, nnUNetTrainerDUMM_teacherInit, budget="test"): ...
class nnUNetTrainerDUMM_gen2_test(_BudgetPreset, nnUNetTrainerDUMM_gen2, budget="test"): ...
class nnUNetTrainerDUMM_consistency_test(_BudgetPreset, nnUNetTrainerDUMM_consistency, budget="test"): ...
class nnUNetTrainerDUMM_longer_test(_BudgetPreset, nnUNetTrainerDUMM_longer, budget="test"): ...
class nnUNetTrainerDUMM_refresh_test(_BudgetPreset, nnUNetTrainerDUMM_refresh, budget="test"): ...
class nnUNetTrainerDUMM_longerRefresh_test(_BudgetPreset, nnUNetTrainerDUMM_longerRefresh, budget="test"): ...


# --- demo
class nnUNetTrainerStock_demo(_BudgetPreset, nnUNetTrainer, budget="demo"): ...
class nnUNetTrainerDUMM_demo(_BudgetPreset, nnUNetTrainerDUMM, budget="demo"): ...
class nnUNetTrainerDUMM_noSUS_demo(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="demo"): ...
class nnUNetTrainerDUMM_noPUM_demo(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="demo"): ...
class nnUNetTrainerPseudoLabel_demo(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="demo"): ...
class nnUNetTrainerDUMM_leakFree_demo(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="demo"): ...
class nnUNetTrainerDUMM_noMask_demo(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="demo"): ...
class nnUNetTrainerDUMM_classQuantile_demo(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="demo"): ...


# --- cpu
class nnUNetTrainerStock_cpu(_BudgetPreset, nnUNetTrainer, budget="cpu"): ...
class nnUNetTrainerDUMM_cpu(_BudgetPreset, nnUNetTrainerDUMM, budget="cpu"): ...
class nnUNetTrainerDUMM_noSUS_cpu(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="cpu"): ...
class nnUNetTrainerDUMM_noPUM_cpu(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="cpu"): ...
class nnUNetTrainerPseudoLabel_cpu(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="cpu"): ...
class nnUNetTrainerDUMM_leakFree_cpu(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="cpu"): ...
class nnUNetTrainerDUMM_noMask_cpu(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="cpu"): ...
class nnUNetTrainerDUMM_classQuantile_cpu(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="cpu"): ...


# --- gpu
class nnUNetTrainerStock_gpu(_BudgetPreset, nnUNetTrainer, budget="gpu"): ...
class nnUNetTrainerDUMM_gpu(_BudgetPreset, nnUNetTrainerDUMM, budget="gpu"): ...
class nnUNetTrainerDUMM_noSUS_gpu(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="gpu"): ...
class nnUNetTrainerDUMM_noPUM_gpu(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="gpu"): ...
class nnUNetTrainerPseudoLabel_gpu(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="gpu"): ...
class nnUNetTrainerDUMM_leakFree_gpu(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="gpu"): ...
class nnUNetTrainerDUMM_noMask_gpu(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="gpu"): ...
class nnUNetTrainerDUMM_classQuantile_gpu(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="gpu"): ...


# --- 1000 iterations: the proxy preset of the ISIC benchmark (learning curve: ISIC-10 % at 64 px plateaus here)
class nnUNetTrainerDUMM_1000it(_BudgetPreset, nnUNetTrainerDUMM, budget="1000it"): ...
class nnUNetTrainerDUMM_noSUS_1000it(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="1000it"): ...
class nnUNetTrainerDUMM_noPUM_1000it(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="1000it"): ...
class nnUNetTrainerPseudoLabel_1000it(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="1000it"): ...
class nnUNetTrainerDUMM_leakFree_1000it(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="1000it"): ...
class nnUNetTrainerDUMM_noMask_1000it(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="1000it"): ...
class nnUNetTrainerDUMM_classQuantile_1000it(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="1000it"): ...


class nnUNetTrainerDUMM_fgOversample_1000it(_BudgetPreset, nnUNetTrainerDUMM_fgOversample, budget="1000it"): ...
class nnUNetTrainerDUMM_fgSUS_1000it(_BudgetPreset, nnUNetTrainerDUMM_fgSUS, budget="1000it"): ...
class nnUNetTrainerDUMM_copyPaste_1000it(_BudgetPreset, nnUNetTrainerDUMM_copyPaste, budget="1000it"): ...
class nnUNetTrainerDUMM_teacherInit_1000it(_BudgetPreset, nnUNetTrainerDUMM_teacherInit, budget="1000it"): ...
class nnUNetTrainerDUMM_gen2_1000it(_BudgetPreset, nnUNetTrainerDUMM_gen2, budget="1000it"): ...
class nnUNetTrainerDUMM_consistency_1000it(_BudgetPreset, nnUNetTrainerDUMM_consistency, budget="1000it"): ...
class nnUNetTrainerDUMM_longer_1000it(_BudgetPreset, nnUNetTrainerDUMM_longer, budget="1000it"): ...
class nnUNetTrainerDUMM_refresh_1000it(_BudgetPreset, nnUNetTrainerDUMM_refresh, budget="1000it"): ...
class nnUNetTrainerDUMM_longerRefresh_1000it(_BudgetPreset, nnUNetTrainerDUMM_longerRefresh, budget="1000it"): ...


# --- 2000 iterations: the proxy preset of the ACDC benchmark (learning curve: ACDC-7 at 64 x 64 plateaus here)
class nnUNetTrainerDUMM_2000it(_BudgetPreset, nnUNetTrainerDUMM, budget="2000it"): ...
class nnUNetTrainerDUMM_noSUS_2000it(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="2000it"): ...
class nnUNetTrainerDUMM_noPUM_2000it(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="2000it"): ...
class nnUNetTrainerPseudoLabel_2000it(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="2000it"): ...
class nnUNetTrainerDUMM_leakFree_2000it(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="2000it"): ...
class nnUNetTrainerDUMM_noMask_2000it(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="2000it"): ...
class nnUNetTrainerDUMM_classQuantile_2000it(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="2000it"): ...


class nnUNetTrainerDUMM_fgOversample_2000it(_BudgetPreset, nnUNetTrainerDUMM_fgOversample, budget="2000it"): ...
class nnUNetTrainerDUMM_fgSUS_2000it(_BudgetPreset, nnUNetTrainerDUMM_fgSUS, budget="2000it"): ...
class nnUNetTrainerDUMM_copyPaste_2000it(_BudgetPreset, nnUNetTrainerDUMM_copyPaste, budget="2000it"): ...
class nnUNetTrainerDUMM_teacherInit_2000it(_BudgetPreset, nnUNetTrainerDUMM_teacherInit, budget="2000it"): ...
class nnUNetTrainerDUMM_gen2_2000it(_BudgetPreset, nnUNetTrainerDUMM_gen2, budget="2000it"): ...
class nnUNetTrainerDUMM_consistency_2000it(_BudgetPreset, nnUNetTrainerDUMM_consistency, budget="2000it"): ...
class nnUNetTrainerDUMM_longer_2000it(_BudgetPreset, nnUNetTrainerDUMM_longer, budget="2000it"): ...
class nnUNetTrainerDUMM_refresh_2000it(_BudgetPreset, nnUNetTrainerDUMM_refresh, budget="2000it"): ...
class nnUNetTrainerDUMM_longerRefresh_2000it(_BudgetPreset, nnUNetTrainerDUMM_longerRefresh, budget="2000it"): ...


# --- 4000 iterations: ACDC's candidate proxy budget (CANDIDATE_PROXY_BUDGETS)
class nnUNetTrainerDUMM_4000it(_BudgetPreset, nnUNetTrainerDUMM, budget="4000it"): ...
class nnUNetTrainerDUMM_noSUS_4000it(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="4000it"): ...
class nnUNetTrainerDUMM_noPUM_4000it(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="4000it"): ...
class nnUNetTrainerPseudoLabel_4000it(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="4000it"): ...
class nnUNetTrainerDUMM_leakFree_4000it(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="4000it"): ...
class nnUNetTrainerDUMM_noMask_4000it(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="4000it"): ...
class nnUNetTrainerDUMM_classQuantile_4000it(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="4000it"): ...


# --- 5000 iterations: the GPU window preset
class nnUNetTrainerDUMM_5000it(_BudgetPreset, nnUNetTrainerDUMM, budget="5000it"): ...
class nnUNetTrainerDUMM_noSUS_5000it(_BudgetPreset, nnUNetTrainerDUMM_noSUS, budget="5000it"): ...
class nnUNetTrainerDUMM_noPUM_5000it(_BudgetPreset, nnUNetTrainerDUMM_noPUM, budget="5000it"): ...
class nnUNetTrainerPseudoLabel_5000it(_BudgetPreset, nnUNetTrainerPseudoLabel, budget="5000it"): ...
class nnUNetTrainerDUMM_leakFree_5000it(_BudgetPreset, nnUNetTrainerDUMM_leakFree, budget="5000it"): ...
class nnUNetTrainerDUMM_noMask_5000it(_BudgetPreset, nnUNetTrainerDUMM_noMask, budget="5000it"): ...
class nnUNetTrainerDUMM_classQuantile_5000it(_BudgetPreset, nnUNetTrainerDUMM_classQuantile, budget="5000it"): ...


# --- stock nnU-Net on every iteration budget (the learning curve, the proxy and twice it, the GPU window)
class nnUNetTrainerStock_500it(_BudgetPreset, nnUNetTrainer, budget="500it"): ...
class nnUNetTrainerStock_1000it(_BudgetPreset, nnUNetTrainer, budget="1000it"): ...
class nnUNetTrainerStock_2000it(_BudgetPreset, nnUNetTrainer, budget="2000it"): ...
class nnUNetTrainerStock_4000it(_BudgetPreset, nnUNetTrainer, budget="4000it"): ...
class nnUNetTrainerStock_8000it(_BudgetPreset, nnUNetTrainer, budget="8000it"): ...
class nnUNetTrainerStock_5000it(_BudgetPreset, nnUNetTrainer, budget="5000it"): ...
class nnUNetTrainerStock_10000it(_BudgetPreset, nnUNetTrainer, budget="10000it"): ...


# the candidates for the recommended trainer (README, "Which to use") are arms: each has a preset of every budget DUMM
# has
ARMS = (nnUNetTrainer, nnUNetTrainerDUMM, nnUNetTrainerDUMM_noSUS, nnUNetTrainerDUMM_noPUM, nnUNetTrainerPseudoLabel,
        nnUNetTrainerDUMM_leakFree, nnUNetTrainerDUMM_noMask, nnUNetTrainerDUMM_classQuantile)
LEVERS = (nnUNetTrainerDUMM_fgOversample, nnUNetTrainerDUMM_fgSUS,
          nnUNetTrainerDUMM_copyPaste, nnUNetTrainerDUMM_teacherInit, nnUNetTrainerDUMM_gen2,
          nnUNetTrainerDUMM_consistency, nnUNetTrainerDUMM_longer, nnUNetTrainerDUMM_refresh,
          nnUNetTrainerDUMM_longerRefresh)
PRESETS = {name: cls for name, cls in dict(globals()).items()
           if isinstance(cls, type) and issubclass(cls, _BudgetPreset) and cls is not _BudgetPreset}

__all__ = ["BUDGETS", "PROXY_BUDGETS", "CANDIDATE_PROXY_BUDGETS", "TrainingBudget",
           *(arm.__name__ for arm in ARMS if arm.__module__ == __name__), *(lever.__name__ for lever in LEVERS),
           *PRESETS]
