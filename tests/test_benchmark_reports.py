"""Reading quality reports back: a report written before 0.2.0 renamed the trainers gets today's row keys.

Then ``dumm`` was the paper's fixed mask and ``class_quantile`` the recommended method; since, ``dumm`` is the
recommended method and ``dumm_paper`` the paper's. The committed reports under benchmarks/results/ are read, never
written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import RESULTS_DIR
from benchmarks.reports import ROW_KEYS, load_report, translate_pre_rename, translate_summary_entry


def _read_only(path):
    before = path.read_bytes()
    report = load_report(path)
    assert path.read_bytes() == before
    return report


def test_the_recommended_method_and_the_papers_setting_of_an_old_dev_report_take_todays_keys():
    path = RESULTS_DIR / "isic_proxy_10pct_64px_5folds_dev.json"
    original = json.loads(path.read_text())
    report = _read_only(path)
    assert report["row_keys"] == ROW_KEYS
    trainers = {key: row["trainer"] for key, row in report["rows"].items()}
    assert trainers["dumm"] == "nnUNetTrainerDUMM_classQuantile_1000it"  # the recommended method
    assert trainers["dumm_paper"] == "nnUNetTrainerDUMM_1000it"  # the paper's fixed mask, as nnU-Net named it then
    assert trainers["dumm_paper_ensemble"] == "nnUNetTrainerDUMM_1000it"
    assert "class_quantile" not in report["rows"] and "dumm_ensemble" not in report["rows"]
    # what every pixel counts, stock and the removed levers keep their keys
    assert {"stock", "stock_ensemble", "no_mask", "copy_paste", "gen2"} <= set(report["rows"])
    assert report["rows"]["dumm"]["seeds"] == original["rows"]["class_quantile"]["seeds"]
    assert report["rows"]["dumm"]["renamed_from"] == "class_quantile"
    assert report["renamed_rows"] == {"dumm": "dumm_paper", "dumm_ensemble": "dumm_paper_ensemble",
                                      "class_quantile": "dumm"}
    # the comparisons follow: the old "class_quantile vs DUMM" is today's "DUMM vs the paper's setting"
    assert report["comparisons"]["dumm_vs_dumm_paper"] == original["comparisons"]["class_quantile_vs_dumm"]
    assert report["comparisons"]["dumm_paper_vs_stock_ensemble"] == original["comparisons"]["dumm_vs_stock_ensemble"]
    assert "copy_paste_vs_dumm_paper" in report["comparisons"]


def test_an_old_headline_report_has_the_papers_setting_and_its_run_without_sus():
    report = _read_only(RESULTS_DIR / "acdc_proxy_L7_ds4_5folds.json")
    assert set(report["rows"]) == {"stock", "stock_ensemble", "stock_2x", "stock_2x_ensemble", "pseudo_label",
                                   "dumm_paper_nosus", "dumm_nopum", "dumm_paper", "no_mask", "no_mask_ensemble"}
    assert report["rows"]["dumm_paper_nosus"]["trainer"] == "nnUNetTrainerDUMM_noSUS_2000it"
    assert "dumm_paper_nosus_vs_dumm_paper" in report["comparisons"]


def test_the_first_reports_name_their_rows_arms_and_are_translated_alike():
    report = _read_only(RESULTS_DIR / "acdc_cpu_L7_ds2_U40_3folds.json")
    assert report["arms"]["dumm_paper"]["trainer"] == "nnUNetTrainerDUMM_cpu"
    assert "dumm" not in report["arms"] and "rows" not in report


def test_a_report_with_todays_keys_is_read_as_it_is(tmp_path):
    report = {"row_keys": ROW_KEYS, "rows": {"dumm": {"trainer": "nnUNetTrainerDUMM_1000it"},
                                             "dumm_paper": {"trainer": "nnUNetTrainerDUMM_paper_1000it"}},
              "comparisons": {"dumm_vs_dumm_paper": {"mean_diff": 0.01}}}
    (tmp_path / "new.json").write_text(json.dumps(report))
    assert load_report(tmp_path / "new.json") == report


def test_a_report_without_row_keys_whose_trainers_say_otherwise_is_refused():
    report = {"rows": {"dumm": {"trainer": "nnUNetTrainerDUMM_paper_1000it"}}}
    with pytest.raises(ValueError, match="row 'dumm' has trainer 'nnUNetTrainerDUMM_paper_1000it'"):
        translate_pre_rename(report)


# four keys of the ACDC entry of summary.json as 0.1 wrote them (commit 32f5456)
ENTRY_OF_0_1 = json.loads((Path(__file__).parent / "data" / "summary_entry_0_1.json").read_text())


def test_the_old_summary_entries_take_todays_keys():
    acdc = ENTRY_OF_0_1
    translated = translate_summary_entry(acdc)
    assert translated["row_keys"] == ROW_KEYS
    assert not any(key.startswith("class_quantile") for key in translated)
    renamed = {"class_quantile_ensemble_vs_no_mask_ensemble": "dumm_ensemble_vs_no_mask_ensemble",
               "class_quantile_vs_no_mask": "dumm_vs_no_mask", "dumm_vs_stock_fold0": "dumm_paper_vs_stock_fold0",
               "no_mask_vs_stock_fold0": "no_mask_vs_stock_fold0"}
    for old, new in renamed.items():
        assert {k: v for k, v in translated[new].items() if k not in ("arms", "reports")} == \
            {k: v for k, v in acdc[old].items() if k not in ("arms", "reports")}
    assert translated["dumm_vs_no_mask"]["arms"] == {"dumm": acdc["class_quantile_vs_no_mask"]["arms"][
        "class_quantile"], "no_mask": acdc["class_quantile_vs_no_mask"]["arms"]["no_mask"]}
    assert translate_summary_entry(translated) == translated  # today's keys: as it is
