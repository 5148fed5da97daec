"""Comparing the rows of two quality reports: only paired when their shared rows agree case by case, and reports
written before the rows were renamed (0.2.0) read under today's keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.compare_reports import main


def _row(dice_per_seed: list[np.ndarray]) -> dict:
    return {"mean_dice_over_seeds": float(np.mean(dice_per_seed)),
            "seeds": {str(seed): {"per_case": [{"case": f"case{i:02d}", "classes": {"1": {"Dice": float(d)}}}
                                               for i, d in enumerate(dice)]}
                      for seed, dice in enumerate(dice_per_seed)}}


def _report(path, rows: dict, evaluate: str = "test", row_keys: int | None = 2) -> None:
    # row_keys None: a report written before 0.2.0 renamed the rows
    report = {"dataset": "isic", "evaluate": evaluate, "rows": rows}
    path.write_text(json.dumps(report if row_keys is None else {**report, "row_keys": row_keys}))


@pytest.fixture
def reports(tmp_path):
    rng = np.random.default_rng(0)
    ensemble = rng.uniform(0.6, 0.9, 30)
    earlier = {"stock_ensemble": _row([ensemble]), "stock": _row([ensemble - 0.03, ensemble - 0.02]),
               "no_mask": _row([ensemble + 0.001])}
    new = {"stock_ensemble": _row([ensemble]), "dumm": _row([ensemble + 0.02, ensemble + 0.01])}
    _report(tmp_path / "earlier.json", earlier)
    _report(tmp_path / "new.json", new)
    return tmp_path


def test_new_rows_are_compared_with_the_earlier_reports_rows(reports, capsys):
    main([str(reports / "new.json"), str(reports / "earlier.json")])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"dumm_vs_stock_ensemble", "dumm_vs_stock", "dumm_vs_no_mask"}
    assert lines["dumm_vs_stock"].startswith("+4.0 [")  # (0.02 + 0.01) / 2 + (0.03 + 0.02) / 2
    assert "(higher; 30 cases, seeds 2 vs 2)" in lines["dumm_vs_stock"]


def test_reports_whose_shared_row_differs_are_not_paired(reports):
    new = json.loads((reports / "new.json").read_text())
    new["rows"]["stock_ensemble"]["seeds"]["0"]["per_case"][3]["classes"]["1"]["Dice"] += 0.01  # other teachers
    (reports / "new.json").write_text(json.dumps(new))
    with pytest.raises(SystemExit, match="row 'stock_ensemble' differs"):
        main([str(reports / "new.json"), str(reports / "earlier.json")])


def test_reports_of_another_evaluation_set_are_not_paired(reports):
    _report(reports / "dev.json", json.loads((reports / "new.json").read_text())["rows"], evaluate="dev")
    with pytest.raises(SystemExit, match="differ in evaluate"):
        main([str(reports / "dev.json"), str(reports / "earlier.json")])


def test_the_summary_entry_of_the_earlier_report_gets_the_comparisons_and_the_new_report(reports):
    summary = reports / "summary.json"
    earlier_md = str((reports / "earlier.md").resolve())  # outside the repository: named by its absolute path
    other = {"dataset": "acdc", "preset": "proxy", "labeled": 7, "report": "elsewhere.md"}
    summary.write_text(json.dumps({"entries": [other, {"dataset": "isic", "preset": "proxy", "labeled": "10pct",
                                                       "report": earlier_md, "row_keys": 2,
                                                       "dumm_paper_vs_stock_fold0": {}}]}))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary)])
    entries = json.loads(summary.read_text())["entries"]
    assert entries[0] == other
    entry = entries[1]
    assert {k for k in entry if k.startswith("dumm")} == {
        "dumm_vs_stock_ensemble", "dumm_vs_stock_fold0", "dumm_vs_no_mask", "dumm_paper_vs_stock_fold0"}
    comparison = entry["dumm_vs_stock_fold0"]
    assert comparison["mean_diff"] == pytest.approx(0.04)
    assert comparison["arms"]["stock"] == pytest.approx(
        json.loads((reports / "earlier.json").read_text())["rows"]["stock"]["mean_dice_over_seeds"])
    assert comparison["reports"]["dumm"].endswith("new.md")
    assert comparison["reports"]["stock"].endswith("earlier.md")
    assert entry["dumm_paper_vs_stock_fold0"] == {}  # the entry's other comparisons are kept


def test_rows_restrict_which_new_rows_are_compared_and_replace_earlier_ones(reports, capsys):
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "dumm"])
    assert len(capsys.readouterr().out.splitlines()) == 3
    # the earlier report's no_mask replaced by a new one: compared against the earlier stock rows, checked on the rest
    new = json.loads((reports / "new.json").read_text())
    new["rows"]["no_mask"] = new["rows"]["dumm"]
    (reports / "new.json").write_text(json.dumps(new))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "no_mask"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["no_mask_vs_stock"].startswith("+4.0 [")
    with pytest.raises(SystemExit, match="share no other row"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "stock_ensemble", "no_mask"])
    with pytest.raises(SystemExit, match="--rows dumm_paper: not a row of the new report"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "dumm_paper"])


def test_another_entry_of_the_summary_can_take_the_comparisons(reports):
    summary = reports / "summary.json"
    summary.write_text(json.dumps({"entries": [{"dataset": "isic", "preset": "proxy", "labeled": "10pct",
                                                "report": str((reports / "headline.md").resolve())}]}))
    with pytest.raises(SystemExit, match="has no entry for"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary)])
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary),
          "--entry", str(reports / "headline.md")])
    entry = json.loads(summary.read_text())["entries"][0]
    assert entry["dumm_vs_stock_ensemble"]["reports"]["stock_ensemble"].endswith("earlier.md")


def test_a_shared_row_with_more_seeds_in_one_report_is_checked_on_the_seeds_both_have(reports, capsys):
    earlier = json.loads((reports / "earlier.json").read_text())
    earlier["rows"]["dumm"] = {**json.loads((reports / "new.json").read_text())["rows"]["dumm"]}
    earlier["rows"]["dumm"]["seeds"] = {"0": earlier["rows"]["dumm"]["seeds"]["0"]}  # one seed
    (reports / "earlier.json").write_text(json.dumps(earlier))
    new = json.loads((reports / "new.json").read_text())
    new["rows"]["dumm_ensemble"] = new["rows"]["stock_ensemble"]
    (reports / "new.json").write_text(json.dumps(new))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "dumm_ensemble"])
    assert "dumm_ensemble_vs_stock_ensemble" in capsys.readouterr().out
    earlier["rows"]["dumm"]["seeds"]["0"]["per_case"][0]["classes"]["1"]["Dice"] += 0.01
    (reports / "earlier.json").write_text(json.dumps(earlier))
    with pytest.raises(SystemExit, match="row 'dumm' differs"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "dumm_ensemble"])


# ------------------------------------------------------------------------------------- reports before 0.2.0
def _pre_rename(row: dict, trainer: str) -> dict:
    return {**row, "trainer": trainer}


def test_a_report_written_before_the_rename_is_compared_under_todays_row_keys(reports, capsys):
    """Then ``dumm`` was the paper's fixed mask and ``class_quantile`` the recommended method (today's ``dumm``)."""
    earlier = json.loads((reports / "earlier.json").read_text())
    ensemble = earlier["rows"]["stock_ensemble"]
    rows = {"stock_ensemble": _pre_rename(ensemble, "nnUNetTrainerStock_1000it"),
            "stock": _pre_rename(earlier["rows"]["stock"], "nnUNetTrainerStock_1000it"),
            "dumm": _pre_rename(earlier["rows"]["no_mask"], "nnUNetTrainerDUMM_1000it"),
            "class_quantile": _pre_rename(json.loads((reports / "new.json").read_text())["rows"]["dumm"],
                                          "nnUNetTrainerDUMM_classQuantile_1000it")}
    _report(reports / "old.json", rows, row_keys=None)
    # a new report with the paper's setting: paired with the old report's rows, its recommended one included
    new = {"stock_ensemble": ensemble, "dumm_paper": earlier["rows"]["no_mask"]}
    _report(reports / "paper.json", new)
    main([str(reports / "paper.json"), str(reports / "old.json"), "--rows", "dumm_paper"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"dumm_vs_dumm_paper", "dumm_paper_vs_stock_ensemble", "dumm_paper_vs_stock"}
    assert lines["dumm_vs_dumm_paper"].startswith("+1.4 [")  # (0.02 + 0.01) / 2 - 0.001
    # the old report's dumm row is the paper's setting: a new dumm_paper row that differs from it is not paired
    new["dumm_paper"] = earlier["rows"]["stock"]
    _report(reports / "paper.json", new)
    with pytest.raises(SystemExit, match="row 'dumm_paper' differs"):
        main([str(reports / "paper.json"), str(reports / "old.json"), "--rows", "stock_ensemble"])


def test_a_summary_entry_written_before_the_rename_takes_todays_keys_before_new_comparisons(reports):
    summary = reports / "summary.json"
    old_entry = {"dataset": "isic", "preset": "proxy", "labeled": "10pct",
                 "report": str((reports / "earlier.md").resolve()),
                 "dumm_vs_stock_fold0": {"mean_diff": 0.01, "arms": {"dumm": 0.8, "stock": 0.79}},
                 "class_quantile_vs_no_mask": {"mean_diff": 0.02, "arms": {"class_quantile": 0.8, "no_mask": 0.78},
                                               "reports": {"class_quantile": "a.md", "no_mask": "b.md"}}}
    summary.write_text(json.dumps({"entries": [old_entry]}))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary)])
    entry = json.loads(summary.read_text())["entries"][0]
    assert entry["row_keys"] == 2
    assert entry["dumm_paper_vs_stock_fold0"] == {"mean_diff": 0.01, "arms": {"dumm_paper": 0.8, "stock": 0.79}}
    # the old recommended-method comparison was replaced by the new report's, under the same key
    assert entry["dumm_vs_no_mask"]["reports"]["dumm"].endswith("new.md")
    assert entry["dumm_vs_stock_fold0"]["mean_diff"] == pytest.approx(0.04)
    assert not any(key.startswith("class_quantile") for key in entry)

