"""The annotation queue: ``nnUNetv2_dumm_suggest`` ranks the pool by the cached teachers' disagreement, without
running a model, and hands over pictures and the raw files."""

from __future__ import annotations

import json

from nnunet_dumm.cache import PseudoLabelCache
from nnunet_dumm.uncertainty import SampleUncertainty
from tests.conftest import run_console_script


def test_suggest_lists_the_most_uncertain_cases_with_pictures_and_copies(pipeline, tmp_path):
    cache_folder = pipeline["teacher_cache"]
    cache = PseudoLabelCache(cache_folder)
    cases = sorted(p.stem for p in cache_folder.glob("*.pkl"))
    uncertainty = cache.sample_uncertainty(cases, SampleUncertainty.DICE)
    expected = sorted(cases, key=lambda c: (-uncertainty[c], c))[:3]

    result = run_console_script(["nnUNetv2_dumm_suggest", "-d", "950", "-c", "2d", "-tr", "nnUNetTrainerDUMM_test",
                                 "-n", "3", "-o", str(tmp_path / "queue"), "--copy-to", str(tmp_path / "annotate")])
    assert result.returncode == 0, result.stderr[-3000:]
    suggestions = json.loads((tmp_path / "queue" / "suggestions.json").read_text())["suggestions"]
    assert [s["case"] for s in suggestions] == expected
    assert [s["rank"] for s in suggestions] == [1, 2, 3]
    assert all(0 <= s["mean_pixel_uncertainty"] <= 1 and 0 <= s["foreground_share"] <= 1 for s in suggestions)
    for s in suggestions:
        assert (tmp_path / "queue" / f"{s['rank']:03d}_{s['case']}.png").stat().st_size > 5_000
        assert s["case"] in result.stdout
    assert sorted(p.name for p in (tmp_path / "annotate").iterdir()) == sorted(f"{c}_0000.nii.gz" for c in expected)


def test_suggest_before_the_pass_is_complete_says_which_command_completes_it(pipeline, tmp_path):
    cache_folder = pipeline["teacher_cache"]
    entry = sorted(cache_folder.glob("*.pkl"))[0]
    entry.rename(entry.with_suffix(".hidden"))  # as if the pass had not reached this case yet
    try:
        result = run_console_script(["nnUNetv2_dumm_suggest", "-d", "950", "-c", "2d", "-tr",
                                     "nnUNetTrainerDUMM_test", "-o", str(tmp_path / "queue")])
    finally:
        entry.with_suffix(".hidden").rename(entry)
    assert result.returncode == 2
    assert f"no pseudo-labels for 1 of 10 unlabeled cases yet (e.g. {entry.stem})" in result.stderr
    assert "run nnUNetv2_dumm_pseudo_label -d Dataset950_DUMMDemo -c 2d -tr nnUNetTrainerDUMM_test" in result.stderr
    assert not (tmp_path / "queue").exists()
