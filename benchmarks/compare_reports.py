"""Paired comparisons between the rows of two quality reports, e.g. a new trainer's run against an earlier report.

``run_quality.py`` compares the rows of one invocation. A row run later (a new variant, in a results dir of its own
so the earlier report keeps its wall times) is compared here against the earlier report's rows, case by case with
the same paired bootstrap. That pairing is only valid if both reports come from the same teachers and cases: every
row the two reports share (at least the stock ensemble) must have identical per-case Dice, otherwise this stops.

Prints every comparison of ``run_quality.COMPARISONS`` whose two rows come from different reports; with
``--summary`` it also writes those of ``SUMMARY_PAIRS`` into the earlier report's entry of ``summary.json``, with
``<row>_report`` naming the report each new row comes from.

Example (the ISIC test run of ``_classQuantile`` against the earlier ISIC report):
    python benchmarks/compare_reports.py \\
        benchmarks/results/isic_proxy_10pct_64px_classquantile/isic_proxy_10pct_64px_5folds.json \\
        benchmarks/results/isic_proxy_10pct_64px_5folds.json --summary benchmarks/results/summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/compare_reports.py` from anywhere

from benchmarks.common import REPO_ROOT, write_json  # noqa: E402
from benchmarks.run_quality import (  # noqa: E402
    COMPARISONS,
    SUMMARY_PAIRS,
    _dice_matrix,
    _difference_text,
    compare_rows,
    summary_key,
)


def merge_rows(new: dict, earlier: dict, only: list[str] | None = None) -> tuple[dict, set[str]]:
    """(the rows of both reports, the keys of the new rows to compare: ``only``, else those only the new report has);
    stops unless the reports can be paired."""
    for field in ("dataset", "evaluate"):
        if new[field] != earlier[field]:
            raise SystemExit(f"the reports differ in {field} ({new[field]} vs {earlier[field]}): nothing to pair")
    shared = sorted(set(new["rows"]) & set(earlier["rows"]))
    if not shared:
        raise SystemExit("the reports share no row: nothing shows that they come from the same teachers and cases "
                         "(run the new report with the stock_ensemble arm too)")
    for key in shared:
        if _dice_matrix(new["rows"][key]) != _dice_matrix(earlier["rows"][key]):
            raise SystemExit(f"row {key!r} differs between the reports (other teachers, cases or seeds), so their "
                             "rows cannot be compared case by case")
    new_keys = set(only) if only else set(new["rows"]) - set(shared)
    unknown = sorted(new_keys - set(new["rows"]) | new_keys & set(shared))
    if unknown:
        raise SystemExit(f"--rows {' '.join(unknown)}: not a row of the new report alone")
    return {**earlier["rows"], **new["rows"]}, new_keys


def cross_comparisons(rows: dict, new_keys: set[str]) -> dict:
    """The comparisons of COMPARISONS between a new row and an earlier one."""
    comparisons = compare_rows(rows)
    return {f"{a}_vs_{b}": comparisons[f"{a}_vs_{b}"] for a, b in COMPARISONS
            if f"{a}_vs_{b}" in comparisons and (a in new_keys) != (b in new_keys)}


def _repo_relative(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def add_to_summary(summary_path: Path, earlier_report: Path, new_report: Path, rows: dict, new_keys: set[str],
                   comparisons: dict) -> list[str]:
    """Writes the SUMMARY_PAIRS among ``comparisons`` into the summary entry of ``earlier_report``; their keys."""
    summary = json.loads(summary_path.read_text())
    report_md = _repo_relative(earlier_report.with_suffix(".md"))
    entries = [e for e in summary["entries"] if e["report"] == report_md]
    if not entries:
        raise SystemExit(f"{summary_path} has no entry for {report_md}")
    entry, written = entries[0], []
    for a, b in SUMMARY_PAIRS:
        if f"{a}_vs_{b}" in comparisons:
            entry[summary_key(a, b)] = {**comparisons[f"{a}_vs_{b}"],
                                        "arms": {k: rows[k]["mean_dice_over_seeds"] for k in (a, b)}}
            written.append(summary_key(a, b))
            for key in {a, b} & new_keys:
                entry[f"{key}_report"] = _repo_relative(new_report.with_suffix(".md"))
    write_json(summary_path, summary)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="the later report's .json (its rows are compared)")
    parser.add_argument("earlier", type=Path, help="the earlier report's .json (its rows are the references)")
    parser.add_argument("--summary", type=Path, default=None,
                        help="summary.json to add the comparisons to, in the earlier report's entry")
    parser.add_argument("--rows", nargs="+", default=None,
                        help="the new report's rows to compare (default: every row the earlier report lacks); e.g. "
                        "leave out a one-seed row whose three-seed comparisons the summary already has")
    args = parser.parse_args(argv)
    new, earlier = (json.loads(path.read_text()) for path in (args.new, args.earlier))
    rows, new_keys = merge_rows(new, earlier, args.rows)
    comparisons = cross_comparisons(rows, new_keys)
    if not comparisons:
        raise SystemExit(f"no comparison of run_quality.COMPARISONS pairs a row of {sorted(new_keys)} with an "
                         "earlier row")
    for name, comparison in comparisons.items():
        print(f"{name}: {_difference_text(comparison)}")
    if args.summary:
        written = add_to_summary(args.summary, args.earlier, args.new, rows, new_keys, comparisons)
        print(f"{args.summary}: {', '.join(written) or 'nothing'} written")


if __name__ == "__main__":
    main()
