"""Several processes filling one folder: claim files, so each item is done once, and per-process scratch folders.

Two folds trained at once, DDP ranks and sharded jobs share the unlabeled preprocessing and the pseudo-label
passes. A process takes an item by creating ``<folder>/.claims/<item>`` exclusively (a hard link, atomic on local
and NFS file systems, with the owner already written); it releases the claim once the item's result is in place. A
claim whose process is gone (same host, pid not alive) or that is older than ``NNUNET_DUMM_CLAIM_TIMEOUT_S`` seconds
(default 3600; other hosts) is stale and may be taken over: redoing an item is harmless, because results are
renamed into place.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Claims", "process_scratch_folder", "remove_stale_scratch_folders", "scratch_folder"]


class Claims:
    """Exclusive claims on items (case ids) of one output folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / ".claims"

    def claim(self, item: str) -> bool:
        """Takes ``item`` for this process; False if another live process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / item
        # the claim appears with its owner already in it (a hard link of a written file is atomic and fails if the
        # claim exists), so another process never reads an empty claim and takes it for a torn one
        mine = self.folder / f".{item}.{_owner().replace(' ', '_')}"
        mine.write_text(_owner())
        try:
            for _ in range(2):
                try:
                    os.link(mine, path)
                    return True
                except FileExistsError:
                    if not _is_stale(path):
                        return False
                    path.unlink(missing_ok=True)
            return False
        finally:
            mine.unlink(missing_ok=True)

    def release(self, item: str) -> None:
        (self.folder / item).unlink(missing_ok=True)

    def remove_all(self) -> None:
        """Only when no process is working on the folder (e.g. after every sharded job finished)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell; the timeout decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _is_stale(path: Path) -> bool:
    try:
        host, pid = path.read_text().split()
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return True  # vanished or torn: a new claim decides
    return not _alive(host, int(pid)) or age > float(os.environ.get("NNUNET_DUMM_CLAIM_TIMEOUT_S", 3600))


def process_scratch_folder(folder: str | Path) -> Path:
    """``<folder>/.partial/<host>_<pid>``: where this process writes before renaming results into place."""
    scratch = Path(folder) / ".partial" / _owner().replace(" ", "_")
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


@contextmanager
def scratch_folder(folder: str | Path) -> Iterator[Path]:
    """This process's scratch folder (``process_scratch_folder``) for a block of writes, removed when the block ends,
    however it ends, with whatever a failed write left in it.

    One block at a time per process and folder: the first block to end removes the folder under any other. The
    shared ``<folder>/.partial`` stays: removing it could race with another process creating its own folder there.
    """
    scratch = process_scratch_folder(folder)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_scratch_folders(folder: str | Path) -> None:
    """Scratch folders of processes that were killed (same host, pid gone)."""
    partial = Path(folder) / ".partial"
    if not partial.is_dir():
        return
    for scratch in partial.iterdir():
        host, _, pid = scratch.name.rpartition("_")
        if pid.isdigit() and not _alive(host, int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)
