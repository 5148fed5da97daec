"""Quality benchmark: stock nnU-Net (one fold and the 5-fold ensemble) vs DUMM and its ablations, with seeds.

Steps (each skipped when its result is on disk, so an interrupted run resumes): convert the dataset from its source
folder, plan and preprocess (2d), preprocess the unlabeled images, train the stock teachers
(``nnUNetTrainerStock_<preset>`` folds 0..N-1; fold 0 is the labeled-only baseline), train the rows' models (stock
fold 0 with more seeds, stock with twice the iterations, plain pseudo-labelling, DUMM without SUS / PUM, DUMM with
several seeds, DUMM's own 5-fold student ensemble), predict the evaluation set with nnU-Net's predictor, evaluate
(Dice from nnU-Net, HD95/ASD from medpy), compare rows with paired bootstrap intervals and write
``benchmarks/results/<dataset>_<preset>_<budget-tag>.{md,json,png}`` and the dataset's entry of
``benchmarks/results/summary.json``.

Models of another seed go to their own results root inside the work dir (``nnUNet_results_seed<s>``, with links to
the seed-0 teachers, so every DUMM seed learns from the same teachers and shares their pseudo-label cache;
``nnUNet_results_stock_seed<s>`` for stock fold 0). ``--evaluate dev`` scores on the dev split instead of the test
set: those unlabeled-pool cases leave the pool (``imagesDev``/``labelsDev`` of a second dataset with the same
labeled cases and the same teachers).

Examples:
    python benchmarks/run_quality.py acdc --data ../shared/data/acdc --preset proxy --labeled 7 \\
        --work-dir work_dirs/acdc_L7_ds4
    python benchmarks/run_quality.py isic --data ../shared/data/isic2017 --preset proxy --labeled-fraction 0.1 \\
        --work-dir work_dirs/isic_10pct_64px
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run_quality.py` from anywhere

from benchmarks.common import (  # noqa: E402
    PRESETS,
    RESULTS_DIR,
    StepLog,
    aggregate,
    bootstrap_difference,
    case_metrics,
    command_line,
    data_augmentation_in_process,
    dev_split,
    format_metric,
    git_commit,
    machine_info,
    plan_and_preprocess,
    plans_variant_name,
    provenance_markdown,
    repo_relative,
    report_file,
    seed_everything,
    set_nnunet_paths,
    trainer_names,
    update_summary,
    write_json,
    write_plans_variant,
)

CONFIGURATION = "2d"
DATASET_IDS = {"acdc": 931, "isic": 941}
CLASS_NAMES = {"acdc": {"1": "RV", "2": "Myo", "3": "LV"}, "isic": {"1": "lesion"}}
DEFAULT_TEACHER_FOLDS = {"test": 2, "demo": 3, "cpu": 3, "gpu": 3, "proxy": 5, "gpuwin": 5, "full": 5}
# presets whose headline rows get seeds 0, 1, 2 by default
SEEDED_PRESETS = ("proxy", "gpuwin")
STOCK = "nnUNetTrainerStock"


@dataclass(frozen=True)
class Row:
    """One row of the report: a trainer arm, trained on fold 0 (or ensembled over the teacher folds).

    ``budget`` "2x" trains on the preset's doubled budget (the stock row with the student's sample count).
    ``seeded`` rows are trained once per ``--seeds`` value, the others with seed 0 only (unless ``--seed-every-row``):
    the stock baselines, DUMM as published and the candidates for the trainer the README recommends: the claims need
    seeds.
    ``teachers_from``: the row whose models are this row's teachers, trained first (a second generation).
    ``oracle`` rows train on the oracle twin of the dataset (``prepare_oracle``): the pool's true labels as labels.
    """

    key: str
    label: str
    arm: str
    ensemble: bool = False
    budget: str = ""
    seeded: bool = False
    teachers_from: str = ""
    oracle: bool = False


ROWS = (
    Row("stock", "stock nnU-Net fold 0 (labeled only)", STOCK, seeded=True),
    Row("stock_ensemble", "stock nnU-Net 5-fold ensemble (the teachers)", STOCK, ensemble=True),
    Row("stock_2x", "stock nnU-Net fold 0, twice the iterations (the student's sample count)", STOCK, budget="2x",
        seeded=True),
    Row("stock_2x_ensemble", "stock nnU-Net 5-fold ensemble, twice the iterations (the student ensemble's cost)",
        STOCK, ensemble=True, budget="2x"),
    Row("pseudo_label", "plain pseudo-labelling (fold-0 teacher)", "nnUNetTrainerPseudoLabel"),
    Row("dumm_nosus", "DUMM without SUS", "nnUNetTrainerDUMM_noSUS"),
    Row("dumm_nopum", "DUMM without PUM", "nnUNetTrainerDUMM_noPUM"),
    Row("dumm", "DUMM (PUM + SUS), fold 0", "nnUNetTrainerDUMM", seeded=True),
    Row("dumm_ensemble", "DUMM 5-fold student ensemble", "nnUNetTrainerDUMM", ensemble=True),
    # the levers beyond the paper, one at a time on top of DUMM (chosen on the dev split: --evaluate dev)
    Row("copy_paste", "DUMM + copy-paste of labeled boxes (BCP)", "nnUNetTrainerDUMM_copyPaste"),
    Row("class_quantile", "DUMM + per-class quantile mask", "nnUNetTrainerDUMM_classQuantile", seeded=True),
    Row("class_quantile_ensemble", "DUMM + per-class quantile mask, 5-fold student ensemble",
        "nnUNetTrainerDUMM_classQuantile", ensemble=True),
    Row("no_mask", "DUMM with every pseudo-label pixel counted (no mask)", "nnUNetTrainerDUMM_noMask", seeded=True),
    Row("no_mask_ensemble", "DUMM without the mask, 5-fold student ensemble", "nnUNetTrainerDUMM_noMask",
        ensemble=True),
    Row("fg_sus", "DUMM + foreground-aware SUS", "nnUNetTrainerDUMM_fgSUS"),
    Row("fg_oversample", "DUMM + foreground-centred unlabeled patches", "nnUNetTrainerDUMM_fgOversample"),
    Row("teacher_init", "DUMM + student started from its teacher", "nnUNetTrainerDUMM_teacherInit"),
    Row("gen2", "DUMM generation 2 (the 5 DUMM folds as teachers)", "nnUNetTrainerDUMM_gen2",
        teachers_from="dumm_ensemble"),
    Row("consistency", "DUMM + weak-to-strong consistency (FixMatch/UniMatch)", "nnUNetTrainerDUMM_consistency"),
    Row("longer", "DUMM, the student trained twice the iterations (teachers at the preset)",
        "nnUNetTrainerDUMM_longer"),
    Row("refresh", "DUMM, four rounds with the student's labels refreshed (weight 5)", "nnUNetTrainerDUMM_refresh"),
    Row("longer_refresh", "DUMM, twice the iterations in four refreshed rounds", "nnUNetTrainerDUMM_longerRefresh"),
    # the supervised upper bound: what true labels for the whole pool would give at the same budget (and at the
    # student's sample count); the headroom any semi-supervised method has above the stock ensemble
    Row("oracle", "supervised upper bound: stock nnU-Net fold 0 with the pool's true labels", STOCK, oracle=True),
    Row("oracle_2x", "supervised upper bound, twice the iterations", STOCK, budget="2x", oracle=True),
)
ROWS_BY_KEY = {row.key: row for row in ROWS}
LEVER_ROWS = ("copy_paste", "class_quantile", "no_mask", "fg_sus", "fg_oversample", "teacher_init", "gen2",
              "consistency", "longer", "refresh", "longer_refresh")
# (row, reference row): the differences the report and summary.json give intervals for
COMPARISONS = (("dumm", "stock_ensemble"), ("dumm", "stock"), ("dumm_ensemble", "stock_ensemble"),
               ("stock_2x", "stock"), ("dumm", "stock_2x"), ("pseudo_label", "stock"),
               # the ablations and the levers: what each changes against DUMM, and where each stands against the bar
               *((row, reference) for row in ("pseudo_label", "dumm_nosus", "dumm_nopum", *LEVER_ROWS)
                 for reference in ("dumm", "stock_ensemble")),
               # without PUM, DUMM also takes one teacher (fold 0); the five teachers without the mask separate the two
               ("no_mask", "dumm_nopum"),
               # the candidates for the recommended trainer (README, "Which to use"), `_noMask` and `_classQuantile`,
               # against what stock users deploy, one fold and five (and against stock trained on as many samples as
               # the student: is the gain the unlabeled images'?), and against each other
               ("no_mask", "stock"), ("no_mask", "stock_2x"), ("no_mask_ensemble", "stock_ensemble"),
               ("no_mask_ensemble", "dumm_ensemble"), ("no_mask_ensemble", "stock_2x_ensemble"),
               ("stock_2x_ensemble", "stock_ensemble"),
               ("class_quantile", "stock"), ("class_quantile", "stock_2x"), ("class_quantile", "no_mask"),
               ("class_quantile", "stock_2x_ensemble"), ("class_quantile", "no_mask_ensemble"),
               ("class_quantile_ensemble", "stock_ensemble"), ("class_quantile_ensemble", "stock_2x_ensemble"),
               ("class_quantile_ensemble", "no_mask_ensemble"),
               ("oracle", "stock_ensemble"), ("oracle_2x", "stock_ensemble"), ("dumm", "oracle"))
# the comparisons summary.json keeps, under "<row>_vs_<reference>" (stock fold 0 named "stock_fold0")
SUMMARY_PAIRS = (("dumm", "stock_ensemble"), ("dumm", "stock"), ("dumm_ensemble", "stock_ensemble"),
                 ("stock_2x", "stock"), ("dumm", "stock_2x"), ("no_mask", "stock_ensemble"), ("no_mask", "stock"),
                 ("no_mask", "stock_2x"), ("no_mask_ensemble", "stock_ensemble"),
                 ("no_mask_ensemble", "stock_2x_ensemble"), ("stock_2x_ensemble", "stock_ensemble"),
                 ("class_quantile", "stock_ensemble"), ("class_quantile", "stock"), ("class_quantile", "stock_2x"),
                 ("class_quantile", "stock_2x_ensemble"), ("class_quantile", "no_mask"),
                 ("class_quantile", "no_mask_ensemble"), ("class_quantile_ensemble", "stock_ensemble"),
                 ("class_quantile_ensemble", "stock_2x_ensemble"), ("class_quantile_ensemble", "no_mask_ensemble"))


def summary_key(row: str, reference: str) -> str:
    return f"{row}_vs_{'stock_fold0' if reference == 'stock' else reference}"


@dataclass(frozen=True)
class Model:
    """One trained model: a trainer, fold and seed, in a results root of the work dir."""

    trainer: str
    fold: int
    seed: int
    root: str
    plans: str = "nnUNetPlans"
    oracle: bool = False  # trained on the oracle twin of the dataset

    @property
    def teacher_link_needed(self) -> bool:
        return self.root.startswith("nnUNet_results_seed")


def preset_budget(args: argparse.Namespace) -> str:
    """The training budget (``nnunet_dumm.trainers.variants.BUDGETS``) of the run's preset: ``proxy`` is the budget
    the dataset's learning curve chose (or ``--proxy-budget``), ``gpuwin`` the GPU window's; the other presets are
    budgets of their own name."""
    from nnunet_dumm.trainers.variants import PROXY_BUDGETS

    if args.preset == "proxy":
        return args.proxy_budget or PROXY_BUDGETS[args.dataset]
    return {"gpuwin": "5000it"}.get(args.preset, args.preset)


def preset_label(args: argparse.Namespace) -> str:
    """The preset as reports and ``summary.json`` name it: ``proxy`` with another budget than the learning curve's
    or another network than nnU-Net's is ``proxy<budget>`` (+ ``_features<scale>``), so that its report and summary
    entry stand beside the default's."""
    from nnunet_dumm.trainers.variants import PROXY_BUDGETS

    budget = preset_budget(args)
    network = "" if args.plans == "nnUNetPlans" else "_" + args.plans.removeprefix("nnUNetPlans_")
    if args.preset != "proxy" or (budget == PROXY_BUDGETS[args.dataset] and not network):
        return args.preset
    return f"proxy{budget}{network}"


def row_budget(args: argparse.Namespace, row: Row) -> str | None:
    """The budget a row trains on: the preset's, or for a "2x" row the budget of twice its iterations (None if
    the preset has none)."""
    from nnunet_dumm.trainers.variants import BUDGETS

    budget = preset_budget(args)
    if not row.budget:
        return budget
    if budget not in BUDGETS:
        return None
    doubled = [name for name, b in BUDGETS.items() if b.iterations == 2 * BUDGETS[budget].iterations
               and b.iterations_per_epoch == BUDGETS[budget].iterations_per_epoch]
    return doubled[0] if doubled else None


def stock_results_root(seed: int) -> str:
    """Where stock fold 0 of a seed trains (also the learning curve's): seed 0 beside the teachers, other seeds in
    roots of their own, not the students' seed roots, which link the teachers' folder."""
    return "nnUNet_results" if seed == 0 else f"nnUNet_results_stock_seed{seed}"


def row_models(row: Row, args: argparse.Namespace) -> dict[int, list[Model]]:
    """The models behind a row, per seed (an ensemble row: all teacher folds of seed 0)."""
    trainer = trainer_names(row.arm, row_budget(args, row))
    if row.ensemble:
        return {0: [Model(trainer, fold, 0, "nnUNet_results", args.plans, row.oracle)
                    for fold in range(args.teacher_folds)]}
    seeds = args.seeds if row.seeded or args.seed_every_row else [0]
    out = {}
    for seed in seeds:
        root = stock_results_root(seed) if row.arm == STOCK else \
            "nnUNet_results" if seed == 0 else f"nnUNet_results_seed{seed}"
        out[seed] = [Model(trainer, 0, seed, root, args.plans, row.oracle)]
    return out


def _models_of(rows: list[Row], args: argparse.Namespace) -> list[Model]:
    return list(dict.fromkeys(m for row in rows for per_seed in row_models(row, args).values() for m in per_seed))


def training_stages(rows: list[Row], args: argparse.Namespace) -> tuple[list[Model], list[Model], list[Model]]:
    """The models to train, in the order they depend on each other: the stock models (the teachers among them),
    the students of the stock teachers, and the second generation, whose teachers (the models of the row it names
    in ``teachers_from``, whether that row is reported or not) are students of the stage before. The oracle rows'
    models (another dataset, no teachers) are not among them."""
    teacher = trainer_names(STOCK, preset_budget(args))
    teachers = [Model(teacher, fold, 0, "nnUNet_results", args.plans) for fold in range(args.teacher_folds)]
    rows = [row for row in rows if not row.oracle]
    first_rows = [row for row in rows if not row.teachers_from] + \
        [ROWS_BY_KEY[row.teachers_from] for row in rows if row.teachers_from]
    models = _models_of(first_rows, args)
    stock_models = list(dict.fromkeys([*teachers, *(m for m in models if m.trainer.startswith(STOCK))]))
    students = [m for m in models if m not in stock_models]
    second_generation = [m for m in _models_of([row for row in rows if row.teachers_from], args) if m not in models]
    return stock_models, students, second_generation


def available_rows(args: argparse.Namespace) -> list[Row]:
    """The selected rows that this preset can train (a doubled budget exists only for some presets)."""
    return [row for row in ROWS if row.key in args.arms and row_budget(args, row) is not None]


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


def budget_tag(args: argparse.Namespace) -> str:
    """The data tag plus what the training used and where it was scored: teacher folds, dev split."""
    return (f"{data_tag(args)}_{args.teacher_folds}folds" + (f"_{args.plans}" if args.plans != "nnUNetPlans" else "")
            + ("_dev" if args.evaluate == "dev" else ""))


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
    import numpy as np

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


def link_model_folder(work_dir: Path, root: str, dataset_name: str, target_root: str, target_dataset: str,
                      trainer: str, plans: str) -> None:
    """Makes ``<root>/<dataset_name>/<trainer model folder>`` a link to the same model folder of another root or
    dataset: DUMM seeds share the seed-0 teachers, the dev dataset shares every stock model of the test dataset."""
    folder_name = f"{trainer}__{plans}__{CONFIGURATION}"
    target = work_dir / target_root / target_dataset / folder_name
    link = work_dir / root / dataset_name / folder_name
    if link.is_symlink() or link.exists() or link == target:
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


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


# ------------------------------------------------------------------------------------------------ training
def _model_fold_folder(work_dir: Path, dataset_name: str, model: Model) -> Path:
    return work_dir / model.root / dataset_name / f"{model.trainer}__{model.plans}__{CONFIGURATION}" / \
        f"fold_{model.fold}"


def train_model(work_dir: str, dataset_name: str, model: Model, device: str, threads: int | None = None) -> float:
    """Trains one model (in this process or a worker process, then with its share of the cores); returns the wall
    time."""
    from nnunet_dumm.runs import train_fold

    start = time.perf_counter()
    os.environ["nnUNet_results"] = str(Path(work_dir) / model.root)  # nnU-Net reads its paths at call time
    seed_everything(100 * model.seed + model.fold)
    train_fold(dataset_name, CONFIGURATION, model.fold, model.trainer, plans=model.plans, device=device,
               threads=threads)
    return time.perf_counter() - start


def _set_environment(environment: dict) -> None:  # a worker's initializer: nnU-Net's paths and settings
    os.environ.update(environment)


def train_all(models: list[Model], args: argparse.Namespace, dataset_name: str, steps: StepLog) -> None:
    """Trains every model not on disk yet: one after the other, or ``--jobs`` at a time in worker processes
    (models of one list are independent; several students running at once share the teachers' pass)."""
    todo = [m for m in models if not (_model_fold_folder(args.work_dir, dataset_name, m) /
                                      "checkpoint_final.pth").is_file()]
    def step(model: Model, note: str = ""):
        return steps.step(_step_name(model, dataset_name),
                          f"train {model.trainer} fold {model.fold} seed {model.seed} ({model.root}{note})")

    for model in models:
        if model not in todo:
            with step(model) as record:
                record["skipped"] = True
    if args.jobs <= 1:
        for model in todo:
            with step(model):
                train_model(str(args.work_dir), dataset_name, model, args.device)
        return
    import multiprocessing

    environment = {k: v for k, v in os.environ.items() if k.startswith("nnUNet") or k.startswith("NNUNET")}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_set_environment,
                             initargs=(environment,)) as pool:
        futures = {model: pool.submit(train_model, str(args.work_dir), dataset_name, model, args.device, threads)
                   for model in todo}
        for model, future in futures.items():
            with step(model, f", {args.jobs} jobs at once") as record:
                record["worker_wall_s"] = round(future.result(), 1)


def _step_name(model: Model, dataset_name: str) -> str:
    # models of the dev and oracle datasets get their own records: the test run's timings stay as they were measured
    # and a smaller network's model (a plans variant) is not the default network's
    twins = [tag for tag in dataset_name.split("_")[2:] if tag in ("dev", "oracle")]
    plans = f"_{model.plans}" if model.plans != "nnUNetPlans" else ""
    return f"train_{model.trainer}{plans}_fold{model.fold}_seed{model.seed}" + "".join(f"_{tag}" for tag in twins)


# ------------------------------------------------------------------------------------------------ evaluation
def prediction_key(args: argparse.Namespace, row: Row) -> str:
    """The predictions folder of a row: the default budget and plans keep the plain name (work dirs resume), another
    ``--proxy-budget`` or plans variant gets its own, or it would find the default's predictions and report them."""
    return (f"{args.evaluate}_{row.key}" + (f"_{preset_label(args)}" if preset_label(args) != args.preset else "")
            + (f"_{args.plans}" if args.plans != "nnUNetPlans" else ""))


def check_predicted_by(output: Path, model_folder: Path, folds: tuple[int, ...]) -> None:
    """Records which model predicted ``output``; refuses predictions another model made (reporting them would
    credit one model with another's result)."""
    record = output / "predicted_by.json"
    wanted = {"model_folder": str(Path(model_folder).resolve()), "folds": list(folds)}
    if record.is_file() and json.loads(record.read_text()) != wanted:
        raise SystemExit(f"{output} holds predictions of {json.loads(record.read_text())}, not of {wanted}: "
                         "delete the folder or use another --work-dir")
    write_json(record, wanted)


def evaluate_rows(args: argparse.Namespace, raw: Path, dataset_names: dict[bool, str], rows: list[Row],
                  steps: StepLog, images: str, labels: str) -> dict:
    """Each row's predictions of the evaluation set and their metrics; ``dataset_names``: where the models of the
    ordinary (False) and the oracle (True) rows were trained."""
    from nnunet_dumm.runs import predict_and_evaluate

    dataset_json = json.loads((raw / "dataset.json").read_text())
    results = {}
    for row in rows:
        per_seed = {}
        for seed, models in row_models(row, args).items():
            model_folder = _model_fold_folder(args.work_dir, dataset_names[row.oracle], models[0]).parent
            folds = tuple(m.fold for m in models)
            key = prediction_key(args, row)
            output = args.work_dir / "predictions" / key / f"seed{seed}"
            with steps.step(f"predict_{key}_seed{seed}",
                            f"predict {images} + evaluate: {row.label}, folds {folds}, seed {seed}") as record:
                record["skipped"] = (output / "summary.json").is_file()
                check_predicted_by(output, model_folder, folds)
                summary = predict_and_evaluate(model_folder, folds, raw / images, raw / labels, output, args.device)
            per_case = case_metrics(summary, dataset_json)
            per_seed[seed] = {"model_folder": str(model_folder), "folds": list(folds), "predictions": str(output),
                              "summary": aggregate(per_case), "per_case": per_case}
            print(f"{row.label}, seed {seed}: mean Dice {100 * per_seed[seed]['summary']['mean']['Dice']['mean']:.1f}")
        seed_means = {s: v["summary"]["mean"]["Dice"]["mean"] for s, v in per_seed.items()}
        trainer = trainer_names(row.arm, row_budget(args, row))
        results[row.key] = {"label": row.label, "trainer": trainer,
                            "ensemble": row.ensemble, "seeds": per_seed,
                            "mean_dice_per_seed": seed_means,
                            "mean_dice_over_seeds": sum(seed_means.values()) / len(seed_means)}
    return results


def compare_rows(results: dict, pairs=COMPARISONS) -> dict:
    """Paired bootstrap (over evaluation cases, and over seeds where a row has several) of mean Dice differences,
    for the (row, reference) ``pairs`` whose rows are both in ``results``."""
    comparisons = {}
    for key, reference in pairs:
        if key not in results or reference not in results:
            continue
        comparisons[f"{key}_vs_{reference}"] = bootstrap_difference(
            _dice_matrix(results[key]), _dice_matrix(results[reference]))
    return comparisons


def summary_comparison(comparisons: dict, results: dict, pair: tuple[str, str]) -> dict:
    """A comparison as summary.json keeps it: the interval with both rows' means."""
    return {**comparisons[f"{pair[0]}_vs_{pair[1]}"], "arms": {k: results[k]["mean_dice_over_seeds"] for k in pair}}


def _dice_matrix(result: dict) -> dict[str, list[float]]:
    """case -> mean Dice over classes, one value per seed."""
    import numpy as np

    out: dict[str, list[float]] = {}
    for per_seed in result["seeds"].values():
        for record in per_seed["per_case"]:
            values = [c["Dice"] for c in record["classes"].values()]
            out.setdefault(record["case"], []).append(float(np.nanmean(values)) if np.isfinite(values).any()
                                                      else float("nan"))
    return out


# ------------------------------------------------------------------------------------------------ run
def dataset_names(args: argparse.Namespace) -> tuple[str, str, int]:
    """(the test dataset's name, the name of the dataset this run trains students on, its id)."""
    dataset_id = args.dataset_id or DATASET_IDS[args.dataset]
    base = f"Dataset{dataset_id:03d}_{args.dataset.upper()}_{data_tag(args)}"
    if args.evaluate == "dev":
        return base, f"Dataset{dataset_id + 1:03d}_{args.dataset.upper()}_{data_tag(args)}_dev", dataset_id + 1
    return base, base, dataset_id


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


def run(args: argparse.Namespace) -> Path:
    start = time.perf_counter()
    args.work_dir = args.work_dir.resolve()
    folders = set_nnunet_paths(args.work_dir)
    rows = available_rows(args)
    steps = StepLog(args.work_dir / "benchmark_steps.json", total=0)
    raw, test_name, name = prepare(args, folders, steps)

    teacher = trainer_names(STOCK, preset_budget(args))
    stock_models, students, second_generation = training_stages(rows, args)
    # stock models only see the labeled cases: trained once in the test dataset, linked into the dev dataset
    train_all(stock_models, args, test_name, steps)
    for model in stock_models:
        link_model_folder(args.work_dir, model.root, name, model.root, test_name, model.trainer, model.plans)
    for model in students:
        if model.teacher_link_needed:
            link_model_folder(args.work_dir, model.root, name, "nnUNet_results", test_name, teacher, model.plans)
    datasets = {False: name}
    oracle_rows = [row for row in rows if row.oracle]
    if oracle_rows:  # before the students: the headroom above the stock ensemble is known early
        datasets[True] = prepare_oracle(args, folders, steps, name, dataset_names(args)[2])
        train_all(_models_of(oracle_rows, args), args, datasets[True], steps)
    train_all(students, args, name, steps)
    train_all(second_generation, args, name, steps)

    images, labels = ("imagesTs", "labelsTs") if args.evaluate == "test" else ("imagesDev", "labelsDev")
    results = evaluate_rows(args, raw, datasets, rows, steps, images, labels)
    comparisons = compare_rows(results)
    with steps.step("report", "write the report") as record:
        stem = args.results_dir / f"{args.dataset}_{preset_label(args)}_{budget_tag(args)}"
        write_reports(stem, args, raw, results, comparisons, steps, time.perf_counter() - start)
        record["files"] = [str(report_file(stem, s)) for s in (".md", ".json", ".png")]
    if args.evaluate == "test" and not args.limit_test and not args.limit_unlabeled:
        update_summary(args.results_dir / "summary.json", {
            "dataset": args.dataset, "preset": preset_label(args),
            "labeled": args.labeled if args.dataset == "acdc" else f"{round(100 * args.labeled_fraction)}pct",
            "report": repo_relative(report_file(stem, ".md")),
            **{summary_key(*pair): summary_comparison(comparisons, results, pair)
               for pair in SUMMARY_PAIRS if f"{pair[0]}_vs_{pair[1]}" in comparisons},
        })
    print(f"\nreport: {stem}.md (+ .json, .png); total {time.perf_counter() - start:.0f} s")
    return stem


# ------------------------------------------------------------------------------------------------ reports
def _difference_text(comparison: dict) -> str:
    low, high = comparison["ci95"]
    verdict = "no measurable difference" if low <= 0 <= high else ("higher" if low > 0 else "lower")
    return (f"{100 * comparison['mean_diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] ({verdict}; "
            f"{comparison['num_cases']} cases, seeds {comparison['seeds']} vs {comparison['reference_seeds']})")


def write_reports(stem: Path, args: argparse.Namespace, raw: Path, results: dict, comparisons: dict,
                  steps: StepLog, wall: float) -> None:
    machine, commit, command = machine_info(args.device), git_commit(), command_line()
    split = json.loads((raw / "split.json").read_text())
    dataset_json = json.loads((raw / "dataset.json").read_text())
    classes = {str(v): k for k, v in dataset_json["labels"].items() if k not in ("background", "ignore")}
    evaluation = "imagesTs" if args.evaluate == "test" else "imagesDev"
    counts = {"labeled": len(list((raw / "labelsTr").iterdir())),
              "unlabeled": len(list((raw / "imagesUnlabeled").glob("*_0000*"))),
              "evaluated": len(list((raw / evaluation).glob("*_0000*")))}
    distance_unit = ("voxel-spacing units of the converted volumes (1 = one SSL4MIS pixel in-plane, "
                     f"{split.get('spacing_assumption', '')})" if args.dataset == "acdc" else
                     "pixels of the converted images")
    from nnunet_dumm.trainers.variants import BUDGETS

    budget = BUDGETS.get(preset_budget(args))
    schedule = (f"{budget.num_epochs} epochs x {budget.iterations_per_epoch} iterations "
                f"(+{budget.val_iterations_per_epoch} validation iterations per epoch) = {budget.iterations} "
                "iterations" if budget else "nnU-Net default: 1000 epochs x 250 iterations")
    where = ("the **test set** (imagesTs)" if args.evaluate == "test" else
             "the **dev split** (training-side cases taken out of the unlabeled pool, never the test set)")
    lines = [
        f"# Quality benchmark: {args.dataset.upper()}, preset `{args.preset}`, {stem.name}",
        "",
        f"{counts['labeled']} labeled training cases ({split['selection']}), {counts['unlabeled']} unlabeled, "
        f"evaluated on {where}: {counts['evaluated']} cases. Every model trains the same schedule ({schedule}) "
        f"on fold 0 of the labeled cases' split (ensembles: folds 0-{args.teacher_folds - 1}); "
        f"{args.teacher_folds} stock teacher folds (seed 0, shared by every seed of every DUMM row); 2d "
        f"configuration. Seeds {args.seeds} for "
        f"{'every single-model row' if args.seed_every_row else 'the rows marked seeded, seed 0 for the others'}. "
        "Metrics per case"
        f"{' (3-D volume)' if args.dataset == 'acdc' else ''} and class; Dice x 100; HD95 and ASD in "
        f"{distance_unit}. Differences: mean Dice (over classes per case, then cases, then seeds) of the row minus "
        "the reference, with a 95 % bootstrap interval (10,000 resamples of the cases, paired; seeds resampled "
        "within each row); an interval containing 0 is reported as no measurable difference.",
        "",
        provenance_markdown(command, args.preset, args.seeds, machine, commit, steps),
        f"\nTotal wall time of this invocation: {wall / 60:.1f} min.",
        "",
        "## Headline: mean Dice over classes",
        "",
        "| row | seeds | mean over seeds | per seed |",
        "|---|---|---:|---|",
    ]
    for result in results.values():
        per_seed = ", ".join(f"{100 * v:.1f}" for v in result["mean_dice_per_seed"].values())
        lines.append(f"| {result['label']} (`{result['trainer']}`) | {list(result['seeds'])} | "
                     f"{100 * result['mean_dice_over_seeds']:.1f} | {per_seed} |")
    lines += ["", "## Differences (Dice points, 95 % interval)", "", "| comparison | difference |", "|---|---|"]
    for key, comparison in comparisons.items():
        row, reference = key.split("_vs_")
        lines.append(f"| {results[row]['label']} - {results[reference]['label']} | {_difference_text(comparison)} |")
    lines.append("")
    for metric, scale in (("Dice", 100.0), ("HD95", 1.0), ("ASD", 1.0)):
        header = "| row | seed | " + " | ".join(classes.values()) + " | mean over classes |"
        lines += [f"## {metric} per class (mean ± std over cases)", "", header, "|---" * (len(classes) + 3) + "|"]
        for result in results.values():
            for seed, per_seed in result["seeds"].items():
                cells = [format_metric(per_seed["summary"][c][metric], scale) for c in [*classes, "mean"]]
                lines.append(f"| {result['label']} | {seed} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![Dice per row]({stem.name}.png)", ""]
    stem.parent.mkdir(parents=True, exist_ok=True)
    report_file(stem, ".md").write_text("\n".join(lines))
    write_json(report_file(stem, ".json"), {
        "benchmark": "quality", "dataset": args.dataset, "preset": args.preset, "budget_tag": stem.name,
        "evaluate": args.evaluate, "command": command, "seeds": args.seeds, "machine": machine,
        "git_commit": commit, "steps": steps.of_this_run, "total_wall_s": wall, "split": split, "counts": counts,
        "classes": classes, "teacher_folds": args.teacher_folds, "rows": results, "comparisons": comparisons,
    })
    dot_plot(report_file(stem, ".png"), results, comparisons, f"{stem.name}: mean Dice on {evaluation}")


def dot_plot(path: Path, results: dict, comparisons: dict, title: str) -> None:
    """Left: each row's mean Dice per seed (dots) and over seeds (bar); right: differences with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.5 * len(results) + 2.5),
                                          gridspec_kw={"width_ratios": [3, 2]})
        labels = [r["label"] for r in results.values()]
        for i, result in enumerate(results.values()):
            left.barh(i, 100 * result["mean_dice_over_seeds"], color="lightsteelblue")
            left.scatter([100 * v for v in result["mean_dice_per_seed"].values()],
                         [i] * len(result["mean_dice_per_seed"]), color="black", s=14, zorder=3)
        left.set_yticks(range(len(labels)), labels, fontsize=8)
        left.invert_yaxis()
        low = min(100 * v for r in results.values() for v in r["mean_dice_per_seed"].values())
        left.set_xlim(max(0, low - 10), 100)
        left.set_xlabel("mean Dice x 100 (bar: mean over seeds; dots: seeds)")
        keys = list(comparisons)
        for i, key in enumerate(keys):
            c = comparisons[key]
            right.errorbar(100 * c["mean_diff"], i, xerr=[[100 * (c["mean_diff"] - c["ci95"][0])],
                                                        [100 * (c["ci95"][1] - c["mean_diff"])]], fmt="o", capsize=3)
        right.axvline(0, color="gray", linewidth=1)
        right.set_yticks(range(len(keys)), [k.replace("_vs_", " - ") for k in keys], fontsize=8)
        right.invert_yaxis()
        right.set_xlabel("difference in Dice points (95 % bootstrap interval)")
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Quality benchmark of nnunet_dumm: stock nnU-Net (fold 0 and 5-fold ensemble) vs DUMM and its "
        "ablations on ACDC or ISIC, with seeds and bootstrap intervals, end to end and resumable "
        "(see benchmarks/README.md).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASET_IDS), help="which dataset (converter) to use")
    parser.add_argument("--data", type=Path, default=None,
                        help="source folder (e.g. ../shared/data/acdc); only needed while converting")
    parser.add_argument("--preset", choices=PRESETS, default="proxy",
                        help="training budget: a nnunet_dumm preset or full (nnU-Net's defaults)")
    parser.add_argument("--proxy-budget", default=None, metavar="<N>it",
                        help="with --preset proxy: train every arm on this budget of nnunet_dumm.trainers.variants."
                             "BUDGETS (e.g. 4000it) instead of the one the dataset's learning curve chose "
                             "(PROXY_BUDGETS)")
    parser.add_argument("--work-dir", type=Path, required=True,
                        help="nnUNet_raw/preprocessed/results and predictions go here; rerun to resume")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the .md/.json/.png go")
    parser.add_argument("--evaluate", choices=("test", "dev"), default="test",
                        help="test: the test set; dev: the dev split, whose cases then leave the unlabeled pool")
    parser.add_argument("--labeled", type=int, default=7, help="ACDC: labeled patients (SSL4MIS: 3, 7 or 14)")
    parser.add_argument("--labeled-fraction", type=float, default=0.1, help="ISIC: labeled share (0.1 or 0.2)")
    parser.add_argument("--split-seed", type=int, default=0, help="ISIC: seed of the labeled selection")
    parser.add_argument("--downscale", type=int, default=None,
                        help="ACDC: in-plane downscale (default: 4 for proxy, 2 for test/demo/cpu/gpu, 1 for full)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="ISIC: resize (default: 64 64 for proxy, 128 128 for test/demo/cpu/gpu, 256 for full)")
    parser.add_argument("--teacher-folds", type=int, default=None,
                        help="stock teacher folds 0..N-1 (default: 5 for proxy and full); fold 0 is the baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the headline rows (default: 0 1 2 for proxy, 0 otherwise)")
    parser.add_argument("--seed-every-row", action="store_true",
                        help="train the ablation and lever rows once per seed too (default: only stock fold 0, its "
                        "twice-the-iterations row and DUMM take every seed)")
    parser.add_argument("--dev-groups", type=int, default=None,
                        help="dev split size: patients (ACDC, default 10) or images (ISIC, default 300)")
    parser.add_argument("--dev-seed", type=int, default=0)
    parser.add_argument("--network-scale", type=float, default=1.0,
                        help="features per stage x this for every model (an nnU-Net plans variant, "
                        "'nnUNetPlans_features<scale>'); 1 = nnU-Net's planned network")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models trained at once (worker processes); for a GPU window, e.g. 4 on one GPU")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dataset-id", type=int, default=None, help="nnU-Net dataset id (default: 931 ACDC, 941 ISIC)")
    parser.add_argument("--limit-unlabeled", type=int, default=None,
                        help="keep a seeded random subset of N unlabeled cases (all arms get the same smaller pool)")
    parser.add_argument("--arms", nargs="+", choices=[row.key for row in ROWS], default=None,
                        help="rows to train and report (default: all for proxy/gpuwin, the single-seed rows "
                        "otherwise); a later run with more rows reuses every finished model and prediction")
    parser.add_argument("--limit-test", type=int, default=None,
                        help="smoke runs only: keep the first N test cases after conversion")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    git_commit()  # the commit this run starts from (cached for the report)
    if args.proxy_budget and (args.preset != "proxy" or not re.fullmatch(r"[1-9][0-9]*it", args.proxy_budget)):
        parser.error("--proxy-budget takes an iteration budget such as 4000it, with --preset proxy")
    small = args.preset != "full"
    if args.downscale is None:
        args.downscale = (4 if args.preset == "proxy" else 2 if small else 1) if args.dataset == "acdc" else 1
    if args.size is None and small and args.dataset == "isic":
        args.size = [64, 64] if args.preset == "proxy" else [128, 128]
    if args.teacher_folds is None:
        args.teacher_folds = DEFAULT_TEACHER_FOLDS[args.preset]
    args.plans = plans_variant_name(args.network_scale)
    if args.seeds is None:
        args.seeds = [0, 1, 2] if args.preset in SEEDED_PRESETS else [0]
    if args.arms is None:
        args.arms = [row.key for row in ROWS if row.key not in LEVER_ROWS and (
            args.preset in SEEDED_PRESETS or row.key in (
                "stock", "stock_ensemble", "pseudo_label", "dumm_nosus", "dumm_nopum", "dumm"))]
    if args.dev_groups is None:
        args.dev_groups = 10 if args.dataset == "acdc" else 300
    if args.teacher_folds < 2:
        parser.error("--teacher-folds must be >= 2: DUMM's multi-model pseudo-labels need at least two teachers")
    if args.dataset == "acdc" and args.labeled < args.teacher_folds:
        parser.error(f"ACDC folds are grouped by patient: {args.labeled} labeled patients give fewer than "
                     f"{args.teacher_folds} folds")
    if args.device == "cpu":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    run(args)


if __name__ == "__main__":
    main()
