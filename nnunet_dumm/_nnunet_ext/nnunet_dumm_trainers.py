# nnU-Net imports every module of the folders in nnUNet_extTrainer and looks the trainer name up in them.
# This folder holds only this re-export, so the real trainer modules keep their package imports.
from nnunet_dumm.trainers import *  # noqa: F401, F403
