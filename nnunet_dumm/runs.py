"""Resumable building blocks for scripted pipelines (the demo, the benchmarks): train a fold, predict + evaluate.

Both call nnU-Net's own functions in-process (``run_training``, ``nnUNetPredictor``, ``compute_metrics_on_folder``)
and skip work whose result is already on disk, so an interrupted script resumes where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["predict_and_evaluate", "train_fold"]


def train_fold(dataset_name: str, configuration: str, fold: int | str, trainer: str, plans: str = "nnUNetPlans",
               device: str = "cpu", threads: int | None = None) -> Path:
    """Trains one fold like ``nnUNetv2_train`` (continuing from ``checkpoint_latest.pth`` if there is one).

    ``threads``: CPU threads of this training (default: every core, as ``nnUNetv2_train -device cpu`` sets). Several
    trainings side by side must split the cores: two at two threads each on two cores had not finished their first
    epoch after 5 min (one training alone: about 35 s).

    Returns:
        The model folder ``nnUNet_results/<dataset>/<trainer>__<plans>__<configuration>``.
    """
    import torch
    from nnunetv2.run.run_training import run_training
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    fold_folder = Path(get_output_folder(dataset_name, trainer, plans, configuration, fold))
    if (fold_folder / "checkpoint_final.pth").is_file():
        print(f"{trainer} fold {fold}: already trained ({fold_folder})")
        return fold_folder.parent
    if device == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    continue_training = (fold_folder / "checkpoint_latest.pth").is_file()
    run_training(dataset_name, configuration, fold, trainer, plans, continue_training=continue_training,
                 device=torch.device(device))
    return fold_folder.parent


def predict_and_evaluate(model_folder: Path, folds: tuple[int | str, ...], images: Path, labels: Path, output: Path,
                         device: str = "cpu") -> dict:
    """Predicts ``images`` with nnU-Net's predictor and writes nnU-Net's ``summary.json`` against ``labels``."""
    import torch
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    summary_file = output / "summary.json"
    if not summary_file.is_file():
        predictor = nnUNetPredictor(device=torch.device(device), perform_everything_on_device=False,
                                    allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(model_folder), use_folds=folds)
        predictor.predict_from_files(str(images), str(output), save_probabilities=False, overwrite=False,
                                     num_processes_preprocessing=1, num_processes_segmentation_export=1)
        label_manager = predictor.plans_manager.get_label_manager(predictor.dataset_json)
        compute_metrics_on_folder(str(labels), str(output), str(summary_file),
                                  predictor.plans_manager.image_reader_writer_class(),
                                  predictor.dataset_json["file_ending"], label_manager.foreground_labels,
                                  num_processes=1)
    return json.loads(summary_file.read_text())
