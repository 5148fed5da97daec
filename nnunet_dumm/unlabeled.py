"""Unlabeled images in nnU-Net datasets: discovery, validation and preprocessing with the dataset's own plans.

Convention: ``nnUNet_raw/DatasetXXX/imagesUnlabeled/<case>_<channel>.<file_ending>``, named like ``imagesTr``.
Unlabeled cases are preprocessed with the labeled dataset's plans into a sibling folder
``nnUNet_preprocessed/DatasetXXX/<data_identifier>_unlabeled/`` and never into the labeled folder, because
nnU-Net's ``get_identifiers`` and ``do_split`` would put them into the cross-validation splits.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json, load_pickle, write_pickle
from tqdm import tqdm

from nnunet_dumm.claims import Claims, remove_stale_scratch_folders, scratch_folder
from nnunet_dumm.integrity import DamagedFile, fingerprint, first_damaged, raw_image_defect

__all__ = [
    "UNLABELED_IMAGES_FOLDER",
    "TRUE_LABELS_SUBFOLDER",
    "UNLABELED_TRUE_LABELS_FOLDER",
    "UnlabeledDataError",
    "UnlabeledPreprocessingTarget",
    "completed_cases",
    "find_unlabeled_cases",
    "is_completed",
    "load_preprocessed_image",
    "outdated_cases",
    "preprocess_unlabeled",
    "preprocessed_fingerprint",
    "preprocessed_shape",
    "raw_files_identity",
    "unlabeled_preprocessed_folder",
]

UNLABELED_IMAGES_FOLDER = "imagesUnlabeled"
# True labels of cases used as unlabeled (a split made from a labeled dataset). Training never reads them;
# diagnostics use them to measure pseudo-label quality.
UNLABELED_TRUE_LABELS_FOLDER = "labelsUnlabeled"
# preprocessed true labels of unlabeled cases, read by diagnostics only
TRUE_LABELS_SUBFOLDER = "true_labels"
# key of the arrays' sizes and CRC-32 in a case's properties (.pkl); nnU-Net ignores keys it does not know
_FILES_KEY = "dumm_files"
# key of the identity of the raw files a case was preprocessed from (``raw_files_identity``) in its properties
_RAW_FILES_KEY = "dumm_raw_files"
# why a case without that key is preprocessed again (see ``outdated_cases``)
_NOT_RECORDED = "preprocessed before raw-file identities were recorded"


class UnlabeledDataError(ValueError):
    """Bad unlabeled input. The message names the file and what is wrong with it."""


def unlabeled_preprocessed_folder(dataset_name: str, data_identifier: str) -> Path:
    """Where the unlabeled cases of a dataset/configuration live: a sibling of nnU-Net's labeled folder."""
    from nnunetv2.paths import nnUNet_preprocessed

    if nnUNet_preprocessed is None:
        raise RuntimeError("nnUNet_preprocessed is not set; see nnU-Net's documentation/setting_up_paths.md")
    return Path(nnUNet_preprocessed) / dataset_name / f"{data_identifier}_unlabeled"


def completed_cases(folder: str | Path) -> list[str]:
    """Cases whose preprocessing finished. The ``.pkl`` is moved into place last, so it marks completion."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.pkl") if is_completed(folder, p.stem))


def is_completed(folder: str | Path, case: str) -> bool:
    """``case in completed_cases(folder)`` for one case, without listing the folder (a per-case check inside a loop
    over the pool would make preprocessing quadratic in the pool size)."""
    folder = Path(folder)
    return (folder / f"{case}.pkl").is_file() and (folder / f"{case}.b2nd").is_file()


def raw_files_identity(image_files: list[str], true_label_file: str | None) -> dict[str, tuple[int, int]]:
    """``{folder/name: (size, mtime_ns)}`` of the raw files of a case: its channel images and its true label if any.

    A stat per file, no read: it is compared at every run (every training start), where a digest would read every
    raw byte of the pool each time. Replacing, rewriting or touching a file changes its mtime, so only a new file with
    the old one's size and mtime to the nanosecond goes unseen. A copy of ``nnUNet_raw`` that does not keep mtimes
    (``cp`` without ``-p``) makes every case preprocessed again once.
    """
    files = [*image_files, *([true_label_file] if true_label_file is not None else [])]
    return {f"{Path(f).parent.name}/{Path(f).name}": (stat.st_size, stat.st_mtime_ns)
            for f in files for stat in [os.stat(f)]}


def outdated_cases(folder: str | Path, raw_identities: dict[str, dict], checksum: bool = False) -> dict[str, str]:
    """Finished cases to preprocess again: ``{case: why}``. A case is outdated if

    * its arrays differ from what was written: sizes always (a partial copy, a truncated file), with ``checksum``
      also the CRC-32 (bit rot);
    * the identity of its raw files (``raw_identities[case]``, see ``raw_files_identity``) differs from the one it
      was preprocessed from: an image replaced, a true label added, changed or removed;
    * it has no such record, having been preprocessed before records were kept. Nothing tells whether such a case
      holds what the record exists to catch (an image replaced since, a truncated image read as zeros, true labels
      added since), so it is preprocessed once more, a one-off cost, and keeps a record from then on; keeping it
      would trust every such case forever. Preprocessing is deterministic: an unchanged case comes out the same.

    Cases whose raw files are gone (not in ``raw_identities``) are only checked for damage.
    """
    folder, outdated = Path(folder), {}
    for case in completed_cases(folder):
        try:
            properties = load_pickle(str(folder / f"{case}.pkl"))
        except Exception:  # a torn or rotten pickle
            outdated[case] = f"{folder / case}.pkl: damaged (cannot be read)"
            continue
        damaged = first_damaged(folder, properties[_FILES_KEY], checksum) if _FILES_KEY in properties else None
        if damaged is not None:
            outdated[case] = f"{damaged}: damaged (differs from what was written)"
        elif case in raw_identities and _RAW_FILES_KEY not in properties:
            outdated[case] = _NOT_RECORDED
        elif case in raw_identities and properties[_RAW_FILES_KEY] != raw_identities[case]:
            changes = _changed_files(properties[_RAW_FILES_KEY], raw_identities[case])
            outdated[case] = f"{case}: raw files changed since it was preprocessed ({changes})"
    return outdated


def _changed_files(recorded: dict, current: dict) -> str:
    return ", ".join(
        f"{name} {'added' if name not in recorded else 'removed' if name not in current else 'changed'}"
        for name in sorted(recorded.keys() | current.keys()) if recorded.get(name) != current.get(name)
    )


def _remove_case(folder: Path, case: str) -> None:
    """Removes a finished case, its marker (.pkl) first, so that a half-removed case never counts as finished."""
    for path in (folder / f"{case}.pkl", folder / f"{case}.b2nd", folder / f"{case}_seg.b2nd",
                 folder / TRUE_LABELS_SUBFOLDER / f"{case}.npy"):
        path.unlink(missing_ok=True)


def preprocessed_shape(folder: str | Path, case: str) -> tuple[int, ...]:
    """The spatial shape of a preprocessed case, read from its blosc2 header only."""
    import blosc2

    return tuple(blosc2.open(urlpath=str(Path(folder) / f"{case}.b2nd"), mode="r").shape[1:])


def preprocessed_fingerprint(folder: str | Path, case: str) -> tuple[int, int] | None:
    """The size and CRC-32 recorded for a case's preprocessed image when it was written (its properties, no
    read of the image): what a pseudo-label cache entry records it was computed from. None for a case written
    without the record."""
    recorded = load_pickle(str(Path(folder) / f"{case}.pkl")).get(_FILES_KEY, {})
    return recorded.get(f"{case}.b2nd")


def load_preprocessed_image(folder: str | Path, case: str) -> np.ndarray:
    """The preprocessed image ``(c, *spatial)`` of one case, read fully into memory."""
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    try:
        return nnUNetDatasetBlosc2(str(folder), [case]).load_case(case)[0][:]
    except Exception as e:  # blosc2 and pickle raise anything on a damaged file
        raise DamagedFile(f"{Path(folder) / case}.b2nd: the preprocessed unlabeled case cannot be read ({e}); "
                          "rerun nnUNetv2_dumm_preprocess_unlabeled with --verify to redo damaged cases") from e


def _files_per_labeled_case(raw_folder: Path, file_ending: str) -> int:
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    images_tr = raw_folder / "imagesTr"
    identifiers = get_identifiers_from_splitted_dataset_folder(str(images_tr), file_ending)
    if len(identifiers) == 0:
        raise UnlabeledDataError(f"{images_tr}: no labeled images with ending '{file_ending}'")
    return len(list(images_tr.glob(f"{identifiers[0]}_[0-9][0-9][0-9][0-9]{file_ending}")))


def find_unlabeled_cases(raw_folder: str | Path, dataset_json: dict | None = None) -> dict[str, list[str]]:
    """Lists ``imagesUnlabeled/`` as ``{case: [channel files]}`` and checks names against the labeled cases.

    Raises:
        UnlabeledDataError: missing dataset.json or folder, empty folder, a file with the wrong ending or name,
            a case with the wrong number of files, or a case id that collides with a labeled case.
    """
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    raw_folder = Path(raw_folder)
    if dataset_json is None:
        dataset_json_file = raw_folder / "dataset.json"
        if not dataset_json_file.is_file():
            raise UnlabeledDataError(f"{dataset_json_file}: missing; every nnU-Net raw dataset needs a dataset.json")
        dataset_json = load_json(str(dataset_json_file))
    file_ending = dataset_json["file_ending"]
    folder = raw_folder / UNLABELED_IMAGES_FOLDER
    if not folder.is_dir():
        raise UnlabeledDataError(f"{folder}: missing; put unlabeled images there, named like imagesTr")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise UnlabeledDataError(f"{folder}: empty; there are no unlabeled images to use")
    for f in files:
        if not f.name.endswith(file_ending):
            raise UnlabeledDataError(f"{f}: wrong file ending; dataset.json says file_ending is '{file_ending}'")
        stem = f.name[: -len(file_ending)]
        if len(stem) < 6 or stem[-5] != "_" or not stem[-4:].isdigit():
            raise UnlabeledDataError(f"{f}: name must be CASE_XXXX{file_ending} (XXXX = 4-digit channel index)")

    expected_files = _files_per_labeled_case(raw_folder, file_ending)
    labeled = set(get_identifiers_from_splitted_dataset_folder(str(raw_folder / "imagesTr"), file_ending))
    cases: dict[str, list[str]] = {}
    for f in files:
        cases.setdefault(f.name[: -len(file_ending) - 5], []).append(str(f))
    for case, case_files in cases.items():
        if case in labeled:
            raise UnlabeledDataError(f"{case_files[0]}: case id '{case}' is also a labeled case in imagesTr")
        if len(case_files) != expected_files:
            raise UnlabeledDataError(
                f"{case_files[0]}: case '{case}' has {len(case_files)} file(s), labeled cases have {expected_files}"
            )
    return cases


@dataclass(frozen=True)
class UnlabeledPreprocessingTarget:
    """Everything a (possibly spawned) worker needs to preprocess one dataset's unlabeled cases."""

    plans_file: str
    dataset_json_file: str
    configuration: str
    output_folder: str
    spatial_dims_of_labeled: int

    def preprocess_case(self, case: str, image_files: list[str], true_label_file: str | None = None) -> None:
        """Preprocesses one case with nnU-Net's preprocessor and writes it atomically.

        A true label (``labelsUnlabeled/``) is resampled with the image into ``true_labels/<case>.npy`` for
        diagnostics only; the case's own segmentation keeps nothing but nnU-Net's nonzero mask. The identity of the
        raw files is recorded in the properties, taken before they are read, so that a file changed meanwhile makes
        the next run preprocess the case again.
        """
        from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        plans_manager = PlansManager(self.plans_file)
        configuration_manager = plans_manager.get_configuration(self.configuration)
        dataset_json = load_json(self.dataset_json_file)
        raw_identity = raw_files_identity(image_files, true_label_file)
        data, properties = _read_checked(plans_manager, image_files, dataset_json, self.spatial_dims_of_labeled)
        true_label = None
        if true_label_file is not None:
            true_label, _ = plans_manager.image_reader_writer_class().read_seg(true_label_file)
        preprocessor = configuration_manager.preprocessor_class(verbose=False)
        data, seg, properties = preprocessor.run_case_npy(
            data, true_label, properties, plans_manager, configuration_manager, dataset_json
        )
        if true_label is not None:
            true_label, seg = np.maximum(seg, 0).astype(np.uint8), np.where(seg < 0, -1, 0)
        # nnU-Net's loader reads class_locations eagerly; unlabeled cases have none, so foreground-forced
        # crops fall back to random crops until pseudo-labels exist.
        label_manager = plans_manager.get_label_manager(dataset_json)
        properties["class_locations"] = {label: [] for label in label_manager.foreground_labels}
        data = data.astype(np.float32, copy=False)
        seg = seg.astype(np.int16, copy=False)
        patch_size = tuple(configuration_manager.patch_size)
        blocks, chunks = comp_blosc2_params(data.shape, patch_size, data.itemsize)
        blocks_seg, chunks_seg = comp_blosc2_params(seg.shape, patch_size, seg.itemsize)

        output = Path(self.output_folder)
        with scratch_folder(output) as partial:  # removed at the end with anything a failed write left in it
            try:
                nnUNetDatasetBlosc2.save_case(
                    data, seg, properties, str(partial / case),
                    chunks=chunks, blocks=blocks, chunks_seg=chunks_seg, blocks_seg=blocks_seg,
                )
                # sizes and CRC-32 of the arrays, so that a damaged copy is found before it is trained on
                properties[_FILES_KEY] = fingerprint(partial / f"{case}{s}" for s in (".b2nd", "_seg.b2nd"))
                properties[_RAW_FILES_KEY] = raw_identity
                write_pickle(properties, str(partial / f"{case}.pkl"))
                if true_label is not None:
                    (output / TRUE_LABELS_SUBFOLDER).mkdir(exist_ok=True)
                    np.save(partial / f"{case}_true.npy", true_label[0])
                    os.replace(partial / f"{case}_true.npy", output / TRUE_LABELS_SUBFOLDER / f"{case}.npy")
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise OSError(errno.ENOSPC, f"no space left on the device while preprocessing {case} into "
                                  f"{output}; nothing half-written was kept. Free disk space and rerun: finished "
                                  "cases are kept") from e
                raise
            # The pickle goes last: completed_cases() treats a case as done only once it is in place.
            for suffix in (".b2nd", "_seg.b2nd", ".pkl"):
                os.replace(partial / f"{case}{suffix}", output / f"{case}{suffix}")


def _spatial_dims(properties: dict, data: np.ndarray) -> int:
    # nnU-Net's readers always return 4-D arrays; SimpleITK-based readers keep the file's own dimensionality.
    if "sitk_stuff" in properties:
        return len(properties["sitk_stuff"]["spacing"])
    return 2 if data.shape[1] == 1 else 3


def _read_checked(plans_manager, image_files: list[str], dataset_json: dict, spatial_dims: int | None):
    reader = plans_manager.image_reader_writer_class()
    try:
        data, properties = reader.read_images(image_files)
    except Exception as e:  # the readers raise anything from RuntimeError to OSError on a corrupt file
        raise UnlabeledDataError(f"{image_files[0]}: cannot be read as an image ({type(e).__name__}: {e})") from e
    num_channels = len(dataset_json["channel_names"])
    if data.shape[0] != num_channels:
        raise UnlabeledDataError(
            f"{image_files[0]}: has {data.shape[0]} channel(s), dataset.json declares {num_channels}"
        )
    if spatial_dims is not None and _spatial_dims(properties, data) != spatial_dims:
        raise UnlabeledDataError(
            f"{image_files[0]}: is {_spatial_dims(properties, data)}-D, the labeled images are {spatial_dims}-D"
        )
    if not np.all(np.isfinite(data)):
        raise UnlabeledDataError(f"{image_files[0]}: contains NaN or infinite values")
    if np.ptp(data) == 0:
        raise UnlabeledDataError(f"{image_files[0]}: is constant (every pixel {data.flat[0]}); nothing to segment")
    return data, properties


def _case_problems(plans_manager, image_files: list[str], true_label_file: str | None, dataset_json: dict,
                   spatial_dims: int) -> list[str]:
    """What is wrong with the raw files of one case, one ``"<file>: <what>"`` per bad file; empty if nothing."""
    problems = [f"{f}: {defect}" for f in image_files if (defect := raw_image_defect(Path(f))) is not None]
    if not problems:  # reading a damaged stream would only fail again or, with SimpleITK, give zeros
        try:
            _read_checked(plans_manager, image_files, dataset_json, spatial_dims)
        except UnlabeledDataError as e:
            problems.append(str(e))
    if true_label_file is not None and (problem := _true_label_problem(plans_manager, true_label_file)) is not None:
        problems.append(problem)
    return problems


def _true_label_problem(plans_manager, true_label_file: str) -> str | None:
    if (defect := raw_image_defect(Path(true_label_file))) is not None:
        return f"{true_label_file}: {defect}"
    try:
        plans_manager.image_reader_writer_class().read_seg(true_label_file)
    except Exception as e:  # the readers raise anything from RuntimeError to OSError on a corrupt file
        return f"{true_label_file}: cannot be read as a label map ({type(e).__name__}: {e})"
    return None


def _check_pending(plans_manager, cases: dict[str, list[str]], true_label_files: dict[str, str | None],
                   dataset_json: dict, spatial_dims: int, verbose: bool) -> None:
    """Checks the raw files of every case to preprocess before anything is written.

    Raises:
        UnlabeledDataError: naming every bad file at once. The good cases are not preprocessed either: a run that
            left the bad ones out would let training go on with a smaller pool that nobody notices, and a user who
            fixes or removes the files runs the command again anyway.
    """
    problems = []
    for case in tqdm(cases, desc="checking unlabeled images", disable=not verbose or not cases):
        problems += _case_problems(plans_manager, cases[case], true_label_files[case], dataset_json, spatial_dims)
    if problems:
        raise UnlabeledDataError(
            f"{len(problems)} unlabeled input file{'s' if len(problems) > 1 else ''} failed the checks, so nothing "
            "was preprocessed; fix or remove them (with the other files of their case) and rerun:\n"
            + "\n".join(f"  {problem}" for problem in problems))


def _labeled_spatial_dims(raw_folder: Path, plans_manager, dataset_json: dict) -> int:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    first = next(iter(get_filenames_of_train_images_and_targets(str(raw_folder), dataset_json).values()))
    data, properties = plans_manager.image_reader_writer_class().read_images(first["images"])
    return _spatial_dims(properties, data)


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _run_one(args: tuple[UnlabeledPreprocessingTarget, str, list[str], str | None]) -> bool:
    """Preprocesses one case unless another process (a second fold started at the same time) has claimed or
    finished it; True if this process preprocessed it."""
    target, case, files, true_label_file = args
    claims = Claims(target.output_folder)
    if is_completed(target.output_folder, case) or not claims.claim(case):
        return False
    try:
        if is_completed(target.output_folder, case):
            return False
        target.preprocess_case(case, files, true_label_file)
        return True
    finally:
        claims.release(case)


def preprocess_unlabeled(
    dataset_name_or_id: str | int,
    configuration: str,
    plans_identifier: str = "nnUNetPlans",
    num_processes: int = 1,
    verbose: bool = True,
    verify: bool = False,
) -> Path:
    """Preprocesses ``imagesUnlabeled/`` with the dataset's plans; cases already done are skipped (resume).

    Every image to preprocess is checked (compressed streams whole, readable, channel count, dimensionality, finite,
    not constant) before anything is written, so bad input leaves no partial output. Finished cases whose raw files
    changed, or whose files lost bytes (or, with ``verify``, whose CRC-32 changed) are preprocessed again
    (``outdated_cases``).

    Returns:
        The output folder, ``nnUNet_preprocessed/<dataset>/<data_identifier>_unlabeled``.
    """
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_name = maybe_convert_to_dataset_name(dataset_name_or_id)
    raw_folder = Path(nnUNet_raw) / dataset_name
    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    plans_file = preprocessed / f"{plans_identifier}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(
            f"{plans_file}: missing. Plan the labeled dataset first: "
            f"nnUNetv2_plan_and_preprocess -d {dataset_name_or_id} -c {configuration}"
        )
    dataset_json_file = preprocessed / "dataset.json"
    if not dataset_json_file.is_file():
        raise UnlabeledDataError(f"{dataset_json_file}: missing; nnUNetv2_plan_and_preprocess writes it")
    dataset_json = load_json(str(dataset_json_file))
    cases = find_unlabeled_cases(raw_folder, dataset_json)
    plans_manager = PlansManager(str(plans_file))
    if configuration not in plans_manager.available_configurations:
        raise ValueError(f"{plans_file}: has no configuration '{configuration}' "
                         f"(available: {plans_manager.available_configurations})")
    if plans_manager.get_label_manager(dataset_json).has_regions:
        raise NotImplementedError("region-based datasets are not supported: pseudo-labels are argmax label maps")
    data_identifier = plans_manager.get_configuration(configuration).data_identifier
    output = unlabeled_preprocessed_folder(dataset_name, data_identifier)
    spatial_dims = _labeled_spatial_dims(raw_folder, plans_manager, dataset_json)

    true_labels = raw_folder / UNLABELED_TRUE_LABELS_FOLDER
    true_label_files = {c: _existing(true_labels / f"{c}{dataset_json['file_ending']}") for c in cases}
    raw_identities = {c: raw_files_identity(cases[c], true_label_files[c]) for c in cases}
    outdated = outdated_cases(output, raw_identities, checksum=verify)
    for case, reason in outdated.items():
        _remove_case(output, case)
        if reason != _NOT_RECORDED:
            print(f"{reason}; preprocessing {case} again")
    if not_recorded := sum(reason == _NOT_RECORDED for reason in outdated.values()):
        print(f"{not_recorded} case(s) {_NOT_RECORDED}: preprocessing them once more")
    done = set(completed_cases(output))
    todo = [c for c in sorted(cases) if c not in done]
    # Check every pending image first: a bad file found halfway would otherwise leave a partial folder.
    _check_pending(plans_manager, {c: cases[c] for c in todo}, true_label_files, dataset_json, spatial_dims, verbose)

    output.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch_folders(output)  # leftovers of an interrupted run
    target = UnlabeledPreprocessingTarget(str(plans_file), str(dataset_json_file), configuration, str(output),
                                          spatial_dims)
    jobs = [(target, c, cases[c], true_label_files[c]) for c in todo]
    progress = tqdm(total=len(cases), initial=len(done), desc="preprocessing unlabeled", unit="case",
                    disable=not verbose)
    preprocessed_here = 0
    if num_processes <= 1:
        for job in jobs:
            preprocessed_here += _run_one(job)
            progress.update()
    else:
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            for done_here in pool.imap_unordered(_run_one, jobs):
                preprocessed_here += done_here
                progress.update()
    # cases claimed by another process that runs at the same time: wait until they are finished
    while pending := [c for c in todo if not is_completed(output, c)]:
        progress.set_postfix_str(f"waiting for {len(pending)} case(s) preprocessed by another process")
        time.sleep(1.0)
        for job in jobs:  # a claim of a process that died meanwhile is stale: take the case over
            if job[1] in pending:
                preprocessed_here += _run_one(job)
    progress.close()
    if verbose:
        by_others = f", {len(todo) - preprocessed_here} by another process" if preprocessed_here < len(todo) else ""
        again = len(outdated.keys() & set(todo))
        print(f"{len(cases)} unlabeled cases ({len(todo) - again} new, {again} preprocessed again: {preprocessed_here} "
              f"preprocessed here{by_others}; {len(done)} already done) in {output}")
    return output

