"""What every benchmark script shares: where it works and how it records what ran.

nnU-Net's folders inside a work directory (and the benchmarks' trainer presets on ``nnUNet_extTrainer``), seeding,
resumable steps with their wall times, machine and git provenance, JSON writing and worker processes. The rest lives
with its concern: ``rows.py`` (what a quality report compares), ``datasets.py`` (conversion, dev split, oracle
twin, plans variants), ``stats.py`` (metrics, aggregates, bootstrap), ``reports.py`` (Markdown/JSON/PNG, summary.json,
reading earlier reports). Nothing here runs at import time; nnU-Net is imported lazily, after the path variables are
set.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = [
    "BENCHMARK_TRAINER_FOLDER",
    "REPO_ROOT",
    "RESULTS_DIR",
    "StepLog",
    "command_line",
    "data_augmentation_in_process",
    "enable_benchmark_trainers",
    "git_commit",
    "machine_info",
    "peak_rss_bytes",
    "repo_relative",
    "run_subprocess_json",
    "seed_everything",
    "set_nnunet_paths",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------------------------------------ environment
def set_nnunet_paths(work_dir: Path) -> dict[str, Path]:
    """Points nnU-Net's three folders into ``work_dir`` (before nnunetv2 reads them) and enables our trainers."""
    folders = {}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = work_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)
        folders[name] = folder
    # spawn pools for fingerprinting, validation export and metrics: one worker is fastest on 2 cores
    # (NNUNET_NOTES.md section 8); a GPU machine may export more
    os.environ.setdefault("nnUNet_def_n_proc", "1" if (os.cpu_count() or 1) <= 4 else "4")
    enable_benchmark_trainers()
    return folders


# the folder through which nnU-Net finds benchmarks/trainers.py's budget presets
BENCHMARK_TRAINER_FOLDER = str(REPO_ROOT / "benchmarks" / "_nnunet_ext")


def enable_benchmark_trainers() -> str:
    """Adds the package's trainers and the benchmarks' budget presets to ``nnUNet_extTrainer`` in this process (and
    the processes it starts); returns the value."""
    from nnunet_dumm.discovery import enable_trainer_discovery

    folders = enable_trainer_discovery().split(os.pathsep)
    if BENCHMARK_TRAINER_FOLDER not in folders:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*folders, BENCHMARK_TRAINER_FOLDER])
    return os.environ["nnUNet_extTrainer"]


def data_augmentation_in_process(device: str) -> None:
    """On a CPU, data augmentation in the main process (~25 % faster on 2 cores). Only after planning: nnU-Net
    2.8.1's planner crashes with ``nnUNet_n_proc_DA=0`` (NNUNET_NOTES.md section 8)."""
    if device == "cpu":
        os.environ.setdefault("nnUNet_n_proc_DA", "0")


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch. nnU-Net seeds nothing itself; with data augmentation in the main process
    (CPU) this makes a training run repeatable up to nondeterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------ provenance
def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed, relative to the repository root when the script lives there."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(REPO_ROOT))
    except ValueError:
        pass
    return "python " + " ".join(shlex.quote(a) for a in argv)


@functools.cache
def git_commit() -> str:
    """``HEAD`` of the repository, with ``+dirty`` when tracked files differ from it (read-only git calls).

    Cached: the scripts call it when they start, so a report written hours later names the code that ran, not a
    commit made meanwhile."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    """CPU model and cores, memory, torch/nnU-Net versions and the compute device, for every report."""
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "cpu_model": _cpu_model(),
        "cpu_cores_usable": cores,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "platform": platform.platform(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    for package in ("nnunetv2", "medpy"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # not installed
            info[package] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["env"] = {k: os.environ[k] for k in ("nnUNet_n_proc_DA", "nnUNet_def_n_proc", "OMP_NUM_THREADS")
                   if k in os.environ}
    return info


# ------------------------------------------------------------------------------------------------ steps
@dataclass
class StepLog:
    """Numbered, resumable steps with wall times, persisted in ``<work_dir>/benchmark_steps.json``.

    A step that finds its result on disk is reported as skipped with the wall time of the run that did the work
    (if that run was recorded), so a resumed benchmark still reports what each step cost. ``steps`` holds every step
    recorded in the work dir (other scripts and other arms run there too); a report covers ``of_this_run``.
    """

    path: Path
    total: int
    steps: dict = field(default_factory=dict)
    _index: int = 0
    _this_run: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path.is_file():
            self.steps = json.loads(self.path.read_text())
        # benchmarks/pause.py stops this process group while it runs other work, and logs the pauses
        (self.path.parent / "benchmark.pid").write_text(str(os.getpgid(0)))

    def paused_between(self, start: float, end: float) -> float:
        """Seconds of [start, end] during which the benchmark was stopped; pauses logged by commands that ran at the
        same time overlap, so their union counts, not their sum."""
        pauses = self.path.parent / "pauses.jsonl"
        if not pauses.is_file():
            return 0.0
        intervals = sorted((max(start, p["start"]), min(end, p["end"]))
                           for p in map(json.loads, pauses.read_text().splitlines()))
        total, covered_until = 0.0, start
        for begin, finish in intervals:
            begin = max(begin, covered_until)
            if finish > begin:
                total += finish - begin
                covered_until = finish
        return total

    @contextmanager
    def step(self, name: str, description: str) -> Iterator[dict]:
        """Times one step. The body may set ``record["skipped"] = True`` when it found its result on disk."""
        self._index += 1
        print(f"\n=== [{self._index}{f'/{self.total}' if self.total else ''}] {description}", flush=True)
        record: dict = {"skipped": False}
        start, wall_start = time.perf_counter(), time.time()
        yield record
        elapsed = time.perf_counter() - start
        paused = self.paused_between(wall_start, time.time())
        previous = self.steps.get(name, {})
        if record["skipped"] and previous.get("wall_s") is not None and not previous.get("skipped"):
            entry = {**previous, "resumed_skip_s": round(elapsed, 1)}
        else:
            entry = {"description": description, "wall_s": round(elapsed - paused, 1), "skipped": record["skipped"],
                     "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "git_commit": git_commit()}  # the code that did this step (a resumed run may be newer)
            if paused:
                entry["paused_s"] = round(paused, 1)  # benchmarks/pause.py ran other work meanwhile
        entry.update({k: v for k, v in record.items() if k != "skipped"})
        self.steps[name] = entry
        if name not in self._this_run:
            self._this_run.append(name)
        write_json(self.path, self.steps)
        note = " (result found on disk, skipped)" if record["skipped"] else ""
        print(f"--- done in {elapsed:.1f} s{note}", flush=True)

    @property
    def of_this_run(self) -> dict:
        """The steps this invocation went through, in order; one it found done keeps the earlier run's timing."""
        return {name: self.steps[name] for name in self._this_run}

    def table(self) -> str:
        lines = ["| step | wall time | note |", "|---|---:|---|"]
        for name, entry in self.of_this_run.items():
            # a job of several at once: its own time, not how long the step waited for it after the one before
            wall = entry.get("worker_wall_s", entry.get("wall_s"))
            notes = []
            if "resumed_skip_s" in entry:
                notes.append("timing of an earlier run (resumed)")
            elif entry.get("skipped"):
                notes.append("skipped, no earlier timing")
            if "epochs_s" in entry:
                epochs = _duration(entry["epochs_s"])
                notes.append(f"continued from a checkpoint: the last part; its epochs took {epochs} in all")
            lines.append(f"| {entry.get('description', name)} | {_duration(wall)} | {'; '.join(notes)} |")
        return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def repo_relative(path: Path) -> str:
    """How reports and ``summary.json`` name a file: relative to the repository inside it, absolute outside."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    # NaN (undefined distances) becomes null: strict JSON readers reject NaN
    tmp.write_text(json.dumps(_nan_to_none(data), indent=1, default=_json_default, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def run_subprocess_json(cmd: Sequence[str], env: dict | None = None,
                        cwd: Path | None = None) -> tuple[dict, float, int]:
    """Runs ``cmd`` in a fresh process; returns (its last stdout line as JSON or {}, wall seconds, peak RSS bytes).

    The peak RSS is ``ru_maxrss`` of that child (``os.wait4``), not the maximum over all children; on Linux it
    includes this process's RSS at fork (maxrss survives exec), so a worker that must report its own peak reads
    ``VmHWM`` from ``/proc/self/status`` instead.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    lines = [line for line in stdout.splitlines() if line.strip()]
    for line in lines[:-1]:
        print(f"    | {line}")
    result = {}
    if lines:
        try:
            result = json.loads(lines[-1])
        except json.JSONDecodeError:
            result = {}
    # Linux reports ru_maxrss in KiB
    return result, wall, int(usage.ru_maxrss) * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident memory (``VmHWM`` of ``/proc/self/status``): what a worker reports of itself,
    since ``ru_maxrss`` of a child includes its parent's RSS at fork (``run_subprocess_json``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
