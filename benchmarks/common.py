"""Shared helpers of the benchmark scripts (``run_quality.py``, ``run_cost.py``).

Everything a benchmark needs besides its own measurements: nnU-Net folders inside a work directory, resumable
steps with their wall times, planning/preprocessing that skips finished work, machine and git provenance,
segmentation metrics (Dice checked against nnU-Net's own, HD95 and ASD from ``medpy``) and report writing
(Markdown + JSON + PNG). Nothing here runs at import time; nnU-Net is imported lazily, after the path variables
are set.
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
    "REPO_ROOT",
    "RESULTS_DIR",
    "StepLog",
    "aggregate",
    "bootstrap_difference",
    "case_metrics",
    "command_line",
    "git_commit",
    "machine_info",
    "plan_and_preprocess",
    "plans_variant_name",
    "provenance_markdown",
    "repo_relative",
    "seed_everything",
    "set_nnunet_paths",
    "trainer_names",
    "update_summary",
    "write_json",
    "write_plans_variant",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
# the presets of nnunet_dumm.trainers.variants.BUDGETS, plus "full": nnU-Net's default schedule (trainer names
# without a budget suffix)
PRESETS = ("test", "demo", "cpu", "gpu", "proxy", "gpuwin", "full")


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
    from nnunet_dumm.discovery import enable_trainer_discovery

    enable_trainer_discovery()
    return folders


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


def trainer_names(arm: str, preset: str) -> str:
    """The trainer class of an arm under a preset; ``nnUNetTrainerStock`` is stock nnU-Net (``nnUNetTrainer``)."""
    if preset == "full":
        return "nnUNetTrainer" if arm == "nnUNetTrainerStock" else arm
    return f"{arm}_{preset}"


def plan_and_preprocess(dataset_id: int, dataset_name: str, configuration: str = "2d",
                        num_processes: int = 1) -> bool:
    """nnU-Net's fingerprint, plans and preprocessing of the labeled cases; skipped when done. True if it ran."""
    from nnunetv2.paths import nnUNet_preprocessed

    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    plans_file = preprocessed / "nnUNetPlans.json"
    if plans_file.is_file():
        data_identifier = json.loads(plans_file.read_text())["configurations"][configuration]["data_identifier"]
        folder = preprocessed / data_identifier
        raw_cases = len(list((Path(os.environ["nnUNet_raw"]) / dataset_name / "labelsTr").iterdir()))
        if folder.is_dir() and len(list(folder.glob("*.pkl"))) == raw_cases:
            print(f"plans and preprocessed data exist ({folder})")
            return False
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    # nnU-Net 2.8.1's planner crashes with nnUNet_n_proc_DA=0 (NNUNET_NOTES.md section 8): hide it while planning
    n_proc_da = os.environ.pop("nnUNet_n_proc_DA", None)
    try:
        extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=True)
        plan_experiments([dataset_id])
        preprocess([dataset_id], configurations=(configuration,), num_processes=(num_processes,))
    finally:
        if n_proc_da is not None:
            os.environ["nnUNet_n_proc_DA"] = n_proc_da
    return True


def plans_variant_name(network_scale: float) -> str:
    """The plans identifier of a network with ``network_scale`` x nnU-Net's features per stage."""
    return "nnUNetPlans" if network_scale == 1 else f"nnUNetPlans_features{network_scale:g}"


def write_plans_variant(preprocessed: Path, name: str, network_scale: float) -> Path:
    """An nnU-Net plans variant: nnU-Net's plans with every configuration's features per stage scaled, the same
    preprocessing (same data identifier), so that every arm trains the smaller network without code changes."""
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["plans_name"] = name
    for configuration in plans["configurations"].values():
        kwargs = configuration.get("architecture", {}).get("arch_kwargs", {})
        if "features_per_stage" in kwargs:
            kwargs["features_per_stage"] = [max(4, round(f * network_scale)) for f in kwargs["features_per_stage"]]
    path = preprocessed / f"{name}.json"
    write_json(path, plans)
    return path


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

    def _paused_between(self, start: float, end: float) -> float:
        pauses = self.path.parent / "pauses.jsonl"
        if not pauses.is_file():
            return 0.0
        total = 0.0
        for line in pauses.read_text().splitlines():
            pause = json.loads(line)
            total += max(0.0, min(end, pause["end"]) - max(start, pause["start"]))
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
        paused = self._paused_between(wall_start, time.time())
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
            wall = entry.get("wall_s")
            note = "skipped, no earlier timing" if entry.get("skipped") else ""
            if "resumed_skip_s" in entry:
                note = "timing of an earlier run (resumed)"
            lines.append(f"| {entry.get('description', name)} | {_duration(wall)} | {note} |")
        return "\n".join(lines)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def report_file(stem: Path, suffix: str) -> Path:
    """A report's file: the stem with ``suffix`` appended. Not ``Path.with_suffix``: a stem such as
    ``..._nnUNetPlans_features0.5_3seeds`` has a dot that is not a suffix, and would lose everything after it."""
    return stem.parent / f"{stem.name}{suffix}"


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


def provenance_markdown(command: str, preset: str, seed, machine: dict, commit: str, steps: StepLog) -> str:
    """The header every report starts with: how to reproduce it and what it ran on."""
    machine_line = (f"{machine['cpu_model']}, {machine['cpu_cores_usable']} cores usable, "
                    f"{machine.get('memory_gib', '?')} GiB; torch {machine['torch']} "
                    f"({machine['torch_threads']} threads), nnunetv2 {machine['nnunetv2']}, "
                    f"device `{machine['device']}`"
                    + (f" ({machine['gpu']})" if machine.get("gpu") else ""))
    return "\n".join([
        f"* command: `{command}`",
        f"* preset: `{preset}`" + (f", seed(s) {seed}" if seed is not None else ""),
        f"* machine: {machine_line}",
        f"* git commit: `{commit}`",
        f"* written: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        "",
        "Wall time per step:",
        "",
        steps.table(),
    ])


# ------------------------------------------------------------------------------------------------ metrics
def _nnunet_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    # nnU-Net's definition (evaluation/evaluate_predictions.py: compute_metrics): NaN when both are empty
    tp = np.count_nonzero(pred & ref)
    fp = np.count_nonzero(pred & ~ref)
    fn = np.count_nonzero(~pred & ref)
    return float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _surface_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """HD95 and ASD (``medpy.metric.binary``: hd95 symmetric, asd from prediction to reference, as in SSL4MIS).

    Both empty: 0 (nothing to miss). Exactly one empty: undefined (NaN), counted separately in the reports.
    """
    from medpy.metric import binary

    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return 0.0, 0.0
    if has_pred != has_ref:
        return float("nan"), float("nan")
    return (float(binary.hd95(pred, ref, voxelspacing=spacing)),
            float(binary.asd(pred, ref, voxelspacing=spacing)))


def _as_metric_array(seg: np.ndarray, properties: dict) -> tuple[np.ndarray, tuple[float, ...]]:
    """nnU-Net readers return ``(1, z, y, x)`` plus spacing; 2-D images come with a dummy axis of spacing 999."""
    arr = seg[0]
    spacing = tuple(float(s) for s in properties["spacing"])
    if arr.shape[0] == 1 and spacing[0] >= 999:
        return arr[0], spacing[1:]
    return arr, spacing


def case_metrics(summary: dict, dataset_json: dict) -> list[dict]:
    """Per case and class: Dice (recomputed and asserted equal to nnU-Net's ``summary.json``), HD95, ASD.

    Distances use the voxel spacing of the reference file (3-D volumes stay 3-D; 2-D images in pixels).
    """
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    cases = summary["metric_per_case"]
    reader = determine_reader_writer_from_dataset_json(dataset_json, cases[0]["reference_file"], verbose=False)()
    records = []
    for entry in cases:
        ref_seg, ref_props = reader.read_seg(entry["reference_file"])
        pred_seg, _ = reader.read_seg(entry["prediction_file"])
        ref, spacing = _as_metric_array(ref_seg, ref_props)
        pred, _ = _as_metric_array(pred_seg, ref_props)
        case = Path(entry["reference_file"]).name[: -len(dataset_json["file_ending"])]
        record = {"case": case, "spacing": list(spacing), "classes": {}}
        for label, nnunet in entry["metrics"].items():
            p, r = pred == int(label), ref == int(label)
            dice = _nnunet_dice(p, r)
            same = math.isclose(dice, nnunet["Dice"], abs_tol=1e-9) or (math.isnan(dice) and math.isnan(nnunet["Dice"]))
            if not same:
                raise AssertionError(f"{case} class {label}: our Dice {dice} differs from nnU-Net's {nnunet['Dice']}")
            hd95, asd = _surface_metrics(p, r, spacing)
            record["classes"][label] = {"Dice": dice, "HD95": hd95, "ASD": asd}
        records.append(record)
    return records


def aggregate(records: list[dict], metrics: Sequence[str] = ("Dice", "HD95", "ASD")) -> dict:
    """Mean, standard deviation and number of defined values per class and metric, and for the mean over classes
    (per case first, then over cases, as SSL4MIS reports it)."""
    labels = list(records[0]["classes"])
    out: dict = {}
    for label in [*labels, "mean"]:
        out[label] = {}
        for metric in metrics:
            if label == "mean":
                values = [np.nanmean([r["classes"][c][metric] for c in labels])
                          if any(np.isfinite(r["classes"][c][metric]) for c in labels) else np.nan for r in records]
            else:
                values = [r["classes"][label][metric] for r in records]
            values = np.asarray(values, dtype=float)
            finite = values[np.isfinite(values)]
            out[label][metric] = {
                "mean": float(finite.mean()) if finite.size else None,
                "std": float(finite.std()) if finite.size else None,
                "n": int(finite.size),
                "undefined": int(values.size - finite.size),
            }
    return out


def format_metric(stats: dict, scale: float = 1.0, digits: int = 1) -> str:
    if stats["mean"] is None:
        return f"n/a ({stats['undefined']} undef.)" if stats["undefined"] else "n/a"
    text = f"{scale * stats['mean']:.{digits}f} ± {scale * stats['std']:.{digits}f}"
    return text + (f" ({stats['undefined']} undef.)" if stats["undefined"] else "")


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


# ------------------------------------------------------------------------------------------------ dev split
def dev_split(raw: Path, count: int, seed: int = 0) -> list[str]:
    """The development cases: ``count`` groups (ACDC: patients; ISIC: images) drawn, seeded, from the unlabeled
    pool that has true labels (``labelsUnlabeled/``). Training-side data: never the test set; dev runs leave these
    cases out of the pool, and defaults are chosen on them only."""
    record = json.loads((raw / "split.json").read_text())
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    labeled_pool = sorted(p.name[: -len(file_ending)] for p in (raw / "labelsUnlabeled").glob(f"*{file_ending}")
                          if (raw / "imagesUnlabeled" / f"{p.name[: -len(file_ending)]}_0000{file_ending}").is_file())
    patients = record.get("groups", {}).get("unlabeled")

    def group(case: str) -> str:
        return next((p for p in patients if case.startswith(f"{p}_")), case) if patients else case

    groups = sorted({group(c) for c in labeled_pool})
    if count > len(groups):
        raise SystemExit(f"{raw}: {count} dev groups requested, the unlabeled pool with true labels has {len(groups)}")
    chosen = {groups[i] for i in np.random.default_rng(seed).permutation(len(groups))[:count]}
    return [c for c in labeled_pool if group(c) in chosen]


def linked_subset(raw: Path, cases: Sequence[str], images: str, labels: str, destination: Path) -> tuple[Path, Path]:
    """``destination/{images,labels}`` with symbolic links to the given cases' files, for nnU-Net's predictor and
    evaluator (which take whole folders)."""
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    image_folder, label_folder = destination / "images", destination / "labels"
    for folder in (image_folder, label_folder):
        folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for source in (raw / images).glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
            link = image_folder / source.name
            if not link.exists():
                link.symlink_to(source)
        link = label_folder / f"{case}{file_ending}"
        if not link.exists():
            link.symlink_to(raw / labels / f"{case}{file_ending}")
    return image_folder, label_folder


# ------------------------------------------------------------------------------------------------ statistics
def bootstrap_difference(row: dict[str, list[float]], reference: dict[str, list[float]], resamples: int = 10_000,
                         seed: int = 0) -> dict:
    """Mean difference row - reference of per-case scores, with a 95 % percentile bootstrap interval.

    Both arguments map case -> one score per seed. Each resample draws the cases with replacement (the same cases
    for both: the comparison is paired) and, for each row independently, its seeds with replacement; the
    statistic is the mean over the drawn cases of (mean over the row's drawn seeds - mean over the reference's).
    Cases whose score is undefined for either row are left out.
    """
    cases = sorted(c for c in row if c in reference and np.all(np.isfinite(row[c])) and
                   np.all(np.isfinite(reference[c])))
    a = np.asarray([row[c] for c in cases], dtype=float)  # (cases, seeds)
    b = np.asarray([reference[c] for c in cases], dtype=float)
    rng = np.random.default_rng(seed)
    n = len(cases)
    case_draws = rng.integers(0, n, size=(resamples, n))
    seeds_a = rng.integers(0, a.shape[1], size=(resamples, a.shape[1]))
    seeds_b = rng.integers(0, b.shape[1], size=(resamples, b.shape[1]))
    diffs = np.empty(resamples)
    for k in range(resamples):
        mean_a = a[:, seeds_a[k]].mean(1)
        mean_b = b[:, seeds_b[k]].mean(1)
        diffs[k] = (mean_a - mean_b)[case_draws[k]].mean()
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"mean_diff": float(a.mean(1).mean() - b.mean(1).mean()), "ci95": [float(low), float(high)],
            "num_cases": n, "seeds": int(a.shape[1]), "reference_seeds": int(b.shape[1]),
            "significant": bool(low > 0 or high < 0)}


def update_summary(path: Path, entry: dict) -> None:
    """Adds or replaces the entry of (dataset, preset, labeled) in ``summary.json``: ``{"entries": [...]}``."""
    summary = json.loads(path.read_text()) if path.is_file() else {"entries": []}
    key = (entry["dataset"], entry["preset"], entry["labeled"])
    summary["entries"] = [e for e in summary["entries"] if (e["dataset"], e["preset"], e["labeled"]) != key]
    summary["entries"].append(entry)
    summary["entries"].sort(key=lambda e: (e["dataset"], e["preset"], str(e["labeled"])))
    write_json(path, summary)
