# nnU-Net imports every module of the folders in nnUNet_extTrainer and looks the trainer name up in them. This folder
# holds only this re-export of benchmarks/trainers.py, which is importable from the repository root only (the
# benchmarks are not installed with the package).
import sys
from pathlib import Path

_REPOSITORY = str(Path(__file__).resolve().parents[2])
if _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)

from benchmarks.trainers import *  # noqa: E402, F401, F403
