"""How optimistic a DUMM student's cross-validation is with the default teachers, and the leak-free mode's.

With the default teachers (the five stock folds) four of them trained on a student fold's validation cases, so the
pseudo-labels carry what those cases' true labels taught them, and the student's validation Dice (nnU-Net's
``validation/summary.json``, ``checkpoint_best``, ``nnUNetv2_find_best_configuration``) can look better than the
test set says. This trains on the generated demo dataset, for folds 0-4: stock nnU-Net (the teachers), DUMM and
``nnUNetTrainerDUMM_leakFree`` (fold k labelled by teacher k alone), and compares each fold's validation Dice with
the same model's test Dice. Optimism of an arm = mean over folds of (validation - test) minus stock's.

Example:
    python benchmarks/validation_leak.py --work-dir work_dirs/validation_leak
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/validation_leak.py` from anywhere

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    StepLog,
    command_line,
    enable_benchmark_trainers,
    git_commit,
    machine_info,
    seed_everything,
    write_json,
)
from benchmarks.reports import provenance_markdown, report_file  # noqa: E402
from benchmarks.rows import STOCK, trainer_class, trainer_name  # noqa: E402

# stock nnU-Net (the teachers), the recommended DUMM and its leak-free variant
ARMS = {"stock": STOCK, "dumm": "nnUNetTrainerDUMM", "dumm_leak_free": "nnUNetTrainerDUMM_leakFree"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--budget", default="demo")
    parser.add_argument("--num-labeled", type=int, default=15, help="3 validation cases per fold")
    parser.add_argument("--num-unlabeled", type=int, default=120)
    parser.add_argument("--num-test", type=int, default=40)
    args = parser.parse_args(argv)
    trainers = {key: trainer_name(arm, args.budget) for key, arm in ARMS.items()}
    missing = [name for name in trainers.values() if trainer_class(name) is None]
    if missing:
        parser.error(f"--budget {args.budget}: no trainer {', '.join(missing)}; the budgets are those of "
                     "benchmarks/trainers.py")
    git_commit()
    enable_benchmark_trainers()
    import torch

    from nnunet_dumm.demo import DATASET_NAME, DemoSettings, prepare_demo_dataset
    from nnunet_dumm.demo_data import DemoDatasetSpec
    from nnunet_dumm.runs import predict_and_evaluate, train_fold

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    work_dir = args.work_dir.resolve()
    spec = DemoDatasetSpec(num_labeled=args.num_labeled, num_unlabeled=args.num_unlabeled, num_test=args.num_test)
    raw = prepare_demo_dataset(DemoSettings(work_dir, spec, budget=args.budget))
    steps = StepLog(work_dir / "benchmark_steps.json", total=0)
    scores = {}
    for key, trainer in trainers.items():  # stock first: the teachers of both DUMM arms
        for fold in range(5):
            with steps.step(f"train_{key}_{fold}", f"train {trainer} fold {fold}") as record:
                folder = Path(os.environ["nnUNet_results"]) / DATASET_NAME / f"{trainer}__nnUNetPlans__2d"
                record["skipped"] = (folder / f"fold_{fold}" / "checkpoint_final.pth").is_file()
                seed_everything(fold)
                train_fold(DATASET_NAME, "2d", fold, trainer)
            validation = json.loads((folder / f"fold_{fold}" / "validation" / "summary.json").read_text())
            test = predict_and_evaluate(folder, (fold,), raw / "imagesTs", raw / "labelsTs",
                                        work_dir / "predictions" / f"{key}_fold{fold}")
            scores.setdefault(key, []).append({"fold": fold, "validation": validation["foreground_mean"]["Dice"],
                                               "test": test["foreground_mean"]["Dice"]})
    gaps = {k: sum(s["validation"] - s["test"] for s in v) / len(v) for k, v in scores.items()}
    summary = {k: {"validation": sum(s["validation"] for s in v) / 5, "test": sum(s["test"] for s in v) / 5,
                   "validation_minus_test": gaps[k], "optimism_vs_stock": gaps[k] - gaps["stock"]}
               for k, v in scores.items()}
    stem = args.results_dir / f"validation_leak_{args.budget}"
    lines = [
        "# How optimistic is a DUMM student's cross-validation?", "",
        f"Generated demo dataset ({spec.num_labeled} labeled = {spec.num_labeled // 5} validation cases per fold, "
        f"{spec.num_unlabeled} unlabeled, {spec.num_test} test images), `{args.budget}` budget, folds 0-4 of each "
        "arm; each fold's validation Dice (nnU-Net's own `validation/summary.json`) and the same fold's test Dice. "
        "Dice x 100, means over the five folds. Optimism = (validation - test) of the arm minus stock's.", "",
        provenance_markdown(command_line(), args.budget, list(range(5)), machine_info("cpu"), git_commit(), steps),
        f"\nTotal wall time: {(time.perf_counter() - start) / 60:.1f} min.", "",
        "| arm | validation | test | validation - test | optimism vs stock |", "|---|---:|---:|---:|---:|",
    ]
    for key, s in summary.items():
        lines.append(f"| `{trainers[key]}` | {100 * s['validation']:.1f} | {100 * s['test']:.1f} | "
                     f"{100 * s['validation_minus_test']:+.1f} | {100 * s['optimism_vs_stock']:+.1f} |")
    stem.parent.mkdir(parents=True, exist_ok=True)
    report_file(stem, ".md").write_text("\n".join(lines) + "\n")
    write_json(report_file(stem, ".json"), {"command": command_line(), "git_commit": git_commit(),
                                               "spec": vars(args) | {"work_dir": str(work_dir)}, "per_fold": scores,
                                               "summary": summary, "steps": steps.of_this_run})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
