"""Command-line entry points (``nnUNetv2_dumm_*``, ``nnunet_dumm_*``); logging and printing set-up lives here."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "demo_entry",
    "ext_trainer_path_entry",
    "generate_demo_dataset_entry",
    "preprocess_unlabeled_entry",
    "pseudo_label_entry",
    "suggest_entry",
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
    parser.add_argument("-np", "--num-processes", type=int, default=None,
                        help="worker processes (default: nnU-Net's background workers, nnUNet_def_n_proc or 8)")
    parser.add_argument("--verify", action="store_true",
                        help="also compare the CRC-32 of every finished case (reads every file) and redo damaged ones")
    args = parser.parse_args(argv)
    if args.num_processes is None:
        from nnunetv2.configuration import default_num_processes

        args.num_processes = default_num_processes
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

    import torch

    from nnunet_dumm.pseudo_labels import class_location_keys, generate_pseudo_labels
    from nnunet_dumm.teachers import TeacherModelsIncompatible, load_teacher_members
    from nnunet_dumm.unlabeled import load_preprocessed_image, preprocessed_fingerprint, preprocessed_shape

    job = _TeacherPassOfTrainer.resolve(args.dataset, args.configuration, args.trainer, args.plans, args.fold)
    teachers, folder, cases = job.teachers, job.folder, job.cases
    if args.merge:
        missing = [c for c in cases if not teachers.cache.done(c)]
        if missing:
            _fail(f"{len(missing)} of {len(cases)} cases have no pseudo-labels in {teachers.cache.folder} yet, "
                  f"e.g. {missing[:3]}")
        teachers.cache.remove_leftovers()  # of jobs killed mid-write; all jobs are done now
        print(f"{len(cases)} cases complete in {teachers.cache.folder}")
        return
    configuration_manager = job.plans_manager.get_configuration(args.configuration)
    try:
        members = load_teacher_members(teachers.folds, job.plans_manager, configuration_manager, job.dataset_json,
                                       torch.device(args.device), job.config.use_mirroring)
    except TeacherModelsIncompatible as e:
        _fail(str(e))
    generate_pseudo_labels(members, cases, lambda case: load_preprocessed_image(folder, case), teachers.cache,
                           teachers.sources, class_location_keys(job.plans_manager.get_label_manager(job.dataset_json)),
                           num_parts=args.num_parts, part_id=args.part_id,
                           case_shape=lambda case: preprocessed_shape(folder, case),
                           case_image=lambda case: preprocessed_fingerprint(folder, case))


@dataclass
class _TeacherPassOfTrainer:
    """What a command needs to reach the teachers' pass of a DUMM trainer on a dataset: the dataset's plans, the
    trainer's config, the teachers and their cache, the preprocessed unlabeled cases."""

    dataset_name: str
    plans_manager: object
    dataset_json: dict
    config: object
    teachers: object
    folder: Path
    cases: list[str]

    @classmethod
    def resolve(cls, dataset: str, configuration: str, trainer: str, plans: str, fold: str) -> _TeacherPassOfTrainer:
        import json

        from nnunetv2.paths import nnUNet_preprocessed
        from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        from nnunet_dumm.discovery import enable_trainer_discovery
        from nnunet_dumm.teachers import TeacherModelsMissing, TeacherPass
        from nnunet_dumm.unlabeled import completed_cases, unlabeled_preprocessed_folder

        enable_trainer_discovery()
        dataset_name = maybe_convert_to_dataset_name(dataset)
        preprocessed = Path(nnUNet_preprocessed) / dataset_name
        plans_manager = PlansManager(str(preprocessed / f"{plans}.json"))
        config = recursive_find_trainer_class_by_name(trainer).dumm_config
        validation = None
        if config.leak_free_validation and fold != "all":
            validation = set(json.loads((preprocessed / "splits_final.json").read_text())[int(fold)]["val"])
        try:
            teachers = TeacherPass.resolve(config, plans_manager, configuration, preprocessed, validation)
        except TeacherModelsMissing as e:
            _fail(str(e))
        folder = unlabeled_preprocessed_folder(dataset_name, plans_manager.get_configuration(configuration)
                                               .data_identifier)
        cases = completed_cases(folder)
        if not cases:
            _fail(f"{folder}: no preprocessed unlabeled cases; run nnUNetv2_dumm_preprocess_unlabeled first")
        dataset_json = json.loads((preprocessed / "dataset.json").read_text())
        return cls(dataset_name, plans_manager, dataset_json, config, teachers, folder, cases)


def suggest_entry(argv: list[str] | None = None) -> None:
    """``nnUNetv2_dumm_suggest``: the unlabeled images most worth annotating next, from the cached teachers' pass."""
    parser = argparse.ArgumentParser(
        description="List the unlabeled images the teachers disagree on most (SUS's sample uncertainty, from the "
        "cached pseudo-label pass; no model runs): where a true label teaches the next model most. Writes "
        "suggestions.json and a picture of each (image, fused pseudo-label, uncertainty map).")
    parser.add_argument("-d", "--dataset", required=True, help="dataset name or id")
    parser.add_argument("-c", "--configuration", default="2d", help="student configuration (default: 2d)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerDUMM", help="the DUMM trainer whose teachers' "
                        "pass to read (default: nnUNetTrainerDUMM)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-n", "--num-cases", type=int, default=10, help="how many images (default: 10)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="folder for suggestions.json and the pictures (default: ./dumm_suggestions_<dataset>)")
    parser.add_argument("--copy-to", type=Path, default=None,
                        help="also copy the suggested images' raw files (every channel) to this folder")
    args = parser.parse_args(argv)
    if args.num_cases < 1:
        _fail(f"-n must be at least 1, got {args.num_cases}")

    from nnunetv2.paths import nnUNet_raw

    from nnunet_dumm.diagnostics import class_names
    from nnunet_dumm.suggest import copy_raw_images, rank_for_annotation, write_suggestions
    from nnunet_dumm.unlabeled import find_unlabeled_cases, load_preprocessed_image

    job = _TeacherPassOfTrainer.resolve(args.dataset, args.configuration, args.trainer, args.plans, "0")
    cache, config = job.teachers.cache, job.config
    missing = [c for c in job.cases if not cache.done(c)]
    if missing:
        _fail(f"the teachers' pass has no pseudo-labels for {len(missing)} of {len(job.cases)} unlabeled cases yet "
              f"(e.g. {missing[0]}): run nnUNetv2_dumm_pseudo_label -d {job.dataset_name} -c {args.configuration} "
              f"-tr {args.trainer} -p {args.plans} first (training a student runs it too)")
    suggestions = rank_for_annotation(cache, job.cases, config.sample_uncertainty, config.pixel_uncertainty,
                                      args.num_cases)
    output = args.output or Path(f"dumm_suggestions_{job.dataset_name}")
    num_classes = job.plans_manager.get_label_manager(job.dataset_json).num_segmentation_heads
    json_file = write_suggestions(suggestions, cache, config.pixel_uncertainty, config.sample_uncertainty,
                                  lambda case: load_preprocessed_image(job.folder, case),
                                  class_names(job.dataset_json["labels"], num_classes), output)
    print(f"the {len(suggestions)} of {len(job.cases)} unlabeled images most worth annotating, most uncertain first "
          f"(sample uncertainty {config.sample_uncertainty.value}):")
    print(f"{'rank':>4}  {'case':<30} {'uncertainty':>11} {'pixel unc.':>10} {'foreground':>10}")
    for s in suggestions:
        print(f"{s.rank:>4}  {s.case:<30} {s.sample_uncertainty:>11.4f} {s.mean_pixel_uncertainty:>10.4f} "
              f"{s.foreground_share:>10.3f}")
    print(f"pictures and {json_file.name}: {output}")
    if args.copy_to:
        raw_files = find_unlabeled_cases(Path(nnUNet_raw) / job.dataset_name, job.dataset_json)
        copies = copy_raw_images(suggestions, raw_files, args.copy_to)
        print(f"copied {len(copies)} raw image file(s) to {args.copy_to}")


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
    parser.add_argument("--num-labeled", type=int, default=DemoDatasetSpec.num_labeled)
    parser.add_argument("--num-unlabeled", type=int, default=DemoDatasetSpec.num_unlabeled)
    parser.add_argument("--num-test", type=int, default=DemoDatasetSpec.num_test)
    parser.add_argument("--seed", type=int, default=DemoDatasetSpec.seed)
    parser.add_argument("-tr", "--student-trainer", default=DemoSettings.student_trainer,
                        choices=("nnUNetTrainerDUMM", "nnUNetTrainerDUMM_paper"),
                        help="the student's trainer (default: %(default)s; nnUNetTrainerDUMM_paper trains the paper's "
                             "setting)")
    parser.add_argument("-device", "--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    spec = DemoDatasetSpec(num_labeled=args.num_labeled, num_unlabeled=args.num_unlabeled, num_test=args.num_test,
                           seed=args.seed)
    run_demo(DemoSettings(args.output_folder, spec, student_trainer=args.student_trainer, device=args.device))
