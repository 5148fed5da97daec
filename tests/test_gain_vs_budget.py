"""The gain-against-budget table: rows of one budget merged from reports of the same teachers, refused otherwise,
and the differences those reports give (read-only on committed reports written before 0.2.0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gain_vs_budget import markdown, merge_rows, summarise
from benchmarks.reports import load_report

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
RECOMMENDED = RESULTS / "acdc_proxy_L7_ds4_classquantile" / "acdc_proxy_L7_ds4_5folds.json"
EVERY_ROW = RESULTS / "acdc_proxy_L7_ds4_5folds.json"  # the same five teachers
OTHER_TEACHERS = RESULTS / "acdc_stock_2x_3seeds" / "acdc_proxy_L7_ds4_5folds.json"


def test_a_budget_merges_the_rows_of_reports_that_share_their_teachers():
    summary = summarise({2000: [load_report(RECOMMENDED), load_report(EVERY_ROW)]})[2000]
    assert set(summary["rows"]) == {"stock", "stock_2x", "stock_ensemble", "dumm", "dumm_paper"}
    # the recommended method's row comes from the report that trained it, under today's name
    assert summary["rows"]["dumm"]["trainer"] == "nnUNetTrainerDUMM_classQuantile_2000it"
    assert summary["rows"]["dumm"]["mean_dice"] == pytest.approx(0.759, abs=5e-4)
    # the differences summary.json holds for these reports
    assert summary["comparisons"]["dumm_vs_stock_ensemble"]["mean_diff"] == pytest.approx(0.049, abs=5e-4)
    assert summary["comparisons"]["dumm_vs_stock_2x"]["ci95"] == pytest.approx([0.003, 0.050], abs=5e-4)


def test_reports_of_other_teachers_are_refused():
    with pytest.raises(SystemExit, match="stock_ensemble seed 0 differs"):
        merge_rows([load_report(RECOMMENDED), load_report(OTHER_TEACHERS)])


def test_label_budgets_are_a_table_of_their_own_without_the_columns_no_report_has():
    reports = {labeled: [load_report(RESULTS / f"acdc_proxy1000it_L{labeled}"
                                     / f"acdc_proxy1000it_L{labeled}_ds4_{folds}folds.json")]
               for labeled, folds in ((3, 3), (14, 5))}
    table = markdown(summarise(reports), {}, "command", "commit", axis="labeled")
    assert table.startswith("# The gain against the label budget")
    header, _, *rows = [line for line in table.splitlines() if line.startswith("|")]
    assert header.startswith("| labeled patients | stock fold 0 | stock ensemble of the teacher folds |")
    assert "2x" not in header  # neither report trained stock at twice the iterations
    # ACDC-3's three teachers: the difference its own report gives
    assert rows[0].startswith("| 3 | 20.3 (1 seed) | 48.7 (1 seed) | 59.3 (1 seed) |")
    assert "+10.6 [+7.3, +14.2]" in rows[0]
