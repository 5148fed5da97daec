"""The pseudo-label cache: one entry per unlabeled case in the student's preprocessed space, on disk.

Each entry is written in nnU-Net's blosc2 format, so that a training patch reads only its chunks, and holds only
what the trainer reads (``CacheContents``):

* ``<case>_maps.b2nd``: uint8 ``(1 + P, *spatial)``: the pseudo-label, then each of the cache's pixel measures as
  ``round(255 u)`` (the trainer's one by default);
* ``<case>_means.b2nd``, only where a later SUS round adds the student to the ensemble: float16 ``(C, *spatial)``,
  the ensemble's mean softmax, then the other means its pixel measure needs; ``<case>_votes.b2nd``: uint8
  ``(M, *spatial)``, each member's argmax, where the measure is ``vote``. The teachers never run twice;
* ``<case>.pkl``: every sample measure, the members, class locations of the pseudo-label (for nnU-Net's sampler),
  the recorded size and CRC-32 of the files, and the fingerprint of the preprocessed image it was computed from;
  written last, so it marks a finished entry.

A cache folder is keyed by everything that produced it (``sources.json``: the teachers' checkpoints, mirroring, the
preprocessing, the contents, the layout). Files are written under temporary names and renamed; several processes
(two folds started together, DDP ranks, sharded jobs) fill one cache by claiming cases, so each case is predicted
once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from nnunet_dumm.claims import Claims, scratch_folder
from nnunet_dumm.integrity import DamagedFile, fingerprint, first_damaged
from nnunet_dumm.uncertainty import (
    PIXEL_MEASURE_SUMS,
    SAMPLE_MEASURE_SUMS,
    EnsembleStatistics,
    PixelUncertainty,
    SampleUncertainty,
)

__all__ = ["CACHE_FORMAT", "CacheContents", "CorruptCacheEntry", "PseudoLabelCache", "sources_key"]

_ENTRY_FILES = ("_maps.b2nd", "_means.b2nd", "_votes.b2nd")
# part of every cache key: a cache written in another layout lies in another folder and is never read
CACHE_FORMAT = 3


@dataclass(frozen=True)
class CacheContents:
    """What the entries of a cache keep besides the pseudo-label and the sample measures: the pixel measures the
    trainer reads (channels 1.. of the maps) and, where a later round adds the student, the means it needs (``"p"``,
    the mean softmax, plus the sums of ``uncertainty.SUMS`` its pixel measure needs)."""

    pixel_measures: tuple[PixelUncertainty, ...]
    means: tuple[str, ...] = ()

    @classmethod
    def of_round(cls, config, round_index: int) -> CacheContents:
        """The contents a ``DUMMConfig``'s round needs: its pixel measure, and the means when the student joins the
        ensemble at a later round. The teachers' pass (round 0) keeps them whenever the student joins, so that a
        one-round variant (``_noSUS``) shares the pass of the two-round trainers."""
        later_round = config.student_joins_ensemble and (round_index == 0
                                                         or round_index + 1 < config.schedule.num_rounds)
        measure = PixelUncertainty(config.pixel_uncertainty)
        return cls((measure,), ("p", *PIXEL_MEASURE_SUMS[measure]) if later_round else ())

    def to_dict(self) -> dict:
        return {"pixel_measures": [m.value for m in self.pixel_measures], "means": list(self.means)}

    @classmethod
    def from_dict(cls, d: dict) -> CacheContents:
        return cls(tuple(PixelUncertainty(m) for m in d["pixel_measures"]), tuple(d["means"]))


class CorruptCacheEntry(DamagedFile):
    """A cache entry cannot be read (truncated copy, bit rot); the message names the file. Rerunning recomputes it."""


def sources_key(sources: dict) -> str:
    return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:12]


def _disk_full_message(path: Path) -> str:
    return (f"no space left on the device while writing {path}; nothing half-written was kept. Free disk space and "
            "rerun the same command: finished cases are kept and the pass resumes")


class PseudoLabelCache:
    """A folder of cache entries (see the module docstring) plus ``sources.json``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @cached_property
    def contents(self) -> CacheContents:
        """What the entries keep, as recorded in ``sources.json`` when the pass began."""
        return CacheContents.from_dict(json.loads((self.folder / "sources.json").read_text())["contents"])

    # --------------------------------------------------------------------------------------------- reading
    def marker(self, case: str) -> Path:
        return self.folder / f"{case}.pkl"

    def done(self, case: str) -> bool:
        return self.marker(case).is_file()

    def intact(self, case: str, checksum: bool = True) -> bool:
        """Finished and undamaged: every file has the size (and CRC-32) recorded when it was written."""
        if not self.done(case):
            return False
        try:
            properties = self._properties(case)
        except CorruptCacheEntry:
            return False
        return first_damaged(self.folder, properties["files"], checksum) is None

    def current(self, case: str, image: object) -> bool:
        """Intact and computed from the preprocessed image whose fingerprint is ``image`` (a case preprocessed
        again from a changed raw file has another one)."""
        return self.intact(case) and self._properties(case).get("image") == image

    def _properties(self, case: str) -> dict:
        try:
            with open(self.marker(case), "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
            raise self._corrupt(case, self.marker(case), e) from e

    def properties(self, case: str) -> dict:
        """The entry's properties; raises ``CorruptCacheEntry`` if a file of the entry lost bytes or vanished."""
        properties = self._properties(case)
        damaged = first_damaged(self.folder, properties["files"], checksum=False)
        if damaged is not None:
            raise self._corrupt(case, damaged, "size differs from what was written" if damaged.is_file()
                                else "missing")
        return properties

    def _open(self, case: str, suffix: str):
        import blosc2

        path = self.folder / f"{case}{suffix}"
        try:
            return blosc2.open(urlpath=str(path), mode="r", dparams={"nthreads": 1}, mmap_mode="r")
        except Exception as e:  # blosc2 raises anything from RuntimeError to ValueError on a damaged file
            raise self._corrupt(case, path, e) from e

    def _read(self, case: str, suffix: str, index=slice(None)) -> np.ndarray:
        array = self._open(case, suffix)
        try:
            return array[index]
        except Exception as e:
            raise self._corrupt(case, self.folder / f"{case}{suffix}", e) from e

    def _corrupt(self, case: str, path: Path, reason) -> CorruptCacheEntry:
        return CorruptCacheEntry(f"{path}: cache entry is damaged ({reason}); rerun the pass "
                                 f"(nnUNetv2_dumm_pseudo_label, or training) to recompute {case}")

    def maps(self, case: str):
        """The memory-mapped blosc2 array of pseudo-label and pixel measures (read chunk by chunk)."""
        return self._open(case, "_maps.b2nd")

    def pseudo_label(self, case: str) -> np.ndarray:
        return self._read(case, "_maps.b2nd", 0)

    def channel(self, measure: PixelUncertainty | str) -> int:
        """The channel of a pixel measure in the maps; a measure the cache does not keep is an error that says so."""
        measures = self.contents.pixel_measures
        if PixelUncertainty(measure) not in measures:
            raise ValueError(f"{self.folder} keeps the pixel measure(s) {[m.value for m in measures]}, not "
                             f"{PixelUncertainty(measure).value}")
        return 1 + measures.index(PixelUncertainty(measure))

    def pixel_uncertainty(self, case: str, measure: PixelUncertainty | str) -> np.ndarray:
        """uint8 ``round(255 u)`` of one measure."""
        return self._read(case, "_maps.b2nd", self.channel(measure))

    def statistics(self, case: str) -> EnsembleStatistics:
        """The ensemble's statistics restored from the cached means (float16) and member argmax maps: what a later
        round adds the student to."""
        properties, means = self.properties(case), self.contents.means
        if not means:
            raise ValueError(f"{self.folder} keeps no ensemble statistics: its trainer adds no student to them")
        stacked, num_classes = self._read(case, "_means.b2nd"), properties["num_classes"]
        arrays, start = {}, 0
        for name in (n for n in means if n != "votes"):
            width = 1 if name == "p2" else num_classes
            arrays[name], start = stacked[start:start + width], start + width
        if "votes" in means:
            arrays["votes"] = self._read(case, "_votes.b2nd")
        return EnsembleStatistics.from_cached_means(arrays, properties["num_members"])

    def sample_uncertainty(self, cases: Sequence[str], measure: SampleUncertainty | str) -> dict[str, float | None]:
        """Each case's U(x); None where the entry could not compute it (a later round's entry without the sums
        the measure needs)."""
        key = f"U_{SampleUncertainty(measure).value}"
        return {case: self.properties(case).get(key) for case in cases}

    # --------------------------------------------------------------------------------------------- writing
    def write(self, case: str, stats: EnsembleStatistics, members: Sequence[str], patch_size: Sequence[int],
              class_location_keys: Sequence, image: object = None) -> None:
        """Writes one case's entry (the cache's ``contents``): every file under a temporary name, renamed into
        place, the marker last. ``image``: the fingerprint of the preprocessed image it was computed from."""
        import blosc2
        from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
        from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params

        contents = self.contents
        pseudo_label = stats.pseudo_label()
        maps = torch.stack([pseudo_label, *(torch.round(stats.pixel_uncertainty(m) * 255).to(torch.uint8)
                                            for m in contents.pixel_measures)]).numpy()
        arrays = {"_maps.b2nd": maps}
        if contents.means:
            means = stats.cached_means(contents.means)
            arrays["_means.b2nd"] = np.concatenate([means[n] for n in contents.means if n != "votes"])
            if "votes" in contents.means:
                arrays["_votes.b2nd"] = means["votes"]
        properties = {
            "members": list(members),
            "num_members": stats.num_members,
            "num_classes": stats.num_classes,
            **{f"U_{m.value}": stats.sample_uncertainty(m) for m in SampleUncertainty
               if stats.has(SAMPLE_MEASURE_SUMS[m])},
            # nnU-Net's own sampler, as its preprocessing computes class locations of real segmentations
            # (coordinates with a leading channel index, as nnU-Net's loader expects them)
            "class_locations": DefaultPreprocessor._sample_foreground_locations(
                pseudo_label.numpy()[None], list(class_location_keys)),
            "image": image,
            "spatial_shape": tuple(stats.spatial),
        }
        with scratch_folder(self.folder) as scratch:
            temporary = {suffix: scratch / f"{case}{suffix}" for suffix in (*arrays, ".pkl")}
            try:
                for suffix, array in arrays.items():
                    # nnU-Net's chunking rule for (channels, *3-D spatial) arrays and the configuration's patches
                    blocks, chunks = comp_blosc2_params(array.shape, patch_size, array.itemsize)
                    blosc2.asarray(np.ascontiguousarray(array), urlpath=str(temporary[suffix]), chunks=chunks,
                                   blocks=blocks, mode="w",
                                   cparams={"codec": blosc2.Codec.LZ4HC, "clevel": 5, "nthreads": 1})
                properties["files"] = fingerprint(temporary[s] for s in arrays)  # named as they will be in place
                with open(temporary[".pkl"], "wb") as f:
                    pickle.dump(properties, f)
                for suffix, path in temporary.items():  # the marker (.pkl) goes last
                    os.replace(path, self.folder / f"{case}{suffix}")
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise OSError(errno.ENOSPC, _disk_full_message(self.folder / case)) from e
                raise

    def remove(self, case: str) -> None:
        self.marker(case).unlink(missing_ok=True)  # first, so a half-removed entry is never read as finished
        for suffix in _ENTRY_FILES:
            (self.folder / f"{case}{suffix}").unlink(missing_ok=True)

    def remove_leftovers(self) -> None:
        """Temporary files and claims of jobs killed mid-write (only when no job is writing)."""
        shutil.rmtree(self.folder / ".partial", ignore_errors=True)
        Claims(self.folder).remove_all()

    # --------------------------------------------------------------------------------------------- claims
    def claim(self, case: str) -> bool:
        """Takes a case for this process (``nnunet_dumm.claims``); False if a live process holds it."""
        return Claims(self.folder).claim(case)

    def release(self, case: str) -> None:
        Claims(self.folder).release(case)

    def write_sources(self, sources: dict) -> None:
        """Records what produced the cache (with its ``contents``); refuses to add entries of other models to an
        existing cache."""
        self.folder.mkdir(parents=True, exist_ok=True)
        sources_file = self.folder / "sources.json"
        if sources_file.is_file():
            if json.loads(sources_file.read_text()) != json.loads(json.dumps(sources)):
                raise RuntimeError(f"{sources_file}: the cache was made by other models; refusing to mix them")
            return
        tmp = sources_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sources, indent=2))
        os.replace(tmp, sources_file)
