"""What the pseudo-label passes and the unlabeled loader cost: before/after throughput, round transitions, 3-D memory.

Four measurements, each in fresh worker processes on an otherwise idle machine, written to
``benchmarks/results/pass_cost.{json,md}``:

1. ``cpu_throughput_vs_before``: case-models/s of the teachers' pass of this code vs the code of ``--before``
   (a git commit, checked out into the work dir), same teachers, same preprocessed cases (``--dataset`` of a
   quality-benchmark work dir: ACDC-7 at 64 x 64, the five proxy teachers). Goal >= 2.
2. ``round_transition_vs_one_model_pass``: a SUS round transition (the student added to the cached teacher
   statistics) vs one model's pass over the same cases. Goal <= 1.2.
3. ``peak_rss_3d_vs_predict_with_probabilities``: peak RSS (VmHWM) of our pass with two teachers on one generated
   3-D case with 14 classes vs stock ``nnUNetPredictor.predict_from_files_sequential(save_probabilities=True)`` of
   that case with one of them. Goal <= 2.
4. ``unlabeled_loader_vs_labeled_loader``: patches/s of our unlabeled loader vs nnU-Net's labeled training loader
   on that 3-D dataset (same transforms, same patch size, single-threaded). Goal >= 0.9.

Each worker's result is kept in ``<work-dir>/workers/`` and reused by a rerun with the same options, so a
cut-off run resumes and one measurement is redone alone by deleting its file.

Example (the first two need a quality run's work dir with trained proxy teachers):
    python benchmarks/run_pass_cost.py --quality-work-dir work_dirs/acdc_L7_ds4 --work-dir work_dirs/pass_cost \\
        --before b1cef33
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/run_pass_cost.py` from anywhere

from benchmarks.common import (  # noqa: E402
    REPO_ROOT,
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

GOALS = {"cpu_throughput_vs_before": (">=", 2.0), "round_transition_vs_one_model_pass": ("<=", 1.2),
         "peak_rss_3d_vs_predict_with_probabilities": ("<=", 2.0), "unlabeled_loader_vs_labeled_loader": (">=", 0.9)}
VOLUME_DATASET_ID = 963
NUM_CLASSES_3D = 14


# ------------------------------------------------------------------------------------------------ workers
def worker_pass(args: argparse.Namespace) -> dict:
    """A teachers' pass (this code or the code at ``--code-root``) over ``--num-cases`` cases into a fresh cache."""
    sys.path.insert(0, args.code_root)  # the package under test: this checkout or the --before one
    import inspect
    import shutil

    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    import nnunet_dumm.pseudo_labels as pseudo_labels
    import nnunet_dumm.unlabeled as unlabeled  # preprocessed_shape exists only in this code, not in --before's
    from nnunet_dumm.unlabeled import completed_cases, load_preprocessed_image, unlabeled_preprocessed_folder

    assert Path(pseudo_labels.__file__).is_relative_to(args.code_root), pseudo_labels.__file__
    try:  # this code: the teachers and the cache have modules of their own since 0.2.0
        from nnunet_dumm.cache import PseudoLabelCache
        from nnunet_dumm.teachers import load_teacher_members
    except ImportError:  # the code of --before: both in pseudo_labels
        PseudoLabelCache, load_teacher_members = pseudo_labels.PseudoLabelCache, pseudo_labels.load_teacher_members
    torch.set_num_threads(os.cpu_count() or 1)
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / args.dataset
    plans_manager = PlansManager(str(preprocessed / f"{args.plans}.json"))
    configuration_manager = plans_manager.get_configuration(args.configuration)
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    folds = [(Path(folder), int(fold) if fold.isdigit() else fold, "checkpoint_final.pth")
             for folder, fold in (t.rsplit(":", 1) for t in args.teachers)]
    members = load_teacher_members(folds, plans_manager, configuration_manager, dataset_json,
                                   torch.device(args.device), args.mirroring == "on")
    folder = unlabeled_preprocessed_folder(args.dataset, configuration_manager.data_identifier)
    cases = completed_cases(folder)[: args.num_cases]
    cache = PseudoLabelCache(args.cache)
    shutil.rmtree(cache.folder, ignore_errors=True)
    sources = {"benchmark": args.cache}
    kwargs = {}
    if "case_image" in inspect.signature(pseudo_labels.generate_pseudo_labels).parameters:
        # this code's cache records what it keeps and the images it was computed from
        from nnunet_dumm.cache import CacheContents
        from nnunet_dumm.config import DUMMConfig

        sources["contents"] = CacheContents.of_round(DUMMConfig(), 0).to_dict()
        kwargs["case_image"] = lambda c: unlabeled.preprocessed_fingerprint(folder, c)
    if "class_location_keys" in inspect.signature(pseudo_labels.generate_pseudo_labels).parameters:
        kwargs["class_location_keys"] = pseudo_labels.class_location_keys(
            plans_manager.get_label_manager(dataset_json))
    if "case_shape" in inspect.signature(pseudo_labels.generate_pseudo_labels).parameters:
        kwargs["case_shape"] = lambda c: unlabeled.preprocessed_shape(folder, c)
    if args.base:
        kwargs["base"] = PseudoLabelCache(args.base)
    start = time.perf_counter()
    pseudo_labels.generate_pseudo_labels(members, cases, lambda c: load_preprocessed_image(folder, c), cache,
                                         sources, verbose=False, **kwargs)
    elapsed = time.perf_counter() - start
    return {"cases": len(cases), "models": len(members), "pass_s": elapsed,
            "case_models_per_s": len(cases) * len(members) / elapsed, "vm_hwm_bytes": peak_rss_bytes()}


def worker_stock_predict(args: argparse.Namespace) -> dict:
    """nnU-Net's own predictor, sequential (no export workers), with probabilities saved: its peak memory."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(os.cpu_count() or 1)
    folder, fold = args.teachers[0].rsplit(":", 1)
    predictor = nnUNetPredictor(device=torch.device(args.device), use_mirroring=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(folder, use_folds=(int(fold),))
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    predictor.predict_from_files_sequential(args.images, args.cache, save_probabilities=True, overwrite=True)
    return {"predict_s": time.perf_counter() - start, "vm_hwm_bytes": peak_rss_bytes()}


class _PatchSeededTransforms:
    """nnU-Net's training transforms, the k-th patch's with the random state seeded by k."""

    def __init__(self, transforms):
        self.transforms, self.patch = transforms, 0

    def __call__(self, **data):
        seed_everything(self.patch)
        self.patch += 1
        return self.transforms(**data)


def worker_truth_cache(args: argparse.Namespace) -> dict:
    """Pseudo-label cache entries of the labeled cases that look like a trained ensemble's: the true label, certain
    inside each region and uncertain (0.55 / 0.45) on region boundaries, which the mask drops (``worker_loaders``
    reports how much).

    Untrained teachers are fine for memory, not for the loader: their entropy masks every voxel, and a weight
    channel of one value is copied, not resampled, by nnU-Net's spatial transform."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_dumm.cache import PseudoLabelCache

    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / args.dataset
    plans = PlansManager(str(preprocessed / f"{args.plans}.json"))
    configuration = plans.get_configuration(args.configuration)
    folder = preprocessed / configuration.data_identifier
    label_manager = plans.get_label_manager(json.loads((preprocessed / "dataset.json").read_text()))
    from nnunet_dumm.cache import CacheContents
    from nnunet_dumm.config import DUMMConfig

    cache = PseudoLabelCache(args.cache)
    cache.write_sources({"truth": str(folder), "contents": CacheContents.of_round(DUMMConfig(), 0).to_dict()})
    cases = sorted(p.name[:-len(".b2nd")] for p in folder.glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))
    for case in cases:
        if not cache.done(case):
            _write_truth_entry(cache, case, folder, configuration.patch_size, label_manager)
    return {"cases": cases}


def _write_truth_entry(cache, case: str, folder: Path, patch_size, label_manager) -> None:
    import numpy as np
    import torch
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    from nnunet_dumm.pseudo_labels import class_location_keys
    from nnunet_dumm.uncertainty import EnsembleStatistics

    seg = torch.from_numpy(nnUNetDatasetBlosc2(str(folder), [case]).load_case(case)[1][0].astype(np.int64))
    seg.clamp_(min=0)  # outside nnU-Net's nonzero crop: background
    boundary = torch.zeros(seg.shape, dtype=torch.bool)
    for axis in range(seg.ndim):
        differs = seg.narrow(axis, 1, seg.shape[axis] - 1) != seg.narrow(axis, 0, seg.shape[axis] - 1)
        boundary.narrow(axis, 1, seg.shape[axis] - 1).logical_or_(differs)
        boundary.narrow(axis, 0, seg.shape[axis] - 1).logical_or_(differs)
    probs = torch.nn.functional.one_hot(seg, label_manager.num_segmentation_heads).movedim(-1, 0).float()
    del seg
    probs.mul_(torch.where(boundary, 0.55, 1.0))
    probs[0].add_(torch.where(boundary, 0.45, 0.0))  # boundary voxels of background: (1.0, ...), still certain
    del boundary
    stats = EnsembleStatistics.empty(probs.shape[0], probs.shape[1:])
    stats.add(probs)
    del probs
    cache.write(case, stats, ["truth"], patch_size, class_location_keys(label_manager))


def worker_loaders(args: argparse.Namespace) -> dict:
    """Patches/s of nnU-Net's labeled training loader and of our unlabeled loader, same transforms."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.dataloading import LabelMapDataset, build_unlabeled_loader

    torch.set_num_threads(1)
    trainer = get_trainer_from_args(args.dataset, args.configuration, "all", "nnUNetTrainerDUMM", args.plans,
                                    device=torch.device("cpu"))
    trainer.initialize()
    train, val = trainer.get_dataloaders()
    # the labeled cases, with the pseudo-labels of worker_truth_cache: both loaders see the same label maps, made
    # as the trainer makes a round's (its default mask, per-class thresholds over these cases)
    labeled = getattr(train, "data_loader", None) or train.generator
    cache = PseudoLabelCache(args.base)
    cached = [c for c in labeled.indices if cache.done(c)]
    maps = trainer._label_maps(cache, cached)
    dataset = LabelMapDataset(trainer.preprocessed_dataset_folder, cached, args.base, maps)
    unlabeled = build_unlabeled_loader(train, trainer.label_manager, dataset, trainer.batch_size)
    # what the mask drops, as the loader sees it
    masked = [1 - float(maps.kept_table[cache.pseudo_label(c), cache.pixel_uncertainty(c, maps.pixel_uncertainty)]
                        .mean()) for c in cached]
    out = {"batch_size": trainer.batch_size, "patch_size": list(trainer.configuration_manager.patch_size),
           "masked_fractions": masked}
    # Whether a patch is rotated or scaled (10x the cost of a plain crop) must be drawn alike for both loaders.
    # Reseeding per batch is not enough: choosing a foreground voxel consumes a number of random draws that
    # depends on the case, so the streams part before the transforms (23 vs 19 transformed patches of 40 in one
    # run). Each loader's k-th patch is therefore transformed with the random state seeded by k.
    seconds = {"labeled": 0.0, "unlabeled": 0.0}
    for loader in (train, unlabeled):
        inner = getattr(loader, "data_loader", None) or loader.generator
        inner.transforms = _PatchSeededTransforms(inner.transforms)
        next(loader)
    for batch in range(args.batches):
        for name, loader in (("labeled", train), ("unlabeled", unlabeled)):
            seed_everything(batch)
            start = time.perf_counter()
            next(loader)
            seconds[name] += time.perf_counter() - start
    for name, total in seconds.items():
        out[f"{name}_patches_per_s"] = args.batches * trainer.batch_size / total
    return out


WORKERS = {"pass": worker_pass, "stock_predict": worker_stock_predict, "truth_cache": worker_truth_cache,
           "loaders": worker_loaders}


def _run_worker(args: argparse.Namespace, worker: str, **options) -> dict:
    """Runs a worker in a fresh process; its result is kept in the work dir and reused by a rerun with the same
    options (a cut-off run resumes; one measurement can be redone alone by deleting its file)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--work-dir", str(args.work_dir)]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        cmd += [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    record = args.work_dir / "workers" / f"{worker}_{zlib.crc32(' '.join(cmd[2:]).encode()):08x}.json"
    if record.is_file():
        result = json.loads(record.read_text())["result"]
        print(f"  {worker} (measured earlier, {record}): {json.dumps(result)}")
        return result
    result, wall, _ = run_subprocess_json(cmd, env={**os.environ, "nnUNet_n_proc_DA": "0"})
    result["wall_s"] = wall
    write_json(record, {"command": cmd, "result": result})
    print(f"  {worker}: {json.dumps(result)}")
    return result


# ------------------------------------------------------------------------------------------------ 2-D measurements
def plain_trainer_copy(model_folder: Path, destination: Path) -> Path:
    """The model folder with its checkpoints naming stock ``nnUNetTrainer`` (a budget preset only changes the
    schedule, not the network), so that code of any commit builds the same networks without its own presets."""
    import shutil

    import torch

    copy = destination / model_folder.parent.name / "nnUNetTrainer__nnUNetPlans__2d"
    for name in ("plans.json", "dataset.json"):
        copy.mkdir(parents=True, exist_ok=True)
        shutil.copy(model_folder / name, copy / name)
    for fold in model_folder.glob("fold_*"):
        if (copy / fold.name / "checkpoint_final.pth").is_file():
            continue
        checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        checkpoint["trainer_name"] = "nnUNetTrainer"
        (copy / fold.name).mkdir(exist_ok=True)
        torch.save(checkpoint, copy / fold.name / "checkpoint_final.pth")
    return copy


def measure_2d(args: argparse.Namespace) -> dict:
    """Throughput before/after and the round transition, on a quality work dir's dataset and teachers."""
    quality = args.quality_work_dir.resolve()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ[name] = str(quality / name)
    (dataset,) = [p.name for p in (quality / "nnUNet_preprocessed").iterdir() if not p.name.endswith("_dev")]
    teacher_folder = plain_trainer_copy(quality / "nnUNet_results" / dataset /
                                        f"{args.teacher_trainer}__nnUNetPlans__2d", args.work_dir / "teachers")
    teachers = [f"{teacher_folder}:{fold}" for fold in range(5)]
    before_root = args.work_dir / f"code_{args.before}"
    if not before_root.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(before_root), args.before], cwd=REPO_ROOT,
                       check=True)
    common = {"dataset": dataset, "configuration": "2d", "plans": "nnUNetPlans", "num_cases": args.num_cases,
              "device": args.device}
    runs = {}
    print(f"teachers' pass, {args.num_cases} cases, 5 teachers: code of {args.before} (before), then this code")
    runs["before"] = _run_worker(args, "pass", code_root=before_root, teachers=teachers,
                                 cache=args.work_dir / "cache_before", **common)
    runs["after"] = _run_worker(args, "pass", code_root=REPO_ROOT, teachers=teachers,
                                cache=args.work_dir / "cache_after", **common)
    student = [teachers[0]]  # any trained model stands for the student; its cost is one model's
    print("one model's pass vs a round transition (the same model added to the cached teachers' statistics)")
    runs["one_model"] = _run_worker(args, "pass", code_root=REPO_ROOT, teachers=student,
                                    cache=args.work_dir / "cache_one_model", **common)
    runs["round_transition"] = _run_worker(args, "pass", code_root=REPO_ROOT, teachers=student,
                                           cache=args.work_dir / "cache_round2", base=args.work_dir / "cache_after",
                                           **common)
    return {"runs": runs, "dataset": dataset, "teachers": teachers,
            "cpu_throughput_vs_before": runs["after"]["case_models_per_s"] / runs["before"]["case_models_per_s"],
            "round_transition_vs_one_model_pass": runs["round_transition"]["pass_s"] / runs["one_model"]["pass_s"]}


# ------------------------------------------------------------------------------------------------ 3-D measurements
def generate_volumes(raw: Path, shape: tuple[int, int, int], labeled: int, unlabeled: int, seed: int) -> None:
    """A 3-D dataset of ``NUM_CLASSES_3D`` classes (smooth random regions, intensities per class + noise)."""
    import numpy as np
    import SimpleITK as sitk
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    for folder in ("imagesTr", "labelsTr", "imagesUnlabeled"):
        (raw / folder).mkdir(parents=True, exist_ok=True)
    for index in range(labeled + unlabeled):
        coarse = rng.standard_normal((NUM_CLASSES_3D, *(max(2, s // 32) for s in shape)))
        fields = zoom(coarse, (1, *(s / c for s, c in zip(shape, coarse.shape[1:]))), order=1)
        label = fields.argmax(0).astype(np.uint8)
        image = (label * 40.0 + rng.normal(0, 20, shape)).astype(np.float32)
        name = f"vol_{index:03d}"
        images, labels = ("imagesTr", "labelsTr") if index < labeled else ("imagesUnlabeled", None)
        for array, path in ((image, raw / images / f"{name}_0000.nii.gz"),
                            *(((label, raw / labels / f"{name}.nii.gz"),) if labels else ())):
            img = sitk.GetImageFromArray(array)
            img.SetSpacing((1.0, 1.0, 1.0))
            sitk.WriteImage(img, str(path), useCompression=False)
    generate_dataset_json(str(raw), {0: "CT"}, {"background": 0, **{f"organ{c}": c for c in range(1, NUM_CLASSES_3D)}},
                          labeled, ".nii.gz", dataset_name=raw.name)


def untrained_teachers(dataset: str, plans: str, folds: int) -> list[str]:
    """Model folders with untrained 3d_fullres networks: memory and speed do not depend on the weights."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import save_json
    from nnunetv2.run.run_training import get_trainer_from_args

    out = []
    for fold in range(folds):
        trainer = get_trainer_from_args(dataset, "3d_fullres", fold, "nnUNetTrainer", plans,
                                        device=torch.device("cpu"))
        checkpoint = Path(trainer.output_folder) / "checkpoint_final.pth"
        if not checkpoint.is_file():
            trainer.initialize()
            Path(trainer.output_folder).mkdir(parents=True, exist_ok=True)
            save_json(trainer.plans_manager.plans, str(Path(trainer.output_folder_base) / "plans.json"))
            save_json(trainer.dataset_json, str(Path(trainer.output_folder_base) / "dataset.json"))
            trainer.save_checkpoint(str(checkpoint))
        out.append(f"{Path(trainer.output_folder).parent}:{fold}")
    return out


def measure_3d(args: argparse.Namespace) -> dict:
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints,
        plan_experiments,
        preprocess,
    )

    from benchmarks.datasets import plans_variant_name, write_plans_variant
    from nnunet_dumm.unlabeled import preprocess_unlabeled

    folders = set_nnunet_paths(args.work_dir / "volumes")
    dataset = f"Dataset{VOLUME_DATASET_ID}_Volumes{'x'.join(map(str, args.volume_shape))}"
    raw = folders["nnUNet_raw"] / dataset
    if not (raw / "dataset.json").is_file():
        generate_volumes(raw, tuple(args.volume_shape), labeled=2, unlabeled=2, seed=0)
    plans = plans_variant_name(args.network_scale)
    preprocessed = folders["nnUNet_preprocessed"] / dataset
    if not (preprocessed / "nnUNetPlans_3d_fullres").is_dir():
        extract_fingerprints([VOLUME_DATASET_ID], num_processes=1)
        plan_experiments([VOLUME_DATASET_ID])
        preprocess([VOLUME_DATASET_ID], configurations=("3d_fullres",), num_processes=(1,))
    write_plans_variant(preprocessed, plans, args.network_scale)
    preprocess_unlabeled(dataset, "3d_fullres", plans)
    teachers = untrained_teachers(dataset, plans, 2)
    # no mirroring on either side: memory does not depend on it, time would grow eightfold
    common = {"dataset": dataset, "configuration": "3d_fullres", "plans": plans, "num_cases": 1,
              "device": args.device, "mirroring": "off"}
    print(f"3-D: peak memory of our pass (2 teachers) vs nnU-Net's predictor with probabilities, one "
          f"{'x'.join(map(str, args.volume_shape))} case, {NUM_CLASSES_3D} classes")
    ours = _run_worker(args, "pass", code_root=REPO_ROOT, teachers=teachers, cache=args.work_dir / "cache_3d",
                       **common)
    one_image = args.work_dir / "one_volume"
    one_image.mkdir(exist_ok=True)
    source = sorted((raw / "imagesUnlabeled").glob("*_0000.nii.gz"))[0]
    if not (one_image / source.name).exists():
        (one_image / source.name).symlink_to(source)
    stock = _run_worker(args, "stock_predict", teachers=teachers, images=one_image,
                        cache=args.work_dir / "stock_3d", **common)
    truth = _run_worker(args, "truth_cache", cache=args.work_dir / "cache_3d_truth", **common)
    loaders = _run_worker(args, "loaders", base=args.work_dir / "cache_3d_truth", batches=args.batches, **common)
    if "masked_fractions" in loaders:  # measured by the loaders' worker (by truth_cache's in a worker of earlier code)
        truth = {**truth, "masked_fractions": loaders.pop("masked_fractions")}
    loaders["truth_cache"] = truth
    return {"dataset": dataset, "plans": plans, "volume_shape": args.volume_shape, "classes": NUM_CLASSES_3D,
            "ours": ours, "stock_predict": stock, "loaders": loaders,
            "peak_rss_3d_vs_predict_with_probabilities": ours["vm_hwm_bytes"] / stock["vm_hwm_bytes"],
            "unlabeled_loader_vs_labeled_loader": loaders["unlabeled_patches_per_s"] /
            loaders["labeled_patches_per_s"]}


# ------------------------------------------------------------------------------------------------ report
def write_report(args: argparse.Namespace, results: dict) -> None:
    machine, commit, command = machine_info(args.device), git_commit(), command_line()
    path = args.results_dir / "pass_cost.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    entries = {**previous.get("measurements", {})}
    for key in GOALS:
        for part in results.values():
            if key in part:
                op, goal = GOALS[key]
                met = part[key] >= goal if op == ">=" else part[key] <= goal
                entries[key] = {"value": part[key], "goal": f"{op} {goal}", "met": met, "command": command,
                                "machine": machine, "git_commit": commit, "details": part}
    write_json(path, {"measurements": entries})
    lines = ["# Pseudo-label pass and unlabeled loader: cost", "",
             "Each key measured in fresh worker processes on an otherwise idle machine (a running benchmark was "
             "paused with benchmarks/pause.py); details and per-run numbers in `pass_cost.json`.", "",
             "| key | value | goal | met | measured on |", "|---|---:|---|---|---|"]
    for key, entry in entries.items():
        lines.append(f"| `{key}` | {entry['value']:.2f} | {entry['goal']} | {'yes' if entry['met'] else 'no'} | "
                     f"{entry['machine']['cpu_cores_usable']} cores, `{entry['command']}` |")
    lines += ["", *_details_markdown(entries), ""]
    (args.results_dir / "pass_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _details_markdown(entries: dict) -> list[str]:
    """The measured quantities behind each ratio, in units a reader checks against their own machine."""
    lines = []
    if "peak_rss_3d_vs_predict_with_probabilities" in entries:
        d = entries["peak_rss_3d_vs_predict_with_probabilities"]["details"]
        gib = 2 ** 30
        lines.append(f"* 3-D case {'x'.join(map(str, d['volume_shape']))} voxels, {d['classes']} classes, plans "
                     f"`{d['plans']}`: our pass (2 teachers, all statistics) peak RSS "
                     f"{d['ours']['vm_hwm_bytes'] / gib:.1f} GiB in {d['ours']['pass_s']:.0f} s; nnU-Net's predictor "
                     f"with `save_probabilities` (1 teacher) {d['stock_predict']['vm_hwm_bytes'] / gib:.1f} GiB in "
                     f"{d['stock_predict']['predict_s']:.0f} s.")
    if "unlabeled_loader_vs_labeled_loader" in entries:
        d = entries["unlabeled_loader_vs_labeled_loader"]["details"]["loaders"]
        patch = "x".join(map(str, d["patch_size"]))
        masked = 100 * sum(d["truth_cache"]["masked_fractions"]) / len(d["truth_cache"]["masked_fractions"])
        lines.append(f"* Loaders (single-threaded, batch {d['batch_size']}, patch {patch}, interleaved, the k-th "
                     f"patch of each transformed with the same seed) on the labeled cases, pseudo-labels = their true "
                     f"labels, uncertain on region boundaries ({masked:.1f} % of voxels masked): labeled "
                     f"{d['labeled_patches_per_s']:.2f} patches/s, unlabeled {d['unlabeled_patches_per_s']:.2f}.")
    if "cpu_throughput_vs_before" in entries:  # both 2-D keys come from the same four passes
        runs = entries["cpu_throughput_vs_before"]["details"]["runs"]
        lines.append("* 2-D passes (30 ACDC-7 volumes; before/after: the five teachers; one_model and "
                     "round_transition: one model): " + ", ".join(
                         f"{name} {run['case_models_per_s']:.2f} case-models/s ({run['pass_s']:.0f} s)"
                         for name, run in runs.items()) + ".")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--parts", nargs="+", choices=("2d", "3d"), default=["2d", "3d"])
    parser.add_argument("--quality-work-dir", type=Path, help="2d: a quality run's work dir with 5 teacher folds")
    parser.add_argument("--teacher-trainer", default="nnUNetTrainerStock_2000it")
    parser.add_argument("--before", default="b1cef33", help="2d: the commit to compare with")
    parser.add_argument("--num-cases", type=int, default=30, help="2d: cases per pass")
    parser.add_argument("--volume-shape", type=int, nargs=3, default=[300, 512, 512], metavar=("Z", "Y", "X"))
    parser.add_argument("--network-scale", type=float, default=0.25,
                        help="3d: features per stage x this (untrained teachers: memory is the question)")
    parser.add_argument("--batches", type=int, default=50, help="3d: loader batches timed (each loader)")
    parser.add_argument("--device", default="cpu")
    # worker options
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for flag in ("--code-root", "--dataset", "--configuration", "--plans", "--cache", "--base", "--images"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    parser.add_argument("--teachers", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--mirroring", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    if args.worker:  # the nnU-Net folders come from the parent's environment
        print(json.dumps(WORKERS[args.worker](args)))
        return
    git_commit()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    if "2d" in args.parts:
        results["2d"] = measure_2d(args)
    if "3d" in args.parts:
        results["3d"] = measure_3d(args)
    write_report(args, results)


if __name__ == "__main__":
    main()
