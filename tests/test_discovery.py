"""Every trainer we ship is found by nnU-Net's own lookup and keeps nnU-Net's constructor contract."""

from __future__ import annotations

import inspect
import os

import pytest

from nnunet_dumm.discovery import EXT_TRAINER_FOLDER, enable_trainer_discovery
from nnunet_dumm.trainers import __all__ as shipped

TRAINERS = [name for name in shipped if name.startswith("nnUNetTrainer")]


def test_enable_is_idempotent_and_keeps_other_folders(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", "/somewhere/else")
    enable_trainer_discovery()
    value = enable_trainer_discovery()
    assert value.split(os.pathsep) == ["/somewhere/else", EXT_TRAINER_FOLDER]


def test_ext_folder_holds_only_the_reexport():
    assert sorted(p for p in os.listdir(EXT_TRAINER_FOLDER) if p.endswith(".py")) == ["nnunet_dumm_trainers.py"]


@pytest.mark.parametrize("name", TRAINERS)
def test_nnunet_finds_the_trainer(name, monkeypatch):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    enable_trainer_discovery()
    cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name and issubclass(cls, nnUNetTrainer)
    # nnU-Net records the constructor's arguments by name; any other signature breaks checkpoints
    assert list(inspect.signature(cls.__init__).parameters) == [
        "self", "plans", "configuration", "fold", "dataset_json", "device"]


def test_unknown_trainer_still_fails_in_nnunet():
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    enable_trainer_discovery()
    with pytest.raises(RuntimeError, match="Could not find"):
        recursive_find_trainer_class_by_name("nnUNetTrainerDUMM_doesNotExist")
