"""SIGKILL at chosen points of each long phase, then the same command again: nothing finished is redone and the
results equal an uninterrupted run's (byte for byte where the computation is deterministic on the CPU).

The kills are real ``SIGKILL``s of a fresh process, sent by the process to itself at a chosen point (a patched
function in that process only), so the point is exact and the test does not depend on timing.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_SPEC, run_console_script, run_python_killed

DATASET = "Dataset950_DUMMDemo"

KILL_AFTER_SECOND_CASES_ARRAYS = """
import os, signal
real_replace = os.replace
arrays_in_place = []
def replace(src, dst):
    real_replace(src, dst)
    if str(dst).endswith("_seg.b2nd"):
        arrays_in_place.append(dst)
        if len(arrays_in_place) == 2:  # the second case's arrays are in place, its .pkl is not
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
from nnunet_dumm.cli import preprocess_unlabeled_entry
preprocess_unlabeled_entry(["-d", "950", "-c", "2d"])
"""

KILL_IN_TRAINING_EPOCH = """
import os, signal, sys
from nnunet_dumm.trainers.dumm import nnUNetTrainerDUMM
real_train_step = nnUNetTrainerDUMM.train_step
def train_step(self, batch):
    if self.current_epoch == {epoch}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_train_step(self, batch)
nnUNetTrainerDUMM.train_step = train_step
from nnunetv2.run.run_training import run_training_entry
sys.argv = ["nnUNetv2_train", "950", "2d", "{fold}", "-tr", "nnUNetTrainerDUMM_test", "-device", "cpu"]
run_training_entry()
"""


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pkl")}


def test_sigkill_during_unlabeled_preprocessing_then_rerun_gives_identical_files(planned, tmp_path):
    from nnunet_dumm.unlabeled import completed_cases, unlabeled_preprocessed_folder

    folder = unlabeled_preprocessed_folder(DATASET, "nnUNetPlans_2d")
    reference = tmp_path / "reference"
    shutil.move(folder, reference)
    try:
        killed = run_python_killed(KILL_AFTER_SECOND_CASES_ARRAYS)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert len(completed_cases(folder)) == 1
        orphans = {p.name[: -len("_seg.b2nd")] for p in folder.glob("*_seg.b2nd")} - set(completed_cases(folder))
        assert len(orphans) == 1  # arrays of a case without its .pkl: not done, must be redone

        rerun = run_console_script(["nnUNetv2_dumm_preprocess_unlabeled", "-d", "950", "-c", "2d"])
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        redone = TINY_SPEC.num_unlabeled - 1
        assert f"{redone} new, 0 preprocessed again: {redone} preprocessed here; 1 already done" in rerun.stdout
        assert _files(folder) == _files(reference)
    finally:  # the other tests get the original files back whatever happened here
        shutil.rmtree(folder, ignore_errors=True)
        shutil.move(reference, folder)


@pytest.mark.parametrize("fold, kill_epoch", [(2, 1), (3, 3)],
                         ids=["round1_before_the_first_round_checkpoint", "round2_after_the_transition_checkpoint"])
def test_sigkill_during_a_training_epoch_resumes_with_c(pipeline, fold, kill_epoch):
    teacher_cache = pipeline["teacher_cache"]
    teacher_entries = _mtimes(teacher_cache)
    output = pipeline["student"] / f"fold_{fold}"

    killed = run_python_killed(KILL_IN_TRAINING_EPOCH.format(epoch=kill_epoch, fold=fold))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (output / "checkpoint_final.pth").exists()
    assert not list(output.glob("*.partial"))
    if kill_epoch >= 2:
        checkpoint = torch.load(output / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
        assert checkpoint["current_epoch"] == 2  # saved at the start of round 2, before its pass
        (round2,) = (output / "dumm_pseudo_labels").glob("round2_*")
        round2_entries = _mtimes(round2)
        assert len(round2_entries) == TINY_SPEC.num_unlabeled

    resumed = run_console_script(["nnUNetv2_train", "950", "2d", str(fold), "-tr", "nnUNetTrainerDUMM_test",
                                  "-device", "cpu", "--c"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (output / "checkpoint_final.pth").is_file()
    records = [json.loads(line) for line in (output / "dumm_metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["round"]) for r in records] == [(0, 1), (1, 1), (2, 2), (3, 2)]
    assert _mtimes(teacher_cache) == teacher_entries  # no teacher case labelled again
    if kill_epoch >= 2:
        assert _mtimes(round2) == round2_entries  # the round-2 pass of the same student is not redone
    # same teachers, same ranking as the uninterrupted fold-0 run, byte for byte
    assert (output / "dumm_ranking.json").read_bytes() == (
        pipeline["student"] / "fold_0" / "dumm_ranking.json").read_bytes()
