"""The demo: stock nnU-Net vs DUMM on a generated dataset, end to end on a CPU, no download.

Steps (each skipped when its output exists, so an interrupted demo resumes): generate the dataset, plan and
preprocess it with nnU-Net, preprocess the unlabeled images, train the stock teachers' folds (fold 0 is the
labeled-only baseline), train the DUMM student, predict ``imagesTs`` with both and print their Dice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nnunet_dumm.demo_data import DEMO_DATASET_ID, DemoDatasetSpec, generate_demo_dataset
from nnunet_dumm.runs import predict_and_evaluate, train_fold

__all__ = ["DemoSettings", "prepare_demo_dataset", "run_demo"]

DATASET_NAME = f"Dataset{DEMO_DATASET_ID:03d}_DUMMDemo"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains: the teachers and the student on the ``budget`` presets (``<trainer>_<budget>``; the
    package ships the ``demo`` ones, the tests use the benchmarks' ``test`` ones). The student is the recommended
    ``nnUNetTrainerDUMM`` or the paper's setting ``nnUNetTrainerDUMM_paper``."""

    output_folder: Path
    spec: DemoDatasetSpec = DemoDatasetSpec()
    budget: str = "demo"
    teacher_folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    student_trainer: str = "nnUNetTrainerDUMM"
    device: str = "cpu"


def _step(message: str) -> float:
    print(f"\n=== {message}", flush=True)
    return time.perf_counter()


def _set_nnunet_paths(output_folder: Path) -> None:
    # The demo keeps its own nnU-Net folders so it never touches a user's real nnUNet_raw/preprocessed/results.
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = output_folder / name
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)


def prepare_demo_dataset(settings: DemoSettings) -> Path:
    """Steps 1-3: generate, plan and preprocess the dataset and its unlabeled images; returns the raw folder."""
    from nnunet_dumm.discovery import enable_trainer_discovery

    output_folder = settings.output_folder.resolve()
    _set_nnunet_paths(output_folder)
    enable_trainer_discovery()
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    raw = output_folder / "nnUNet_raw" / DATASET_NAME
    preprocessed = output_folder / "nnUNet_preprocessed" / DATASET_NAME

    t = _step(f"1/6 generating the demo dataset in {raw}")
    if not (raw / "dataset.json").is_file():
        generate_demo_dataset(raw, settings.spec, dataset_name="DUMMDemo", progress=True)
    print(f"done in {time.perf_counter() - t:.0f} s")

    t = _step("2/6 nnU-Net planning and preprocessing (labeled cases, 2d)")
    if not (preprocessed / "nnUNetPlans.json").is_file() or not (preprocessed / "nnUNetPlans_2d").is_dir():
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
            preprocess,
        )

        extract_fingerprints([DEMO_DATASET_ID], num_processes=1, check_dataset_integrity=True)
        plan_experiments([DEMO_DATASET_ID])
        preprocess([DEMO_DATASET_ID], configurations=("2d",), num_processes=(1,))
    print(f"done in {time.perf_counter() - t:.0f} s")

    # Data augmentation in the main process: worker start-up costs more than it saves on 2 cores. Set only
    # now: nnU-Net 2.8.1's planner crashes with nnUNet_n_proc_DA=0 (NNUNET_NOTES.md section 8).
    os.environ.setdefault("nnUNet_n_proc_DA", "0")

    t = _step("3/6 preprocessing the unlabeled images with the same plans")
    from nnunet_dumm.unlabeled import preprocess_unlabeled

    preprocess_unlabeled(DEMO_DATASET_ID, "2d")
    print(f"done in {time.perf_counter() - t:.0f} s")
    return raw


def run_demo(settings: DemoSettings) -> dict[str, dict]:
    """Runs the whole demo and returns the nnU-Net evaluation summaries of the baseline and DUMM."""
    start = time.perf_counter()
    output_folder = settings.output_folder.resolve()
    raw = prepare_demo_dataset(settings)

    stock = f"nnUNetTrainerStock_{settings.budget}"
    t = _step(f"4/6 training the stock teachers {stock}, folds {settings.teacher_folds} (fold 0 = baseline)")
    for fold in settings.teacher_folds:
        stock_folder = train_fold(DATASET_NAME, "2d", fold, stock, device=settings.device)
    print(f"done in {time.perf_counter() - t:.0f} s")

    student = f"{settings.student_trainer}_{settings.budget}"
    t = _step(f"5/6 training the DUMM student {student}, fold 0")
    student_folder = train_fold(DATASET_NAME, "2d", 0, student, device=settings.device)
    print(f"done in {time.perf_counter() - t:.0f} s")

    t = _step("6/6 predicting imagesTs with stock nnU-Net's predictor and evaluating")
    predictions = output_folder / "predictions"
    folds = tuple(settings.teacher_folds)
    # one folder per model and folds: a rerun with another student or budget must not find another model's summary
    summaries = {
        f"stock nnU-Net ({stock}, fold 0)": predict_and_evaluate(
            stock_folder, (0,), raw / "imagesTs", raw / "labelsTs", predictions / f"{stock}_fold0", settings.device),
        # what a stock nnU-Net user deploys: nnUNetv2_predict -f 0 1 2 3 4
        f"stock nnU-Net {len(folds)}-fold ensemble ({stock}, folds {', '.join(map(str, folds))})":
            predict_and_evaluate(stock_folder, folds, raw / "imagesTs", raw / "labelsTs",
                                 predictions / f"{stock}_folds{''.join(map(str, folds))}", settings.device),
        f"DUMM ({student}, fold 0)": predict_and_evaluate(
            student_folder, (0,), raw / "imagesTs", raw / "labelsTs", predictions / f"{student}_fold0",
            settings.device),
    }
    print(f"done in {time.perf_counter() - t:.0f} s")
    labels = json.loads((raw / "dataset.json").read_text())["labels"]
    print(format_dice_table(summaries, settings.spec, {str(v): k for k, v in labels.items()}))
    print(f"\nTotal {time.perf_counter() - start:.0f} s. Outputs under {output_folder}:")
    print(f"  models:      {stock_folder}\n               {student_folder}")
    print(f"  predictions: {predictions}  (summary.json per arm)")
    print(f"  DUMM logs:   {student_folder / 'fold_0'} (dumm_metrics.jsonl, dumm_ranking.json, progress.png)")
    return summaries


def format_dice_table(summaries: dict[str, dict], spec: DemoDatasetSpec, class_names: dict[str, str]) -> str:
    """A Markdown table of per-class and mean Dice (x100) from nnU-Net evaluation summaries; classes are named
    as in dataset.json (``class_names``: label value -> name)."""
    first = next(iter(summaries.values()))
    classes = sorted(first["mean"], key=int)
    header = "| arm | " + " | ".join(class_names.get(c, f"class {c}") for c in classes) + " | mean Dice |"
    lines = [f"\nDice on imagesTs ({spec.num_test} cases; {spec.num_labeled} labeled, {spec.num_unlabeled} "
             "unlabeled training images)", header, "|---" * (len(classes) + 2) + "|"]
    for arm, summary in summaries.items():
        cells = " | ".join(f"{100 * summary['mean'][c]['Dice']:.1f}" for c in classes)
        lines.append(f"| {arm} | {cells} | {100 * summary['foreground_mean']['Dice']:.1f} |")
    return "\n".join(lines)
