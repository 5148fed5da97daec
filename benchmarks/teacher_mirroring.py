"""Should the teachers' pass mirror? What test-time mirroring gives the pseudo-labels and the student, and costs.

Reads dev-split quality reports that ran the rows ``dumm`` and ``dumm_no_mirroring`` (``run_quality.py --evaluate
dev --arms ... dumm dumm_no_mirroring``) and, from the two students' fold folders, the teachers' pass each of them
ran (its own: the mirroring is part of the cache key): the pseudo-labels' Dice against the pool's true labels
(``dumm_diagnostics_round1.json``), the pass time and its case-models/s (training log), and the students' dev Dice
difference with its paired bootstrap interval. Writes ``<out>.md`` and ``<out>.json``.

Example:
    python benchmarks/teacher_mirroring.py --out benchmarks/results/teacher_mirroring \\
        --report acdc benchmarks/results/acdc_dev_mirroring/acdc_proxy1000it_L7_ds4_5folds_dev.json \\
        --report isic benchmarks/results/isic_dev_mirroring/isic_proxy_10pct_64px_5folds_dev.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/teacher_mirroring.py` anywhere

from benchmarks.common import command_line, git_commit, repo_relative, write_json  # noqa: E402
from benchmarks.reports import load_report  # noqa: E402

ROWS = {"dumm": True, "dumm_no_mirroring": False}  # row -> the teachers mirror
_PASS = re.compile(r"pseudo-labels: (\d+) model\(s\), (\d+) cases")
_DONE = re.compile(r"pseudo-labels: (\d+) cases in ([0-9.]+) s \(([0-9.]+) cases/s, ([0-9.]+) case-models/s\)")


def teachers_pass(fold_folder: Path) -> dict | None:
    """The teachers' pass this fold ran, from its training log (None if it found the pass cached)."""
    for log in sorted(fold_folder.glob("training_log_*.txt")):
        lines = log.read_text().splitlines()
        for i, line in enumerate(lines):
            started = _PASS.search(line)
            if started and "added to" not in line:
                done = next((m for m in map(_DONE.search, lines[i + 1:]) if m), None)
                if done:
                    return {"models": int(started.group(1)), "cases": int(done.group(1)),
                            "seconds": float(done.group(2)), "case_models_per_s": float(done.group(4))}
    return None


def measure(report_file: Path) -> dict:
    report = load_report(report_file)
    out = {"report": repo_relative(report_file), "rows": {}}
    for row, mirroring in ROWS.items():
        fold = Path(report["rows"][row]["seeds"]["0"]["model_folder"]) / "fold_0"
        diagnostics = json.loads((fold / "dumm_diagnostics_round1.json").read_text())
        out["rows"][row] = {
            "mirroring": mirroring,
            "dev_dice": report["rows"][row]["mean_dice_over_seeds"],
            "pseudo_label_dice": diagnostics["pseudo_label_dice_mean"],
            "pseudo_label_dice_per_class": diagnostics["pseudo_label_dice_per_class"],
            "pool_cases_with_true_labels": diagnostics["num_cases"],
            "teachers_pass": teachers_pass(fold),
        }
    out["dev_dice_difference"] = report["comparisons"]["dumm_no_mirroring_vs_dumm"]
    return out


def markdown(results: dict, command: str, commit: str) -> str:
    lines = ["# The teachers' test-time mirroring", "",
             "Dev split (training-side cases with their true labels), seed 0. Pseudo-label Dice: the teachers' fused "
             "pseudo-labels against the true labels of the pool's cases that have them (round 1). Pass: the teachers' "
             "pass over the whole pool on this machine's CPU. Dev Dice difference: the student without mirroring minus "
             "the student with it, paired bootstrap 95 % interval over the dev cases.", "",
             "| dataset | teachers mirror | pseudo-label Dice | pass (s) | case-models/s | student dev Dice |",
             "|---|---|---|---|---|---|"]
    for dataset, result in results.items():
        for row in result["rows"].values():
            p = row["teachers_pass"]
            seconds, speed = ("-", "-") if p is None else (f"{p['seconds']:.0f}", f"{p['case_models_per_s']:.2f}")
            mirrors = "yes" if row["mirroring"] else "no"
            lines.append(f"| {dataset} | {mirrors} | {100 * row['pseudo_label_dice']:.1f} | {seconds} | {speed} | "
                         f"{100 * row['dev_dice']:.1f} |")
    lines += ["", "| dataset | student without - with mirroring (dev Dice x 100) |", "|---|---|"]
    for dataset, result in results.items():
        d = result["dev_dice_difference"]
        lines.append(f"| {dataset} | {100 * d['mean_diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
                     f"{100 * d['ci95'][1]:+.1f}] |")
    lines += ["", "Reports: " + ", ".join(f"`{r['report']}`" for r in results.values()), "",
              f"Command: `{command}`", f"Commit: {commit}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", nargs=2, action="append", required=True, metavar=("DATASET", "REPORT_JSON"))
    parser.add_argument("--out", type=Path, required=True, help="output stem: <out>.md, .json")
    args = parser.parse_args(argv)
    results = {dataset: measure(Path(report)) for dataset, report in args.report}
    command, commit = command_line(), git_commit()
    write_json(args.out.with_suffix(".json"), {"command": command, "git_commit": commit, "datasets": results})
    args.out.with_suffix(".md").write_text(markdown(results, command, commit))
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
