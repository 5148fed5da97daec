"""Does the gain last as training lengthens, or with other label budgets? The recommended DUMM against the stock
ensemble at several budgets.

Reads the quality reports of one dataset at several iteration budgets (each run with ``run_quality.py --proxy-budget
<N>it``; a budget's rows may come from several reports of the same teachers, e.g. the student from one run and stock
at twice the iterations from another), or with ``--axis labeled`` at several label budgets (``--labeled N``), and
writes one table and one figure: per budget the mean Dice of stock fold 0, stock at twice the iterations, the stock
ensemble of the teacher folds, the recommended ``dumm`` (one fold) and the paper's setting, and the paired bootstrap
differences ``dumm`` - stock ensemble and ``dumm`` - stock at twice the iterations (the student's sample count), as
``run_quality.py`` computes them. Reports written before 0.2.0 are read under today's row names
(``reports.load_report``). A row found in several reports of one budget must have the same Dice on every case in their
common seeds (the same teachers and cases), or the script stops. Columns no report has are left out.

Example:
    python benchmarks/gain_vs_budget.py --out benchmarks/results/acdc_gain_vs_budget_L7 \\
        --report 1000 benchmarks/results/acdc_proxy1000it_L7/acdc_proxy1000it_L7_ds4_5folds.json \\
        --report 2000 benchmarks/results/acdc_proxy_L7_ds4_classquantile/acdc_proxy_L7_ds4_5folds.json \\
        --report 2000 benchmarks/results/acdc_stock_2x_3seeds/acdc_proxy_L7_ds4_5folds.json
    python benchmarks/gain_vs_budget.py --axis labeled --out benchmarks/results/acdc_gain_vs_labels_1000it \\
        --report 3 benchmarks/results/acdc_proxy1000it_L3/acdc_proxy1000it_L3_ds4_3folds.json \\
        --report 7 benchmarks/results/acdc_proxy1000it_L7/acdc_proxy1000it_L7_ds4_5folds.json \\
        --report 14 benchmarks/results/acdc_proxy1000it_L14/acdc_proxy1000it_L14_ds4_5folds.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/gain_vs_budget.py` from anywhere

from benchmarks.common import command_line, git_commit, repo_relative, write_json  # noqa: E402
from benchmarks.reports import load_report  # noqa: E402
from benchmarks.stats import compare_rows, dice_matrix  # noqa: E402

ROWS = ("stock", "stock_2x", "stock_ensemble", "dumm", "dumm_paper")
LABELS = {"stock": "stock fold 0", "stock_2x": "stock fold 0, 2x iterations",
          "stock_ensemble": "stock ensemble of the teacher folds", "dumm": "`nnUNetTrainerDUMM`, fold 0",
          "dumm_paper": "`nnUNetTrainerDUMM_paper`, fold 0"}
# the differences the table shows, with their column heads
DIFFERENCES = {("dumm", "stock_ensemble"): "DUMM - stock ensemble", ("dumm", "stock_2x"): "DUMM - stock 2x",
               ("dumm", "stock"): "DUMM - stock fold 0", ("dumm_paper", "stock_ensemble"): "paper - stock ensemble"}
PAIRS = (*DIFFERENCES, ("stock_2x", "stock"))
# --axis: what a budget counts, and the table's title
AXES = {"iterations": ("iterations per model", "The gain against the training budget"),
        "labeled": ("labeled patients", "The gain against the label budget")}


def merge_rows(reports: list[dict]) -> dict:
    """The rows of one budget's reports; a row in several of them must agree case by case in their common seeds."""
    rows: dict = {}
    for report in reports:
        for key, row in report["rows"].items():
            if key not in ROWS:
                continue
            if key in rows:
                common = set(rows[key]["seeds"]) & set(row["seeds"])
                for seed in common:
                    ours, theirs = ({r["case"]: r["classes"] for r in x["seeds"][seed]["per_case"]}
                                    for x in (rows[key], row))
                    if ours != theirs:
                        raise SystemExit(f"row {key} seed {seed} differs between two reports of one budget: they do "
                                         "not share their teachers and cases")
                rows[key] = {**rows[key], "seeds": {**row["seeds"], **rows[key]["seeds"]}}
            else:
                rows[key] = row
    return rows


def mean_over_seeds(row: dict) -> float:
    per_case = dice_matrix(row)
    return float(sum(sum(v) / len(v) for v in per_case.values()) / len(per_case))


def summarise(budgets: dict[int, list[dict]]) -> dict:
    out = {}
    for budget, reports in sorted(budgets.items()):
        rows = merge_rows(reports)
        out[budget] = {
            "rows": {key: {"mean_dice": mean_over_seeds(row), "seeds": sorted(row["seeds"], key=int),
                           "trainer": row.get("trainer")} for key, row in rows.items()},
            "comparisons": compare_rows(rows, PAIRS),
        }
    return out


def _difference(comparison: dict | None) -> str:
    if comparison is None:
        return "-"
    low, high = comparison["ci95"]
    return f"{100 * comparison['mean_diff']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def shown(summary: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """The rows and the differences at least one budget has: the table's columns and the figure's lines."""
    rows = [key for key in ROWS if any(key in entry["rows"] for entry in summary.values())]
    differences = [pair for pair in DIFFERENCES
                   if any(f"{pair[0]}_vs_{pair[1]}" in entry["comparisons"] for entry in summary.values())]
    return rows, differences


def markdown(summary: dict, sources: dict[int, list[str]], command: str, commit: str, axis: str = "iterations") -> str:
    rows, differences = shown(summary)
    budget_name, title = AXES[axis]
    header = f"| {budget_name} | " + " | ".join([*(LABELS[r] for r in rows), *(DIFFERENCES[p] for p in differences)])
    lines = [header + " |", "|---" * (len(rows) + len(differences) + 1) + "|"]
    for budget, entry in summary.items():
        cells = []
        for key in rows:
            row = entry["rows"].get(key)
            cells.append("-" if row is None else f"{100 * row['mean_dice']:.1f} ({len(row['seeds'])} seed"
                                                 f"{'s' if len(row['seeds']) > 1 else ''})")
        comparisons = entry["comparisons"]
        lines.append(f"| {budget:,} | " + " | ".join(cells) + " | " + " | ".join(
            _difference(comparisons.get(f"{row}_vs_{ref}")) for row, ref in differences) + " |")
    report_lines = [f"* {budget:,}: " + ", ".join(f"`{s}`" for s in files) for budget, files in sources.items()]
    return "\n".join([
        f"# {title}", "",
        "Mean Dice x 100 on the test set; differences with paired 95 % bootstrap intervals over the cases (and the "
        "seeds of each row). Stock at twice the iterations has the student's sample count (a labeled and an "
        "unlabeled batch per iteration).", "", *lines, "", "Reports:", *report_lines, "",
        f"Command: `{command}`", f"Commit: {commit}", ""])


def plot(summary: dict, path: Path, axis: str = "iterations") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(summary)
    rows, differences = shown(summary)
    nan = float("nan")  # a budget without the row: the line breaks there rather than joining its neighbours
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, marker in zip(ROWS, "os^Dv"):
        if key in rows:
            ys = [100 * summary[b]["rows"][key]["mean_dice"] if key in summary[b]["rows"] else nan for b in budgets]
            axes[0].plot(budgets, ys, marker=marker, label=LABELS[key].replace("`", ""))
    axes[0].set_ylabel("mean Dice x 100 (test set)")
    axes[0].legend(fontsize=8)
    plotted = [pair for pair in differences if pair != ("dumm", "stock")]  # the gain over stock fold 0 is in the table
    for i, (row, reference) in enumerate(plotted):
        offset = 0.04 * (i - (len(plotted) - 1) / 2)  # side by side around each budget
        values = [summary[b]["comparisons"].get(f"{row}_vs_{reference}") for b in budgets]
        means = [100 * v["mean_diff"] if v else nan for v in values]
        axes[1].errorbar([b * 2 ** offset for b in budgets], means,
                         yerr=[[m - 100 * v["ci95"][0] if v else nan for m, v in zip(means, values)],
                               [100 * v["ci95"][1] - m if v else nan for m, v in zip(means, values)]],
                         marker="o", capsize=4, label=DIFFERENCES[row, reference])
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set_ylabel("Dice difference x 100, 95 % interval")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
        ax.set_xlabel(AXES[axis][0])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", nargs=2, action="append", required=True, metavar=("BUDGET", "REPORT_JSON"),
                        help="a budget (iterations, or labeled patients with --axis labeled) and one of its reports "
                             "(repeat; several reports per budget are merged)")
    parser.add_argument("--axis", choices=tuple(AXES), default="iterations",
                        help="what the budgets count: iterations per model (default) or labeled patients")
    parser.add_argument("--out", type=Path, required=True, help="output stem: <out>.md, .json, .png")
    args = parser.parse_args(argv)
    budgets: dict[int, list[dict]] = {}
    sources: dict[int, list[str]] = {}
    for budget, report in args.report:
        budgets.setdefault(int(budget), []).append(load_report(Path(report)))
        sources.setdefault(int(budget), []).append(repo_relative(Path(report)))
    summary = summarise(budgets)
    command, commit = command_line(), git_commit()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), {"command": command, "git_commit": commit, "axis": args.axis,
                                               "reports": sources, "budgets": summary})
    args.out.with_suffix(".md").write_text(markdown(summary, sources, command, commit, args.axis))
    plot(summary, args.out.with_suffix(".png"), args.axis)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
