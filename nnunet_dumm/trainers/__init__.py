"""The trainers nnunet_dumm ships; nnU-Net finds them through ``nnUNet_extTrainer`` (see ``nnunet_dumm.discovery``)."""

from nnunet_dumm.trainers import variants
from nnunet_dumm.trainers.budget import nnUNetTrainerDUMM_demo, nnUNetTrainerDUMM_paper_demo, nnUNetTrainerStock_demo
from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM
from nnunet_dumm.trainers.variants import *  # noqa: F403 (the variant classes, listed in its __all__)

__all__ = ["nnUNetTrainerDUMM", *variants.__all__, "nnUNetTrainerDUMM_demo", "nnUNetTrainerDUMM_paper_demo",
           "nnUNetTrainerStock_demo"]
