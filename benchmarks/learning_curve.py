"""Learning curve of stock nnU-Net fold 0 on training-side data: the budget at which it stops improving.

The ``proxy`` benchmark preset must give the stock baseline a budget near its own plateau, or a semi-supervised
gain can be nothing more than more training. This script trains stock nnU-Net fold 0 (``nnUNetTrainerStock_<N>it``,
nnU-Net's schedule shortened to N iterations) for each budget and scores it on the **dev split**: a fixed, seeded
set of unlabeled-pool cases (ACDC: patients) with their true labels; never the test set. The smallest budget whose
doubling adds less than ``--plateau-gain`` Dice points, in the mean over ``--seeds``, is the plateau: one seed is
not enough (ACDC-7: one seed said +0.0 from 2,000 to 4,000 iterations, three seeds +2.2). Writes
``benchmarks/results/<dataset>_learning_curve_<data-tag>[_<n>seeds].{md,json,png}``; resumable like
``run_quality.py`` (same work directory layout and seed roots, so the models it trains are reused by a quality run of
the same dataset, and the other way round).

Example:
    python benchmarks/learning_curve.py acdc --data ../shared/data/acdc --labeled 7 --downscale 4 \\
        --budgets 2000 4000 --seeds 0 1 2 --work-dir work_dirs/acdc_L7_ds4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/learning_curve.py` from anywhere

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    StepLog,
    command_line,
    data_augmentation_in_process,
    git_commit,
    machine_info,
    set_nnunet_paths,
    write_json,
)
from benchmarks.datasets import (  # noqa: E402
    CLASS_NAMES,
    CONFIGURATION,
    DATASET_IDS,
    convert,
    data_tag,
    dev_split,
    linked_subset,
    plan_and_preprocess,
    plans_variant_name,
    write_plans_variant,
)
from benchmarks.reports import provenance_markdown, report_file  # noqa: E402
from benchmarks.rows import STOCK, Model, stock_results_root, trainer_name  # noqa: E402
from benchmarks.run_quality import model_fold_folder, step_name, train_model  # noqa: E402
from benchmarks.stats import aggregate, bootstrap_difference, case_metrics, dice_matrix  # noqa: E402


def run(args: argparse.Namespace) -> Path:
    start = time.perf_counter()
    args.work_dir = args.work_dir.resolve()
    folders = set_nnunet_paths(args.work_dir)
    dataset_id = args.dataset_id or DATASET_IDS[args.dataset]
    name = f"{args.dataset.upper()}_{data_tag(args)}"
    dataset_name = f"Dataset{dataset_id:03d}_{name}"
    raw = folders["nnUNet_raw"] / dataset_name
    steps = StepLog(args.work_dir / "benchmark_steps.json", total=2 + 2 * len(args.budgets) * len(args.seeds) + 1)
    with steps.step("convert", f"convert {args.dataset} from {args.data} -> {raw}") as record:
        record["skipped"] = not convert(args, dataset_id, name, folders)
    with steps.step("plan", "nnU-Net fingerprint, plans and preprocessing of the labeled cases (2d)") as record:
        record["skipped"] = not plan_and_preprocess(dataset_id, dataset_name, CONFIGURATION)
    if args.plans != "nnUNetPlans":
        write_plans_variant(folders["nnUNet_preprocessed"] / dataset_name, args.plans, args.network_scale)
    data_augmentation_in_process(args.device)

    from nnunet_dumm.runs import predict_and_evaluate

    dev_cases = dev_split(raw, args.dev_groups, args.dev_seed)
    images, labels = linked_subset(raw, dev_cases, "imagesUnlabeled", "labelsUnlabeled", args.work_dir / "dev_split")
    dataset_json = json.loads((raw / "dataset.json").read_text())
    points = []
    for iterations in args.budgets:
        trainer = trainer_name(STOCK, f"{iterations}it")
        seeds = {}
        for seed in args.seeds:
            # seed 0 keeps the dev-step and prediction names of the one-seed curve, so that its runs resume
            seed_tag = f"_seed{seed}" if seed else ""
            tag = (f"_{args.plans}" if args.plans != "nnUNetPlans" else "") + seed_tag
            model = Model(trainer, 0, seed, stock_results_root(seed), args.plans)
            fold_folder = model_fold_folder(args.work_dir, dataset_name, model)
            # the model's one step name, shared with run_quality: a quality run that finds this model reports its time
            with steps.step(step_name(model, dataset_name),
                            f"train {trainer} ({args.plans}) fold 0 (seed {seed}, {model.root})") as record:
                record["skipped"] = (fold_folder / "checkpoint_final.pth").is_file()
                if not record["skipped"]:
                    train_model(str(args.work_dir), dataset_name, model, args.device)
            output = args.work_dir / "predictions" / f"dev_{trainer}_{args.plans}_fold0{seed_tag}"
            with steps.step(f"curve_dev_{iterations}{tag}",
                            f"predict + evaluate the {len(dev_cases)} dev cases: {trainer}, seed {seed}") as record:
                record["skipped"] = (output / "summary.json").is_file()
                summary = predict_and_evaluate(fold_folder.parent, (0,), images, labels, output, args.device)
                per_case = case_metrics(summary, dataset_json)
            stats = aggregate(per_case, metrics=("Dice",))
            wall_s = steps.steps[step_name(model, dataset_name)].get("wall_s")
            seeds[str(seed)] = {"dice": {k: v["Dice"]["mean"] for k, v in stats.items()}, "per_case": per_case,
                                "train_wall_s": wall_s}
            print(f"{trainer} seed {seed}: dev mean Dice {100 * seeds[str(seed)]['dice']['mean']:.1f}")
        mean_over_seeds = {k: sum(r["dice"][k] for r in seeds.values()) / len(seeds) for k in seeds[str(seed)]["dice"]}
        points.append({"iterations": iterations, "trainer": trainer, "plans": args.plans, "seeds": seeds,
                       "dice": mean_over_seeds})
    for previous, point in zip(points, points[1:]):
        # paired over dev cases, seeds resampled within each budget (as run_quality compares rows)
        point["gain"] = bootstrap_difference(dice_matrix(point), dice_matrix(previous))

    with steps.step("curve_report", "write the report") as record:
        stem = args.results_dir / (f"{args.dataset}_learning_curve_{data_tag(args)}"
                                   + (f"_{args.plans}" if args.plans != "nnUNetPlans" else "")
                                   + (f"_{len(args.seeds)}seeds" if args.seeds != [0] else ""))
        write_reports(stem, args, dev_cases, points, steps, time.perf_counter() - start)
        record["files"] = [str(report_file(stem, s)) for s in (".md", ".json", ".png")]
    print(f"\nreport: {stem}.md (+ .json, .png)")
    return stem


def plateau(points: list[dict], gain: float) -> int | None:
    """The smallest budget whose doubling (the next point, if it is twice as long) adds less than ``gain``."""
    by_iterations = {p["iterations"]: 100 * p["dice"]["mean"] for p in points}
    for iterations, dice in sorted(by_iterations.items()):
        if 2 * iterations in by_iterations and by_iterations[2 * iterations] - dice < gain:
            return iterations
    return None


def write_reports(stem: Path, args: argparse.Namespace, dev_cases: list[str], points: list[dict], steps: StepLog,
                  wall: float) -> None:
    classes = CLASS_NAMES[args.dataset]
    machine, commit, command = machine_info(args.device), git_commit(), command_line()
    chosen = plateau(points, args.plateau_gain)
    lines = [
        f"# Learning curve of stock nnU-Net fold 0: {args.dataset.upper()} {data_tag(args)}",
        "",
        f"Stock nnU-Net (`nnUNetTrainerStock_<N>it`: nnU-Net's trainer, schedule shortened to N iterations in epochs "
        f"of 100 iterations, plans `{args.plans}`, poly learning rate over the shortened schedule), fold 0, "
        f"seeds {args.seeds}, 2d. Scored on "
        f"the **dev split** (training-side data, never the test set): {len(dev_cases)} cases of the unlabeled pool "
        f"({args.dev_groups} {'patients' if args.dataset == 'acdc' else 'images'}, seed {args.dev_seed}) with their "
        "true labels; stock nnU-Net never sees the unlabeled pool. Dice x 100, mean over classes per case, then over "
        "cases, then over seeds. The gain over the previous budget has a 95 % bootstrap interval (10,000 resamples "
        "of the dev cases, paired; seeds resampled within each budget).",
        "",
        provenance_markdown(command, "learning curve", args.seeds, machine, commit, steps),
        f"\nTotal wall time of this invocation: {wall / 60:.1f} min.",
        "",
        "| iterations | " + " | ".join(classes.values()) + " | mean | per seed | gain over the previous budget "
        "| train wall (mean over seeds) |",
        "|---:" + "|---:" * (len(classes) + 1) + "|---|---|---:|",
    ]
    for p in points:
        gain = p.get("gain")
        walls = [r["train_wall_s"] for r in p["seeds"].values() if r["train_wall_s"] is not None]
        lines.append(
            f"| {p['iterations']} | " + " | ".join(f"{100 * p['dice'][c]:.1f}" for c in classes)
            + f" | {100 * p['dice']['mean']:.1f} | "
            + ", ".join(f"{100 * r['dice']['mean']:.1f}" for r in p["seeds"].values())
            + " | " + ("" if gain is None else
                       f"{100 * gain['mean_diff']:+.1f} [{100 * gain['ci95'][0]:+.1f}, {100 * gain['ci95'][1]:+.1f}]")
            + f" | {f'{sum(walls) / len(walls) / 60:.1f} min' if walls else '-'} |")
    lines += ["", f"Plateau (smallest budget whose doubling adds less than {args.plateau_gain} Dice point): "
              + (f"**{chosen} iterations**" if chosen else "not reached within these budgets"), "",
              f"![learning curve]({stem.name}.png)", ""]
    stem.parent.mkdir(parents=True, exist_ok=True)
    report_file(stem, ".md").write_text("\n".join(lines))
    write_json(report_file(stem, ".json"), {
        "benchmark": "learning_curve", "dataset": args.dataset, "data_tag": data_tag(args), "command": command,
        "seeds": args.seeds, "machine": machine, "git_commit": commit, "steps": steps.of_this_run, "total_wall_s": wall,
        "dev_cases": dev_cases, "dev_seed": args.dev_seed, "plateau_gain": args.plateau_gain,
        "plateau_iterations": chosen, "points": points,
    })
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a budget trained in this process ran nnU-Net's progress plot, which sets a global seaborn font scale of 2.5
    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [p["iterations"] for p in points]
        for key, label in [*classes.items(), ("mean", "mean over seeds")]:
            ax.plot(x, [100 * p["dice"][key] for p in points], marker="o", label=label,
                    linewidth=2.5 if key == "mean" else 1)
        ax.scatter([p["iterations"] for p in points for _ in p["seeds"]],
                   [100 * r["dice"]["mean"] for p in points for r in p["seeds"].values()], color="black", s=12,
                   zorder=3, label="mean, each seed")
        if chosen:
            ax.axvline(chosen, color="gray", linestyle="--", linewidth=1, label=f"plateau: {chosen}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(i) for i in x])
        ax.set_xlabel("training iterations (stock nnU-Net fold 0)")
        ax.set_ylabel("dev-split Dice x 100")
        network = "" if args.plans == "nnUNetPlans" else f" ({args.plans})"
        ax.set_title(f"{args.dataset.upper()} {data_tag(args)}: stock nnU-Net{network} learning curve", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(report_file(stem, ".png"), dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASET_IDS))
    parser.add_argument("--data", type=Path, default=None,
                        help="source folder (e.g. ../shared/data/acdc); only needed while converting")
    parser.add_argument("--work-dir", type=Path, required=True, help="nnU-Net folders go here; rerun to resume")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000, 4000],
                        help="training iterations (each needs an nnUNetTrainerStock_<N>it preset)")
    parser.add_argument("--plateau-gain", type=float, default=1.0, help="Dice points a doubling must add")
    parser.add_argument("--labeled", type=int, default=7, help="ACDC: labeled patients")
    parser.add_argument("--labeled-fraction", type=float, default=0.1, help="ISIC: labeled share")
    parser.add_argument("--split-seed", type=int, default=0, help="ISIC: seed of the labeled selection")
    parser.add_argument("--downscale", type=int, default=4, help="ACDC: in-plane downscale")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="ISIC: resize")
    parser.add_argument("--network-scale", type=float, default=1.0,
                        help="features per stage x this (an nnU-Net plans variant); 1 = nnU-Net's planned network")
    parser.add_argument("--dev-groups", type=int, default=None,
                        help="dev split size in patients (ACDC, default 10) or images (ISIC, default 300)")
    parser.add_argument("--dev-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="a model per seed and budget (Python/NumPy/torch seeded as run_quality.py seeds stock "
                             "fold 0); the plateau is decided on the mean over seeds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset-id", type=int, default=None)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    git_commit()
    args.limit_unlabeled = args.limit_test = None
    args.plans = plans_variant_name(args.network_scale)
    if args.dataset != "acdc":
        args.downscale = 1
    if args.dev_groups is None:
        args.dev_groups = 10 if args.dataset == "acdc" else 300
    if args.device == "cpu":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    run(args)


if __name__ == "__main__":
    main()
