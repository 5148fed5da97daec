"""Finding damaged files: results by the sizes and CRC-32 recorded when they were written, raw inputs by their own
checksums.

Results: a partial copy or a truncated file changes the size (checked every time, cheaply); bit rot keeps the size
and is found by the CRC-32 (reads every byte, so it is checked where asked: ``--verify`` of the command-line tools,
and for the pseudo-label cache at every pass). What a check finds damaged is removed and computed again.

Raw inputs: ``raw_image_defect`` checks the compressed streams whose checksums nnU-Net's readers skip.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = ["DamagedFile", "first_damaged", "fingerprint", "raw_image_defect"]

# Input is inflated in blocks of this size: deflate expands at most ~1032-fold, so one block's output stays < 70 MB.
_INFLATE_BLOCK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER_LINE = 1 << 16


class DamagedFile(RuntimeError):
    """A result file cannot be read or differs from what was written; the message names it and the remedy."""


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc


def fingerprint(paths: Iterable[Path]) -> dict[str, tuple[int, int]]:
    """``{file name: (size, CRC-32)}`` of freshly written files."""
    return {p.name: (p.stat().st_size, _crc32(p)) for p in paths}


def first_damaged(folder: Path, recorded: dict[str, tuple[int, int]], checksum: bool) -> Path | None:
    """The first file of ``recorded`` in ``folder`` that is missing or differs (size; CRC-32 with ``checksum``)."""
    for name, (size, crc) in recorded.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or (checksum and _crc32(path) != crc):
            return path
    return None


def raw_image_defect(path: Path) -> str | None:
    """Why a raw image fails its own integrity checks (a truncated or corrupt compressed stream); None if it passes
    them or its format has none.

    What each file type nnU-Net reads can tell, and who checks it:

    * gzip (``.nii.gz``, any ``.gz``): checked here, every member inflated to its end and compared with the CRC-32
      and length in its trailer. SimpleITK reads a truncated file as an image padded with zeros and nibabel stops
      before the trailer, so neither compares the CRC.
    * ``.mha`` with ``CompressedData = True``: its zlib stream, checked here against its Adler-32; ITK reports a
      damaged stream on the console but returns the image.
    * ``.png`` (CRC-32 per chunk), gzip-encoded ``.nrrd``, and truncated ``.nii``, ``.tif``, uncompressed ``.mha``
      and ``.nrrd``: their readers raise by themselves.
    * A flipped bit in uncompressed data (``.nii``, raw ``.mha``/``.nrrd``, ``.tif``, ``.bmp``, ``.gipl``) has no
      checksum that could find it.
    """
    name = path.name.lower()
    if name.endswith(".gz"):
        return _gzip_defect(path)
    if name.endswith(".mha"):
        return _metaimage_defect(path)
    return None


def _gzip_defect(path: Path) -> str | None:
    with open(path, "rb") as f:
        data = f.read(_INFLATE_BLOCK)
        # A file without gzip's magic bytes is read as it is by zlib's gzread (ITK), so only its reader can judge it.
        # Members follow one another; like gzread, bytes after the last member are ignored.
        while data.startswith(_GZIP_MAGIC):
            defect, data = _inflate_stream(f, data, zlib.MAX_WBITS | 16, "gzip", "CRC-32")
            if defect is not None:
                return defect
    return None


def _metaimage_defect(path: Path) -> str | None:
    """A MetaImage's text header ends with ``ElementDataFile = LOCAL`` when its data follow in the same file."""
    with open(path, "rb") as f:
        header = {}
        while "ElementDataFile" not in header and (line := f.readline(_MAX_HEADER_LINE)):
            key, _, value = line.decode("latin-1").partition("=")
            header[key.strip()] = value.strip()
        if header.get("ElementDataFile") != "LOCAL" or header.get("CompressedData", "").lower() != "true":
            return None
        defect, _ = _inflate_stream(f, f.read(_INFLATE_BLOCK), zlib.MAX_WBITS, "zlib", "Adler-32")
    return defect


def _inflate_stream(f: BinaryIO, data: bytes, wbits: int, stream: str, checksum: str) -> tuple[str | None, bytes]:
    """Inflates one compressed stream that starts at ``data`` and goes on in ``f``, output discarded.

    Returns:
        What is wrong with the stream (None if it ends with a matching checksum), and the bytes after it.
    """
    inflater = zlib.decompressobj(wbits)
    while not inflater.eof:
        if not data:
            return f"truncated {stream} stream (the file ends before its compressed data do)", b""
        try:
            inflater.decompress(data)
        except zlib.error as e:
            return _inflate_error(e, stream, checksum), b""
        data = f.read(_INFLATE_BLOCK)
    return None, inflater.unused_data + data


def _inflate_error(error: zlib.error, stream: str, checksum: str) -> str:
    if "incorrect data check" in str(error):
        return f"{checksum} mismatch (the {stream} data were damaged after they were written)"
    if "incorrect length check" in str(error):
        return f"length mismatch (the {stream} data were damaged after they were written)"
    return f"corrupt {stream} data ({error})"
