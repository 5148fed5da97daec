"""Quality benchmark: stock nnU-Net (one fold and the 5-fold ensemble) vs DUMM, the paper's setting and the
ablations, with seeds.

Steps (each skipped when its result is on disk, so an interrupted run resumes): convert the dataset from its source
folder, plan and preprocess (2d), preprocess the unlabeled images, train the stock teachers
(``nnUNetTrainerStock_<preset>`` folds 0..N-1; fold 0 is the labeled-only baseline), train the rows' models (stock
fold 0 with more seeds, stock with twice the iterations, plain pseudo-labelling, DUMM without SUS / PUM / the mask,
the recommended DUMM with several seeds, the paper's setting, DUMM's own 5-fold student ensemble), predict the
evaluation set with nnU-Net's predictor, evaluate (Dice from nnU-Net, HD95/ASD from medpy), compare rows with paired
bootstrap intervals and write ``benchmarks/results/<dataset>_<preset>_<budget-tag>.{md,json,png}`` and the dataset's
entry of ``benchmarks/results/summary.json``. The rows and comparisons are in ``rows.py``, the datasets in
``datasets.py``, the statistics in ``stats.py``, the report writing in ``reports.py``; this script runs them.

Models of another seed go to their own results root inside the work dir (``nnUNet_results_seed<s>``, with links to
the seed-0 teachers, so every DUMM seed learns from the same teachers and shares their pseudo-label cache;
``nnUNet_results_stock_seed<s>`` for stock fold 0). ``--evaluate dev`` scores on the dev split instead of the test
set: those unlabeled-pool cases leave the pool (``imagesDev``/``labelsDev`` of a second dataset with the same
labeled cases and the same teachers).

A work dir from before 0.2.0 (``nnUNetTrainerDUMM_<budget>`` there is the paper's fixed mask, the ablations are
variants of it) is refused before anything trains if a row would reuse such a model (``check_trained_as``), and
predictions recorded without their checkpoints are made again (``check_predicted_by``).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run_quality.py` from anywhere

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    StepLog,
    git_commit,
    repo_relative,
    seed_everything,
    set_nnunet_paths,
    write_json,
)
from benchmarks.datasets import (  # noqa: E402
    CONFIGURATION,
    DATASET_IDS,
    dataset_names,
    plans_variant_name,
    prepare,
    prepare_oracle,
)
from benchmarks.reports import (  # noqa: E402
    ROW_KEYS,
    budget_tag,
    report_file,
    summary_comparison,
    update_summary,
    write_quality_report,
)
from benchmarks.rows import (  # noqa: E402
    COMPARISONS,
    PRESETS,
    ROWS,
    SEEDED_PRESETS,
    STOCK,
    SUMMARY_PAIRS,
    Model,
    Row,
    available_rows,
    default_arms,
    models_of,
    preset_budget,
    preset_label,
    row_budget,
    row_models,
    summary_key,
    trainer_class,
    trainer_name,
    training_stages,
)
from benchmarks.stats import aggregate, case_metrics, compare_rows  # noqa: E402

# teacher folds per preset: those of its budget's presets (benchmarks/trainers.py), else every cross-validation fold
DEFAULT_TEACHER_FOLDS = {"test": 2, "demo": 5, "cpu": 3, "gpu": 3, "proxy": 5, "gpuwin": 5, "full": 5}


# ------------------------------------------------------------------------------------------------ training
def model_fold_folder(work_dir: Path, dataset_name: str, model: Model) -> Path:
    """``<root>/<dataset>/<trainer>__<plans>__2d/fold_<k>`` of a model in the work dir."""
    return work_dir / model.root / dataset_name / f"{model.trainer}__{model.plans}__{CONFIGURATION}" / \
        f"fold_{model.fold}"


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


def check_trained_as(work_dir: Path, dataset_name: str, models: list[Model]) -> None:
    """Stops, before anything trains, if a fold of ``models`` was trained (or begun) with another DUMM config than
    its trainer has now: a finished one would be reported as today's row, an unfinished one stop its trainer hours
    into the run. In a work dir from before 0.2.0, ``nnUNetTrainerDUMM_<budget>`` holds the paper's fixed mask
    (today ``nnUNetTrainerDUMM_paper_<budget>``) and ``_noSUS``, ``_noPUM``, ``_noMask`` and
    ``nnUNetTrainerPseudoLabel`` hold variants of it."""
    from nnunet_dumm.config import DUMMConfig
    from nnunet_dumm.trainers.dumm import CONFIG_FILE

    stale = []
    for model in models:
        config_file = model_fold_folder(work_dir, dataset_name, model) / CONFIG_FILE
        trainer = trainer_class(model.trainer)
        if not config_file.is_file() or not hasattr(trainer, "dumm_config"):
            continue
        try:
            saved = DUMMConfig.load(config_file)
        except ValueError as e:  # a removed lever in use (LegacyConfigError), an unknown field
            stale.append(f"  {config_file.parent} ({str(e).split(', a lever')[0]})")
            continue
        if saved.to_dict() != trainer.dumm_config.to_dict():
            changed = ", ".join(trainer.dumm_config.method_differs(saved)) or "teachers"
            stale.append(f"  {config_file.parent} (differs in {changed})")
    if stale:
        raise SystemExit(
            "these folds were trained with another DUMM config than their trainer has now:\n" + "\n".join(stale)
            + "\nIn a work dir from before 0.2.0, nnUNetTrainerDUMM_<budget> is the paper's fixed mask (today "
            "nnUNetTrainerDUMM_paper_<budget>) and the ablations are variants of it. Move each such model folder out "
            "of the way (the paper setting's nnUNetTrainerDUMM_<budget>__<plans>__2d may become "
            "nnUNetTrainerDUMM_paper_<budget>__<plans>__2d, which the dumm_paper row then reuses) or delete it, and "
            "rerun: those rows train anew and their predictions are made again.")


def train_model(work_dir: str, dataset_name: str, model: Model, device: str,
                threads: int | None = None) -> tuple[float, float]:
    """Trains one model (in this process or a worker process, then with its share of the cores); returns when it
    started and ended (``time.time()``), so that the pauses in between can be taken out."""
    from nnunet_dumm.runs import train_fold

    start = time.time()
    os.environ["nnUNet_results"] = str(Path(work_dir) / model.root)  # nnU-Net reads its paths at call time
    seed_everything(100 * model.seed + model.fold)
    train_fold(dataset_name, CONFIGURATION, model.fold, model.trainer, plans=model.plans, device=device,
               threads=threads)
    return start, time.time()


def _set_environment(environment: dict) -> None:  # a worker's initializer: nnU-Net's paths and settings
    os.environ.update(environment)


def threads_per_job(cores: int, jobs: int, models: int) -> int:
    """CPU threads of each of ``jobs`` trainings at once: the cores split among the jobs that run, so that a lone
    model (a student after its teachers) gets every core rather than its share of a pool it has to itself."""
    return max(1, cores // max(1, min(jobs, models)))


def epochs_seconds(fold_folder: Path, steps: StepLog) -> float:
    """Seconds the epochs of a finished training took, pauses taken out, from the timestamps nnU-Net keeps in
    ``checkpoint_final.pth``: a training resumed from a checkpoint (a later session) counts every part, where the
    step's wall time holds only the last."""
    import torch

    logged = torch.load(fold_folder / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    return sum(end - start - steps.paused_between(start, end)
               for start, end in zip(logged["epoch_start_timestamps"], logged["epoch_end_timestamps"]))


def train_all(models: list[Model], args: argparse.Namespace, dataset_name: str, steps: StepLog) -> None:
    """Trains every model not on disk yet: one after the other, or ``--jobs`` at a time in worker processes
    (models of one list are independent; several students running at once share the teachers' pass)."""
    folders = {m: model_fold_folder(args.work_dir, dataset_name, m) for m in models}
    todo = [m for m in models if not (folders[m] / "checkpoint_final.pth").is_file()]
    continued = {m for m in todo if (folders[m] / "checkpoint_latest.pth").is_file()}

    def record_continued(model: Model, record: dict) -> None:
        if model in continued:
            record["epochs_s"] = round(epochs_seconds(folders[model], steps), 1)

    def step(model: Model, note: str = ""):
        return steps.step(step_name(model, dataset_name),
                          f"train {model.trainer} fold {model.fold} seed {model.seed} ({model.root}{note})")

    for model in models:
        if model not in todo:
            with step(model) as record:
                record["skipped"] = True
    if args.jobs <= 1:
        for model in todo:
            with step(model) as record:
                train_model(str(args.work_dir), dataset_name, model, args.device)
                record_continued(model, record)
        return
    import multiprocessing

    environment = {k: v for k, v in os.environ.items() if k.startswith("nnUNet") or k.startswith("NNUNET")}
    threads = threads_per_job(os.cpu_count() or 1, args.jobs, len(todo))
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_set_environment,
                             initargs=(environment,)) as pool:
        futures = {model: pool.submit(train_model, str(args.work_dir), dataset_name, model, args.device, threads)
                   for model in todo}
        for model, future in futures.items():
            with step(model, f", {args.jobs} jobs at once") as record:
                start, end = future.result()
                record["worker_wall_s"] = round(end - start - steps.paused_between(start, end), 1)
                record_continued(model, record)


def step_name(model: Model, dataset_name: str) -> str:
    """The step record of a model's training, shared with ``learning_curve.py``."""
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
    """Records which model predicted ``output``: the model folder, folds and each fold's ``checkpoint_final.pth``
    (size and modification time). Refuses predictions of another model folder (reporting them would credit one
    model with another's result); predictions of other checkpoints of the same folder (a model trained anew, or a
    record without checkpoints: a work dir from before 0.2.0, whose ``dumm`` folder holds the paper's setting's
    predictions) are deleted, to be made again."""
    record = output / "predicted_by.json"
    wanted = {"model_folder": str(Path(model_folder).resolve()), "folds": list(folds),
              "checkpoints": [_checkpoint_stamp(Path(model_folder) / f"fold_{fold}" / "checkpoint_final.pth")
                              for fold in folds]}
    if record.is_file():
        earlier = json.loads(record.read_text())
        if [earlier.get("model_folder"), earlier.get("folds")] != [wanted["model_folder"], wanted["folds"]]:
            raise SystemExit(f"{output} holds predictions of {earlier}, not of {wanted}: delete the folder or use "
                             "another --work-dir")
        if earlier.get("checkpoints") != wanted["checkpoints"]:
            print(f"{output}: predicted by other checkpoints of {model_folder} (or not recorded); predicting again")
            shutil.rmtree(output)
    write_json(record, wanted)


def _checkpoint_stamp(checkpoint: Path) -> list[int] | None:
    if not checkpoint.is_file():
        return None
    stat = checkpoint.stat()
    return [stat.st_size, stat.st_mtime_ns]


def evaluate_rows(args: argparse.Namespace, raw: Path, dataset_names: dict[bool, str], rows: list[Row],
                  steps: StepLog, images: str, labels: str) -> dict:
    """Each row's predictions of the evaluation set and their metrics; ``dataset_names``: where the models of the
    ordinary (False) and the oracle (True) rows were trained."""
    from nnunet_dumm.runs import predict_and_evaluate

    dataset_json = json.loads((raw / "dataset.json").read_text())
    results = {}
    for row in rows:
        label = row.label_for(args.teacher_folds)
        per_seed = {}
        for seed, models in row_models(row, args).items():
            model_folder = model_fold_folder(args.work_dir, dataset_names[row.oracle], models[0]).parent
            folds = tuple(m.fold for m in models)
            key = prediction_key(args, row)
            output = args.work_dir / "predictions" / key / f"seed{seed}"
            with steps.step(f"predict_{key}_seed{seed}",
                            f"predict {images} + evaluate: {label}, folds {folds}, seed {seed}") as record:
                check_predicted_by(output, model_folder, folds)
                record["skipped"] = (output / "summary.json").is_file()
                summary = predict_and_evaluate(model_folder, folds, raw / images, raw / labels, output, args.device)
            per_case = case_metrics(summary, dataset_json)
            per_seed[seed] = {"model_folder": str(model_folder), "folds": list(folds), "predictions": str(output),
                              "summary": aggregate(per_case), "per_case": per_case}
            print(f"{label}, seed {seed}: mean Dice {100 * per_seed[seed]['summary']['mean']['Dice']['mean']:.1f}")
        seed_means = {s: v["summary"]["mean"]["Dice"]["mean"] for s, v in per_seed.items()}
        trainer = trainer_name(row.arm, row_budget(args, row))
        results[row.key] = {"label": label, "trainer": trainer,
                            "ensemble": row.ensemble, "seeds": per_seed,
                            "mean_dice_per_seed": seed_means,
                            "mean_dice_over_seeds": sum(seed_means.values()) / len(seed_means)}
    return results


# ------------------------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> Path:
    start = time.perf_counter()
    args.work_dir = args.work_dir.resolve()
    folders = set_nnunet_paths(args.work_dir)
    rows = available_rows(args)
    stock_models, students = training_stages(rows, args)
    _, name, dataset_id = dataset_names(args)
    check_trained_as(args.work_dir, name, students)
    steps = StepLog(args.work_dir / "benchmark_steps.json", total=0)
    raw, test_name, name = prepare(args, folders, steps)

    teacher = trainer_name(STOCK, preset_budget(args))
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
        datasets[True] = prepare_oracle(args, folders, steps, name, dataset_id)
        train_all(models_of(oracle_rows, args), args, datasets[True], steps)
    train_all(students, args, name, steps)

    images, labels = ("imagesTs", "labelsTs") if args.evaluate == "test" else ("imagesDev", "labelsDev")
    results = evaluate_rows(args, raw, datasets, rows, steps, images, labels)
    comparisons = compare_rows(results, COMPARISONS)
    with steps.step("report", "write the report") as record:
        stem = args.results_dir / f"{args.dataset}_{preset_label(args)}_{budget_tag(args)}"
        write_quality_report(stem, args, raw, results, comparisons, steps, time.perf_counter() - start)
        record["files"] = [str(report_file(stem, s)) for s in (".md", ".json", ".png")]
    if args.evaluate == "test" and not args.limit_test and not args.limit_unlabeled:
        update_summary(args.results_dir / "summary.json", {
            "dataset": args.dataset, "preset": preset_label(args),
            "labeled": args.labeled if args.dataset == "acdc" else f"{round(100 * args.labeled_fraction)}pct",
            "report": repo_relative(report_file(stem, ".md")), "row_keys": ROW_KEYS,
            **{summary_key(*pair): summary_comparison(comparisons, results, pair)
               for pair in SUMMARY_PAIRS if f"{pair[0]}_vs_{pair[1]}" in comparisons},
        })
    print(f"\nreport: {stem}.md (+ .json, .png); total {time.perf_counter() - start:.0f} s")
    return stem


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Quality benchmark of nnunet_dumm: stock nnU-Net (fold 0 and 5-fold ensemble) vs DUMM, the "
        "paper's setting and the ablations on ACDC or ISIC, with seeds and bootstrap intervals, end to end and "
        "resumable (see benchmarks/README.md).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASET_IDS), help="which dataset (converter) to use")
    parser.add_argument("--data", type=Path, default=None,
                        help="source folder (e.g. ../shared/data/acdc); only needed while converting")
    parser.add_argument("--preset", choices=PRESETS, default="proxy",
                        help="training budget: a budget of benchmarks/trainers.py, proxy, gpuwin or full "
                        "(nnU-Net's defaults)")
    parser.add_argument("--proxy-budget", default=None, metavar="<N>it",
                        help="with --preset proxy: train every arm on this budget of benchmarks/trainers.py's BUDGETS "
                             "(e.g. 4000it) instead of the one the dataset's learning curve chose "
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
                        help="train the other rows once per seed too (default: only stock fold 0, its "
                        "twice-the-iterations row, DUMM and DUMM without the mask take every seed)")
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
                        help="rows to train and report (default: all but the oracle rows and dumm_no_mirroring for "
                        "proxy/gpuwin, the single-seed rows otherwise); a later run with more rows reuses every "
                        "finished model and prediction")
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
        args.arms = default_arms(args.preset)
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
