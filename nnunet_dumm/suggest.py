"""Which unlabeled images to annotate next: the teachers' cached pass, ranked by SUS's sample uncertainty.

SUS trains on the images the teachers agree on first; the images they disagree on most are where a true label
teaches the next model most. Everything here reads the teachers' pass from its cache; no model runs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_dumm.cache import PseudoLabelCache
from nnunet_dumm.diagnostics import label_colormap, label_rgba
from nnunet_dumm.uncertainty import PixelUncertainty, SampleUncertainty

__all__ = ["Suggestion", "copy_raw_images", "plot_suggestion", "rank_for_annotation", "write_suggestions"]


@dataclass(frozen=True)
class Suggestion:
    """One image worth annotating: its rank (1 = most uncertain), the sample uncertainty that ranked it, its mean
    pixel uncertainty and the share of its pixels the fused pseudo-label calls foreground."""

    rank: int
    case: str
    sample_uncertainty: float
    mean_pixel_uncertainty: float
    foreground_share: float


def rank_for_annotation(cache: PseudoLabelCache, cases: Sequence[str], measure: SampleUncertainty,
                        pixel_measure: PixelUncertainty, count: int) -> list[Suggestion]:
    """The ``count`` cases with the highest sample uncertainty, most uncertain first (ties by case id)."""
    uncertainty = cache.sample_uncertainty(cases, measure)
    chosen = sorted(cases, key=lambda case: (-uncertainty[case], case))[:count]
    suggestions = []
    for rank, case in enumerate(chosen, 1):
        pixels = cache.pixel_uncertainty(case, pixel_measure)
        suggestions.append(Suggestion(rank, case, uncertainty[case], float(pixels.mean()) / 255,
                                      float((cache.pseudo_label(case) > 0).mean())))
    return suggestions


def _most_uncertain_slice(uncertainty: np.ndarray) -> tuple:
    """Index of the 2-D slice to show: the whole image in 2-D, in 3-D the slice of the first axis with the highest
    mean uncertainty."""
    if uncertainty.ndim == 2 or uncertainty.shape[0] == 1:
        return (0,) if uncertainty.ndim == 3 else ()
    return (int(uncertainty.reshape(uncertainty.shape[0], -1).mean(1).argmax()),)


def plot_suggestion(path: Path, image: np.ndarray, pseudo_label: np.ndarray, uncertainty: np.ndarray,
                    num_classes: int, names: Sequence[str], title: str) -> None:
    """Image (first channel), fused pseudo-label in fixed class colours with a legend, and the pixel uncertainty,
    side by side (for 3-D cases the slice with the highest mean uncertainty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    index = _most_uncertain_slice(uncertainty)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    axes[0].imshow(image[0][index], cmap="gray")
    axes[0].set_title("image")
    axes[1].imshow(label_rgba(pseudo_label[index], num_classes), interpolation="nearest")
    axes[1].set_title("fused pseudo-label")
    shown = axes[2].imshow(uncertainty[index].astype(np.float32) / 255, cmap="magma", vmin=0, vmax=1)
    axes[2].set_title("pixel uncertainty")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    colours = label_colormap(num_classes)
    axes[1].legend(handles=[Patch(color=colours(c), label=f"{c} {name}") for c, name in enumerate(names)],
                   loc="upper left", bbox_to_anchor=(0, -0.02), ncol=min(4, num_classes), fontsize=7, frameon=False)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_suggestions(suggestions: Sequence[Suggestion], cache: PseudoLabelCache, pixel_measure: PixelUncertainty,
                      measure: SampleUncertainty, load_image: Callable[[str], np.ndarray], names: Sequence[str],
                      output: Path) -> Path:
    """``suggestions.json`` and one picture per suggestion (``<rank>_<case>.png``) in ``output``; returns the JSON.
    ``names``: the class names in label order (``diagnostics.class_names``)."""
    output.mkdir(parents=True, exist_ok=True)
    for s in suggestions:
        plot_suggestion(output / f"{s.rank:03d}_{s.case}.png", load_image(s.case), cache.pseudo_label(s.case),
                        cache.pixel_uncertainty(s.case, pixel_measure), len(names), names,
                        f"#{s.rank} {s.case}: sample uncertainty ({measure.value}) {s.sample_uncertainty:.3f}, "
                        f"mean pixel uncertainty ({pixel_measure.value}) {s.mean_pixel_uncertainty:.3f}")
    json_file = output / "suggestions.json"
    json_file.write_text(json.dumps({"sample_uncertainty": measure.value, "pixel_uncertainty": pixel_measure.value,
                                     "pseudo_labels": str(cache.folder),
                                     "suggestions": [asdict(s) for s in suggestions]}, indent=1))
    return json_file


def copy_raw_images(suggestions: Sequence[Suggestion], raw_files: Mapping[str, Sequence[str]],
                    destination: Path) -> list[Path]:
    """Copies every channel file of the suggested cases' raw images to ``destination``; returns the copies."""
    destination.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(f, destination)) for s in suggestions for f in raw_files[s.case]]
