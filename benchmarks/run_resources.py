"""What the student and the teachers' pass cost against stock nnU-Net (issue 34): memory, disk, throughput.

Every number comes from a fresh worker process (so peaks do not mix), on datasets generated in ``--work-dir``;
each ratio compares two workers of the same run. Written to ``benchmarks/results/resources.{json,md}``:

1. ``student_peak_memory_vs_stock_{2d,3d}`` (goal <= 1.1): peak resident memory of ``--iterations`` training
   iterations (after ``--warmup`` ones, all inside the window) minus the resident memory just before the first one,
   of the DUMM student vs stock nnU-Net on the same plans, patch and batch (nnU-Net's own plans, unchanged), on the
   CPU with ``nnUNet_n_proc_DA=0``. The teachers' pass is complete before the student starts (a worker of its own
   runs the student's ``on_train_start`` first), so the student's process holds no teacher network. Memory is read
   two ways: VmRSS sampled by a thread every ``--sample-ms``, and VmHWM after resetting it (``/proc/self/clear_refs``
   5, where the kernel allows); the ratio uses VmHWM when the reset worked. ``student_time_per_iteration_vs_stock``
   comes from the same iterations (median wall seconds). Optionally (``--joint``) the student's old single joint pass
   over the concatenated labeled + unlabeled batch, a benchmark-local subclass, for reference.
2. ``cache_bytes_vs_save_probabilities_3d`` (goal <= 1.0): bytes on disk per case of our pseudo-label cache entry
   (the default trainer's contents) vs nnU-Net's ``--save_probabilities`` output (``.npz`` + ``.pkl``; also with the
   segmentation file) of the same five trained teachers on the same generated 3-D cases of 14 classes, test-time
   mirroring off on both sides (CPU time; the stored contents do not depend on it). Barely trained teachers give
   uncertain, poorly compressible maps, so ``confident_maps_check`` adds both formats on synthetic confident
   softmax maps of the same size: together they bracket a trained ensemble.
3. ``pass_case_models_per_s_vs_nnunet_{2d,3d}[_no_mirroring]``: case-models per second of our pass
   (``generate_pseudo_labels``) vs nnU-Net's predictor on the same models and preprocessed cases
   (``predict_logits_from_preprocessed_data`` + softmax + argmax, loading included), timed without start-up.
   Both sides run ``--pass-threads`` torch threads: nnU-Net's ``nnUNet_def_n_proc`` is set to it, since
   ``predict_logits_from_preprocessed_data`` runs the network on min(nnUNet_def_n_proc, threads) threads (and
   ``common.set_nnunet_paths`` exports 1 on a small machine: nnU-Net would run on one thread beside our two).
   On a machine shared with other work, one thread each is the stable choice: small 3-D convolutions with two
   OpenMP threads on two contended cores ran 2-10x slower from iteration to iteration.

Workers' results are kept in ``<work-dir>/workers/<name>.json`` (with the time they were measured) and reused by a
rerun with the same options and package code (a cut-off run resumes; delete a file to measure it again). Datasets,
plans and teachers are skipped when found on disk.

Example (2 CPU cores, about 45 minutes from scratch: 3-D training iterations 2-5 min each, five teachers 12 min):
    python benchmarks/run_resources.py --work-dir /tmp/bench_resources --teacher-threads 1 --pass-threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run_resources.py` from anywhere

from benchmarks.common import (  # noqa: E402
    RESULTS_DIR,
    command_line,
    git_commit,
    machine_info,
    peak_rss_bytes,
    run_subprocess_json,
    seed_everything,
    set_nnunet_paths,
    write_json,
)

MIB = 2**20
GOALS = {
    "student_peak_memory_vs_stock_2d": ("<=", 1.1),
    "student_peak_memory_vs_stock_3d": ("<=", 1.1),
    "cache_bytes_vs_save_probabilities_3d": ("<=", 1.0),
    # the cost benchmark's throughput goal (benchmarks/README.md, run_cost.py): ours at least 0.9x nnU-Net per model
    "pass_case_models_per_s_vs_nnunet_2d": (">=", 0.9),
    "pass_case_models_per_s_vs_nnunet_2d_no_mirroring": (">=", 0.9),
    "pass_case_models_per_s_vs_nnunet_3d": (">=", 0.9),
    "pass_case_models_per_s_vs_nnunet_3d_no_mirroring": (">=", 0.9),
}
KEYS = ("student_peak_memory_vs_stock_2d", "student_time_per_iteration_vs_stock_2d",
        "student_peak_memory_vs_stock_3d", "student_time_per_iteration_vs_stock_3d",
        "cache_bytes_vs_save_probabilities_3d",
        "pass_case_models_per_s_vs_nnunet_2d", "pass_case_models_per_s_vs_nnunet_2d_no_mirroring",
        "pass_case_models_per_s_vs_nnunet_3d", "pass_case_models_per_s_vs_nnunet_3d_no_mirroring")
PARTS = ("memory2d", "memory3d", "cache3d", "pass2d", "pass3d")
DATASET_2D = (971, "Resources2D")
DATASET_3D = (972, "Resources3D")
DATASET_CACHE = (973, "ResourcesCache3D")
# the teachers of item 1 and of the 2-D pass: the test budget's two folds, untrained (memory and speed do not
# depend on the weights); the student is that budget's DUMM preset
MEMORY_TEACHER, MEMORY_STUDENT = "nnUNetTrainerStock_test", "nnUNetTrainerDUMM_test"


# ------------------------------------------------------------------------------------------------ memory probe
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``, field 2)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def _vm_hwm_bytes() -> int | None:
    try:
        return peak_rss_bytes()
    except (OSError, RuntimeError):
        return None


def reset_peak_rss() -> bool:
    """Resets this process's VmHWM to its current RSS (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0); False where
    the kernel or the sandbox does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    hwm = _vm_hwm_bytes()
    return hwm is not None and hwm <= current_rss_bytes() + 16 * MIB


class MemoryProbe:
    """Peak resident memory of this process inside a ``with`` block, above the resident memory at its start.

    Two readings: ``sampled_peak_bytes``, the largest VmRSS a daemon thread saw (every ``interval_s``; a spike
    shorter than that can be missed), and ``hwm_bytes``, the kernel's VmHWM after a reset at the start (exact, None
    where the reset is not allowed). ``peak_bytes`` is the larger of the two.
    """

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.baseline_bytes = 0
        self.sampled_peak_bytes = 0
        self.samples = 0
        self.hwm_reset = False
        self.hwm_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        with open("/proc/self/statm", "rb", buffering=0) as f:
            while True:
                f.seek(0)
                resident = int(f.read().split()[1]) * _PAGE
                self.sampled_peak_bytes = max(self.sampled_peak_bytes, resident)
                self.samples += 1
                if self._stop.wait(self.interval_s):
                    return

    def __enter__(self) -> MemoryProbe:
        self.baseline_bytes = current_rss_bytes()
        self.sampled_peak_bytes = self.baseline_bytes
        self.hwm_reset = reset_peak_rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sampled_peak_bytes = max(self.sampled_peak_bytes, current_rss_bytes())
        self.hwm_bytes = _vm_hwm_bytes() if self.hwm_reset else None

    @property
    def peak_bytes(self) -> int:
        return max(self.sampled_peak_bytes, self.hwm_bytes or 0)

    @property
    def increment_bytes(self) -> int:
        return self.peak_bytes - self.baseline_bytes

    def to_dict(self) -> dict:
        return {"baseline_bytes": self.baseline_bytes, "sampled_peak_bytes": self.sampled_peak_bytes,
                "samples": self.samples, "sample_interval_s": self.interval_s, "hwm_reset": self.hwm_reset,
                "hwm_bytes": self.hwm_bytes, "peak_bytes": self.peak_bytes, "increment_bytes": self.increment_bytes}


# ------------------------------------------------------------------------------------------------ ratios, entries
def goal_met(key: str, value: float | None) -> bool | None:
    """Whether ``value`` meets the key's goal; None where the key has no goal or no value."""
    if key not in GOALS or value is None:
        return None
    op, goal = GOALS[key]
    return value <= goal if op == "<=" else value >= goal


def entry(key: str, value: float | None, details: dict, command: str) -> dict:
    """One measurement of the report: value, goal (if any), met, details, the command that reproduces it."""
    out = {"value": value}
    if key in GOALS:
        out["goal"] = f"{GOALS[key][0]} {GOALS[key][1]}"
        out["met"] = goal_met(key, value)
    return {**out, "details": details, "command": command}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def memory_entries(configuration: str, runs: dict, settings: dict, command: str) -> dict:
    """The memory and time keys of one configuration from its training workers (``stock``, ``student``, ``joint``)."""
    tag = configuration.replace("3d_fullres", "3d")
    stock, student = runs["stock"], runs["student"]
    per_run = {}
    for name, run in runs.items():
        probe = run["memory"]
        per_run[name] = {
            "trainer": run["trainer"],
            "baseline_mib": probe["baseline_bytes"] / MIB,
            "peak_mib": probe["peak_bytes"] / MIB,
            "increment_mib": probe["increment_bytes"] / MIB,
            "sampled_peak_mib": probe["sampled_peak_bytes"] / MIB,
            "vm_hwm_mib": None if probe["hwm_bytes"] is None else probe["hwm_bytes"] / MIB,
            "s_per_iteration_median": run["s_per_iteration_median"],
            "cpu_s_per_iteration_median": run["cpu_s_per_iteration_median"],
            "s_per_iteration": run["s_per_iteration"],
            "labeled_batch": run["batch_size"],
            "unlabeled_batch": run.get("unlabeled_batch", 0),
            "loadavg_after": run.get("loadavg_after"),
            "measured": run.get("measured"),
        }
    shape = {k: stock[k] for k in ("patch_size", "batch_size", "num_classes", "parameters", "labeled_cases",
                                   "unlabeled_cases") if k in stock}
    shape["unlabeled_cases"] = student.get("unlabeled_cases")
    details = {"configuration": configuration, **shape, **settings, "runs": per_run,
               "stock_breakdown_mib": stock.get("breakdown_mib"),
               "absolute_peak_ratio": ratio(student["memory"]["peak_bytes"], stock["memory"]["peak_bytes"])}
    memory_ratio = ratio(student["memory"]["increment_bytes"], stock["memory"]["increment_bytes"])
    if "joint" in runs:
        details["joint_pass_vs_stock"] = ratio(runs["joint"]["memory"]["increment_bytes"],
                                               stock["memory"]["increment_bytes"])
        details["joint_time_vs_stock"] = ratio(runs["joint"]["s_per_iteration_median"],
                                               stock["s_per_iteration_median"])
    time_ratio = ratio(student["s_per_iteration_median"], stock["s_per_iteration_median"])
    samples = stock["batch_size"] + student.get("unlabeled_batch", 0)
    time_details = {"configuration": configuration, **shape, **settings,
                    "stock_s_per_iteration": stock["s_per_iteration_median"],
                    "student_s_per_iteration": student["s_per_iteration_median"],
                    "student_samples_per_iteration": samples,
                    "per_sample_ratio": ratio(student["s_per_iteration_median"] / samples,
                                              stock["s_per_iteration_median"] / stock["batch_size"]),
                    "cpu_time_ratio": ratio(student["cpu_s_per_iteration_median"],
                                            stock["cpu_s_per_iteration_median"])}
    return {f"student_peak_memory_vs_stock_{tag}": entry(f"student_peak_memory_vs_stock_{tag}", memory_ratio,
                                                         details, command),
            f"student_time_per_iteration_vs_stock_{tag}": entry(f"student_time_per_iteration_vs_stock_{tag}",
                                                                time_ratio, time_details, command)}


def cache_entry(ours: dict, nnunet: dict, settings: dict, command: str) -> dict:
    """``cache_bytes_vs_save_probabilities_3d`` from the per-case bytes of both sides."""
    key = "cache_bytes_vs_save_probabilities_3d"
    ours_bytes, nn = ours["bytes_per_case"], nnunet["bytes_per_case"]
    details = {
        **settings,
        "ours_bytes_per_case": ours_bytes,
        "ours_files_per_case": ours["files_per_case"],
        "ours_bytes_per_voxel": ours_bytes / ours["voxels_per_case"],
        "ours_class_locations_bytes_per_case": ours.get("class_locations_bytes_per_case"),
        "ours_bytes_per_voxel_per_file": {k: v / ours["voxels_per_case"] for k, v in ours["files_per_case"].items()},
        "mean_normalised_entropy_of_the_ensemble": ours.get("mean_normalised_entropy"),
        "nnunet_npz_pkl_bytes_per_case": nn["npz"] + nn["pkl"],
        "nnunet_with_segmentation_bytes_per_case": nn["npz"] + nn["pkl"] + nn["segmentation"],
        "nnunet_files_per_case": nn,
        "nnunet_bytes_per_voxel": (nn["npz"] + nn["pkl"]) / nnunet["voxels_per_case"],
        "nnunet_with_segmentation_bytes_per_voxel": (nn["npz"] + nn["pkl"] + nn["segmentation"])
        / nnunet["voxels_per_case"],
        "voxels_per_case": ours["voxels_per_case"],
        "vs_with_segmentation": ratio(ours_bytes, nn["npz"] + nn["pkl"] + nn["segmentation"]),
    }
    return {key: entry(key, ratio(ours_bytes, nn["npz"] + nn["pkl"]), details, command)}


def pass_entries(tag: str, runs: dict, settings: dict, command: str) -> dict:
    """The throughput keys of one configuration (``runs``: ours/nnunet x mirroring on/off)."""
    out = {}
    for mirroring, suffix in ((True, ""), (False, "_no_mirroring")):
        key = f"pass_case_models_per_s_vs_nnunet_{tag}{suffix}"
        ours, nnunet = runs.get(("ours", mirroring)), runs.get(("nnunet", mirroring))
        if ours is None or nnunet is None:
            continue
        details = {**settings, "mirroring": mirroring,
                   "ours_case_models_per_s": ours["case_models_per_s"],
                   "ours_s_per_case_model": 1 / ours["case_models_per_s"],
                   "nnunet_case_models_per_s": nnunet["case_models_per_s"],
                   "nnunet_s_per_case_model": 1 / nnunet["case_models_per_s"],
                   "cases": ours["cases"], "models": ours["models"], "ours": ours, "nnunet": nnunet}
        out[key] = entry(key, ratio(ours["case_models_per_s"], nnunet["case_models_per_s"]), details, command)
    return out


# ------------------------------------------------------------------------------------------------ datasets
def _dataset_name(spec: tuple[int, str]) -> str:
    return f"Dataset{spec[0]:03d}_{spec[1]}"


def prepare_2d(args: argparse.Namespace) -> str:
    """Generated 2-D demo images of ``--image-size-2d`` px (nnU-Net plans a patch of the image size), planned, the
    unlabeled ones preprocessed."""
    from benchmarks.datasets import plan_and_preprocess
    from nnunet_dumm.demo_data import DemoDatasetSpec, generate_demo_dataset
    from nnunet_dumm.unlabeled import preprocess_unlabeled

    name = _dataset_name(DATASET_2D)
    raw = Path(os.environ["nnUNet_raw"]) / name
    spec = DemoDatasetSpec(num_labeled=args.labeled_2d, num_unlabeled=args.unlabeled_2d, num_test=0,
                           image_size=args.image_size_2d, seed=0)
    _check_or_write_spec(raw, {"generator": "demo_data", **vars(spec)},
                         lambda: generate_demo_dataset(raw, spec, dataset_name=DATASET_2D[1], overwrite=True,
                                                       progress=True))
    plan_and_preprocess(DATASET_2D[0], name, "2d")
    preprocess_unlabeled(name, "2d", "nnUNetPlans")
    return name


def _check_or_write_spec(raw: Path, spec: dict, generate) -> None:
    record = raw / "resources_spec.json"
    if record.is_file():
        if json.loads(record.read_text()) != json.loads(json.dumps(spec)):
            raise SystemExit(f"{raw} was generated with {record.read_text()}; use another --work-dir")
        print(f"dataset exists ({raw})")
        return
    generate()
    record.write_text(json.dumps(spec, indent=1))


def _generate_volumes(raw: Path, labeled_shape, labeled: int, unlabeled_sets=()) -> None:
    """``run_pass_cost.generate_volumes`` (14 classes), with sets of unlabeled volumes of their own shapes:
    ``unlabeled_sets`` holds ``(prefix, shape, count, seed)``; their cases are named ``<prefix>_<index>``."""
    from benchmarks.run_pass_cost import generate_volumes

    if labeled:
        generate_volumes(raw, tuple(labeled_shape), labeled=labeled, unlabeled=0, seed=0)
    for prefix, shape, count, seed in unlabeled_sets:
        if not count:
            continue
        scratch = raw.parent / f".{raw.name}_{prefix}"
        shutil.rmtree(scratch, ignore_errors=True)
        generate_volumes(scratch, tuple(shape), labeled=0, unlabeled=count, seed=seed)
        (raw / "imagesUnlabeled").mkdir(parents=True, exist_ok=True)
        for path in sorted((scratch / "imagesUnlabeled").iterdir()):
            path.rename(raw / "imagesUnlabeled" / path.name.replace("vol", prefix, 1))
        shutil.rmtree(scratch)


def prepare_3d(args: argparse.Namespace) -> str:
    """Volumes of ``--volume-shape-3d`` planned with nnU-Net's own plans (3d_fullres); unlabeled volumes of the
    planned patch size (one tile each: the teachers' pass stays short)."""
    from benchmarks.datasets import plan_and_preprocess
    from nnunet_dumm.unlabeled import preprocess_unlabeled

    name = _dataset_name(DATASET_3D)
    raw = Path(os.environ["nnUNet_raw"]) / name
    spec = {"generator": "run_pass_cost.generate_volumes", "labeled": args.labeled_3d,
            "shape": list(args.volume_shape_3d)}
    _check_or_write_spec(raw, spec, lambda: _generate_volumes(raw, args.volume_shape_3d, args.labeled_3d))
    plan_and_preprocess(DATASET_3D[0], name, "3d_fullres")
    plans = json.loads((Path(os.environ["nnUNet_preprocessed"]) / name / "nnUNetPlans.json").read_text())
    patch = plans["configurations"]["3d_fullres"]["patch_size"]
    if not any((raw / "imagesUnlabeled").glob("*_0000.nii.gz")):
        _generate_volumes(raw, None, 0, [("unl", patch, args.unlabeled_3d, 1)])
    preprocess_unlabeled(name, "3d_fullres", "nnUNetPlans")
    return name


BYTES_PREFIX, PASS_PREFIX = "bytes", "pass"


def prepare_cache_dataset(args: argparse.Namespace) -> tuple[str, str]:
    """Small labeled volumes (cheap teachers), two sets of unlabeled ones (``bytes_*`` of
    ``--cache-unlabeled-shape`` for the disk comparison, ``pass_*`` of ``--pass-unlabeled-shape-3d`` for the
    throughput one), a plans variant with ``--network-scale`` x nnU-Net's features; returns (dataset, plans)."""
    from benchmarks.datasets import plan_and_preprocess, plans_variant_name, write_plans_variant
    from nnunet_dumm.unlabeled import preprocess_unlabeled

    name = _dataset_name(DATASET_CACHE)
    raw = Path(os.environ["nnUNet_raw"]) / name
    spec = {"generator": "run_pass_cost.generate_volumes", "labeled": args.cache_labeled,
            "labeled_shape": list(args.cache_labeled_shape), "unlabeled": args.cache_unlabeled,
            "unlabeled_shape": list(args.cache_unlabeled_shape), "pass_unlabeled": args.pass_unlabeled_3d,
            "pass_unlabeled_shape": list(args.pass_unlabeled_shape_3d)}
    _check_or_write_spec(raw, spec, lambda: _generate_volumes(
        raw, args.cache_labeled_shape, args.cache_labeled,
        [(BYTES_PREFIX, args.cache_unlabeled_shape, args.cache_unlabeled, 1),
         (PASS_PREFIX, args.pass_unlabeled_shape_3d, args.pass_unlabeled_3d, 2)]))
    plan_and_preprocess(DATASET_CACHE[0], name, "3d_fullres")
    plans = plans_variant_name(args.network_scale)
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / name
    if not (preprocessed / f"{plans}.json").is_file():
        write_plans_variant(preprocessed, plans, args.network_scale)
    preprocess_unlabeled(name, "3d_fullres", plans)
    return name, plans


# ------------------------------------------------------------------------------------------------ trainer classes
def trainer_classes() -> dict[str, type]:
    """The arms of the memory measurement: stock nnU-Net, the student (two passes), the old joint pass."""
    import dataclasses

    import torch

    from benchmarks.trainers import PRESETS
    from nnunet_dumm.selection import unlabeled_loss_weight

    stock, student = PRESETS[MEMORY_TEACHER], PRESETS[MEMORY_STUDENT]

    class nnUNetTrainerDUMM_resources(student):
        """The test budget's student without test-time mirroring in its teachers' pass (the pass only has to be
        complete; on 3-D volumes mirroring would make it eight times longer). Training is the package's."""

        dumm_config = dataclasses.replace(student.dumm_config, use_mirroring=False)

    class nnUNetTrainerDUMM_resourcesJoint(nnUNetTrainerDUMM_resources):
        """For reference only: the student's step before the two-pass change, one forward/backward pass over the
        labeled and unlabeled batches concatenated (twice the activations of one batch)."""

        def train_step(self, batch: dict) -> dict:
            weight = unlabeled_loss_weight(self.current_epoch, self.num_epochs, self.dumm_config.lambda_max,
                                           self.dumm_config.rampup_fraction)
            unlabeled = next(self.unlabeled_loader)
            n = batch["data"].shape[0]
            deep = isinstance(batch["target"], list)
            labeled_targets = batch["target"] if deep else [batch["target"]]
            unlabeled_targets = unlabeled["target"] if deep else [unlabeled["target"]]
            data = torch.cat([batch["data"], unlabeled["data"]]).to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            output = self.network(data)
            outputs = output if isinstance(output, (list, tuple)) else [output]
            labeled_out = [o[:n] for o in outputs]
            unlabeled_out = [o[n:] for o in outputs]
            supervised = self.loss(labeled_out if deep else labeled_out[0],
                                   labeled_targets if deep else labeled_targets[0])
            unsupervised = self.unlabeled_loss(unlabeled_out if deep else unlabeled_out[0],
                                               unlabeled_targets if deep else unlabeled_targets[0])
            (supervised + weight * unsupervised).backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), 12)
            self.optimizer.step()
            return {"loss": (supervised + weight * unsupervised).detach().cpu().numpy(),
                    "sup_loss": supervised.detach().cpu().numpy(), "unsup_loss": unsupervised.detach().cpu().numpy(),
                    "kept_fraction": float((unlabeled_targets[0] != self._masked_label).float().mean())}

    return {"stock": stock, "student": nnUNetTrainerDUMM_resources, "joint": nnUNetTrainerDUMM_resourcesJoint}


def _build_trainer(cls: type, dataset: str, configuration: str, plans_name: str, fold):
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / dataset
    plans = load_json(str(preprocessed / f"{plans_name}.json"))
    plans["continue_training"] = False  # nnU-Net's run_training inserts it; the trainer pops it
    dataset_json = load_json(str(preprocessed / "dataset.json"))
    return cls(plans, configuration, fold, dataset_json, torch.device("cpu"))


# ------------------------------------------------------------------------------------------------ workers
def worker_untrained(opts: dict) -> dict:
    """Checkpoints of untrained networks for the given folds of a trainer (memory and speed do not depend on the
    weights), written as nnU-Net writes ``checkpoint_final.pth``, with the model folder's plans and dataset.json."""
    from batchgenerators.utilities.file_and_folder_operations import save_json

    from benchmarks.trainers import PRESETS

    written = []
    for fold in opts["folds"]:
        trainer = _build_trainer(PRESETS[opts["trainer"]], opts["dataset"], opts["configuration"], opts["plans"],
                                 fold)
        checkpoint = Path(trainer.output_folder) / "checkpoint_final.pth"
        if checkpoint.is_file():
            continue
        seed_everything(fold)
        trainer.initialize()
        # the mirror axes a checkpoint gives the predictors (nnU-Net sets them when training starts; without them
        # neither nnU-Net's predictor nor our pass mirrors, whatever use_mirroring says)
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        Path(trainer.output_folder).mkdir(parents=True, exist_ok=True)
        save_json(trainer.plans_manager.plans, str(Path(trainer.output_folder_base) / "plans.json"))
        save_json(trainer.dataset_json, str(Path(trainer.output_folder_base) / "dataset.json"))
        trainer.save_checkpoint(str(checkpoint))
        written.append(str(checkpoint))
    return {"written": written}


def worker_train_teachers(opts: dict) -> dict:
    """Trains the teacher folds (nnU-Net's own training, resumable: finished folds are skipped)."""
    from nnunet_dumm.runs import train_fold

    seconds = {}
    for fold in opts["folds"]:
        seed_everything(fold)
        start = time.perf_counter()
        train_fold(opts["dataset"], "3d_fullres", fold, opts["trainer"], opts["plans"], device="cpu",
                   threads=opts["threads"])
        seconds[str(fold)] = time.perf_counter() - start
    return {"train_s": seconds}


def worker_prepare_student(opts: dict) -> dict:
    """The student's start (preprocessing check, teachers' pass, ranking, round-1 loader) in a process of its own, so
    that the measured student finds the pass complete and holds no teacher network."""
    trainer = _build_trainer(trainer_classes()["student"], opts["dataset"], opts["configuration"], "nnUNetPlans",
                             "all")
    start = time.perf_counter()
    trainer.on_train_start()
    trainer._shutdown_unlabeled_loader()
    return {"on_train_start_s": time.perf_counter() - start, "ranking": len(trainer.dumm_ranking),
            "teachers": [f"{f.name}/fold_{k}" for f, k, _ in trainer.dumm_teachers.folds],
            "cache": str(trainer.dumm_teachers.cache.folder)}


def _breakdown(trainer, batch: dict) -> dict:
    """What a stock iteration holds, in MiB: weights, gradients, SGD momentum, the batch, and the activations autograd
    saves for the backward pass of one forward (unique storages, measured with saved-tensor hooks)."""
    import torch

    params = sum(p.numel() * p.element_size() for p in trainer.network.parameters())
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    data = batch["data"].to(trainer.device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = trainer.network(data)
    output_bytes = sum(o.numel() * o.element_size() for o in (output if isinstance(output, (list, tuple))
                                                              else [output]))
    del output
    targets = batch["target"] if isinstance(batch["target"], list) else [batch["target"]]
    return {"weights": params / MIB, "gradients": params / MIB, "sgd_momentum": params / MIB,
            "batch_data": batch["data"].numel() * batch["data"].element_size() / MIB,
            "batch_targets": sum(t.numel() * t.element_size() for t in targets) / MIB,
            "saved_activations_one_batch": sum(storages.values()) / MIB,
            "network_outputs_one_batch": output_bytes / MIB}


def worker_train_memory(opts: dict) -> dict:
    """Peak memory and time of ``warmup + iterations`` training iterations of one arm after its ``on_train_start``."""
    import gc

    import torch

    seed_everything(0)
    cls = trainer_classes()[opts["arm"]]
    trainer = _build_trainer(cls, opts["dataset"], opts["configuration"], "nnUNetPlans", "all")
    trainer.on_train_start()  # DUMM: the pass is cached (worker_prepare_student), ranking, round-1 loader
    trainer.on_epoch_start()
    trainer.on_train_epoch_start()
    gc.collect()
    wall, cpu = [], []
    with MemoryProbe(opts["sample_ms"] / 1000) as probe:
        for _ in range(opts["warmup"] + opts["iterations"]):
            start, start_cpu = time.perf_counter(), time.process_time()
            trainer.train_step(next(trainer.dataloader_train))
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    timed, timed_cpu = wall[opts["warmup"]:], cpu[opts["warmup"]:]
    out = {"arm": opts["arm"], "trainer": cls.__name__, "memory": probe.to_dict(),
           "s_per_iteration": wall, "cpu_s_per_iteration": cpu,
           "s_per_iteration_median": statistics.median(timed),
           "cpu_s_per_iteration_median": statistics.median(timed_cpu),
           "batch_size": trainer.batch_size, "patch_size": list(trainer.configuration_manager.patch_size),
           "num_classes": trainer.label_manager.num_segmentation_heads,
           "parameters": sum(p.numel() for p in trainer.network.parameters()),
           "labeled_cases": len(getattr(trainer.dataloader_train, "generator",
                                        getattr(trainer.dataloader_train, "data_loader", None)).indices),
           "loadavg_after": os.getloadavg(), "torch_threads": torch.get_num_threads()}
    if getattr(trainer, "unlabeled_loader", None) is not None:
        out["unlabeled_batch"] = max(1, round(trainer.dumm_config.unlabeled_batch_ratio * trainer.batch_size))
        out["unlabeled_cases"] = len(trainer.dumm_selection)
        trainer._shutdown_unlabeled_loader()
    if opts.get("breakdown"):
        out["breakdown_mib"] = _breakdown(trainer, next(trainer.dataloader_train))
    return out


def _teacher_pass(opts: dict):
    """The teachers of a DUMM preset (``opts['preset']``) on a dataset, resolved as the trainer resolves them."""
    import dataclasses

    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from benchmarks.trainers import PRESETS
    from nnunet_dumm.teachers import TeacherPass
    from nnunet_dumm.trainers import budget as package_presets

    preset = PRESETS.get(opts["preset"]) or getattr(package_presets, opts["preset"])
    config = dataclasses.replace(preset.dumm_config, use_mirroring=opts["mirroring"])
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / opts["dataset"]
    plans_manager = PlansManager(str(preprocessed / f"{opts['plans']}.json"))
    teachers = TeacherPass.resolve(config, plans_manager, opts["configuration"], preprocessed)
    return config, plans_manager, teachers


def _unlabeled(plans_manager, configuration: str) -> tuple[Path, list[str]]:
    from nnunet_dumm.unlabeled import completed_cases, unlabeled_preprocessed_folder

    folder = unlabeled_preprocessed_folder(plans_manager.dataset_name,
                                           plans_manager.get_configuration(configuration).data_identifier)
    return folder, completed_cases(folder)


def worker_pass_ours(opts: dict) -> dict:
    """Our teachers' pass over the unlabeled ``cases`` into a fresh cache (the contents of the
    preset's trainer), timed without start-up."""
    import torch

    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.pseudo_labels import class_location_keys, generate_pseudo_labels
    from nnunet_dumm.teachers import load_teacher_members
    from nnunet_dumm.unlabeled import load_preprocessed_image, preprocessed_fingerprint, preprocessed_shape

    torch.set_num_threads(opts["threads"])
    config, plans_manager, teachers = _teacher_pass(opts)
    dataset_json = json.loads((Path(os.environ["nnUNet_preprocessed"]) / opts["dataset"] / "dataset.json")
                              .read_text())
    configuration_manager = plans_manager.get_configuration(opts["configuration"])
    members = load_teacher_members(teachers.folds, plans_manager, configuration_manager, dataset_json,
                                   torch.device("cpu"), opts["mirroring"])
    folder, cases = _unlabeled(plans_manager, opts["configuration"])
    cases = _selected(cases, opts["cases"])
    cache = PseudoLabelCache(opts["cache"])
    shutil.rmtree(cache.folder, ignore_errors=True)
    start = time.perf_counter()
    generate_pseudo_labels(members, cases, lambda c: load_preprocessed_image(folder, c), cache, teachers.sources,
                           class_location_keys(plans_manager.get_label_manager(dataset_json)),
                           case_shape=lambda c: preprocessed_shape(folder, c),
                           case_image=lambda c: preprocessed_fingerprint(folder, c), verbose=False)
    elapsed = time.perf_counter() - start
    return {"cases": len(cases), "case_ids": cases, "models": len(members), "mirroring": opts["mirroring"],
            "pass_s": elapsed, "case_models_per_s": len(cases) * len(members) / elapsed,
            "contents": teachers.sources["contents"], "vm_hwm_bytes": peak_rss_bytes(),
            "torch_threads": torch.get_num_threads(), "loadavg_after": os.getloadavg()}


def _selected(cases: list[str], wanted: list[str]) -> list[str]:
    missing = sorted(set(wanted) - set(cases))
    if missing:
        raise SystemExit(f"unlabeled cases not preprocessed: {missing}")
    return list(wanted)


def worker_pass_nnunet(opts: dict) -> dict:
    """nnU-Net's predictor on the same teachers: ``preprocessed`` (the same preprocessed cases as our pass:
    ``predict_logits_from_preprocessed_data`` + softmax + argmax per case, loading included) or ``files`` (the raw
    images with ``predict_from_files_sequential``: nnU-Net's preprocessing, prediction and export, optionally with
    ``save_probabilities``). Timed without start-up."""
    import numpy as np
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_dumm.unlabeled import find_unlabeled_cases, load_preprocessed_image

    torch.set_num_threads(os.cpu_count() or 1)
    _, plans_manager, teachers = _teacher_pass(opts)
    folders = {folder for folder, _, _ in teachers.folds}
    (model_folder,) = folders
    folds = tuple(fold for _, fold, _ in teachers.folds)
    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=opts["mirroring"], allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_folder), use_folds=folds,
                                                   checkpoint_name=teachers.folds[0][2])
    folder, cases = _unlabeled(plans_manager, opts["configuration"])
    cases = _selected(cases, opts["cases"])
    output = Path(opts["output"])
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    torch.set_num_threads(opts["threads"])
    if opts["mode"] == "preprocessed":
        start = time.perf_counter()
        for case in cases:
            data = torch.from_numpy(np.ascontiguousarray(load_preprocessed_image(folder, case)))
            logits = predictor.predict_logits_from_preprocessed_data(data)
            probabilities = predictor.label_manager.apply_inference_nonlin(logits)
            segmentation = predictor.label_manager.convert_probabilities_to_segmentation(probabilities)
            del logits, probabilities, segmentation
        elapsed = time.perf_counter() - start
    else:
        raw = Path(os.environ["nnUNet_raw"]) / opts["dataset"]
        files = find_unlabeled_cases(raw, predictor.dataset_json)
        start = time.perf_counter()
        predictor.predict_from_files_sequential([files[c] for c in cases], [str(output / c) for c in cases],
                                                save_probabilities=opts["save_probabilities"], overwrite=True)
        elapsed = time.perf_counter() - start
    return {"cases": len(cases), "case_ids": cases, "models": len(folds), "mirroring": opts["mirroring"],
            "mode": opts["mode"], "pass_s": elapsed, "case_models_per_s": len(cases) * len(folds) / elapsed,
            "nnUNet_def_n_proc": os.environ.get("nnUNet_def_n_proc"), "torch_threads": torch.get_num_threads(),
            "loadavg_after": os.getloadavg()}


WORKERS = {"untrained": worker_untrained, "train_teachers": worker_train_teachers,
           "prepare_student": worker_prepare_student, "train_memory": worker_train_memory,
           "pass_ours": worker_pass_ours, "pass_nnunet": worker_pass_nnunet}


def code_digest() -> str:
    """SHA-256 (16 hex digits) of the package's Python files: a worker's result is reused only for the package code
    that measured it (and the same worker options)."""
    import hashlib

    from benchmarks.common import REPO_ROOT

    h = hashlib.sha256()
    for path in sorted((REPO_ROOT / "nnunet_dumm").rglob("*.py")):
        h.update(str(path.relative_to(REPO_ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_worker(args: argparse.Namespace, worker: str, label: str, env: dict | None = None, **opts) -> dict:
    """Runs a worker in a fresh process; its result is kept in ``<work-dir>/workers/<label>.json`` and reused by a
    rerun with the same options and code."""
    record = args.work_dir / "workers" / f"{label}.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved["options"] == json.loads(json.dumps(opts)) and saved.get("env", {}) == (env or {}) \
                and saved.get("code") == args.code_digest:
            print(f"  {label}: measured earlier ({record})", flush=True)
            return {**saved["result"], "measured": saved.get("measured")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--work-dir", str(args.work_dir), "--worker", worker,
           "--options", json.dumps(opts)]
    print(f"  {label}: {worker} in a fresh process ...", flush=True)
    result, wall, _ = run_subprocess_json(cmd, env={**os.environ, "nnUNet_n_proc_DA": "0", **(env or {})})
    result["process_wall_s"] = wall
    measured = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(record, {"command": " ".join(cmd), "options": opts, "env": env or {}, "code": args.code_digest,
                        "measured": measured, "result": result})
    result["measured"] = measured
    print(f"  {label}: done in {wall:.0f} s", flush=True)
    return result


# ------------------------------------------------------------------------------------------------ parts
def measure_memory(args: argparse.Namespace, configuration: str) -> tuple[dict, dict]:
    """Item 1 on one configuration: untrained teachers, the pass, then stock, student (and joint) in fresh workers."""
    tag = "2d" if configuration == "2d" else "3d"
    dataset = prepare_2d(args) if tag == "2d" else prepare_3d(args)
    run_worker(args, "untrained", f"teachers_{tag}", dataset=dataset, configuration=configuration,
               plans="nnUNetPlans", trainer=MEMORY_TEACHER, folds=[0, 1])
    prepared = run_worker(args, "prepare_student", f"prepare_student_{tag}", dataset=dataset,
                          configuration=configuration)
    warmup, iterations = (args.warmup_2d, args.iterations_2d) if tag == "2d" else (args.warmup_3d, args.iterations_3d)
    arms = ["stock", "student"] + (["joint"] if tag in args.joint else [])
    runs = {}
    for arm in arms:
        runs[arm] = run_worker(args, "train_memory", f"memory_{tag}_{arm}", dataset=dataset,
                               configuration=configuration, arm=arm, warmup=warmup, iterations=iterations,
                               sample_ms=args.sample_ms, breakdown=arm == "stock")
        memory = runs[arm]["memory"]
        print(f"  {arm}: +{memory['increment_bytes'] / MIB:.0f} MiB over {memory['baseline_bytes'] / MIB:.0f} MiB, "
              f"{runs[arm]['s_per_iteration_median']:.2f} s/iteration", flush=True)
    settings = {"dataset": dataset, "warmup": warmup, "iterations": iterations, "teachers": prepared["teachers"],
                "teacher_weights": "untrained", "nnUNet_n_proc_DA": "0"}
    return runs, settings


def _cases(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{index:03d}" for index in range(count)]


def measure_cache_and_pass_3d(args: argparse.Namespace, parts: set[str]) -> tuple[dict, dict, dict]:
    """Items 2 and 3 (3-D): five trained teachers. Disk: our pass and nnU-Net's ``--save_probabilities`` on the
    ``bytes_*`` cases, both without test-time mirroring (CPU time; the stored contents are the same with it).
    Throughput: our pass and nnU-Net's predictor on the ``pass_*`` cases, with and without mirroring."""
    dataset, plans = prepare_cache_dataset(args)
    teacher, student = f"nnUNetTrainerStock_{args.teacher_budget}", f"nnUNetTrainerDUMM_{args.teacher_budget}"
    trained = run_worker(args, "train_teachers", "teachers_cache3d", dataset=dataset, plans=plans, trainer=teacher,
                         folds=list(range(5)), threads=args.teacher_threads)
    common = {"dataset": dataset, "configuration": "3d_fullres", "plans": plans, "preset": student,
              "threads": args.pass_threads}
    nnunet_env = {"nnUNet_def_n_proc": str(args.pass_threads)}
    patch = _patch(dataset, plans, "3d_fullres")
    settings = {"dataset": dataset, "plans": plans, "network_scale": args.network_scale,
                "teachers": f"{teacher} folds 0-4 ({trained_iterations(args.teacher_budget)} iterations each)",
                "teacher_train_s": trained["train_s"], "teacher_threads": args.teacher_threads,
                "pass_threads": args.pass_threads, "classes": 14, "labeled_cases": args.cache_labeled,
                "labeled_shape": list(args.cache_labeled_shape), "patch_size": patch}
    cache, runs = {}, {}
    if "cache3d" in parts:
        cases = _cases(BYTES_PREFIX, args.cache_unlabeled)
        folder = args.work_dir / "runs" / "cache3d_ours"
        ours = run_worker(args, "pass_ours", "cache3d_ours", mirroring=False, cache=str(folder), cases=cases,
                          **common)
        output = args.work_dir / "runs" / "cache3d_nnunet_save_probabilities"
        files = run_worker(args, "pass_nnunet", "cache3d_nnunet_save_probabilities", env=nnunet_env, mode="files",
                           mirroring=False, save_probabilities=True, output=str(output), cases=cases, **common)
        nnunet = nnunet_bytes(output, cases)
        confident = confident_maps_check(args.work_dir / "runs" / "confident_maps", args.cache_unlabeled_shape, patch)
        for check in confident:  # nnU-Net's .pkl (the properties) as measured
            check["nnunet_npz_pkl_bytes"] = check.pop("nnunet_npz_bytes") + nnunet["bytes_per_case"]["pkl"]
            check["ratio"] = check["ours_bytes_per_case"] / check["nnunet_npz_pkl_bytes"]
            check["ratio_without_class_locations"] = (
                (check["ours_bytes_per_case"] - check["ours_files_per_case"][".pkl"])
                / check["nnunet_npz_pkl_bytes"])
        cache = {"ours": cache_bytes(folder, cases), "nnunet": nnunet,
                 "settings": {**settings, "cases": len(cases), "unlabeled_shape": list(args.cache_unlabeled_shape),
                              "mirroring": False, "contents": ours["contents"], "confident_maps_check": confident,
                              "ours_pass_s": ours["pass_s"], "nnunet_save_probabilities_s": files["pass_s"],
                              "end_to_end_case_models_per_s_vs_nnunet_save_probabilities": ratio(
                                  ours["case_models_per_s"], files["case_models_per_s"])}}
    if "pass3d" in parts:
        cases = _cases(PASS_PREFIX, args.pass_unlabeled_3d)
        for mirroring in (True, False):
            suffix = "mirroring" if mirroring else "no_mirroring"
            runs[("ours", mirroring)] = run_worker(args, "pass_ours", f"pass3d_ours_{suffix}", mirroring=mirroring,
                                                   cache=str(args.work_dir / "runs" / f"pass3d_ours_{suffix}"),
                                                   cases=cases, **common)
            runs[("nnunet", mirroring)] = run_worker(args, "pass_nnunet", f"pass3d_nnunet_{suffix}", env=nnunet_env,
                                                     mode="preprocessed", mirroring=mirroring,
                                                     save_probabilities=False, cases=cases,
                                                     output=str(args.work_dir / "runs" / "pass3d_nnunet"), **common)
        settings = {**settings, "unlabeled_shape": list(args.pass_unlabeled_shape_3d)}
    return cache, runs, settings


def trained_iterations(budget: str) -> int:
    from benchmarks.trainers import BUDGETS

    return BUDGETS[budget].iterations


def _patch(dataset: str, plans: str, configuration: str) -> list[int]:
    path = Path(os.environ["nnUNet_preprocessed"]) / dataset / f"{plans}.json"
    return json.loads(path.read_text())["configurations"][configuration]["patch_size"]


def _demo_unlabeled_cases(count: int) -> list[str]:
    from nnunet_dumm.demo_data import case_identifier

    return [case_identifier("ul", index, count) for index in range(count)]


def measure_pass_2d(args: argparse.Namespace) -> tuple[dict, dict]:
    """Item 3 (2-D): the memory part's two untrained test-budget teachers on its unlabeled images."""
    dataset = prepare_2d(args)
    run_worker(args, "untrained", "teachers_2d", dataset=dataset, configuration="2d", plans="nnUNetPlans",
               trainer=MEMORY_TEACHER, folds=[0, 1])
    common = {"dataset": dataset, "configuration": "2d", "plans": "nnUNetPlans", "preset": MEMORY_STUDENT,
              "cases": _demo_unlabeled_cases(args.unlabeled_2d), "threads": args.pass_threads}
    nnunet_env = {"nnUNet_def_n_proc": str(args.pass_threads)}
    runs = {}
    for mirroring in (True, False):
        suffix = "mirroring" if mirroring else "no_mirroring"
        runs[("ours", mirroring)] = run_worker(args, "pass_ours", f"pass2d_ours_{suffix}", mirroring=mirroring,
                                               cache=str(args.work_dir / "runs" / f"cache2d_ours_{suffix}"),
                                               **common)
        runs[("nnunet", mirroring)] = run_worker(args, "pass_nnunet", f"pass2d_nnunet_{suffix}", env=nnunet_env,
                                                 mode="preprocessed", mirroring=mirroring, save_probabilities=False,
                                                 output=str(args.work_dir / "runs" / "nnunet2d_preprocessed"),
                                                 **common)
    settings = {"dataset": dataset, "unlabeled_shape": [args.image_size_2d] * 2, "pass_threads": args.pass_threads,
                "patch_size": _patch(dataset, "nnUNetPlans", "2d"),
                "teachers": f"{MEMORY_TEACHER} folds 0-1 (untrained)", "classes": 4}
    return runs, settings


# ------------------------------------------------------------------------------------------------ disk
def cache_bytes(folder: Path, cases: list[str]) -> dict:
    """Bytes per case of our cache entries (every file of an entry) and the voxels they cover."""
    import math
    import pickle

    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.uncertainty import PixelUncertainty

    files, voxels, locations, entropy = {}, [], [], []
    cache = PseudoLabelCache(folder)
    for case in cases:
        for suffix in ("_maps.b2nd", "_means.b2nd", "_votes.b2nd", ".pkl"):
            path = folder / f"{case}{suffix}"
            if path.is_file():
                files[suffix] = files.get(suffix, 0) + path.stat().st_size
        properties = cache.properties(case)
        voxels.append(math.prod(properties["spatial_shape"]))
        locations.append(len(pickle.dumps(properties["class_locations"])))
        if PixelUncertainty.ENTROPY in cache.contents.pixel_measures:
            entropy.append(float(cache.pixel_uncertainty(case, PixelUncertainty.ENTROPY).mean()) / 255)
    n = len(cases)
    per_case = {suffix: size / n for suffix, size in files.items()}
    # how certain the teachers were: confident maps compress better, on both sides
    return {"cases": n, "files_per_case": per_case, "bytes_per_case": sum(per_case.values()),
            "voxels_per_case": sum(voxels) / n, "class_locations_bytes_per_case": sum(locations) / n,
            "mean_normalised_entropy": sum(entropy) / len(entropy) if entropy else None}


def confident_maps_check(folder: Path, shape, patch_size, margins=(8.0, 16.0), sigma: float = 1.0,
                         noise: float = 0.5, members: int = 5) -> list[dict]:
    """Both formats on the softmax of synthetic confident logits, no model needed: ``margin`` x a generated 14-class
    true label's one-hot, blurred over ``sigma`` voxels (soft region boundaries), plus Gaussian noise of ``noise``
    per voxel and class (a network's logits are never exactly flat, so small probabilities carry noisy mantissas, as
    real softmax maps do), as ``members`` agreeing members. A margin of 8 puts the other classes near e^-8 of the
    winner inside a region, 16 near e^-16. Against the barely trained teachers of the main measurement, these
    bracket a trained ensemble."""
    import numpy as np
    import SimpleITK as sitk
    import torch
    from scipy.ndimage import gaussian_filter

    from benchmarks.run_pass_cost import NUM_CLASSES_3D, generate_volumes
    from nnunet_dumm.cache import CacheContents, PseudoLabelCache
    from nnunet_dumm.config import DUMMConfig
    from nnunet_dumm.uncertainty import EnsembleStatistics

    shutil.rmtree(folder, ignore_errors=True)
    generate_volumes(folder / "raw", tuple(shape), labeled=1, unlabeled=0, seed=3)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "raw" / "labelsTr" / "vol_000.nii.gz")))
    onehot = np.eye(NUM_CLASSES_3D, dtype=np.float32)[label.astype(np.int64)].transpose(3, 0, 1, 2)
    blurred = np.stack([gaussian_filter(c, sigma) for c in onehot])
    rng = np.random.default_rng(0)
    out = []
    for margin in margins:
        logits = torch.from_numpy(margin * blurred + rng.normal(0, noise, blurred.shape).astype(np.float32))
        p = torch.softmax(logits, 0).numpy()
        cache = PseudoLabelCache(folder / f"cache_margin{margin:g}")
        cache.write_sources({"confident_maps": margin, "contents": CacheContents.of_round(DUMMConfig(), 0).to_dict()})
        stats = EnsembleStatistics.empty(NUM_CLASSES_3D, p.shape[1:])
        for _ in range(members):
            stats.add(torch.from_numpy(p.copy()))
        cache.write("case", stats, [f"member{m}" for m in range(members)], tuple(patch_size),
                    list(range(1, NUM_CLASSES_3D)))
        npz = folder / f"nnunet_margin{margin:g}.npz"
        np.savez_compressed(npz, probabilities=p.astype(np.float32))
        ours = cache_bytes(cache.folder, ["case"])
        out.append({"margin": margin, "sigma": sigma, "noise": noise, "ours_files_per_case": ours["files_per_case"],
                    "ours_bytes_per_case": ours["bytes_per_case"], "nnunet_npz_bytes": npz.stat().st_size,
                    "mean_normalised_entropy": ours["mean_normalised_entropy"], "voxels": ours["voxels_per_case"]})
    return out


def _npz_shape(path: Path) -> tuple[int, ...]:
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as archive, archive.open("probabilities.npy") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return reader(f)[0]


def nnunet_bytes(folder: Path, cases: list[str], file_ending: str = ".nii.gz") -> dict:
    """Bytes per case of nnU-Net's ``--save_probabilities`` output: ``.npz``, ``.pkl`` and the segmentation."""
    import math

    totals = {"npz": 0, "pkl": 0, "segmentation": 0}
    voxels = []
    for case in cases:
        totals["npz"] += (folder / f"{case}.npz").stat().st_size
        totals["pkl"] += (folder / f"{case}.pkl").stat().st_size
        totals["segmentation"] += (folder / f"{case}{file_ending}").stat().st_size
        voxels.append(math.prod(_npz_shape(folder / f"{case}.npz")[1:]))
    n = len(cases)
    return {"cases": n, "bytes_per_case": {k: v / n for k, v in totals.items()}, "voxels_per_case": sum(voxels) / n,
            "classes": _npz_shape(folder / f"{cases[0]}.npz")[0]}


# ------------------------------------------------------------------------------------------------ report
def write_report(args: argparse.Namespace, entries: dict, wall_s: float) -> None:
    machine, commit = machine_info("cpu"), git_commit()
    path = args.results_dir / "resources.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    merged = {k: previous[k] for k in KEYS if k in previous}
    for key, value in entries.items():
        merged[key] = {**value, "machine": machine, "git_commit": commit}
    ordered = {k: merged[k] for k in KEYS if k in merged}
    runs = previous.get("runs", [])
    runs.append({"command": command_line(), "parts": args.parts, "wall_s": round(wall_s, 1), "git_commit": commit,
                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "keys": sorted(entries)})
    write_json(path, {**ordered, "machine": machine, "runs": runs})
    (args.results_dir / "resources.md").write_text(markdown_report(ordered, machine, runs))
    print((args.results_dir / "resources.md").read_text())


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_report(entries: dict, machine: dict, runs: list[dict]) -> str:
    """The human-readable table of ``resources.json``."""
    lines = ["# Resources: the student and the teachers' pass against stock nnU-Net", "",
             "Each value is a ratio of two fresh worker processes of the same run (`benchmarks/run_resources.py`); "
             "absolute numbers and per-run details in `resources.json`.", "",
             f"Machine: {machine.get('cpu_model')}, {machine.get('cpu_cores_usable')} cores, "
             f"{machine.get('memory_gib')} GiB, torch {machine.get('torch')}, nnU-Net {machine.get('nnunetv2')}, "
             "CPU only.", "",
             "| key | value | goal | met | what |", "|---|---:|---|---|---|"]
    for key, e in entries.items():
        met = {True: "yes", False: "**no**", None: "-"}[e.get("met")]
        lines.append(f"| `{key}` | {_fmt(e['value'])} | {e.get('goal', '-')} | {met} | {_summary(key, e)} |")
    lines += ["", "## Conditions", ""]
    for key, e in entries.items():
        d = e["details"]
        if key.startswith("student_peak_memory"):
            loads = [r["loadavg_after"][0] for r in d["runs"].values() if r.get("loadavg_after")]
            lines.append(f"* `{key}`: workers measured {', '.join(str(r.get('measured')) for r in d['runs'].values())}"
                         f"; 1-minute load average after each {', '.join(f'{x:.1f}' for x in loads)} on "
                         f"{machine.get('cpu_cores_usable')} cores (other work shared the machine: times are "
                         "comparable within a key only). Memory above the start of training: VmHWM after a reset "
                         "(equal to the sampled VmRSS peak within 1 MiB).")
        if key.startswith("pass_case_models") and "ours" in d:
            lines.append(f"* `{key}`: {d['ours'].get('torch_threads')} torch thread(s) on both sides "
                         f"(nnU-Net's nnUNet_def_n_proc {d['nnunet'].get('nnUNet_def_n_proc')}), load average after "
                         f"{d['ours']['loadavg_after'][0]:.1f} / {d['nnunet']['loadavg_after'][0]:.1f}.")
    lines += ["", "## Commands", ""]
    for command in dict.fromkeys(e["command"] for e in entries.values()):
        keys = ", ".join(f"`{k}`" for k, e in entries.items() if e["command"] == command)
        lines += [f"{keys}:", "", "```bash", command, "```", ""]
    lines += ["Runs (wall time including data generation, teacher training and every worker):", ""]
    for run in runs:
        lines.append(f"* {run['finished']}: `{run['command']}`, {run['wall_s'] / 60:.1f} min, commit "
                     f"{run['git_commit']}")
    return "\n".join(lines) + "\n"


def _summary(key: str, e: dict) -> str:
    d = e["details"]
    if key.startswith("student_peak_memory"):
        runs = d["runs"]
        text = (f"training memory above the start of training, {d['configuration']}, patch "
                f"{'x'.join(map(str, d['patch_size']))}, batch {d['batch_size']} (+{runs['student']['unlabeled_batch']}"
                f" unlabeled): stock +{runs['stock']['increment_mib']:.0f} MiB (peak {runs['stock']['peak_mib']:.0f}),"
                f" student +{runs['student']['increment_mib']:.0f} MiB (peak {runs['student']['peak_mib']:.0f})")
        if "joint" in runs:
            text += (f"; old joint pass +{runs['joint']['increment_mib']:.0f} MiB "
                     f"({_fmt(d['joint_pass_vs_stock'])}x stock)")
        return text
    if key.startswith("student_time"):
        return (f"median s/iteration, {d['configuration']}: stock {d['stock_s_per_iteration']:.2f}, student "
                f"{d['student_s_per_iteration']:.2f} ({d['student_samples_per_iteration']} samples: "
                f"{_fmt(d['per_sample_ratio'])}x per sample); CPU-time ratio {_fmt(d['cpu_time_ratio'])}")
    if key.startswith("cache_bytes"):
        return (f"{d['cases']} cases of {'x'.join(map(str, d['unlabeled_shape']))} voxels, {d['classes']} classes, "
                f"{d['teachers']}: ours {d['ours_bytes_per_case'] / MIB:.2f} MiB/case "
                f"({d['ours_bytes_per_voxel']:.2f} B/voxel), nnU-Net npz+pkl "
                f"{d['nnunet_npz_pkl_bytes_per_case'] / MIB:.2f} MiB ({d['nnunet_bytes_per_voxel']:.2f} B/voxel), with "
                f"the segmentation {d['nnunet_with_segmentation_bytes_per_case'] / MIB:.2f} MiB "
                f"({d['nnunet_with_segmentation_bytes_per_voxel']:.2f} B/voxel; ours "
                f"{_fmt(d['vs_with_segmentation'])}x); ensemble mean normalised entropy "
                f"{_fmt(d.get('mean_normalised_entropy_of_the_ensemble'))}. Synthetic confident maps of the same size: "
                + ", ".join(f"{_fmt(c['ratio'])}x (entropy {_fmt(c['mean_normalised_entropy'], 3)}; "
                            f"{_fmt(c['ratio_without_class_locations'])}x without the .pkl's class locations)"
                            for c in d.get("confident_maps_check", [])))
    if key.startswith("pass_case_models"):
        return (f"{d['cases']} case(s) of {'x'.join(map(str, d['unlabeled_shape']))}"
                f" x {d['models']} models, mirroring {'on' if d['mirroring'] else 'off'}, patch "
                f"{'x'.join(map(str, d['patch_size']))}: ours {d['ours_s_per_case_model']:.2f} s/case-model, nnU-Net "
                f"{d['nnunet_s_per_case_model']:.2f}")
    return ""


# ------------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True, help="generated data, models and passes go here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where resources.json/.md go")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--sample-ms", type=float, default=2.0, help="VmRSS sampling interval")
    # item 1, 2-D
    parser.add_argument("--image-size-2d", type=int, default=512)
    parser.add_argument("--labeled-2d", type=int, default=10)
    parser.add_argument("--unlabeled-2d", type=int, default=4, help="also the cases of the 2-D pass")
    parser.add_argument("--warmup-2d", type=int, default=1)
    parser.add_argument("--iterations-2d", type=int, default=3)
    # item 1, 3-D
    parser.add_argument("--volume-shape-3d", type=int, nargs=3, default=[160, 160, 160], metavar=("Z", "Y", "X"))
    parser.add_argument("--labeled-3d", type=int, default=2)
    parser.add_argument("--unlabeled-3d", type=int, default=2)
    parser.add_argument("--warmup-3d", type=int, default=0,
                        help="3-D iterations take minutes on 2 cores (about 150 s stock, 290 s student)")
    parser.add_argument("--iterations-3d", type=int, default=1)
    parser.add_argument("--joint", nargs="*", choices=("2d", "3d"), default=["2d"],
                        help="also measure the old joint pass (3d: about twice stock's memory)")
    # items 2 and 3, 3-D
    parser.add_argument("--cache-labeled", type=int, default=10)
    parser.add_argument("--cache-labeled-shape", type=int, nargs=3, default=[32, 32, 32], metavar=("Z", "Y", "X"))
    parser.add_argument("--cache-unlabeled", type=int, default=1, help="cases of the disk comparison")
    parser.add_argument("--cache-unlabeled-shape", type=int, nargs=3, default=[80, 80, 80], metavar=("Z", "Y", "X"))
    parser.add_argument("--pass-unlabeled-3d", type=int, default=1, help="cases of the 3-D throughput comparison")
    parser.add_argument("--pass-unlabeled-shape-3d", type=int, nargs=3, default=[48, 48, 48],
                        metavar=("Z", "Y", "X"))
    parser.add_argument("--network-scale", type=float, default=0.5,
                        help="the cache teachers' features per stage x this (0.25 gives 8-channel 3-D convolutions, "
                        "whose backward pass is pathologically slow on this CPU build)")
    parser.add_argument("--teacher-budget", default="demo", help="budget preset of the five cache teachers")
    parser.add_argument("--teacher-threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of the cache teachers' training")
    parser.add_argument("--pass-threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads of both passes (ours and nnU-Net's, whose nnUNet_def_n_proc is set to it)")
    # worker
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--options", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    set_nnunet_paths(args.work_dir)
    if args.worker:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        print(json.dumps(WORKERS[args.worker](json.loads(args.options))), flush=True)
        return
    git_commit()
    args.code_digest = code_digest()
    start = time.perf_counter()
    parts, entries, command = set(args.parts), {}, command_line()
    for configuration, part in (("2d", "memory2d"), ("3d_fullres", "memory3d")):
        if part in parts:
            print(f"\n=== {part}: student vs stock peak memory and time per iteration", flush=True)
            runs, settings = measure_memory(args, configuration)
            entries.update(memory_entries(configuration, runs, settings, command))
    if parts & {"cache3d", "pass3d"}:
        print("\n=== cache3d / pass3d: five trained 3-D teachers; cache bytes and pass throughput", flush=True)
        cache, runs, settings = measure_cache_and_pass_3d(args, parts)
        if cache:
            entries.update(cache_entry(cache["ours"], cache["nnunet"], cache["settings"], command))
        if "pass3d" in parts:
            entries.update(pass_entries("3d", runs, settings, command))
    if "pass2d" in parts:
        print("\n=== pass2d: our pass vs nnU-Net's predictor, 2-D", flush=True)
        runs, settings = measure_pass_2d(args)
        entries.update(pass_entries("2d", runs, settings, command))
    write_report(args, entries, time.perf_counter() - start)


if __name__ == "__main__":
    main()
