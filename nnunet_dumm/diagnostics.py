"""Diagnostics that show whether PUM and SUS work, when true labels of the "unlabeled" cases exist.

For a pseudo-label pass: the pseudo-label Dice per case, the pseudo-label accuracy on the pixels each
pixel-uncertainty measure keeps vs. masks (at the configured threshold), and the Spearman correlation between
each sample-level U(x) and the pseudo-label error (1 - Dice). Both must come out right for the method to make
sense: kept pixels more accurate than masked ones, and a positive correlation (reliable cases ranked first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nnunet_dumm.pseudo_labels import PseudoLabelCache, PseudoLabelMaps
from nnunet_dumm.uncertainty import PixelUncertainty, SampleUncertainty

__all__ = ["foreground_dice", "pseudo_label_diagnostics", "plot_diagnostics"]


def foreground_dice(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Mean Dice over foreground classes; a class absent from both counts as 1."""
    scores = []
    for c in range(1, num_classes):
        p, t = prediction == c, truth == c
        denominator = p.sum() + t.sum()
        scores.append(1.0 if denominator == 0 else 2.0 * (p & t).sum() / denominator)
    return float(np.mean(scores))


def pseudo_label_diagnostics(cache: PseudoLabelCache, cases: Sequence[str], true_labels_folder: str | Path,
                             label_maps: PseudoLabelMaps, ignore_label: int | None = None) -> dict | None:
    """Quality of one pass against true labels; ``None`` when no case of ``cases`` has a true label.

    "Kept" pixels are those ``label_maps.weights`` gives a non-zero weight, the same rule training uses, applied
    to each pixel measure in turn; with a weighting that never reaches 0 (``soft``, ``none``) every pixel is
    kept and there is no masked accuracy. The kept share is also given per true class: a mask that keeps 97 % of
    all pixels may keep far less of a small, hard class, and leave the student little of it to learn from. The
    AUROC of each measure (how well u separates wrong from right pseudo-label pixels) needs no threshold. Pixels
    whose true label is the dataset's ignore label are left out.
    """
    true_labels_folder = Path(true_labels_folder)
    cases = [c for c in cases if (true_labels_folder / f"{c}.npy").is_file()]
    if not cases:
        return None
    num_classes = label_maps.num_classes
    dice, sample = [], {m.value: [] for m in SampleUncertainty}
    correct = {m.value: {"kept": [0, 0], "masked": [0, 0]} for m in PixelUncertainty}
    class_pixels = np.zeros(num_classes, dtype=np.int64)  # pixels of each true class
    kept_class_pixels = {m.value: np.zeros(num_classes, dtype=np.int64) for m in PixelUncertainty}
    # per measure: how many right / wrong pixels have each quantised uncertainty 0..255
    histograms = {m.value: np.zeros((2, 256), dtype=np.int64) for m in PixelUncertainty}
    for case in cases:
        pseudo_label = cache.pseudo_label(case)
        truth = np.load(true_labels_folder / f"{case}.npy").reshape(pseudo_label.shape)
        annotated = truth != ignore_label if ignore_label is not None else np.ones(truth.shape, dtype=bool)
        dice.append(foreground_dice(pseudo_label[annotated], truth[annotated], num_classes))
        properties = cache.properties(case)
        for m in sample:
            sample[m].append(float(properties[f"U_{m}"]))
        is_correct = (pseudo_label == truth)[annotated]
        true_class = truth[annotated].astype(np.int64)
        class_pixels += np.bincount(true_class, minlength=num_classes)
        for m in correct:
            u = cache.pixel_uncertainty(case, m)
            kept = (label_maps.weights(u, pseudo_label) > 0).numpy()[annotated]
            for name, where in (("kept", kept), ("masked", ~kept)):
                correct[m][name][0] += int(is_correct[where].sum())
                correct[m][name][1] += int(where.sum())
            kept_class_pixels[m] += np.bincount(true_class[kept], minlength=num_classes)
            u = u[annotated]
            histograms[m][0] += np.bincount(u[is_correct], minlength=256)
            histograms[m][1] += np.bincount(u[~is_correct], minlength=256)
    errors = 1 - np.asarray(dice)
    return {
        "cases": list(cases),
        "num_cases": len(cases),
        "pseudo_label_dice_per_case": dice,
        "pseudo_label_dice_mean": float(np.mean(dice)),
        "pixel_weighting": label_maps.pixel_weighting.value,
        "pixel_threshold": label_maps.pixel_threshold,
        "pixel_accuracy": {
            m: {
                "kept_fraction": v["kept"][1] / max(1, v["kept"][1] + v["masked"][1]),
                "kept_fraction_per_true_class": [float(k / n) if n else None
                                                 for k, n in zip(kept_class_pixels[m], class_pixels)],
                "kept_accuracy": v["kept"][0] / v["kept"][1] if v["kept"][1] else None,
                "masked_accuracy": v["masked"][0] / v["masked"][1] if v["masked"][1] else None,
                "auroc_u_vs_error": _auroc(histograms[m]),
            }
            for m, v in correct.items()
        },
        "sample_uncertainty": sample,
        "spearman_U_vs_error": {m: _spearman(values, errors) for m, values in sample.items()},
    }


def _auroc(histogram: np.ndarray) -> float | None:
    """P(u of a wrong pixel > u of a right pixel) + P(equal) / 2, from counts per quantised level."""
    right, wrong = histogram.astype(float)
    if right.sum() == 0 or wrong.sum() == 0:
        return None
    right_below = np.concatenate(([0.0], np.cumsum(right)[:-1]))
    return float((wrong * (right_below + right / 2)).sum() / (right.sum() * wrong.sum()))


def _spearman(x: Sequence[float], y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def plot_diagnostics(diagnostics: dict, cache: PseudoLabelCache, image_loader, measure: str, pixel_measure: str,
                     output_file: str | Path, true_labels_folder: str | Path) -> None:
    """PNG: U(x) against pseudo-label Dice (the ranking), and the most, median and least reliable cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # nnU-Net's progress plot sets a global seaborn font scale of 2.5 on import; draw with matplotlib's defaults
    with plt.style.context("default"):
        u = np.asarray(diagnostics["sample_uncertainty"][measure])
        dice = np.asarray(diagnostics["pseudo_label_dice_per_case"])
        order = np.argsort(u, kind="stable")
        examples = [order[0], order[len(order) // 2], order[-1]]
        fig, axes = plt.subplots(len(examples), 5, figsize=(16, 3.2 * len(examples)))
        ranking_ax = axes[0, 0]
        ranking_ax.scatter(u, dice, s=12)
        ranking_ax.set_xlabel(f"U(x) ({measure})")
        ranking_ax.set_ylabel("pseudo-label Dice")
        rho = diagnostics["spearman_U_vs_error"][measure]
        ranking_ax.set_title(f"ranking: Spearman(U, error) = {rho:.2f}" if rho is not None else "ranking")
        for ax in axes[1:, 0]:
            ax.axis("off")
        for row, index in enumerate(examples):
            case = diagnostics["cases"][index]
            pseudo_label = cache.pseudo_label(case)
            image = np.asarray(image_loader(case))[0]  # the first channel of a multi-channel image
            truth = np.load(Path(true_labels_folder) / f"{case}.npy").reshape(pseudo_label.shape)
            z = pseudo_label.shape[0] // 2  # middle slice of a volume, the only one of a 2-D case
            panels = [(image[z], "gray", "image"), (pseudo_label[z], "viridis", "pseudo-label"),
                      (cache.pixel_uncertainty(case, pixel_measure)[z] / 255, "magma",
                       f"uncertainty ({pixel_measure})"), (truth[z], "viridis", "true label")]
            for col, (array, cmap, title) in enumerate(panels, start=1):
                axes[row, col].imshow(array, cmap=cmap, interpolation="nearest")
                axes[row, col].set_title(f"{case} (Dice {dice[index]:.2f}): {title}" if col == 1 else title, fontsize=9)
                axes[row, col].axis("off")
        fig.suptitle(f"pseudo-labels of {len(u)} cases: mean Dice {np.mean(dice):.3f}; rows: most reliable, median, "
                     "least reliable by U(x)")
        fig.tight_layout()
        fig.savefig(output_file, dpi=80)
    plt.close(fig)
