"""Comparing the rows of two quality reports: only paired when their shared rows agree case by case."""

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


def _report(path, rows: dict, evaluate: str = "test") -> None:
    path.write_text(json.dumps({"dataset": "isic", "evaluate": evaluate, "rows": rows}))


@pytest.fixture
def reports(tmp_path):
    rng = np.random.default_rng(0)
    ensemble = rng.uniform(0.6, 0.9, 30)
    earlier = {"stock_ensemble": _row([ensemble]), "stock": _row([ensemble - 0.03, ensemble - 0.02]),
               "no_mask": _row([ensemble + 0.001])}
    new = {"stock_ensemble": _row([ensemble]), "class_quantile": _row([ensemble + 0.02, ensemble + 0.01])}
    _report(tmp_path / "earlier.json", earlier)
    _report(tmp_path / "new.json", new)
    return tmp_path


def test_new_rows_are_compared_with_the_earlier_reports_rows(reports, capsys):
    main([str(reports / "new.json"), str(reports / "earlier.json")])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"class_quantile_vs_stock_ensemble", "class_quantile_vs_stock", "class_quantile_vs_no_mask"}
    assert lines["class_quantile_vs_stock"].startswith("+4.0 [")  # (0.02 + 0.01) / 2 + (0.03 + 0.02) / 2
    assert "(higher; 30 cases, seeds 2 vs 2)" in lines["class_quantile_vs_stock"]


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
                                                       "report": earlier_md, "dumm_vs_stock_fold0": {}}]}))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary)])
    entries = json.loads(summary.read_text())["entries"]
    assert entries[0] == other
    entry = entries[1]
    assert {k for k in entry if k.startswith("class_quantile")} == {
        "class_quantile_vs_stock_ensemble", "class_quantile_vs_stock_fold0", "class_quantile_vs_no_mask"}
    comparison = entry["class_quantile_vs_stock_fold0"]
    assert comparison["mean_diff"] == pytest.approx(0.04)
    assert comparison["arms"]["stock"] == pytest.approx(
        json.loads((reports / "earlier.json").read_text())["rows"]["stock"]["mean_dice_over_seeds"])
    assert comparison["reports"]["class_quantile"].endswith("new.md")
    assert comparison["reports"]["stock"].endswith("earlier.md")
    assert "dumm_vs_stock_fold0" in entry


def test_rows_restrict_which_new_rows_are_compared_and_replace_earlier_ones(reports, capsys):
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "class_quantile"])
    assert len(capsys.readouterr().out.splitlines()) == 3
    # the earlier report's no_mask replaced by a new one: compared against the earlier stock rows, checked on the rest
    new = json.loads((reports / "new.json").read_text())
    new["rows"]["no_mask"] = new["rows"]["class_quantile"]
    (reports / "new.json").write_text(json.dumps(new))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "no_mask"])
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["no_mask_vs_stock"].startswith("+4.0 [")
    with pytest.raises(SystemExit, match="share no other row"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "stock_ensemble", "no_mask"])
    with pytest.raises(SystemExit, match="--rows dumm: not a row of the new report"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "dumm"])


def test_another_entry_of_the_summary_can_take_the_comparisons(reports):
    summary = reports / "summary.json"
    summary.write_text(json.dumps({"entries": [{"dataset": "isic", "preset": "proxy", "labeled": "10pct",
                                                "report": str((reports / "headline.md").resolve())}]}))
    with pytest.raises(SystemExit, match="has no entry for"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary)])
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--summary", str(summary),
          "--entry", str(reports / "headline.md")])
    entry = json.loads(summary.read_text())["entries"][0]
    assert entry["class_quantile_vs_stock_ensemble"]["reports"]["stock_ensemble"].endswith("earlier.md")


def test_a_shared_row_with_more_seeds_in_one_report_is_checked_on_the_seeds_both_have(reports, capsys):
    earlier = json.loads((reports / "earlier.json").read_text())
    earlier["rows"]["class_quantile"] = {**json.loads((reports / "new.json").read_text())["rows"]["class_quantile"]}
    earlier["rows"]["class_quantile"]["seeds"] = {"0": earlier["rows"]["class_quantile"]["seeds"]["0"]}  # one seed
    (reports / "earlier.json").write_text(json.dumps(earlier))
    new = json.loads((reports / "new.json").read_text())
    new["rows"]["class_quantile_ensemble"] = new["rows"]["stock_ensemble"]
    (reports / "new.json").write_text(json.dumps(new))
    main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "class_quantile_ensemble"])
    assert "class_quantile_ensemble_vs_stock_ensemble" in capsys.readouterr().out
    earlier["rows"]["class_quantile"]["seeds"]["0"]["per_case"][0]["classes"]["1"]["Dice"] += 0.01
    (reports / "earlier.json").write_text(json.dumps(earlier))
    with pytest.raises(SystemExit, match="row 'class_quantile' differs"):
        main([str(reports / "new.json"), str(reports / "earlier.json"), "--rows", "class_quantile_ensemble"])
