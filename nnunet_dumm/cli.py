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
    "pseudo_label_entry",
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
    parser.add_argument("--verify", action="store_true",
                        help="also compare the CRC-32 of every finished case (reads every file) and redo damaged ones")
    args = parser.parse_args(argv)
    for dataset in args.dataset:
        for configuration in args.configurations:
            try:
                preprocess_unlabeled(dataset, configuration, args.plans, args.num_processes, verify=args.verify)
            except (UnlabeledDataError, OSError, ValueError, RuntimeError) as e:
                _fail(str(e))


def pseudo_label_entry(argv: list[str] | None = None) -> None:
    """``nnUNetv2_dumm_pseudo_label``: the teachers' pseudo-label pass of a DUMM trainer, shardable across jobs."""
    parser = argparse.ArgumentParser(
        description="Run (a share of) the teachers' pseudo-label pass that a DUMM trainer would run at its start, "
        "into the shared cache under nnUNet_preprocessed. Split it like nnUNetv2_predict with -num_parts/-part_id "
        "(one job per GPU or cluster node; jobs also share work by claiming cases, so N copies of the same command "
        "split the pass too), then run once with --merge to check completeness and remove leftovers of killed jobs. "
        "Training then finds the cache complete.")
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id")
    parser.add_argument("-c", "--configuration", default="2d", help="student configuration (default: 2d)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerDUMM", help="the DUMM trainer whose teachers to use")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-f", "--fold", default="0",
                        help="student fold; only matters for leak-free trainers, whose teachers depend on it")
    parser.add_argument("-num_parts", type=int, default=1, help="number of jobs sharing the pass (default: 1)")
    parser.add_argument("-part_id", type=int, default=0, help="this job's share, 0 .. num_parts-1 (default: 0)")
    parser.add_argument("-device", default="cuda", help="cuda or cpu (default: cuda)")
    parser.add_argument("--merge", action="store_true", help="check that every case is done, remove leftovers")
    args = parser.parse_args(argv)
    if not 0 <= args.part_id < args.num_parts:
        _fail(f"-part_id must be in 0..{args.num_parts - 1}, got {args.part_id}")

    import json

    import torch
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_dumm.discovery import enable_trainer_discovery
    from nnunet_dumm.pseudo_labels import (
        TeacherModelsIncompatible,
        TeacherModelsMissing,
        TeacherPass,
        class_location_keys,
        generate_pseudo_labels,
        load_teacher_members,
    )
    from nnunet_dumm.unlabeled import (
        completed_cases,
        load_preprocessed_image,
        preprocessed_shape,
        unlabeled_preprocessed_folder,
    )

    enable_trainer_discovery()
    dataset_name = maybe_convert_to_dataset_name(args.dataset)
    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    plans_manager = PlansManager(str(preprocessed / f"{args.plans}.json"))
    config = recursive_find_trainer_class_by_name(args.trainer).dumm_config
    validation = None
    if config.leak_free_validation and args.fold != "all":
        validation = set(json.loads((preprocessed / "splits_final.json").read_text())[int(args.fold)]["val"])
    try:
        teachers = TeacherPass.resolve(config.teachers, config.min_models, config.use_mirroring, plans_manager,
                                       args.configuration, preprocessed, validation)
    except TeacherModelsMissing as e:
        _fail(str(e))
    folder = unlabeled_preprocessed_folder(dataset_name, plans_manager.get_configuration(args.configuration)
                                           .data_identifier)
    cases = completed_cases(folder)
    if not cases:
        _fail(f"{folder}: no preprocessed unlabeled cases; run nnUNetv2_dumm_preprocess_unlabeled first")
    if args.merge:
        missing = [c for c in cases if not teachers.cache.done(c)]
        if missing:
            _fail(f"{len(missing)} of {len(cases)} cases have no pseudo-labels in {teachers.cache.folder} yet, "
                  f"e.g. {missing[:3]}")
        teachers.cache.remove_leftovers()  # of jobs killed mid-write; all jobs are done now
        print(f"{len(cases)} cases complete in {teachers.cache.folder}")
        return
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    try:
        members = load_teacher_members(teachers.folds, plans_manager,
                                       plans_manager.get_configuration(args.configuration), dataset_json,
                                       torch.device(args.device), config.use_mirroring)
    except TeacherModelsIncompatible as e:
        _fail(str(e))
    generate_pseudo_labels(members, cases, lambda case: load_preprocessed_image(folder, case), teachers.cache,
                           teachers.sources, class_location_keys(plans_manager.get_label_manager(dataset_json)),
                           num_parts=args.num_parts, part_id=args.part_id,
                           case_shape=lambda case: preprocessed_shape(folder, case))


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
    parser.add_argument("-tr", "--student-trainer", default=DemoSettings.student_trainer,
                        help="the student's trainer, without the budget suffix (default: %(default)s, the recommended "
                             "one; nnUNetTrainerDUMM trains the paper's setting)")
    parser.add_argument("-device", "--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    from nnunet_dumm.trainers import variants

    if f"{args.student_trainer}_{args.budget}" not in variants.PRESETS:
        presets = sorted(name.removesuffix(f"_{args.budget}") for name in variants.PRESETS
                         if name.endswith(f"_{args.budget}") and not name.startswith("nnUNetTrainerStock"))
        parser.error(f"no {args.budget!r} preset of {args.student_trainer!r}; trainers with one: {', '.join(presets)}")
    spec = DemoDatasetSpec(num_labeled=args.num_labeled, num_unlabeled=args.num_unlabeled, num_test=args.num_test,
                           seed=args.seed)
    run_demo(DemoSettings(args.output_folder, spec, budget=args.budget, student_trainer=args.student_trainer,
                          device=args.device))
