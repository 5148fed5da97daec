"""Shared fixtures: one tiny generated dataset, planned, with two stock teacher folds and a DUMM student.

Everything runs on the CPU with the benchmarks' ``test`` budget (a few iterations; ``benchmarks/trainers.py``): the
pipeline is exercised end to end in well under a minute, which is what these tests are for; accuracy is the
benchmarks' business.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import BENCHMARK_TRAINER_FOLDER, enable_benchmark_trainers
from nnunet_dumm.demo_data import DemoDatasetSpec

TINY_SPEC = DemoDatasetSpec(num_labeled=6, num_unlabeled=10, num_test=3, image_size=32, seed=3)
# Every pass of the suite (and of the processes it starts) in groups of 4 cases of 32 x 32 (4 tiles x 4 mirrors per
# forward pass), so that passes shared between processes really have several groups to split.
os.environ["NNUNET_DUMM_VOXELS_PER_FORWARD"] = str(4 * 4 * 32 * 32)
# the test-budget presets (nnUNetTrainerDUMM_test, ...) live with the benchmarks
enable_benchmark_trainers()


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory):
    from nnunet_dumm.demo import DemoSettings

    return DemoSettings(tmp_path_factory.mktemp("pipeline"), TINY_SPEC, budget="test", teacher_folds=(0, 1))


@pytest.fixture(scope="session")
def planned(demo_settings) -> Path:
    """The tiny dataset generated, planned and preprocessed (labeled and unlabeled); returns the raw folder."""
    from nnunet_dumm.demo import prepare_demo_dataset

    return prepare_demo_dataset(demo_settings)


@pytest.fixture(scope="session")
def pipeline(planned, demo_settings) -> dict:
    """Runs the demo pipeline once with the ``test`` budget and two teacher folds; returns its paths."""
    from nnunet_dumm.demo import DATASET_NAME, run_demo

    root = demo_settings.output_folder
    summaries = run_demo(demo_settings)
    results = Path(os.environ["nnUNet_results"]) / DATASET_NAME
    return {
        "root": root,
        "summaries": summaries,
        "raw": Path(os.environ["nnUNet_raw"]) / DATASET_NAME,
        "preprocessed": Path(os.environ["nnUNet_preprocessed"]) / DATASET_NAME,
        "stock": results / "nnUNetTrainerStock_test__nnUNetPlans__2d",
        "student": results / "nnUNetTrainerDUMM_test__nnUNetPlans__2d",
        # the teachers' pass of the student (the ranking names it): the cache tests read, whatever other caches
        # other tests' trainers add beside it
        "teacher_cache": Path(json.loads((results / "nnUNetTrainerDUMM_test__nnUNetPlans__2d" / "fold_0" /
                                          "dumm_ranking.json").read_text())["pseudo_labels"]),
    }


def user_env() -> dict[str, str]:
    """This process's environment with the README's ``nnUNet_extTrainer`` set-up, as a user's shell has it, plus
    the folder of the test-budget presets."""
    env = dict(os.environ)
    env.pop("nnUNet_extTrainer", None)
    users = subprocess.run([Path(sys.executable).parent / "nnUNetv2_dumm_ext_trainer_path"], capture_output=True,
                           text=True, check=True, env=env).stdout.strip()
    env["nnUNet_extTrainer"] = os.pathsep.join([users, BENCHMARK_TRAINER_FOLDER])
    return env


def run_console_script(args: list[str]) -> subprocess.CompletedProcess:
    """Runs a console script of this environment as a user would."""
    return subprocess.run([Path(sys.executable).parent / args[0], *args[1:]], capture_output=True, text=True,
                          env=user_env())


def run_python_killed(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter of the user's environment; the code is expected to SIGKILL itself."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=user_env())
