"""The benchmarks' reports: Markdown, JSON and PNG of a quality run, ``summary.json``, the provenance header every
report starts with, and reading reports back (``load_report``, which translates reports written before the rows
were renamed).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import StepLog, command_line, git_commit, machine_info, write_json
from benchmarks.datasets import data_tag
from benchmarks.rows import preset_budget

__all__ = [
    "PRE_RENAME_ROWS",
    "ROW_KEYS",
    "budget_tag",
    "difference_text",
    "dot_plot",
    "format_metric",
    "load_report",
    "provenance_markdown",
    "report_file",
    "summary_comparison",
    "translate_pre_rename",
    "translate_summary_entry",
    "update_summary",
    "write_quality_report",
]

# The version of the row keys a quality report (and a summary.json entry) is written with, recorded as "row_keys":
# 2 since 0.2.0 renamed the trainers (rows.py); reports without it name their rows as before (``load_report``).
ROW_KEYS = 2
# The rows of a report written before 0.2.0 and their keys today, with the trainer each recorded. Then
# ``nnUNetTrainerDUMM`` was the paper's fixed mask (today ``nnUNetTrainerDUMM_paper``), ``_classQuantile`` the
# recommended method (today ``nnUNetTrainerDUMM``), and ``_noSUS`` a variant of the paper's setting (today's
# ``dumm_nosus`` is the recommended method without SUS). The paper's ensemble and its run without SUS have no row
# today: they keep keys of their own. Every other row means what it meant: stock and oracle rows; ``dumm_nopum``,
# ``pseudo_label``, ``no_mask`` and ``no_mask_ensemble`` count every pixel, so the mask played no part; the removed
# levers (``copy_paste``, ``gen2``, ...) keep their keys.
PRE_RENAME_ROWS = {
    "dumm": ("dumm_paper", r"nnUNetTrainerDUMM(_[0-9a-z]+)?"),
    "dumm_ensemble": ("dumm_paper_ensemble", r"nnUNetTrainerDUMM(_[0-9a-z]+)?"),
    "dumm_nosus": ("dumm_paper_nosus", r"nnUNetTrainerDUMM_noSUS(_[0-9a-z]+)?"),
    "class_quantile": ("dumm", r"nnUNetTrainerDUMM_classQuantile(_[0-9a-z]+)?"),
    "class_quantile_ensemble": ("dumm_ensemble", r"nnUNetTrainerDUMM_classQuantile(_[0-9a-z]+)?"),
}


# ------------------------------------------------------------------------------------------------ writing
def report_file(stem: Path, suffix: str) -> Path:
    """A report's file: the stem with ``suffix`` appended. Not ``Path.with_suffix``: a stem such as
    ``..._nnUNetPlans_features0.5_3seeds`` has a dot that is not a suffix, and would lose everything after it."""
    return stem.parent / f"{stem.name}{suffix}"


def provenance_markdown(command: str, preset: str, seed, machine: dict, commit: str, steps: StepLog) -> str:
    """The header every report starts with: how to reproduce it and what it ran on."""
    machine_line = (f"{machine['cpu_model']}, {machine['cpu_cores_usable']} cores usable, "
                    f"{machine.get('memory_gib', '?')} GiB; torch {machine['torch']} "
                    f"({machine['torch_threads']} threads), nnunetv2 {machine['nnunetv2']}, "
                    f"device `{machine['device']}`"
                    + (f" ({machine['gpu']})" if machine.get("gpu") else ""))
    return "\n".join([
        f"* command: `{command}`",
        f"* preset: `{preset}`" + (f", seed(s) {seed}" if seed is not None else ""),
        f"* machine: {machine_line}",
        f"* git commit: `{commit}`",
        f"* written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        "",
        "Wall time per step:",
        "",
        steps.table(),
    ])


def format_metric(stats: dict, scale: float = 1.0, digits: int = 1) -> str:
    if stats["mean"] is None:
        return f"n/a ({stats['undefined']} undef.)" if stats["undefined"] else "n/a"
    text = f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"
    return text + (f" ({stats['undefined']} undef.)" if stats["undefined"] else "")


def budget_tag(args: argparse.Namespace) -> str:
    """The data tag plus what the training used and where it was scored: teacher folds, dev split."""
    return (f"{data_tag(args)}_{args.teacher_folds}folds" + (f"_{args.plans}" if args.plans != "nnUNetPlans" else "")
            + ("_dev" if args.evaluate == "dev" else ""))


def difference_text(comparison: dict) -> str:
    low, high = comparison["ci95"]
    verdict = "no measurable difference" if low <= 0 <= high else ("higher" if low > 0 else "lower")
    return (f"{100 * comparison['mean_diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] ({verdict}; "
            f"{comparison['num_cases']} cases, seeds {comparison['seeds']} vs {comparison['reference_seeds']})")


def write_quality_report(stem: Path, args: argparse.Namespace, raw: Path, results: dict, comparisons: dict,
                         steps: StepLog, wall: float) -> None:
    """``<stem>.md``, ``.json`` and ``.png`` of a quality run: its rows' metrics per class and seed, the differences
    with their intervals, and how the run was made."""
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
    from benchmarks.trainers import BUDGETS

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
        lines.append(f"| {results[row]['label']} - {results[reference]['label']} | {difference_text(comparison)} |")
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
        "benchmark": "quality", "row_keys": ROW_KEYS, "dataset": args.dataset, "preset": args.preset,
        "budget_tag": stem.name,
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


# ------------------------------------------------------------------------------------------------ summary.json
def summary_comparison(comparisons: dict, results: dict, pair: tuple[str, str]) -> dict:
    """A comparison as summary.json keeps it: the interval with both rows' means."""
    return {**comparisons[f"{pair[0]}_vs_{pair[1]}"], "arms": {k: results[k]["mean_dice_over_seeds"] for k in pair}}


def update_summary(path: Path, entry: dict) -> None:
    """Adds or replaces the entry of (dataset, preset, labeled) in ``summary.json``: ``{"entries": [...]}``."""
    summary = json.loads(path.read_text()) if path.is_file() else {"entries": []}
    key = (entry["dataset"], entry["preset"], entry["labeled"])
    summary["entries"] = [e for e in summary["entries"] if (e["dataset"], e["preset"], e["labeled"]) != key]
    summary["entries"].append(entry)
    summary["entries"].sort(key=lambda e: (e["dataset"], e["preset"], str(e["labeled"])))
    write_json(path, summary)


# ------------------------------------------------------------------------------------------------ reading
def load_report(path: Path) -> dict:
    """A quality report's JSON with its rows under today's keys (``rows.ROWS``), whenever it was written.

    A report without ``"row_keys": 2`` (``ROW_KEYS``) was written before 0.2.0 renamed the trainers; its rows
    are renamed by ``translate_pre_rename``: ``class_quantile`` -> ``dumm`` and ``class_quantile_ensemble`` ->
    ``dumm_ensemble`` (the recommended method), ``dumm`` -> ``dumm_paper``, ``dumm_ensemble`` ->
    ``dumm_paper_ensemble`` and ``dumm_nosus`` -> ``dumm_paper_nosus`` (the paper's fixed mask), every other row
    as it was (``PRE_RENAME_ROWS``). The file itself is never changed.
    """
    report = json.loads(Path(path).read_text())
    if report.get("row_keys", 1) < ROW_KEYS:
        report = translate_pre_rename(report, str(path))
    return report


def translate_pre_rename(report: dict, source: str = "the report") -> dict:
    """A copy of a report written before 0.2.0 with its rows (``rows``, or ``arms`` in the first reports) and
    comparisons under today's keys (``PRE_RENAME_ROWS``); each renamed row records its old key in
    ``renamed_from``, the report all of them in ``renamed_rows``. A row whose recorded trainer is not the one that
    key had then stops it: the report is not what its lack of ``row_keys`` says."""
    renamed = {}
    translated = dict(report)
    for field in ("rows", "arms"):
        if field not in report:
            continue
        rows = {}
        for key, row in report[field].items():
            new_key, trainer = PRE_RENAME_ROWS.get(key, (key, None))
            if trainer and not re.fullmatch(trainer, row.get("trainer", "")):
                raise ValueError(f"{source}: row {key!r} has trainer {row.get('trainer')!r}, not the one a report "
                                 f"without row_keys names so ({trainer}); cannot tell what it holds")
            if new_key in rows:
                raise ValueError(f"{source}: row {key!r} would become {new_key!r}, which the report has already")
            rows[new_key] = {**row, "renamed_from": key} if new_key != key else row
            if new_key != key:
                renamed[key] = new_key
        translated[field] = rows
    if "comparisons" in report:
        translated["comparisons"] = {_renamed_comparison(name, renamed): comparison
                                     for name, comparison in report["comparisons"].items()}
    translated["row_keys"], translated["renamed_rows"] = ROW_KEYS, renamed
    return translated


def translate_summary_entry(entry: dict) -> dict:
    """A ``summary.json`` entry under today's keys: one without ``"row_keys": 2`` was written before 0.2.0, and
    its comparisons (``<row>_vs_<reference>``, with the rows' means under ``arms`` and their reports under
    ``reports``) are renamed as ``translate_pre_rename`` renames a report's rows. An entry names no trainers, so
    the keys alone decide."""
    if entry.get("row_keys", 1) >= ROW_KEYS:
        return entry
    renamed = {old: new for old, (new, _) in PRE_RENAME_ROWS.items()}
    translated = {}
    for key, value in entry.items():
        if "_vs_" in key and isinstance(value, dict):
            value = {**value, **{field: {renamed.get(row, row): v for row, v in value[field].items()}
                                 for field in ("arms", "reports") if field in value}}
            key = _renamed_comparison(key, renamed)
        translated[key] = value
    return {**translated, "row_keys": ROW_KEYS}


def _renamed_comparison(name: str, renamed: dict[str, str]) -> str:
    return "_vs_".join(renamed.get(part, part) for part in name.split("_vs_"))
