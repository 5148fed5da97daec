"""Quality benchmark: stock nnU-Net vs the DUMM ablations on one dataset, same split, same budget, fold 0.

Steps (each skipped when its result is on disk, so an interrupted run resumes):
convert the dataset from its source folder, plan and preprocess (2d), preprocess the unlabeled images, train the
stock teachers (``nnUNetTrainerStock_<preset>`` folds; fold 0 is the labeled-only baseline), train the arms
(plain pseudo-labelling, DUMM without SUS, DUMM without PUM, full DUMM), predict the test set with nnU-Net's
predictor, evaluate (Dice from nnU-Net, HD95/ASD from medpy) and write
``benchmarks/results/<dataset>_<preset>_<budget-tag>.{md,json,png}``.

Examples:
    python benchmarks/run_quality.py acdc --data ../shared/data/acdc --preset cpu --labeled 7 --work-dir /tmp/bench_acdc
    python benchmarks/run_quality.py isic --data ../shared/data/isic2017 --preset cpu --labeled-fraction 0.1 \\
        --work-dir /tmp/bench_isic
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run_quality.py` from anywhere

from benchmarks.common import (  # noqa: E402
    PRESETS,
    RESULTS_DIR,
    StepLog,
    aggregate,
    case_metrics,
    command_line,
    data_augmentation_in_process,
    format_metric,
    git_commit,
    machine_info,
    plan_and_preprocess,
    provenance_markdown,
    seed_everything,
    set_nnunet_paths,
    trainer_names,
    write_json,
)

CONFIGURATION = "2d"
DATASET_IDS = {"acdc": 931, "isic": 941}
CLASS_NAMES = {"acdc": {"1": "RV", "2": "Myo", "3": "LV"}, "isic": {"1": "lesion"}}
DEFAULT_TEACHER_FOLDS = {"test": 2, "demo": 3, "cpu": 3, "gpu": 3, "full": 5}


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    trainer: str  # arm name; the preset suffix is added by trainer_names
    folds: str = "0"  # "0" or "teachers"


ARMS = (
    Arm("stock", "stock nnU-Net, labeled only (teacher fold 0)", "nnUNetTrainerStock"),
    Arm("stock_ensemble", "stock nnU-Net, ensemble of the teacher folds", "nnUNetTrainerStock", "teachers"),
    Arm("pseudo_label", "plain pseudo-labelling (fold-0 teacher)", "nnUNetTrainerPseudoLabel"),
    Arm("dumm_nosus", "DUMM without SUS", "nnUNetTrainerDUMM_noSUS"),
    Arm("dumm_nopum", "DUMM without PUM", "nnUNetTrainerDUMM_noPUM"),
    Arm("dumm", "DUMM (PUM + SUS)", "nnUNetTrainerDUMM"),
)


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
    """The data tag plus what the training used: number of teacher folds, seed."""
    return f"{data_tag(args)}_{args.teacher_folds}folds" + (f"_seed{args.seed}" if args.seed else "")


def convert(args: argparse.Namespace, dataset_id: int, name: str, folders: dict[str, Path]) -> bool:
    """Runs the converter unless the dataset exists; refuses a work dir made with other conversion arguments."""
    raw = folders["nnUNet_raw"] / f"Dataset{dataset_id:03d}_{name}"
    record_file = args.work_dir / "benchmark_conversion.json"
    argv = conversion_argv(args, dataset_id, name, folders)
    wanted = {"converter": args.dataset, "argv": argv, "limit_unlabeled": args.limit_unlabeled,
              "limit_test": args.limit_test}
    if record_file.is_file() and (raw / "dataset.json").is_file():
        done = json.loads(record_file.read_text())
        if done != wanted:
            raise SystemExit(f"{args.work_dir} holds a dataset converted with other arguments ({done}); "
                             f"use another --work-dir")
        print(f"dataset exists ({raw})")
        return False
    if not args.data.is_dir():
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


# ------------------------------------------------------------------------------------------------ pipeline
def selected_arms(args: argparse.Namespace) -> list[Arm]:
    """The rows to train and report, in the order of ``ARMS``."""
    return [arm for arm in ARMS if arm.key in args.arms]


def train(dataset_name: str, trainer: str, fold: int, args: argparse.Namespace, record: dict) -> Path:
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    from nnunet_dumm.runs import train_fold

    fold_folder = Path(get_output_folder(dataset_name, trainer, "nnUNetPlans", CONFIGURATION, fold))
    record["skipped"] = (fold_folder / "checkpoint_final.pth").is_file()
    seed_everything(args.seed + fold)
    return train_fold(dataset_name, CONFIGURATION, fold, trainer, device=args.device)


def evaluate_arms(args: argparse.Namespace, raw: Path, model_folders: dict[str, Path], steps: StepLog) -> dict:
    from nnunet_dumm.runs import predict_and_evaluate

    dataset_json = json.loads((raw / "dataset.json").read_text())
    results = {}
    for arm in selected_arms(args):
        folds = tuple(range(args.teacher_folds)) if arm.folds == "teachers" else (0,)
        output = args.work_dir / "predictions" / arm.key
        with steps.step(f"predict_{arm.key}", f"predict imagesTs + evaluate: {arm.label}, folds {folds}") as record:
            record["skipped"] = (output / "summary.json").is_file()
            summary = predict_and_evaluate(model_folders[arm.key], folds, raw / "imagesTs", raw / "labelsTs", output,
                                           args.device)
            per_case = case_metrics(summary, dataset_json)
            results[arm.key] = {
                "label": arm.label,
                "trainer": model_folders[arm.key].name.split("__")[0],
                "folds": list(folds),
                "model_folder": str(model_folders[arm.key]),
                "predictions": str(output),
                "nnunet_foreground_mean_dice": summary["foreground_mean"]["Dice"],
                "summary": aggregate(per_case),
                "per_case": per_case,
            }
            print(f"{arm.label}: mean Dice {100 * results[arm.key]['summary']['mean']['Dice']['mean']:.1f}")
    return results


def run(args: argparse.Namespace) -> Path:
    start = time.perf_counter()
    args.work_dir = args.work_dir.resolve()
    folders = set_nnunet_paths(args.work_dir)
    dataset_id = args.dataset_id or DATASET_IDS[args.dataset]
    tag = budget_tag(args)
    name = f"{args.dataset.upper()}_{data_tag(args)}"
    dataset_name = f"Dataset{dataset_id:03d}_{name}"
    raw = folders["nnUNet_raw"] / dataset_name
    arms = selected_arms(args)
    students = [arm for arm in arms if arm.trainer != "nnUNetTrainerStock"]
    # convert, plan, unlabeled, teachers, students, one prediction per row, report
    steps = StepLog(args.work_dir / "benchmark_steps.json",
                    total=3 + args.teacher_folds + len(students) + len(arms) + 1)

    with steps.step("convert", f"convert {args.dataset} from {args.data} -> {raw}") as record:
        record["skipped"] = not convert(args, dataset_id, name, folders)
    with steps.step("plan", "nnU-Net fingerprint, plans and preprocessing of the labeled cases (2d)") as record:
        record["skipped"] = not plan_and_preprocess(dataset_id, dataset_name, CONFIGURATION)
    data_augmentation_in_process(args.device)
    with steps.step("unlabeled", "preprocess the unlabeled images with the same plans") as record:
        from nnunet_dumm.unlabeled import completed_cases, preprocess_unlabeled, unlabeled_preprocessed_folder

        plans = json.loads((folders["nnUNet_preprocessed"] / dataset_name / "nnUNetPlans.json").read_text())
        folder = unlabeled_preprocessed_folder(dataset_name, plans["configurations"][CONFIGURATION]["data_identifier"])
        before = len(completed_cases(folder))
        preprocess_unlabeled(dataset_name, CONFIGURATION)
        record["skipped"] = before == len(completed_cases(folder))
        record["cases"] = len(completed_cases(folder))

    teacher = trainer_names("nnUNetTrainerStock", args.preset)
    model_folders: dict[str, Path] = {}
    for fold in range(args.teacher_folds):
        with steps.step(f"teacher_fold{fold}", f"train teacher {teacher} fold {fold}"
                        + (" (= the stock baseline)" if fold == 0 else "")) as record:
            model_folders["stock"] = model_folders["stock_ensemble"] = train(dataset_name, teacher, fold, args, record)
    for arm in students:
        trainer = trainer_names(arm.trainer, args.preset)
        with steps.step(f"train_{arm.key}", f"train {arm.label}: {trainer} fold 0") as record:
            model_folders[arm.key] = train(dataset_name, trainer, 0, args, record)

    results = evaluate_arms(args, raw, model_folders, steps)
    with steps.step("report", "write the report") as record:
        stem = args.results_dir / f"{args.dataset}_{args.preset}_{tag}"
        write_reports(stem, args, raw, results, steps, time.perf_counter() - start)
        record["files"] = [str(stem.with_suffix(s)) for s in (".md", ".json", ".png")]
    print(f"\nreport: {stem}.md (+ .json, .png); total {time.perf_counter() - start:.0f} s")
    return stem


# ------------------------------------------------------------------------------------------------ reports
def write_reports(stem: Path, args: argparse.Namespace, raw: Path, results: dict, steps: StepLog,
                  wall: float) -> None:
    machine, commit, command = machine_info(args.device), git_commit(), command_line()
    split = json.loads((raw / "split.json").read_text())
    counts = {"labeled": len(list((raw / "labelsTr").iterdir())),
              "unlabeled": len(list((raw / "imagesUnlabeled").glob("*_0000*"))),
              "test": len(list((raw / "labelsTs").iterdir()))}
    classes = CLASS_NAMES[args.dataset]
    distance_unit = ("voxel-spacing units of the converted volumes (1 = one SSL4MIS pixel in-plane, "
                     f"{split.get('spacing_assumption', '')})" if args.dataset == "acdc" else
                     "pixels of the converted images")
    from nnunet_dumm.trainers.variants import BUDGETS

    budget = BUDGETS.get(args.preset)
    schedule = (f"{budget.num_epochs} epochs x {budget.iterations_per_epoch} iterations "
                f"(+{budget.val_iterations_per_epoch} validation iterations per epoch)" if budget
                else "nnU-Net default: 1000 epochs x 250 iterations")
    lines = [
        f"# Quality benchmark: {args.dataset.upper()}, preset `{args.preset}`, {stem.name}",
        "",
        f"{counts['labeled']} labeled training cases ({split['selection']}), {counts['unlabeled']} unlabeled, "
        f"{counts['test']} test cases; every arm trains fold 0 of the labeled cases' split with the same schedule "
        f"({schedule}); {args.teacher_folds} stock teacher folds; 2d configuration. Metrics per test case"
        f"{' (3-D volume)' if args.dataset == 'acdc' else ''} and class, then mean ± standard deviation over cases; "
        f"Dice x 100; HD95 and ASD in {distance_unit}. 'undef.' counts cases where exactly one of prediction and "
        "reference is empty (no distance); they are left out of the mean.",
        "",
        provenance_markdown(command, args.preset, args.seed, machine, commit, steps),
        f"\nTotal wall time of this invocation: {wall / 60:.1f} min.",
        "",
    ]
    for metric, scale in (("Dice", 100.0), ("HD95", 1.0), ("ASD", 1.0)):
        header = "| arm | " + " | ".join(classes.values()) + " | mean over classes |"
        lines += [f"## {metric}", "", header, "|---" * (len(classes) + 2) + "|"]
        for result in results.values():
            cells = [format_metric(result["summary"][c][metric], scale) for c in [*classes, "mean"]]
            lines.append(f"| {result['label']} (`{result['trainer']}`, folds {result['folds']}) | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"![Dice per class and arm]({stem.name}.png)", ""]
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text("\n".join(lines))
    write_json(stem.with_suffix(".json"), {
        "benchmark": "quality", "dataset": args.dataset, "preset": args.preset, "budget_tag": stem.name,
        "command": command, "seed": args.seed, "machine": machine, "git_commit": commit,
        "steps": steps.steps, "total_wall_s": wall, "split": split, "counts": counts, "classes": classes,
        "teacher_folds": args.teacher_folds, "arms": results,
    })
    bar_plot(stem.with_suffix(".png"), results, classes, f"{stem.name}: Dice on the test set (mean ± std over cases)")


def bar_plot(path: Path, results: dict, classes: dict[str, str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [*classes, "mean"]
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(5.5 + 1.6 * len(groups) * len(results) / 4, 4.5))
    for i, result in enumerate(results.values()):
        means = [100 * (result["summary"][g]["Dice"]["mean"] or 0) for g in groups]
        stds = [100 * (result["summary"][g]["Dice"]["std"] or 0) for g in groups]
        ax.bar(np.arange(len(groups)) + (i - (len(results) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=result["label"])
    ax.set_xticks(np.arange(len(groups)), [*classes.values(), "mean"])
    ax.set_ylabel("Dice x 100")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Quality benchmark of nnunet_dumm: stock nnU-Net vs pseudo-labelling vs DUMM ablations on "
        "ACDC or ISIC, end to end and resumable (see benchmarks/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASET_IDS), help="which dataset (converter) to use")
    parser.add_argument("--data", type=Path, required=True, help="source folder (e.g. ../shared/data/acdc)")
    parser.add_argument("--preset", choices=PRESETS, default="cpu",
                        help="training budget: test/demo/cpu/gpu (nnunet_dumm presets) or full (nnU-Net defaults)")
    parser.add_argument("--work-dir", type=Path, required=True,
                        help="nnUNet_raw/preprocessed/results and predictions go here; rerun to resume")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the .md/.json/.png go")
    parser.add_argument("--labeled", type=int, default=7, help="ACDC: labeled patients (SSL4MIS: 3, 7 or 14)")
    parser.add_argument("--labeled-fraction", type=float, default=0.1, help="ISIC: labeled share (0.1 or 0.2)")
    parser.add_argument("--split-seed", type=int, default=0, help="ISIC: seed of the labeled selection")
    parser.add_argument("--downscale", type=int, default=None,
                        help="ACDC: in-plane downscale of the converter (default: 2 for test/demo/cpu, 1 for full)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="ISIC: resize (default: 128 128 for test/demo/cpu, source size 256 x 256 for full)")
    parser.add_argument("--teacher-folds", type=int, default=None,
                        help="stock teacher folds 0..N-1 (default: 2 test, 3 demo/cpu, 5 full); fold 0 is the baseline")
    parser.add_argument("--seed", type=int, default=0, help="seeds Python/NumPy/torch before each training run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dataset-id", type=int, default=None, help="nnU-Net dataset id (default: 931 ACDC, 941 ISIC)")
    parser.add_argument("--limit-unlabeled", type=int, default=None,
                        help="keep a seeded random subset of N unlabeled cases (all arms get the same smaller pool)")
    parser.add_argument("--arms", nargs="+", choices=[arm.key for arm in ARMS], default=[arm.key for arm in ARMS],
                        help="rows to train and report (the teachers are always trained: fold 0 is the baseline); "
                        "a later run with more arms reuses every finished model and prediction")
    parser.add_argument("--limit-test", type=int, default=None,
                        help="smoke runs only: keep the first N test cases after conversion")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    git_commit()  # the commit this run starts from (cached for the report)
    small = args.preset != "full"
    if args.downscale is None:
        args.downscale = 2 if small and args.dataset == "acdc" else 1
    if args.size is None and small and args.dataset == "isic":
        args.size = [128, 128]
    if args.teacher_folds is None:
        args.teacher_folds = DEFAULT_TEACHER_FOLDS[args.preset]
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
