"""The variants of ``nnUNetTrainerDUMM`` a user picks, nnU-Net style: each class changes one thing.

* ``nnUNetTrainerDUMM_paper``: the setting as published (PUM's entropy mask at a fixed 0.1).
* ``nnUNetTrainerDUMM_leakFree``: validation as honest as stock nnU-Net's (each fold's own teacher only).
* Ablations of the recommended method: ``_noSUS`` (every unlabeled case from the first epoch), ``_noPUM`` (one
  teacher, every pixel), ``_noMask`` (five teachers, every pixel) and ``nnUNetTrainerPseudoLabel`` (Lee 2013).
"""

from __future__ import annotations

import dataclasses

from nnunet_dumm.config import PAPER_CONFIG, TeacherSpec
from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM

__all__ = ["nnUNetTrainerDUMM_leakFree", "nnUNetTrainerDUMM_noMask", "nnUNetTrainerDUMM_noPUM",
           "nnUNetTrainerDUMM_noSUS", "nnUNetTrainerDUMM_paper", "nnUNetTrainerPseudoLabel"]

_ONE_ROUND = {"round_fractions": (1.0,), "round_epoch_shares": (1.0,)}
_SINGLE_MODEL = {"teachers": (TeacherSpec(folds=(0,)),), "min_models": 1, "pixel_weighting": "none",
                 "student_joins_ensemble": False, "sample_uncertainty": "entropy"}


class nnUNetTrainerDUMM_paper(nnUNetTrainerDUMM):
    """DUMM as published: PUM drops every pixel whose normalised entropy exceeds a fixed 0.1 (``nnUNetTrainerDUMM``
    before nnunet_dumm 0.2.0). It keeps nearly all background and little foreground: on the ACDC-7 dev split the
    recommended class-quantile mask was 6.9 Dice points ahead of it."""

    dumm_config = PAPER_CONFIG


class nnUNetTrainerDUMM_noSUS(nnUNetTrainerDUMM):
    """DUMM without SUS: every unlabeled case from the first epoch, in one round."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_ONE_ROUND)


class nnUNetTrainerDUMM_noPUM(nnUNetTrainerDUMM):
    """DUMM without PUM: one teacher (fold 0), every pixel counts; SUS ranks its cases by entropy."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_SINGLE_MODEL)


class nnUNetTrainerDUMM_noMask(nnUNetTrainerDUMM):
    """The five teachers' pseudo-labels with every pixel counted (SUS rounds as in DUMM): PUM's fusion without its
    mask."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, pixel_weighting="none")


class nnUNetTrainerPseudoLabel(nnUNetTrainerDUMM):
    """Plain single-model pseudo-labelling (Lee 2013): fold-0 teacher, one round, every pixel counts."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, **_SINGLE_MODEL, **_ONE_ROUND)


class nnUNetTrainerDUMM_leakFree(nnUNetTrainerDUMM):
    """DUMM whose validation is as honest as stock nnU-Net's: for fold k only the teachers that never trained on
    fold k's validation cases (the stock teacher of fold k) label the pool; PUM then measures that one model's
    uncertainty (entropy), and SUS ranks by entropy."""

    dumm_config = dataclasses.replace(nnUNetTrainerDUMM.dumm_config, leak_free_validation=True, min_models=1,
                                      sample_uncertainty="entropy")
