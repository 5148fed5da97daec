"""Paired comparisons between the rows of two quality reports, e.g. a new trainer's run against an earlier report.

``run_quality.py`` compares the rows of one invocation. A row run later (a new variant, in a results dir of its own
so the earlier report keeps its wall times) is compared here against the earlier report's rows, case by case with
the same paired bootstrap. That pairing is only valid if both reports come from the same teachers and cases: every
row the two reports share (at least the stock ensemble; ``--rows`` aside) must have identical per-case metrics in
every seed both have, otherwise this stops.

Both reports are read with ``reports.load_report``: a report written before 0.2.0 renamed the trainers has its
rows under today's keys (its ``class_quantile`` rows are ``dumm``, its ``dumm`` rows ``dumm_paper``), and ``--rows``
names rows by today's keys. Prints every comparison of ``rows.COMPARISONS`` whose two rows come from different
reports; with ``--summary`` it also writes those of ``SUMMARY_PAIRS`` into an entry of ``summary.json`` (the
earlier report's, or ``--entry``'s), each naming the reports its two rows come from.

Example (ACDC: the recommended trainer's five folds, run later with teachers that reproduced the earlier ones
exactly, against the earlier report's stock and ``_noMask`` ensembles; written before 0.2.0, that run's rows
were ``class_quantile*``):
    python benchmarks/compare_reports.py \\
        benchmarks/results/acdc_proxy_L7_ds4_classquantile_5folds/acdc_proxy_L7_ds4_5folds.json \\
        benchmarks/results/acdc_proxy_L7_ds4_5folds.json --rows dumm_ensemble \\
        --summary benchmarks/results/summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/compare_reports.py` from anywhere

from benchmarks.common import repo_relative, write_json  # noqa: E402
from benchmarks.reports import (  # noqa: E402
    difference_text,
    load_report,
    summary_comparison,
    translate_summary_entry,
)
from benchmarks.rows import COMPARISONS, SUMMARY_PAIRS, summary_key  # noqa: E402
from benchmarks.stats import compare_rows  # noqa: E402


def merge_rows(new: dict, earlier: dict, only: list[str] | None = None) -> tuple[dict, set[str]]:
    """(the earlier report's rows with the new rows to compare put in, their keys); the new rows to compare are
    ``only`` (replacing earlier rows of the same name), else those the earlier report lacks. Stops unless every
    other row the reports share is identical case by case in the seeds both have: the evidence that both come from
    the same teachers (the earlier report's version of such a row is kept)."""
    for field in ("dataset", "evaluate"):
        if new[field] != earlier[field]:
            raise SystemExit(f"the reports differ in {field} ({new[field]} vs {earlier[field]}): nothing to pair")
    new_keys = set(only) if only else set(new["rows"]) - set(earlier["rows"])
    if new_keys - set(new["rows"]):
        raise SystemExit(f"--rows {' '.join(sorted(new_keys - set(new['rows'])))}: not a row of the new report")
    checked = sorted(set(new["rows"]) & set(earlier["rows"]) - new_keys)
    if not checked:
        raise SystemExit("the reports share no other row: nothing shows that they come from the same teachers and "
                         "cases (run the new report with the stock_ensemble arm too)")
    for key in checked:
        ours, theirs = new["rows"][key]["seeds"], earlier["rows"][key]["seeds"]
        seeds = sorted(set(ours) & set(theirs))
        if not seeds or any(ours[seed]["per_case"] != theirs[seed]["per_case"] for seed in seeds):
            raise SystemExit(f"row {key!r} differs between the reports (other teachers, cases or seeds), so their "
                             "rows cannot be compared case by case")
    return {**earlier["rows"], **{key: new["rows"][key] for key in new_keys}}, new_keys


def cross_comparisons(rows: dict, new_keys: set[str]) -> dict:
    """The comparisons of COMPARISONS between a new row and an earlier one."""
    return compare_rows(rows, [(a, b) for a, b in COMPARISONS if (a in new_keys) != (b in new_keys)])


def add_to_summary(summary_path: Path, entry_report: Path, rows: dict, row_reports: dict[str, str],
                   comparisons: dict) -> list[str]:
    """Writes the SUMMARY_PAIRS among ``comparisons`` into the summary entry of ``entry_report`` (a report's .json
    or .md), each with its rows' means and the reports they come from; returns the keys written."""
    summary = json.loads(summary_path.read_text())
    report_md = repo_relative(entry_report.with_suffix(".md"))
    entries = [e for e in summary["entries"] if e["report"] == report_md]
    if not entries:
        raise SystemExit(f"{summary_path} has no entry for {report_md}")
    # an entry written before 0.2.0 takes today's row keys first, so that it never mixes the two namings
    index = summary["entries"].index(entries[0])
    entry, written = translate_summary_entry(entries[0]), []
    summary["entries"][index] = entry
    for a, b in SUMMARY_PAIRS:
        if f"{a}_vs_{b}" in comparisons:
            entry[summary_key(a, b)] = {**summary_comparison(comparisons, rows, (a, b)),
                                        "reports": {k: row_reports[k] for k in (a, b)}}
            written.append(summary_key(a, b))
    write_json(summary_path, summary)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="the later report's .json (its rows are compared)")
    parser.add_argument("earlier", type=Path, help="the earlier report's .json (its rows are the references)")
    parser.add_argument("--summary", type=Path, default=None, help="summary.json to add the comparisons to")
    parser.add_argument("--entry", type=Path, default=None,
                        help="the summary entry to add them to, named by its report (default: the earlier report's), "
                        "e.g. the dataset's headline entry when both reports come from teachers trained since")
    parser.add_argument("--rows", nargs="+", default=None,
                        help="the new report's rows to compare, replacing earlier rows of the same name (default: "
                        "every row the earlier report lacks); e.g. leave out a one-seed row whose three-seed "
                        "comparisons the summary already has")
    args = parser.parse_args(argv)
    new, earlier = (load_report(path) for path in (args.new, args.earlier))
    rows, new_keys = merge_rows(new, earlier, args.rows)
    comparisons = cross_comparisons(rows, new_keys)
    if not comparisons:
        raise SystemExit(f"no comparison of rows.COMPARISONS pairs a row of {sorted(new_keys)} with an "
                         "earlier row")
    for name, comparison in comparisons.items():
        print(f"{name}: {difference_text(comparison)}")
    if args.summary:
        row_reports = {key: repo_relative((args.new if key in new_keys else args.earlier).with_suffix(".md"))
                       for key in rows}
        written = add_to_summary(args.summary, args.entry or args.earlier, rows, row_reports, comparisons)
        print(f"{args.summary}: {', '.join(written) or 'nothing'} written")


if __name__ == "__main__":
    main()
