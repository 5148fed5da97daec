"""Diagnostics that show whether PUM and SUS work, when true labels of the "unlabeled" cases exist.

For a pseudo-label pass: the pseudo-label Dice per case, the pseudo-label accuracy on the pixels each
pixel-uncertainty measure keeps vs. masks (at the configured threshold), and the Spearman correlation between
each sample-level U(x) and the pseudo-label error (1 - Dice). Both must come out right for the method to make
sense: kept pixels more accurate than masked ones, and a positive correlation (reliable cases ranked first).
The picture draws every label map with one fixed colour per class value (``label_rgba``), so that a class looks
the same in the pseudo-label and in the true label.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from nnunet_dumm.cache import PseudoLabelCache
from nnunet_dumm.label_maps import PseudoLabelMaps
from nnunet_dumm.uncertainty import SampleUncertainty

__all__ = [
    "append_record",
    "class_dice",
    "class_names",
    "drop_records_from_epoch",
    "foreground_dice",
    "label_colormap",
    "label_rgba",
    "plot_diagnostics",
    "pseudo_label_diagnostics",
    "write_round_diagnostics",
]

# the colour of pixels of no class: nnU-Net's ignore label in a true label
_NEUTRAL_COLOUR = (0.6, 0.6, 0.6)
_BACKGROUND_COLOUR = (0.0, 0.0, 0.0)


def class_dice(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> list[float]:
    """Dice of each foreground class 1 .. num_classes - 1; a class absent from both counts as 1."""
    scores = []
    for c in range(1, num_classes):
        p, t = prediction == c, truth == c
        denominator = p.sum() + t.sum()
        scores.append(1.0 if denominator == 0 else float(2.0 * (p & t).sum() / denominator))
    return scores


def foreground_dice(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """Mean Dice over foreground classes; a class absent from both counts as 1."""
    return float(np.mean(class_dice(prediction, truth, num_classes)))


def class_names(labels: Mapping[str, int] | None, num_classes: int) -> list[str]:
    """The name of each class value 0 .. num_classes - 1: from dataset.json's ``labels`` (name -> value), else the
    value itself."""
    names = {value: name for name, value in (labels or {}).items()}
    return [names.get(value, str(value)) for value in range(num_classes)]


def pseudo_label_diagnostics(cache: PseudoLabelCache, cases: Sequence[str], true_labels_folder: str | Path,
                             label_maps: PseudoLabelMaps, ignore_label: int | None = None,
                             labels: Mapping[str, int] | None = None) -> dict | None:
    """Quality of one pass against true labels; ``None`` when no case of ``cases`` has a true label.

    The pseudo-label Dice is given per case (mean over foreground classes) and per class (mean over cases, named
    from ``labels``, dataset.json's ``labels``, else by value; ``class_names`` lists every class's name): the mean
    of the per-class values is the mean per-case Dice.

    "Kept" pixels are those ``label_maps.weights`` gives a non-zero weight, the same rule training uses, applied
    to each pixel measure the cache keeps; with ``none`` every pixel is kept and there is no masked accuracy. The
    kept share is also given per true class: a mask that keeps 97 % of all pixels may keep far less of a small,
    hard class, and leave the student little of it to learn from. The AUROC of each measure (how well u separates
    wrong from right pseudo-label pixels) needs no threshold. Sample measures the entries do not hold (a later
    round's, without the sums they need) are None. Pixels whose true label is the dataset's ignore label are left
    out.
    """
    true_labels_folder = Path(true_labels_folder)
    cases = [c for c in cases if (true_labels_folder / f"{c}.npy").is_file()]
    if not cases:
        return None
    num_classes = label_maps.num_classes
    measures = [m.value for m in cache.contents.pixel_measures]
    dice_per_class, sample = [], {m.value: [] for m in SampleUncertainty}
    correct = {m: {"kept": [0, 0], "masked": [0, 0]} for m in measures}
    class_pixels = np.zeros(num_classes, dtype=np.int64)  # pixels of each true class
    kept_class_pixels = {m: np.zeros(num_classes, dtype=np.int64) for m in measures}
    # per measure: how many right / wrong pixels have each quantised uncertainty 0..255
    histograms = {m: np.zeros((2, 256), dtype=np.int64) for m in measures}
    for case in cases:
        pseudo_label = cache.pseudo_label(case)
        truth = np.load(true_labels_folder / f"{case}.npy").reshape(pseudo_label.shape)
        annotated = truth != ignore_label if ignore_label is not None else np.ones(truth.shape, dtype=bool)
        dice_per_class.append(class_dice(pseudo_label[annotated], truth[annotated], num_classes))
        properties = cache.properties(case)
        for m in sample:
            sample[m].append(properties.get(f"U_{m}"))
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
    dice = [float(np.mean(scores)) for scores in dice_per_class]
    errors = 1 - np.asarray(dice)
    names = class_names(labels, num_classes)
    return {
        "cases": list(cases),
        "num_cases": len(cases),
        "class_names": names,
        "ignore_label": ignore_label,
        "pseudo_label_dice_per_case": dice,
        "pseudo_label_dice_mean": float(np.mean(dice)),
        "pseudo_label_dice_per_class": dict(zip(names[1:], np.mean(dice_per_class, axis=0).tolist())),
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
        "spearman_U_vs_error": {m: None if None in values else _spearman(values, errors)
                                for m, values in sample.items()},
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


def label_colormap(num_classes: int):
    """A ``ListedColormap`` of ``num_classes + 1`` colours: the colour of each class value 0 .. num_classes - 1
    (background black), then the neutral grey of pixels of no class."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    # tab10 without its grey, which would pass for the neutral colour; more classes than it has get turbo's
    palette = [colour for i, colour in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]
    foreground = num_classes - 1
    if foreground > len(palette):
        palette = [tuple(rgba[:3]) for rgba in matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, foreground))]
    return ListedColormap([_BACKGROUND_COLOUR, *palette[:foreground], _NEUTRAL_COLOUR])


def label_rgba(label_map: np.ndarray, num_classes: int) -> np.ndarray:
    """RGBA ``(*label_map.shape, 4)`` of a label map: each class value in its fixed colour (``label_colormap``),
    whatever values the map holds, and any other value (nnU-Net's ignore label) neutral grey.

    Drawn as RGBA, the panels of one figure cannot each scale their colours to their own range of values.
    """
    label_map = np.asarray(label_map).astype(np.int64)
    no_class = (label_map < 0) | (label_map >= num_classes)
    return label_colormap(num_classes)(np.where(no_class, num_classes, label_map))


def _class_legend(ax, diagnostics: dict) -> None:
    """The colour of each class with its name and pseudo-label Dice, drawn into an empty axes."""
    from matplotlib.patches import Patch

    names = diagnostics["class_names"]
    colours = label_colormap(len(names)).colors
    dice = diagnostics["pseudo_label_dice_per_class"]
    handles = [Patch(color=colours[0], label=f"0 {names[0]}")]
    handles += [Patch(color=colours[value], label=f"{value} {name}: Dice {dice[name]:.3f}")
                for value, name in enumerate(names[1:], start=1)]
    if diagnostics["ignore_label"] is not None:
        handles.append(Patch(color=colours[-1], label=f"{diagnostics['ignore_label']} ignored (true label)"))
    ax.legend(handles=handles, loc="center", title="classes: pseudo-label Dice", fontsize=8, title_fontsize=9)


def plot_diagnostics(diagnostics: dict, cache: PseudoLabelCache, image_loader, measure: str, pixel_measure: str,
                     output_file: str | Path, true_labels_folder: str | Path) -> None:
    """PNG: U(x) against pseudo-label Dice (the ranking), the classes' colours and Dice, and the most, median and
    least reliable cases; class names come from ``diagnostics["class_names"]``. Where the entries lack the sums
    ``measure`` needs (a later round's), U(x) is the entropy measure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if None in diagnostics["sample_uncertainty"][measure]:  # a later round's entries lack the sums it needs
        measure = SampleUncertainty.ENTROPY.value
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
        _class_legend(axes[1, 0], diagnostics)
        num_classes = len(diagnostics["class_names"])
        for row, index in enumerate(examples):
            case = diagnostics["cases"][index]
            pseudo_label = cache.pseudo_label(case)
            image = np.asarray(image_loader(case))[0]  # the first channel of a multi-channel image
            truth = np.load(Path(true_labels_folder) / f"{case}.npy").reshape(pseudo_label.shape)
            z = pseudo_label.shape[0] // 2  # middle slice of a volume, the only one of a 2-D case
            panels = [(image[z], "gray", "image"), (label_rgba(pseudo_label[z], num_classes), None, "pseudo-label"),
                      (cache.pixel_uncertainty(case, pixel_measure)[z] / 255, "magma",
                       f"uncertainty ({pixel_measure})"), (label_rgba(truth[z], num_classes), None, "true label")]
            for col, (array, cmap, title) in enumerate(panels, start=1):
                axes[row, col].imshow(array, cmap=cmap, interpolation="nearest")
                axes[row, col].set_title(f"{case} (Dice {dice[index]:.2f}): {title}" if col == 1 else title, fontsize=9)
                axes[row, col].axis("off")
        fig.suptitle(f"pseudo-labels of {len(u)} cases: mean Dice {np.mean(dice):.3f}; rows: most reliable, median, "
                     "least reliable by U(x)")
        fig.tight_layout()
        fig.savefig(output_file, dpi=80)
    plt.close(fig)


def write_round_diagnostics(cache: PseudoLabelCache, cases: Sequence[str], true_labels_folder: Path,
                            label_maps: PseudoLabelMaps, ignore_label: int | None, labels: Mapping[str, int],
                            image_loader, sample_measure: str, stem: Path) -> str | None:
    """A round's diagnostics as ``<stem>.json`` and ``<stem>.png``; returns their summary for the training log, or
    None when no case has a true label."""
    diagnostics = pseudo_label_diagnostics(cache, cases, true_labels_folder, label_maps, ignore_label, labels)
    if diagnostics is None:
        return None
    stem.with_suffix(".json").write_text(json.dumps(diagnostics, indent=1))
    pixel_measure = label_maps.pixel_uncertainty.value
    plot_diagnostics(diagnostics, cache, image_loader, sample_measure, pixel_measure, stem.with_suffix(".png"),
                     true_labels_folder)
    pixel = diagnostics["pixel_accuracy"][pixel_measure]
    return (f"{diagnostics['num_cases']} cases with true labels: pseudo-label Dice "
            f"{_rounded(diagnostics['pseudo_label_dice_mean'])} (per class "
            f"{_rounded(diagnostics['pseudo_label_dice_per_class'])}); pixel accuracy kept "
            f"{_rounded(pixel['kept_accuracy'])} vs masked {_rounded(pixel['masked_accuracy'])} ({pixel_measure}), "
            f"share kept per true class {_rounded(pixel['kept_fraction_per_true_class'])}; Spearman(U, error) "
            f"{_rounded(diagnostics['spearman_U_vs_error'][sample_measure])} -> {stem}.json")


def _rounded(value) -> str:
    """A diagnostics value for the log: numbers to three decimals, None as '-', lists and dicts element-wise."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_rounded(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_rounded(v) for v in value) + "]"
    return "-" if value is None else f"{value:.3f}"


def append_record(path: Path, record: dict) -> None:
    """One line of a JSON-lines log (``dumm_metrics.jsonl``)."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def drop_records_from_epoch(path: Path, epoch: int) -> None:
    """Keeps the records of the epochs before ``epoch``: those a resumed run (``--c``) trains again go, and so
    does a line torn by a kill during the append."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record["epoch"] < epoch:
            kept.append(line + "\n")
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text("".join(kept))
    os.replace(temporary, path)
