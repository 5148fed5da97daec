"""The setups nnU-Net users have beyond 2-D single-channel data: 3d_fullres volumes with two channels and an ignore
label, ResEnc plans (``-p`` through every command), the cascade (refused), each end to end on a tiny dataset:
plan, preprocess the unlabeled images, teachers, teacher pass, DUMM student, stock ``nnUNetv2_predict``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_dumm.demo_data import DemoDatasetSpec, generate_demo_dataset
from tests.conftest import run_console_script


@dataclass(frozen=True)
class Setup:
    dataset_id: int
    name: str
    spec: DemoDatasetSpec
    configuration: str
    planner: str
    plans: str


SETUPS = {
    # 6-slice volumes of 32 x 32 with two MRI-like sequences and a sparsely annotated (ignore) region
    "3d_two_channels_ignore": Setup(953, "Setup3DIgnore", DemoDatasetSpec(
        num_labeled=6, num_unlabeled=6, num_test=2, image_size=32, seed=5, num_slices=6, num_channels=2,
        ignore_label=True), "3d_fullres", "ExperimentPlanner", "nnUNetPlans"),
    "resenc_m_2d": Setup(954, "SetupResEnc", DemoDatasetSpec(
        num_labeled=6, num_unlabeled=6, num_test=2, image_size=32, seed=6), "2d", "nnUNetPlannerResEncM",
        "nnUNetResEncUNetMPlans"),
}


def _check(result) -> None:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])


@pytest.fixture(scope="module", params=list(SETUPS))
def trained(request, planned):
    """The setup's dataset planned, its unlabeled images preprocessed and its pass run through the console scripts
    with ``-p``, two stock teacher folds and a DUMM student trained; returns the setup and its folders."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )
    from nnunetv2.run.run_training import run_training

    setup = SETUPS[request.param]
    dataset_name = f"Dataset{setup.dataset_id}_{setup.name}"
    raw = Path(os.environ["nnUNet_raw"]) / dataset_name
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / dataset_name
    results = Path(os.environ["nnUNet_results"]) / dataset_name
    if not (preprocessed / f"{setup.plans}.json").is_file():
        generate_demo_dataset(raw, setup.spec, dataset_name=setup.name, overwrite=True)
        n_proc_da = os.environ.pop("nnUNet_n_proc_DA", None)  # nnU-Net 2.8.1's planner crashes with 0
        try:
            extract_fingerprints([setup.dataset_id], num_processes=1, check_dataset_integrity=True)
            plan_experiments([setup.dataset_id], experiment_planner_class_name=setup.planner)
            preprocess([setup.dataset_id], setup.plans, configurations=(setup.configuration,), num_processes=(1,))
        finally:
            if n_proc_da is not None:
                os.environ["nnUNet_n_proc_DA"] = n_proc_da
    _check(run_console_script(["nnUNetv2_dumm_preprocess_unlabeled", "-d", str(setup.dataset_id), "-c",
                               setup.configuration, "-p", setup.plans]))
    for fold in (0, 1):
        run_training(str(setup.dataset_id), setup.configuration, fold, "nnUNetTrainerStock_test", setup.plans,
                     device=torch.device("cpu"))
    _check(run_console_script(["nnUNetv2_dumm_pseudo_label", "-d", str(setup.dataset_id), "-c", setup.configuration,
                               "-p", setup.plans, "-tr", "nnUNetTrainerDUMM_test", "-device", "cpu"]))
    run_training(str(setup.dataset_id), setup.configuration, 0, "nnUNetTrainerDUMM_test", setup.plans,
                 device=torch.device("cpu"))
    return {"setup": setup, "raw": raw, "preprocessed": preprocessed,
            "student": results / f"nnUNetTrainerDUMM_test__{setup.plans}__{setup.configuration}"}


def test_student_trains_on_the_setup_and_stock_predict_uses_it(trained, tmp_path):
    setup, student = trained["setup"], trained["student"]
    assert (student / "fold_0" / "checkpoint_final.pth").is_file()
    records = [json.loads(line) for line in (student / "fold_0" / "dumm_metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 1, 2, 2]
    result = run_console_script(["nnUNetv2_predict", "-i", str(trained["raw"] / "imagesTs"), "-o", str(tmp_path),
                                 "-d", str(setup.dataset_id), "-c", setup.configuration, "-p", setup.plans,
                                 "-tr", "nnUNetTrainerDUMM_test", "-f", "0", "-device", "cpu", "-npp", "1",
                                 "-nps", "1"])
    _check(result)
    assert len(list(tmp_path.glob("*.nii.gz"))) == setup.spec.num_test


def test_the_trainer_used_the_pass_of_the_console_script(trained):
    # the pass ran before training (nnUNetv2_dumm_pseudo_label -p ...): training found it complete
    caches = list((trained["preprocessed"] / "dumm_pseudo_labels").iterdir())
    assert len(caches) == 1
    log = next((trained["student"] / "fold_0").glob("training_log_*.txt")).read_text()
    assert f"all {trained['setup'].spec.num_unlabeled} cases of 2 teachers are cached" in log


def test_cache_entries_have_the_preprocessed_geometry_and_class_locations(trained):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.unlabeled import load_preprocessed_image, unlabeled_preprocessed_folder

    setup = trained["setup"]
    plans = PlansManager(str(trained["preprocessed"] / f"{setup.plans}.json"))
    folder = unlabeled_preprocessed_folder(plans.dataset_name, plans.get_configuration(setup.configuration)
                                           .data_identifier)
    (cache_folder,) = (trained["preprocessed"] / "dumm_pseudo_labels").iterdir()
    cache = PseudoLabelCache(cache_folder)
    label_manager = plans.get_label_manager(json.loads((trained["preprocessed"] / "dataset.json").read_text()))
    for case in sorted(p.stem for p in cache_folder.glob("*.pkl")):
        image = load_preprocessed_image(folder, case)
        assert image.shape[0] == setup.spec.num_channels
        assert cache.pseudo_label(case).shape == image.shape[1:]
        keys = set(cache.properties(case)["class_locations"])
        assert set(label_manager.foreground_labels) <= keys
        # nnU-Net's loader draws the non-forced patches of a dataset with an ignore label from this key
        assert (tuple([-1] + label_manager.all_labels) in keys) == label_manager.has_ignore_label


def test_diagnostics_leave_ignore_pixels_out(trained):
    setup = trained["setup"]
    if not setup.spec.ignore_label:
        pytest.skip("no ignore label in this setup")
    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.diagnostics import foreground_dice
    from nnunet_dumm.unlabeled import TRUE_LABELS_SUBFOLDER, unlabeled_preprocessed_folder

    fold = trained["student"] / "fold_0"
    diagnostics = json.loads((fold / "dumm_diagnostics_round1.json").read_text())
    (cache_folder,) = (trained["preprocessed"] / "dumm_pseudo_labels").iterdir()
    cache = PseudoLabelCache(cache_folder)
    truths = unlabeled_preprocessed_folder(f"Dataset{setup.dataset_id}_{setup.name}", "nnUNetPlans_3d_fullres") / \
        TRUE_LABELS_SUBFOLDER
    for case, dice in zip(diagnostics["cases"], diagnostics["pseudo_label_dice_per_case"]):
        truth = np.load(truths / f"{case}.npy")
        pseudo_label = cache.pseudo_label(case).reshape(truth.shape)
        annotated = truth != 4
        assert (~annotated).any()
        assert dice == pytest.approx(foreground_dice(pseudo_label[annotated], truth[annotated], 4))
    assert (fold / "dumm_diagnostics_round1.png").stat().st_size > 10_000  # drawn from the first of two channels


def test_cascade_is_refused_with_what_to_use_instead(planned):
    from batchgenerators.utilities.file_and_folder_operations import load_json

    from benchmarks.trainers import nnUNetTrainerDUMM_test

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / "Dataset950_DUMMDemo"
    plans = load_json(str(preprocessed / "nnUNetPlans.json"))
    # a cascade stage: the 2d configuration pretending to need a previous stage's predictions
    plans["configurations"]["2d"]["previous_stage"] = "3d_lowres"
    plans["continue_training"] = False
    trainer = nnUNetTrainerDUMM_test(plans, "2d", 0, load_json(str(preprocessed / "dataset.json")),
                                     torch.device("cpu"))
    with pytest.raises(NotImplementedError, match="cascaded configurations.*3d_fullres"):
        trainer.initialize()
