"""The benchmarks' datasets: conversion from the source folders, smoke trimming, the dev split, the oracle twin,
nnU-Net's planning and plans variants.

A quality run's data live in its work dir: the test dataset ``Dataset<id>_<DATASET>_<data tag>`` converted by the
project's converters; with ``--evaluate dev`` a second dataset (``<id + 1>``, ``_dev``) with the same labeled cases
whose dev cases left the unlabeled pool; with the oracle rows a third (``<id + 2>``, ``_oracle``) with the pool's true
labels as training labels. Every step skips work whose result is on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import StepLog, data_augmentation_in_process, write_json

__all__ = [
    "CLASS_NAMES",
    "CONFIGURATION",
    "DATASET_IDS",
    "convert",
    "data_tag",
    "dataset_names",
    "dev_split",
    "linked_subset",
    "oracle_dataset_name",
    "oracle_splits",
    "plan_and_preprocess",
    "plans_variant_name",
    "prepare",
    "prepare_oracle",
    "write_default_split",
    "write_plans_variant",
]

CONFIGURATION = "2d"
DATASET_IDS = {"acdc": 931, "isic": 941}
CLASS_NAMES = {"acdc": {"1": "RV", "2": "Myo", "3": "LV"}, "isic": {"1": "lesion"}}


# ------------------------------------------------------------------------------------------------ nnU-Net planning
def plan_and_preprocess(dataset_id: int, dataset_name: str, configuration: str = "2d",
                        num_processes: int = 1) -> bool:
    """nnU-Net's fingerprint, plans and preprocessing of the labeled cases; skipped when done. True if it ran."""
    from nnunetv2.paths import nnUNet_preprocessed

    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    plans_file = preprocessed / "nnUNetPlans.json"
    if plans_file.is_file():
        data_identifier = json.loads(plans_file.read_text())["configurations"][configuration]["data_identifier"]
        folder = preprocessed / data_identifier
        raw_cases = len(list((Path(os.environ["nnUNet_raw"]) / dataset_name / "labelsTr").iterdir()))
        if folder.is_dir() and len(list(folder.glob("*.pkl"))) == raw_cases:
            print(f"plans and preprocessed data exist ({folder})")
            return False
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    # nnU-Net 2.8.1's planner crashes with nnUNet_n_proc_DA=0 (NNUNET_NOTES.md section 8): hide it while planning
    n_proc_da = os.environ.pop("nnUNet_n_proc_DA", None)
    try:
        extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=True)
        plan_experiments([dataset_id])
        preprocess([dataset_id], configurations=(configuration,), num_processes=(num_processes,))
    finally:
        if n_proc_da is not None:
            os.environ["nnUNet_n_proc_DA"] = n_proc_da
    return True


def plans_variant_name(network_scale: float) -> str:
    """The plans identifier of a network with ``network_scale`` x nnU-Net's features per stage."""
    return "nnUNetPlans" if network_scale == 1 else f"nnUNetPlans_features{network_scale:g}"


def write_plans_variant(preprocessed: Path, name: str, network_scale: float) -> Path:
    """An nnU-Net plans variant: nnU-Net's plans with every configuration's features per stage scaled, the same
    preprocessing (same data identifier), so that every arm trains the smaller network without code changes."""
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["plans_name"] = name
    for configuration in plans["configurations"].values():
        kwargs = configuration.get("architecture", {}).get("arch_kwargs", {})
        if "features_per_stage" in kwargs:
            kwargs["features_per_stage"] = [max(4, round(f * network_scale)) for f in kwargs["features_per_stage"]]
    path = preprocessed / f"{name}.json"
    write_json(path, plans)
    return path


# ------------------------------------------------------------------------------------------------ conversion
def conversion_argv(args: argparse.Namespace, dataset_id: int, name: str, folders: dict[str, Path]) -> list[str]:
    """Arguments of the dataset's converter (``dataset_conversion.<dataset>.main``)."""
    argv = [str(args.data), "-d", str(dataset_id), "--name", name,
            "--raw-root", str(folders["nnUNet_raw"]), "--preprocessed-root", str(folders["nnUNet_preprocessed"])]
    if args.dataset == "acdc":
        argv += ["--labeled-patients", str(args.labeled)]
        if args.downscale > 1:
            argv += ["--downscale", str(args.downscale)]
    else:
        argv += ["--labeled-fraction", str(args.labeled_fraction), "--seed", str(args.split_seed)]
        if args.size:
            argv += ["--size", *map(str, args.size)]
    return argv


def data_tag(args: argparse.Namespace) -> str:
    """What the converted dataset is: labeled budget, resolution, split seed, smoke subset."""
    if args.dataset == "acdc":
        tag = f"L{args.labeled}" + (f"_ds{args.downscale}" if args.downscale > 1 else "")
    else:
        tag = f"{round(100 * args.labeled_fraction)}pct" + (f"_{args.size[0]}px" if args.size else "")
        tag += f"_split{args.split_seed}" if args.split_seed else ""
    tag += f"_U{args.limit_unlabeled}" if args.limit_unlabeled else ""
    tag += f"_smokeT{args.limit_test}" if args.limit_test else ""
    return tag


def convert(args: argparse.Namespace, dataset_id: int, name: str, folders: dict[str, Path]) -> bool:
    """Runs the converter unless the dataset exists; refuses a work dir made with other conversion arguments."""
    raw = folders["nnUNet_raw"] / f"Dataset{dataset_id:03d}_{name}"
    record_file = args.work_dir / "benchmark_conversion.json"
    argv = conversion_argv(args, dataset_id, name, folders)
    wanted = {"converter": args.dataset, "argv": argv, "limit_unlabeled": args.limit_unlabeled,
              "limit_test": args.limit_test}
    if record_file.is_file() and (raw / "dataset.json").is_file():
        done = json.loads(record_file.read_text())
        # where the source lay does not matter once converted (--data may be left out when resuming)
        if {**done, "argv": done["argv"][1:]} != {**wanted, "argv": argv[1:]}:
            raise SystemExit(f"{args.work_dir} holds a dataset converted with other arguments ({done}); "
                             f"use another --work-dir")
        print(f"dataset exists ({raw})")
        return False
    if args.data is None or not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: no such folder")
    if args.dataset == "acdc":
        from dataset_conversion.acdc import main as converter
    else:
        from dataset_conversion.isic import main as converter
    if converter([*argv, "--overwrite"]) != 0:
        raise SystemExit("dataset conversion failed (message above)")
    trim_for_smoke(raw, args.limit_unlabeled, args.limit_test)
    write_json(record_file, wanted)
    return True


def trim_for_smoke(raw: Path, limit_unlabeled: int | None, limit_test: int | None) -> None:
    """Keeps a seeded random subset of N unlabeled cases (a smaller pool, the same for every arm) and, for smoke
    runs only, the first N test cases (sorted ids) of the converted dataset; the rest is deleted from the copy."""
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    for limit, images, labels in ((limit_unlabeled, "imagesUnlabeled", "labelsUnlabeled"),
                                  (limit_test, "imagesTs", "labelsTs")):
        if not limit:
            continue
        cases = sorted({p.name[: -len(file_ending) - 5] for p in (raw / images).glob(f"*_0000{file_ending}")})
        if images == "imagesUnlabeled":
            keep = {cases[i] for i in np.random.default_rng(0).permutation(len(cases))[:limit]}
        else:
            keep = set(cases[:limit])
        for case in set(cases) - keep:
            for p in (raw / images).glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
                p.unlink()
            (raw / labels / f"{case}{file_ending}").unlink(missing_ok=True)
        print(f"kept {len(keep)} of {len(cases)} cases in {images}")


# ------------------------------------------------------------------------------------------------ dev split
def dev_split(raw: Path, count: int, seed: int = 0) -> list[str]:
    """The development cases: ``count`` groups (ACDC: patients; ISIC: images) drawn, seeded, from the unlabeled
    pool that has true labels (``labelsUnlabeled/``). Training-side data: never the test set; dev runs leave these
    cases out of the pool, and defaults are chosen on them only."""
    record = json.loads((raw / "split.json").read_text())
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    labeled_pool = sorted(p.name[: -len(file_ending)] for p in (raw / "labelsUnlabeled").glob(f"*{file_ending}")
                          if (raw / "imagesUnlabeled" / f"{p.name[: -len(file_ending)]}_0000{file_ending}").is_file())
    patients = record.get("groups", {}).get("unlabeled")

    def group(case: str) -> str:
        return next((p for p in patients if case.startswith(f"{p}_")), case) if patients else case

    groups = sorted({group(c) for c in labeled_pool})
    if count > len(groups):
        raise SystemExit(f"{raw}: {count} dev groups requested, the unlabeled pool with true labels has {len(groups)}")
    chosen = {groups[i] for i in np.random.default_rng(seed).permutation(len(groups))[:count]}
    return [c for c in labeled_pool if group(c) in chosen]


def linked_subset(raw: Path, cases: Sequence[str], images: str, labels: str, destination: Path) -> tuple[Path, Path]:
    """``destination/{images,labels}`` with symbolic links to the given cases' files, for nnU-Net's predictor and
    evaluator (which take whole folders)."""
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    image_folder, label_folder = destination / "images", destination / "labels"
    for folder in (image_folder, label_folder):
        folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for source in (raw / images).glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
            link = image_folder / source.name
            if not link.exists():
                link.symlink_to(source)
        link = label_folder / f"{case}{file_ending}"
        if not link.exists():
            link.symlink_to(raw / labels / f"{case}{file_ending}")
    return image_folder, label_folder


def move_dev_cases_out_of_the_pool(raw: Path, dev_cases: list[str]) -> None:
    """The dev cases leave ``imagesUnlabeled``/``labelsUnlabeled`` for ``imagesDev``/``labelsDev``."""
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    for images, labels in (("imagesDev", "labelsDev"),):
        (raw / images).mkdir(exist_ok=True)
        (raw / labels).mkdir(exist_ok=True)
    for case in dev_cases:
        for image in (raw / "imagesUnlabeled").glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
            shutil.move(image, raw / "imagesDev" / image.name)
        shutil.move(raw / "labelsUnlabeled" / f"{case}{file_ending}", raw / "labelsDev" / f"{case}{file_ending}")
    print(f"dev split: {len(dev_cases)} cases moved out of the unlabeled pool into imagesDev/labelsDev")


def write_default_split(preprocessed: Path, raw: Path) -> Path:
    """The dataset's ``splits_final.json``; where the converter wrote none (ISIC: no patients to group), the split
    nnU-Net's ``do_split`` would create on first training (5-fold KFold of the sorted cases, seed 12345), written now
    so that the dev dataset can share it before any model trains."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    splits_file = preprocessed / "splits_final.json"
    if not splits_file.is_file():
        file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
        cases = sorted(f.name[:-len(file_ending)] for f in (raw / "labelsTr").iterdir() if f.name.endswith(file_ending))
        splits_file.write_text(json.dumps(generate_crossval_split(cases, seed=12345, n_splits=5), indent=1))
    return splits_file


# ------------------------------------------------------------------------------------------------ oracle
def oracle_dataset_name(name: str, dataset_id: int) -> tuple[str, int]:
    """The oracle twin of a dataset: two ids further (test 931 -> 933, dev 932 -> 934), the same name + ``_oracle``."""
    return f"Dataset{dataset_id + 2:03d}_{name.split('_', 1)[1]}_oracle", dataset_id + 2


def oracle_splits(splits: list[dict], pool: list[str]) -> list[dict]:
    """The dataset's cross-validation split with every labeled pool case added to each fold's training cases: the
    validation cases stay those of the fold, the pool never validates."""
    return [{"train": [*fold["train"], *pool], "val": list(fold["val"])} for fold in splits]


def prepare_oracle(args: argparse.Namespace, folders: dict, steps: StepLog, name: str, dataset_id: int) -> str:
    """The oracle twin of the students' dataset: its labeled cases plus every unlabeled-pool case that has a true
    label (``labelsUnlabeled/``) as labeled training cases, with the students' plans copied (the same network, patch
    and batch: nnU-Net's ``move_plans_between_datasets``), the students' split with the pool added to every fold's
    training cases, preprocessed like any nnU-Net dataset. Its stock models are the supervised upper bound: what
    labels for the pool would give at the same budget. Dev cases are not in the pool (the dev dataset's pool), and
    the evaluation set never is."""
    oracle, oracle_id = oracle_dataset_name(name, dataset_id)
    source, source_preprocessed = folders["nnUNet_raw"] / name, folders["nnUNet_preprocessed"] / name
    preprocessed = folders["nnUNet_preprocessed"] / oracle
    with steps.step(f"prepare_{oracle}", f"oracle dataset {oracle}: labeled cases + the pool with its true labels, "
                    "the same plans") as record:
        file_ending = json.loads((source / "dataset.json").read_text())["file_ending"]
        pool = sorted(p.name[: -len(file_ending)] for p in (source / "labelsUnlabeled").glob(f"*{file_ending}"))
        plans = json.loads((source_preprocessed / "nnUNetPlans.json").read_text())
        data_folder = preprocessed / plans["configurations"][CONFIGURATION]["data_identifier"]
        labeled = len(list((source / "labelsTr").glob(f"*{file_ending}")))
        record["skipped"] = data_folder.is_dir() and len(list(data_folder.glob("*.pkl"))) == labeled + len(pool)
        record["pool_cases_with_labels"] = len(pool)
        if not record["skipped"]:
            if not pool:
                raise SystemExit(f"{source}: no labelsUnlabeled/, so no oracle: the pool has no true labels")
            _build_oracle(source, source_preprocessed, folders["nnUNet_raw"] / oracle, preprocessed, pool)
            from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess
            from nnunetv2.experiment_planning.plans_for_pretraining.move_plans_between_datasets import (
                move_plans_between_datasets,
            )

            move_plans_between_datasets(name, oracle, "nnUNetPlans")
            preprocess([oracle_id], "nnUNetPlans", configurations=(CONFIGURATION,), num_processes=(1,))
    if args.plans != "nnUNetPlans":
        write_plans_variant(preprocessed, args.plans, args.network_scale)
    return oracle


def _build_oracle(source: Path, source_preprocessed: Path, raw: Path, preprocessed: Path, pool: list[str]) -> None:
    """The oracle's raw folder (written aside, then renamed into place), its dataset.json, the labeled cases'
    fingerprint (that of the plans) and its split, ready for nnU-Net's preprocessing with the copied plans."""
    dataset_json = json.loads((source / "dataset.json").read_text())
    file_ending = dataset_json["file_ending"]
    partial = raw.with_name(raw.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source / "imagesTr", partial / "imagesTr")
    shutil.copytree(source / "labelsTr", partial / "labelsTr")
    for case in pool:
        for image in (source / "imagesUnlabeled").glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
            shutil.copy(image, partial / "imagesTr" / image.name)
        shutil.copy(source / "labelsUnlabeled" / f"{case}{file_ending}", partial / "labelsTr")
    dataset_json["numTraining"] = len(list((partial / "labelsTr").glob(f"*{file_ending}")))
    write_json(partial / "dataset.json", dataset_json)
    shutil.rmtree(raw, ignore_errors=True)
    os.replace(partial, raw)
    preprocessed.mkdir(parents=True, exist_ok=True)
    shutil.copy(raw / "dataset.json", preprocessed / "dataset.json")
    shutil.copy(source_preprocessed / "dataset_fingerprint.json", preprocessed / "dataset_fingerprint.json")
    splits = json.loads(write_default_split(source_preprocessed, source).read_text())
    write_json(preprocessed / "splits_final.json", oracle_splits(splits, pool))


# ------------------------------------------------------------------------------------------------ a run's datasets
def dataset_names(args: argparse.Namespace) -> tuple[str, str, int]:
    """(the test dataset's name, the name of the dataset this run trains students on, its id)."""
    dataset_id = args.dataset_id or DATASET_IDS[args.dataset]
    base = f"Dataset{dataset_id:03d}_{args.dataset.upper()}_{data_tag(args)}"
    if args.evaluate == "dev":
        return base, f"Dataset{dataset_id + 1:03d}_{args.dataset.upper()}_{data_tag(args)}_dev", dataset_id + 1
    return base, base, dataset_id


def prepare(args: argparse.Namespace, folders: dict, steps: StepLog) -> tuple[Path, str, str]:
    """Conversion, planning and unlabeled preprocessing of the test dataset (and the dev dataset)."""
    test_name, name, dataset_id = dataset_names(args)
    test_id = args.dataset_id or DATASET_IDS[args.dataset]
    short = test_name.split("_", 1)[1]
    with steps.step("convert", f"convert {args.dataset} from {args.data} -> {test_name}") as record:
        record["skipped"] = not convert(args, test_id, short, folders)
    with steps.step("plan", "nnU-Net fingerprint, plans and preprocessing of the labeled cases (2d)") as record:
        record["skipped"] = not plan_and_preprocess(test_id, test_name, CONFIGURATION)
    if args.evaluate == "dev":
        raw = folders["nnUNet_raw"] / name
        with steps.step("convert_dev", f"dev dataset {name}: the test dataset without its dev cases") as record:
            record["skipped"] = (raw / "dataset.json").is_file()
            if not record["skipped"]:
                test_raw = folders["nnUNet_raw"] / test_name
                dev_cases = dev_split(test_raw, args.dev_groups, args.dev_seed)
                shutil.copytree(test_raw, raw.with_name(raw.name + ".partial"), dirs_exist_ok=True)
                move_dev_cases_out_of_the_pool(raw.with_name(raw.name + ".partial"), dev_cases)
                os.replace(raw.with_name(raw.name + ".partial"), raw)
                preprocessed = folders["nnUNet_preprocessed"] / name
                preprocessed.mkdir(parents=True, exist_ok=True)
                test_split = write_default_split(folders["nnUNet_preprocessed"] / test_name,
                                                 folders["nnUNet_raw"] / test_name)
                shutil.copy(test_split, preprocessed)
                record["dev_cases"] = dev_cases
        with steps.step("plan_dev", "plans and preprocessing of the dev dataset (the same labeled cases)") as record:
            record["skipped"] = not plan_and_preprocess(dataset_id, name, CONFIGURATION)
    if args.plans != "nnUNetPlans":
        for dataset in dict.fromkeys((test_name, name)):
            write_plans_variant(folders["nnUNet_preprocessed"] / dataset, args.plans, args.network_scale)
    data_augmentation_in_process(args.device)
    with steps.step(f"unlabeled_{name}", "preprocess the unlabeled images with the same plans") as record:
        from nnunet_dumm.unlabeled import completed_cases, preprocess_unlabeled, unlabeled_preprocessed_folder

        plans = json.loads((folders["nnUNet_preprocessed"] / name / f"{args.plans}.json").read_text())
        folder = unlabeled_preprocessed_folder(name, plans["configurations"][CONFIGURATION]["data_identifier"])
        before = len(completed_cases(folder))
        preprocess_unlabeled(name, CONFIGURATION, args.plans)
        record["skipped"] = before == len(completed_cases(folder))
        record["cases"] = len(completed_cases(folder))
    return folders["nnUNet_raw"] / name, test_name, name
