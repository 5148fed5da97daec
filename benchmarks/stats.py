"""The benchmarks' statistics: per-case segmentation metrics, their aggregates, and paired bootstrap intervals of
differences between rows.

(Named ``stats``, not ``statistics``: a script run as ``python benchmarks/<script>.py`` has ``benchmarks/`` on
``sys.path``, where a ``statistics.py`` would shadow the standard library module that torch and numpy import.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["aggregate", "bootstrap_difference", "case_metrics", "compare_rows", "dice_matrix"]


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


# ------------------------------------------------------------------------------------------------ differences
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


def dice_matrix(result: dict) -> dict[str, list[float]]:
    """case -> mean Dice over classes, one value per seed."""
    out: dict[str, list[float]] = {}
    for per_seed in result["seeds"].values():
        for record in per_seed["per_case"]:
            values = [c["Dice"] for c in record["classes"].values()]
            out.setdefault(record["case"], []).append(float(np.nanmean(values)) if np.isfinite(values).any()
                                                      else float("nan"))
    return out


def compare_rows(results: dict, pairs: Sequence[tuple[str, str]]) -> dict:
    """Paired bootstrap (over evaluation cases, and over seeds where a row has several) of mean Dice differences,
    for the (row, reference) ``pairs`` whose rows are both in ``results``."""
    comparisons = {}
    for key, reference in pairs:
        if key not in results or reference not in results:
            continue
        comparisons[f"{key}_vs_{reference}"] = bootstrap_difference(
            dice_matrix(results[key]), dice_matrix(results[reference]))
    return comparisons
