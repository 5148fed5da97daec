"""The scripted pipelines' training step gives each training the CPU threads it is meant to have."""

from __future__ import annotations

import os

import pytest
import torch

from nnunet_dumm.runs import train_fold


@pytest.fixture
def threads_seen_by_training(monkeypatch, tmp_path):
    import nnunetv2.run.run_training as run_training_module
    import nnunetv2.utilities.file_path_utilities as paths

    seen = []
    monkeypatch.setattr(run_training_module, "run_training",
                        lambda *args, **kwargs: seen.append(torch.get_num_threads()))
    monkeypatch.setattr(paths, "get_output_folder", lambda *args: str(tmp_path / "model" / "fold_0"))
    previous = torch.get_num_threads()
    yield seen
    torch.set_num_threads(previous)


def test_a_training_alone_uses_every_core(threads_seen_by_training):
    torch.set_num_threads(1)
    train_fold("Dataset001_X", "2d", 0, "nnUNetTrainer", device="cpu")
    assert threads_seen_by_training == [os.cpu_count()]


def test_trainings_side_by_side_keep_their_share_of_the_cores(threads_seen_by_training):
    # run_quality --jobs N gives each worker cpu_count // N threads; train_fold must not raise it back to every core
    train_fold("Dataset001_X", "2d", 0, "nnUNetTrainer", device="cpu", threads=1)
    assert threads_seen_by_training == [1]
