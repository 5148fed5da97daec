"""Finding damaged files: sizes and CRC-32 recorded when a result was written, checked before it is trusted.

A partial copy or a truncated file changes the size (checked every time, cheaply); bit rot keeps the size and is
found by the CRC-32 (reads every byte, so it is checked where asked: ``--verify`` of the command-line tools, and
for the pseudo-label cache at every pass). What a check finds damaged is removed and computed again.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DamagedFile", "first_damaged", "fingerprint"]


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
