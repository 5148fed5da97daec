"""Command-line entry points (``nnUNetv2_dumm_*``, ``nnunet_dumm_*``); logging and printing set-up lives here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = [
    "demo_entry",
    "ext_trainer_path_entry",
    "generate_demo_dataset_entry",
    "preprocess_unlabeled_entry",
]


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def preprocess_unlabeled_entry(argv: list[str] | None = None) -> None:
    """``nnUNetv2_dumm_preprocess_unlabeled -d ID -c 2d``: preprocess imagesUnlabeled/ with the dataset's plans."""
    from nnunet_dumm.unlabeled import UnlabeledDataError, preprocess_unlabeled

    parser = argparse.ArgumentParser(
        description="Preprocess nnUNet_raw/DatasetXXX/imagesUnlabeled with the dataset's nnU-Net plans into "
        "nnUNet_preprocessed/DatasetXXX/<data_identifier>_unlabeled. Cases already done are skipped.")
    parser.add_argument("-d", "--dataset", nargs="+", required=True, help="dataset name(s) or id(s)")
    parser.add_argument("-c", "--configurations", nargs="+", default=["2d"], help="configurations (default: 2d)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default: 1)")
    args = parser.parse_args(argv)
    for dataset in args.dataset:
        for configuration in args.configurations:
            try:
                preprocess_unlabeled(dataset, configuration, args.plans, args.num_processes)
            except (UnlabeledDataError, FileNotFoundError, ValueError, RuntimeError) as e:
                _fail(str(e))


def ext_trainer_path_entry(argv: list[str] | None = None) -> None:
    """Prints the ``nnUNet_extTrainer`` value (yours plus ours) for ``export nnUNet_extTrainer=$(...)``."""
    from nnunet_dumm.discovery import enable_trainer_discovery

    argparse.ArgumentParser(
        description="Print the value of nnUNet_extTrainer that lets nnUNetv2_train/nnUNetv2_predict find the "
        "nnunet_dumm trainers. Use: export nnUNet_extTrainer=\"$(nnUNetv2_dumm_ext_trainer_path)\"").parse_args(argv)
    print(enable_trainer_discovery())


def generate_demo_dataset_entry(argv: list[str] | None = None) -> None:
    from nnunet_dumm.demo_data import main

    main(argv)


def demo_entry(argv: list[str] | None = None) -> None:
    """``nnunet_dumm_demo``: the whole pipeline on a generated dataset, stock nnU-Net vs DUMM."""
    from nnunet_dumm.demo import DemoSettings, run_demo
    from nnunet_dumm.demo_data import DemoDatasetSpec

    parser = argparse.ArgumentParser(description=__doc__ and run_demo.__doc__)
    parser.add_argument("-o", "--output-folder", type=Path, default=Path("demo_output"),
                        help="folder for the demo's nnU-Net folders and predictions (default: ./demo_output)")
    parser.add_argument("--budget", default="demo", help="training budget preset: test, demo or cpu (default: demo)")
    parser.add_argument("--num-labeled", type=int, default=DemoDatasetSpec.num_labeled)
    parser.add_argument("--num-unlabeled", type=int, default=DemoDatasetSpec.num_unlabeled)
    parser.add_argument("--num-test", type=int, default=DemoDatasetSpec.num_test)
    parser.add_argument("--seed", type=int, default=DemoDatasetSpec.seed)
    parser.add_argument("-device", "--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    spec = DemoDatasetSpec(num_labeled=args.num_labeled, num_unlabeled=args.num_unlabeled, num_test=args.num_test,
                           seed=args.seed)
    run_demo(DemoSettings(args.output_folder, spec, budget=args.budget, device=args.device))
