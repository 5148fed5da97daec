"""Making nnU-Net's stock commands find our trainers through ``nnUNet_extTrainer`` (nnU-Net >= 2.8.0)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EXT_TRAINER_FOLDER", "enable_trainer_discovery"]

# A folder that holds only a re-export of our trainers: nnU-Net imports every module of an extTrainer folder and
# purges them from sys.modules afterwards, which must not hit the real package modules.
EXT_TRAINER_FOLDER = str(Path(__file__).parent / "_nnunet_ext")


def enable_trainer_discovery() -> str:
    """Adds our folder to ``nnUNet_extTrainer`` in this process (read lazily by nnU-Net) and returns the value."""
    current = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if EXT_TRAINER_FOLDER not in current:
        current.append(EXT_TRAINER_FOLDER)
    os.environ["nnUNet_extTrainer"] = os.pathsep.join(current)
    return os.environ["nnUNet_extTrainer"]
