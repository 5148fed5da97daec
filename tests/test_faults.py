"""Faults of the disk: a full disk while preprocessing unlabeled images or writing pseudo-labels, and damaged files
(a partial copy, bit rot) of finished cases. Each gives a clear message naming the file, leaves nothing torn, and
the same command run again resumes or recomputes exactly the damaged part."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from tests.conftest import TINY_SPEC, run_console_script

DATASET = "Dataset950_DUMMDemo"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".partial" not in p.parts and ".claims" not in p.parts}


@pytest.fixture()
def unlabeled_copy(planned, tmp_path):
    """The preprocessed unlabeled folder, with its original kept aside and put back after the test."""
    from nnunet_dumm.unlabeled import unlabeled_preprocessed_folder

    folder = unlabeled_preprocessed_folder(DATASET, "nnUNetPlans_2d")
    reference = tmp_path / "reference"
    shutil.copytree(folder, reference)
    try:
        yield folder, reference
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.move(reference, folder)


def test_disk_full_while_preprocessing_unlabeled_then_rerun(unlabeled_copy, monkeypatch):
    import blosc2

    from nnunet_dumm.unlabeled import completed_cases, preprocess_unlabeled

    folder, reference = unlabeled_copy
    shutil.rmtree(folder)
    real, calls = blosc2.asarray, []

    def full_disk_on_the_fifth_array(*args, **kwargs):
        if "urlpath" in kwargs:  # files written (nnU-Net also compresses in memory to pick a filter)
            calls.append(1)
        if len(calls) == 5:  # the third case's image: two cases are finished
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(blosc2, "asarray", full_disk_on_the_fifth_array)
    with pytest.raises(OSError, match="no space left on the device while preprocessing .* rerun"):
        preprocess_unlabeled(DATASET, "2d", verbose=False)
    assert len(completed_cases(folder)) == 2
    assert not [p for p in (folder / ".partial").rglob("*") if p.is_file()]  # nothing half-written
    monkeypatch.setattr(blosc2, "asarray", real)
    preprocess_unlabeled(DATASET, "2d", verbose=False)
    assert _files(folder) == _files(reference)


@pytest.mark.parametrize("damage", ["truncated", "bit_rot"])
def test_damaged_preprocessed_case_is_found_and_redone(unlabeled_copy, damage):
    folder, reference = unlabeled_copy
    victim = folder / "demo_ul_003.b2nd"
    data = bytearray(victim.read_bytes())
    if damage == "truncated":
        victim.write_bytes(data[: len(data) // 2])  # a partial copy
    else:
        data[len(data) // 2] ^= 0xFF  # one flipped byte: same size
        victim.write_bytes(bytes(data))
    command = ["nnUNetv2_dumm_preprocess_unlabeled", "-d", "950", "-c", "2d"]
    if damage == "bit_rot":  # the size check every run does cannot see it; --verify reads every byte
        assert "damaged" not in run_console_script(command).stdout
        command.append("--verify")
    rerun = run_console_script(command)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{victim}: damaged" in rerun.stdout
    assert "0 new, 1 preprocessed again" in rerun.stdout
    assert _files(folder) == _files(reference)


def test_damaged_pseudo_label_entry_is_named_on_read_and_recomputed(pipeline, tmp_path):
    from nnunet_dumm.cache import CorruptCacheEntry, PseudoLabelCache

    cache_folder = pipeline["teacher_cache"]
    reference = tmp_path / "reference"
    shutil.copytree(cache_folder, reference)
    try:
        victim = cache_folder / "demo_ul_002_maps.b2nd"
        victim.write_bytes(victim.read_bytes()[:100])
        with pytest.raises(CorruptCacheEntry, match=str(victim)):
            PseudoLabelCache(cache_folder).pseudo_label("demo_ul_002")
        rerun = run_console_script(["nnUNetv2_dumm_pseudo_label", "-d", "950", "-c", "2d", "-tr",
                                    "nnUNetTrainerDUMM_test", "-device", "cpu"])
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "demo_ul_002" in rerun.stdout and "damaged" in rerun.stdout
        assert "1 cases in" in rerun.stdout  # only the damaged case was predicted again
        assert _files(cache_folder) == _files(reference)
    finally:
        shutil.rmtree(cache_folder, ignore_errors=True)
        shutil.move(reference, cache_folder)


def test_disk_full_during_the_pass_stops_clearly_and_a_rerun_resumes(pipeline, tmp_path, monkeypatch):
    import blosc2

    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.cli import pseudo_label_entry

    cache_folder = pipeline["teacher_cache"]
    reference = tmp_path / "reference"
    shutil.move(cache_folder, reference)
    try:
        real, calls = blosc2.asarray, []

        def full_disk_after_four_cases(*args, **kwargs):
            calls.append(1)
            if len(calls) == 9:  # two arrays per case (maps, means): the fifth case's first array
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)

        monkeypatch.setattr(blosc2, "asarray", full_disk_after_four_cases)
        argv = ["-d", "950", "-c", "2d", "-tr", "nnUNetTrainerDUMM_test", "-device", "cpu"]
        with pytest.raises(OSError, match="no space left on the device.*rerun the same command"):
            pseudo_label_entry(argv)
        cache = PseudoLabelCache(cache_folder)
        assert sum(cache.done(f"demo_ul_{i:03d}") for i in range(TINY_SPEC.num_unlabeled)) == 4
        assert not [p for p in (cache_folder / ".partial").rglob("*") if p.is_file()]
        monkeypatch.setattr(blosc2, "asarray", real)
        pseudo_label_entry(argv)
        assert _files(cache_folder) == _files(reference)
    finally:
        shutil.rmtree(cache_folder, ignore_errors=True)
        shutil.move(reference, cache_folder)
