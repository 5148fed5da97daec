"""Seeded generator of a small synthetic 2-D cardiac-like dataset in nnU-Net raw layout.

The dataset exists so that the semi-supervised pipeline can be exercised end to end on a CPU in minutes: few labeled
cases, many unlabeled ones, and a test set, all with ground truth. It is built to be *non-trivial*: every class has a
per-image intensity drawn from a range that overlaps with background structures (soft tissue, an aorta-like vessel,
bright blobs, a fat rim), so a network must use shape and context, and a model trained on a handful of labeled cases
makes visible mistakes that unlabeled data can fix.

Classes (a short-axis cine MRI caricature):

* 1 ``myocardium``: an elliptical annulus with irregular, independently perturbed inner and outer boundaries.
* 2 ``blood_pool``: the disc inside the annulus, with dark papillary-muscle dots that still count as class 2.
* 3 ``right_ventricle``: a crescent wrapped around the annulus on a random side.

Layout written (``Dataset950_DUMMDemo`` by default)::

    imagesTr/demo_tr_000_0000.nii.gz   labelsTr/demo_tr_000.nii.gz
    imagesUnlabeled/demo_ul_000_0000.nii.gz   labelsUnlabeled/demo_ul_000.nii.gz   (true labels, never trained on)
    imagesTs/demo_ts_000_0000.nii.gz   labelsTs/demo_ts_000.nii.gz
    dataset.json   spec.json

Every case draws from its own ``np.random.SeedSequence(seed, spawn_key=(subset, index))``, so a case depends only on
the seed, its subset and its index: growing one subset never changes another, and a prefix of a subset is stable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

__all__ = [
    "DEMO_CHANNEL_NAMES",
    "DEMO_DATASET_ID",
    "DEMO_LABELS",
    "DemoDatasetSpec",
    "case_identifier",
    "case_rng",
    "generate_demo_dataset",
    "main",
    "synthesize_case",
]

logger = logging.getLogger(__name__)

# Inside the 950-959 block reserved for toy data of this project; nnU-Net itself reserves 996-999 for its tests.
DEMO_DATASET_ID = 950
DEMO_LABELS: dict[str, int] = {"background": 0, "myocardium": 1, "blood_pool": 2, "right_ventricle": 3}
# Any name but "CT" makes nnU-Net use per-image z-score normalisation, which suits the random per-image intensities.
DEMO_CHANNEL_NAMES: dict[int, str] = {0: "MRI-like"}
FILE_ENDING = ".nii.gz"

# (seed spawn key, case-id tag, image folder, label folder). The spawn key must never change for an existing subset,
# otherwise every previously generated dataset would silently change.
_SUBSETS: tuple[tuple[int, str, str, str], ...] = (
    (0, "tr", "imagesTr", "labelsTr"),
    (1, "ul", "imagesUnlabeled", "labelsUnlabeled"),
    (2, "ts", "imagesTs", "labelsTs"),
)
_WRITTEN_FILES = ("dataset.json", "spec.json")
_MIN_IMAGE_SIZE = 24
# Below this a class can be a couple of pixels after rasterisation; rejected draws are redrawn from the same stream.
_MIN_CLASS_PIXELS = 4
_MAX_HEART_DRAWS = 200
# Arbitrary MRI-like scale, so that nothing downstream silently assumes images in [0, 1].
_INTENSITY_SCALE = 1000.0


@dataclass(frozen=True)
class DemoDatasetSpec:
    """Size and seed of the synthetic dataset; written to ``spec.json`` beside ``dataset.json``.

    Attributes:
        num_labeled: Cases in ``imagesTr``/``labelsTr`` (nnU-Net's ``numTraining``).
        num_unlabeled: Cases in ``imagesUnlabeled``; their true labels go to ``labelsUnlabeled`` for evaluation only.
        num_test: Cases in ``imagesTs``/``labelsTs``.
        image_size: Side length of the square images in pixels (spacing 1 x 1).
        seed: Root seed; each case derives its own stream from it.
        num_slices: 0 for 2-D images; otherwise 3-D volumes of this many slices (spacing 1 x 1 x 3), each slice
            drawn like a 2-D case, so that nnU-Net plans a ``3d_fullres`` configuration.
        num_channels: image channels; channel k > 0 is another contrast of the same anatomy (a monotone
            transform of channel 0 with its own noise), as two MRI sequences are.
        ignore_label: label maps of labeled and unlabeled cases get a rectangle of nnU-Net's ``ignore`` label
            (value 4, dataset.json ``"ignore": 4``): sparsely annotated training data.
    """

    num_labeled: int = 8
    num_unlabeled: int = 120
    num_test: int = 40
    image_size: int = 64
    seed: int = 0
    num_slices: int = 0
    num_channels: int = 1
    ignore_label: bool = False

    def __post_init__(self) -> None:
        if self.num_labeled < 1:
            raise ValueError(f"num_labeled must be >= 1 (nnU-Net needs training cases), got {self.num_labeled}")
        if self.num_unlabeled < 0 or self.num_test < 0:
            raise ValueError(f"num_unlabeled and num_test must be >= 0, got {self.num_unlabeled}, {self.num_test}")
        if self.image_size < _MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {_MIN_IMAGE_SIZE} so every class fits, got {self.image_size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence entropy), got {self.seed}")
        if self.num_slices < 0 or self.num_channels < 1:
            raise ValueError(f"num_slices must be >= 0 and num_channels >= 1, got {self.num_slices}, "
                             f"{self.num_channels}")


def case_identifier(subset_tag: str, index: int, count: int) -> str:
    """Case id such as ``demo_tr_003``; zero-padded to at least 3 digits so ids sort like indices.

    Args:
        subset_tag: ``"tr"``, ``"ul"`` or ``"ts"``.
        index: Index of the case within its subset.
        count: Number of cases in the subset (sets the padding width).

    Returns:
        The case identifier, without channel suffix or file ending.
    """
    width = max(3, len(str(max(count - 1, 0))))
    return f"demo_{subset_tag}_{index:0{width}d}"


def case_rng(seed: int, subset_key: int, index: int) -> np.random.Generator:
    """Random generator of one case, independent of how many cases the other subsets hold.

    Args:
        seed: Root seed of the dataset.
        subset_key: Stable integer key of the subset (0 labeled, 1 unlabeled, 2 test).
        index: Index of the case within its subset.

    Returns:
        A fresh ``np.random.Generator`` seeded by ``SeedSequence(seed, spawn_key=(subset_key, index))``.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(subset_key, index)))


def _elliptic_polar(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, theta: float, aspect: float
) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle of every pixel in a rotated, area-preserving elliptical frame centred on (cx, cy)."""
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    # Scaling by sqrt(aspect) and its inverse keeps the area of a circle of radius r, so radii stay interpretable.
    u = u / np.sqrt(aspect)
    v = v * np.sqrt(aspect)
    return np.hypot(u, v), np.arctan2(v, u)


def _wobble(rng: np.random.Generator, phi: np.ndarray, amplitude: float) -> np.ndarray:
    """Low-frequency radial perturbation ``1 + sum_k a_k cos(k phi + psi_k)`` for k = 2..4.

    Higher orders get smaller amplitudes so boundaries look irregular but stay smooth (no spikes).
    """
    factor = np.ones_like(phi)
    for k in (2, 3, 4):
        factor += amplitude * rng.uniform(-1.0, 1.0) / (k - 1) * np.cos(k * phi + rng.uniform(0.0, 2.0 * np.pi))
    return factor


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float) -> np.ndarray:
    """Boolean mask of a filled ellipse with semi-axes a (along theta) and b."""
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance spatially correlated noise, used as tissue texture."""
    field = gaussian_filter(rng.standard_normal((n, n)), sigma=sigma, mode="reflect")
    return field / (field.std() + 1e-8)


def _draw_heart(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int, body: np.ndarray, body_center: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draws myocardium, blood pool and right ventricle until all three fit inside the body.

    Returns:
        ``(label, papillary)``: uint8 label map of shape (n, n) and a boolean mask of dark papillary dots, which lie
        inside the blood pool and keep label 2.
    """
    for _ in range(_MAX_HEART_DRAWS):
        # Sizes scale with the image but have pixel floors so that a 24-32 px image still holds a visible ring.
        r_in = max(2.5, rng.uniform(0.07, 0.12) * n)
        thickness = max(1.5, rng.uniform(0.03, 0.06) * n)
        theta = rng.uniform(0.0, np.pi)
        aspect = rng.uniform(0.75, 1.3)
        center = body_center + rng.uniform(-0.1, 0.1, size=2) * n
        rho, phi = _elliptic_polar(xx, yy, center[0], center[1], theta, aspect)
        inner = r_in * _wobble(rng, phi, rng.uniform(0.02, 0.08))
        # The wall gets its own perturbation, so thickness varies around the ring as a real myocardium does.
        outer = inner + thickness * _wobble(rng, phi, rng.uniform(0.1, 0.3))
        blood = rho < inner
        myo = (rho < outer) & ~blood

        # Right ventricle: an ellipse pushed off-centre along a random direction minus the (slightly dilated) left
        # ventricle, which leaves a crescent hugging the septum.
        r_out = r_in + thickness
        alpha = rng.uniform(0.0, 2.0 * np.pi)
        direction = np.array([np.cos(alpha), np.sin(alpha)])
        rv_center = center + direction * r_out * rng.uniform(0.55, 0.85)
        rv_a = r_out * rng.uniform(0.7, 1.0)
        rv_b = r_out * rng.uniform(1.1, 1.5)
        rv_rho, rv_phi = _elliptic_polar(xx, yy, rv_center[0], rv_center[1], alpha, 1.0)
        rv_dx, rv_dy = rv_rho * np.cos(rv_phi), rv_rho * np.sin(rv_phi)
        rv_shape = _wobble(rng, rv_phi, rng.uniform(0.02, 0.08))
        rv_ellipse = (rv_dx / rv_a) ** 2 + (rv_dy / rv_b) ** 2 <= rv_shape**2
        gap = rng.uniform(0.0, 1.2)
        rv = rv_ellipse & ~(rho < outer + gap)

        label = np.zeros((n, n), dtype=np.uint8)
        label[rv] = 3
        label[myo] = 1
        label[blood] = 2
        counts = np.bincount(label.ravel(), minlength=4)
        # Reject hearts leaving the body or too small to contain every class; the body test also keeps labels off
        # the image border because the body ellipse never reaches it.
        if np.all(counts[1:] >= _MIN_CLASS_PIXELS) and not np.any((label > 0) & ~body):
            papillary = np.zeros((n, n), dtype=bool)
            for _ in range(rng.integers(0, 3)):
                # Papillary muscles sit near the wall, inside the cavity.
                angle = rng.uniform(0.0, 2.0 * np.pi)
                pos = center + 0.6 * r_in * np.array([np.cos(angle), np.sin(angle)])
                papillary |= np.hypot(xx - pos[0], yy - pos[1]) < max(0.8, 0.12 * r_in)
            papillary &= blood
            # Keep the cavity clearly visible even if the dots land on a tiny blood pool.
            if papillary.sum() > 0.3 * blood.sum():
                papillary[:] = False
            return label, papillary
    raise RuntimeError(f"could not place a heart after {_MAX_HEART_DRAWS} draws (image_size={n})")


def synthesize_case(rng: np.random.Generator, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws one synthetic short-axis slice and its segmentation.

    Intensities are drawn per image so that intensity alone does not identify a class: the myocardium overlaps soft
    tissue and the aorta wall, the right ventricle overlaps the blood pool, bright blobs and the fat rim overlap both
    cavities. The clean image is then blurred (partial volume), multiplied by a smooth bias field and corrupted by
    Rician noise (magnitude of complex Gaussian noise, as in MRI).

    Args:
        rng: Generator of this case (see :func:`case_rng`); consumed in a fixed order, so results are reproducible.
        image_size: Side length n of the square image.

    Returns:
        ``(image, label)``: float32 image of shape (n, n) on an arbitrary MRI-like scale, and uint8 label of shape
        (n, n) with values in {0, 1, 2, 3}, every value present.
    """
    n = int(image_size)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)

    # Thorax: an ellipse nearly filling the field of view, with a bright subcutaneous fat rim.
    body_center = np.array([n / 2, n / 2]) + rng.uniform(-0.04, 0.04, size=2) * n
    body_a, body_b = rng.uniform(0.40, 0.47) * n, rng.uniform(0.33, 0.42) * n
    body_theta = rng.uniform(-0.3, 0.3)
    body = _ellipse(xx, yy, body_center[0], body_center[1], body_a, body_b, body_theta)
    rim_width = max(1.0, rng.uniform(0.025, 0.045) * n)
    body_inner = _ellipse(xx, yy, body_center[0], body_center[1], body_a - rim_width, body_b - rim_width, body_theta)

    # Per-image intensities on a 0..1 scale (before bias and noise).
    tissue = rng.uniform(0.25, 0.42)
    myo_intensity = rng.uniform(0.18, 0.38)
    blood_intensity = rng.uniform(0.65, 1.0)
    rv_intensity = blood_intensity * rng.uniform(0.8, 1.05)
    fat_intensity = rng.uniform(0.55, 0.9)

    image = np.full((n, n), 0.02)
    image[body] = fat_intensity
    texture = _smooth_noise(rng, n, sigma=max(1.0, n / 24))
    image[body_inner] = (tissue + rng.uniform(0.03, 0.07) * texture)[body_inner]

    # Lungs: dark regions left and right of the mediastinum; the heart is painted over them later.
    for side in (-1.0, 1.0):
        lung_center = body_center + np.array([side * rng.uniform(0.15, 0.22) * n, rng.uniform(-0.08, 0.05) * n])
        lung = (
            _ellipse(
                xx,
                yy,
                lung_center[0],
                lung_center[1],
                rng.uniform(0.09, 0.14) * n,
                rng.uniform(0.14, 0.22) * n,
                rng.uniform(-0.4, 0.4),
            )
            & body_inner
        )
        image[lung] = rng.uniform(0.04, 0.14)

    # Bright blobs (vessels, liver dome, fat pads) whose intensity overlaps the cavities.
    for _ in range(rng.integers(2, 5)):
        center = body_center + rng.uniform(-0.3, 0.3, size=2) * n
        blob = (
            _ellipse(
                xx,
                yy,
                center[0],
                center[1],
                rng.uniform(0.025, 0.07) * n,
                rng.uniform(0.025, 0.07) * n,
                rng.uniform(0.0, np.pi),
            )
            & body_inner
        )
        image[blob] = rng.uniform(0.5, 0.95)

    # An aorta-like small bright disc with a myocardium-like wall: a miniature decoy of classes 1 and 2 that only
    # size and context tell apart.
    if rng.uniform() < 0.7:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        center = body_center + rng.uniform(0.2, 0.3) * n * np.array([np.cos(angle), np.sin(angle)])
        radius = max(1.5, rng.uniform(0.035, 0.05) * n)
        dist = np.hypot(xx - center[0], yy - center[1])
        image[(dist < radius + 1.0) & body_inner] = myo_intensity * rng.uniform(0.9, 1.1)
        image[(dist < radius) & body_inner] = blood_intensity * rng.uniform(0.85, 1.05)

    label, papillary = _draw_heart(rng, xx, yy, n, body_inner, body_center)
    image[label == 3] = rv_intensity
    image[label == 1] = (myo_intensity + 0.03 * texture)[label == 1]
    image[label == 2] = blood_intensity
    image[papillary] = myo_intensity

    # Acquisition: partial-volume blur, smooth multiplicative bias field (up to roughly +-35 %), Rician noise.
    image = gaussian_filter(image, sigma=rng.uniform(0.4, 0.9), mode="nearest")
    u = (xx - n / 2) / (n / 2)
    v = (yy - n / 2) / (n / 2)
    coeffs = rng.normal(0.0, 0.12, size=5)
    bias = np.exp(coeffs[0] * u + coeffs[1] * v + coeffs[2] * u * v + coeffs[3] * u**2 + coeffs[4] * v**2)
    image = image * bias
    sigma = rng.uniform(0.02, 0.07)
    real = image + sigma * rng.standard_normal((n, n))
    imag = sigma * rng.standard_normal((n, n))
    image = np.hypot(real, imag) * _INTENSITY_SCALE
    return image.astype(np.float32), label


def _write_nifti(array: np.ndarray, path: Path) -> None:
    """Writes a 2-D array (spacing 1 x 1) or a 3-D volume (spacing 1 x 1 x 3, z first) as NIfTI."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((1.0, 1.0) if array.ndim == 2 else (1.0, 1.0, 3.0))
    sitk.WriteImage(img, str(path), useCompression=True)


IGNORE_VALUE = 4


def synthesize_demo_case(rng: np.random.Generator, spec: DemoDatasetSpec,
                         sparse: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """One case of ``spec``: its channel images and its label map (2-D, or 3-D with ``spec.num_slices``); with
    ``sparse`` and ``spec.ignore_label``, part of the label map is the ignore label."""
    slices = [synthesize_case(rng, spec.image_size) for _ in range(max(1, spec.num_slices))]
    image = np.stack([s[0] for s in slices]) if spec.num_slices else slices[0][0]
    label = np.stack([s[1] for s in slices]) if spec.num_slices else slices[0][1]
    channels = [image]
    for _ in range(1, spec.num_channels):
        # another sequence: inverted, compressed contrast of the same anatomy, its own noise
        other = _INTENSITY_SCALE * np.sqrt(np.clip(1.2 - image / _INTENSITY_SCALE, 0.01, None))
        channels.append((other + rng.normal(0, 0.03 * _INTENSITY_SCALE, image.shape)).astype(np.float32))
    if sparse and spec.ignore_label:
        n = spec.image_size
        y0, x0 = rng.integers(0, n // 2, size=2)
        label = label.copy()
        label[..., y0:y0 + n // 3, x0:x0 + n // 3] = IGNORE_VALUE
    return channels, label


def _prepare_output_folder(output_folder: Path, overwrite: bool) -> None:
    """Creates the folder, refusing to touch a non-empty one unless overwrite is set.

    With overwrite only the entries this module writes are removed, never anything else in the folder: a mistyped
    ``-o`` must not be able to delete unrelated data.
    """
    if output_folder.exists():
        if not output_folder.is_dir():
            raise FileExistsError(f"{output_folder} exists and is not a directory")
        if any(output_folder.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{output_folder} already exists and is not empty; pass overwrite=True (CLI: --overwrite) to "
                    f"regenerate the demo dataset there"
                )
            for _, _, image_dir, label_dir in _SUBSETS:
                for sub in (image_dir, label_dir):
                    shutil.rmtree(output_folder / sub, ignore_errors=True)
            for name in _WRITTEN_FILES:
                (output_folder / name).unlink(missing_ok=True)
    output_folder.mkdir(parents=True, exist_ok=True)


def generate_demo_dataset(
    output_folder: str | Path,
    spec: DemoDatasetSpec = DemoDatasetSpec(),
    dataset_name: str = "DUMMDemo",
    overwrite: bool = False,
    *,
    progress: bool = False,
) -> Path:
    """Writes the synthetic dataset in nnU-Net raw layout.

    Args:
        output_folder: Dataset folder to write, e.g. ``$nnUNet_raw/Dataset950_DUMMDemo``. An existing empty folder
            is used as is.
        spec: Sizes and seed.
        dataset_name: Name stored in ``dataset.json``.
        overwrite: Replace the files a previous run wrote in a non-empty ``output_folder``.
        progress: Show a tqdm progress bar (used by the CLI).

    Returns:
        ``output_folder`` as a ``Path``.

    Raises:
        FileExistsError: ``output_folder`` exists, is not empty and ``overwrite`` is False.
    """
    # Imported here so that importing this module stays cheap and free of nnU-Net's import-time side effects.
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    output_folder = Path(output_folder)
    _prepare_output_folder(output_folder, overwrite)

    counts = {"tr": spec.num_labeled, "ul": spec.num_unlabeled, "ts": spec.num_test}
    jobs = []
    for subset_key, tag, image_dir, label_dir in _SUBSETS:
        (output_folder / image_dir).mkdir()
        (output_folder / label_dir).mkdir()
        for index in range(counts[tag]):
            jobs.append((subset_key, index, case_identifier(tag, index, counts[tag]), image_dir, label_dir))

    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="demo cases", unit="case")
    for subset_key, index, case_id, image_dir, label_dir in iterator:
        # test labels stay complete: they score the predictions
        channels, label = synthesize_demo_case(case_rng(spec.seed, subset_key, index), spec, image_dir != "imagesTs")
        for channel, image in enumerate(channels):
            _write_nifti(image, output_folder / image_dir / f"{case_id}_{channel:04d}{FILE_ENDING}")
        _write_nifti(label, output_folder / label_dir / f"{case_id}{FILE_ENDING}")

    labels = dict(DEMO_LABELS) | ({"ignore": IGNORE_VALUE} if spec.ignore_label else {})
    generate_dataset_json(
        str(output_folder),
        channel_names={c: (DEMO_CHANNEL_NAMES[0] if c == 0 else f"sequence{c}") for c in range(spec.num_channels)},
        labels=labels,
        num_training_cases=spec.num_labeled,
        file_ending=FILE_ENDING,
        dataset_name=dataset_name,
        description=(
            "Synthetic 2-D cardiac-like short-axis slices generated by nnunet_dumm.demo_data "
            f"(num_labeled={spec.num_labeled}, num_unlabeled={spec.num_unlabeled}, num_test={spec.num_test}, "
            f"image_size={spec.image_size}, seed={spec.seed}). imagesUnlabeled holds unlabeled training images; "
            "labelsUnlabeled holds their true labels for evaluating pseudo-labels only."
        ),
        reference="none (synthetic)",
        license="Apache-2.0 (synthetic data generated by nnunet_dumm)",
        converted_by="nnunet_dumm.demo_data",
        numUnlabeled=spec.num_unlabeled,
        numTest=spec.num_test,
    )
    with open(output_folder / "spec.json", "w") as f:
        json.dump(asdict(spec), f, indent=2)
    logger.info("wrote %d cases to %s", len(jobs), output_folder)
    return output_folder


def _default_output_folder() -> Path | None:
    """``$nnUNet_raw/Dataset950_DUMMDemo`` when nnUNet_raw is set, else None."""
    from nnunetv2.paths import nnUNet_raw

    # nnU-Net 2.8 paths are lazy objects whose truth value says whether the variable is set; older versions hold
    # a str or None. Both are falsy when unset.
    if not nnUNet_raw:
        return None
    return Path(os.fspath(nnUNet_raw)) / f"Dataset{DEMO_DATASET_ID:03d}_DUMMDemo"


def main(argv: list[str] | None = None) -> None:
    """Command line entry: generate the demo dataset and print a summary.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.
    """
    defaults = DemoDatasetSpec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o",
        "--output-folder",
        type=Path,
        default=None,
        help="dataset folder to write (default: $nnUNet_raw/Dataset950_DUMMDemo)",
    )
    parser.add_argument("--num-labeled", type=int, default=defaults.num_labeled, help="labeled training cases")
    parser.add_argument("--num-unlabeled", type=int, default=defaults.num_unlabeled, help="unlabeled training cases")
    parser.add_argument("--num-test", type=int, default=defaults.num_test, help="test cases")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="image side length in pixels")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="root random seed")
    parser.add_argument("--overwrite", action="store_true", help="replace a previously generated dataset")
    args = parser.parse_args(argv)

    output_folder = args.output_folder or _default_output_folder()
    if output_folder is None:
        parser.error("nnUNet_raw is not set; set it or pass -o/--output-folder")
    try:
        spec = DemoDatasetSpec(
            num_labeled=args.num_labeled,
            num_unlabeled=args.num_unlabeled,
            num_test=args.num_test,
            image_size=args.image_size,
            seed=args.seed,
        )
    except ValueError as e:
        parser.error(str(e))
    start = time.perf_counter()
    folder = generate_demo_dataset(output_folder, spec, overwrite=args.overwrite, progress=True)
    print(
        f"generated {spec.num_labeled} labeled, {spec.num_unlabeled} unlabeled and {spec.num_test} test cases "
        f"({spec.image_size}x{spec.image_size} px, seed {spec.seed}) in {time.perf_counter() - start:.1f} s"
    )
    print(folder)


if __name__ == "__main__":
    main()
