"""nnU-Net's sliding-window prediction, batched: many tiles, every mirror and several small cases per forward pass.

The arithmetic is nnU-Net's (``nnUNetPredictor.predict_sliding_window_return_logits``): pad to the patch size,
tiles at ``tile_step_size`` with nnU-Net's step rule, Gaussian importance weighting, mirror test-time
augmentation averaged over all axis combinations, padding reverted. What differs is only how the work is fed to
the network: nnU-Net runs one tile and one mirror per forward pass (36 passes of batch 1 for a 9-slice volume in
the 2d configuration), which leaves a CPU or GPU mostly idle; here tiles of one or several cases and all their
mirrors go through the network together (as many as ``voxels_per_forward`` allows), and the logits are accumulated
in float32 (nnU-Net: float16), so results agree with nnU-Net's up to floating-point rounding.

On CUDA the image, tiles and accumulators stay on the device; if that runs out of memory the accumulators move
to the CPU, as nnU-Net's predictor does.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_gaussian, compute_steps_for_sliding_window
from nnunetv2.utilities.helpers import dummy_context, empty_cache

__all__ = ["SlidingWindow", "softmax_", "voxels_per_forward"]

# bound on the temporaries of softmax_ (values per slab along the first spatial axis)
_SLAB_VALUES = 1 << 24


@torch.inference_mode()
def softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the class axis (0) in place, slab by slab: a large 3-D case needs no second full-size array.

    ``label_manager.apply_inference_nonlin`` (nnU-Net) does the same out of place for label-map datasets.
    """
    rows = max(1, _SLAB_VALUES // max(1, math.prod(logits.shape[:1] + logits.shape[2:])))
    for start in range(0, logits.shape[1], rows):
        x = logits[:, start:start + rows]
        x -= x.amax(0, keepdim=True)
        x.exp_()
        x /= x.sum(0, keepdim=True)
    return logits


def voxels_per_forward(device: torch.device) -> int:
    """How many input voxels one forward pass gets (tiles x mirrors x patch voxels).

    Machine setting ``NNUNET_DUMM_VOXELS_PER_FORWARD``. Defaults: 2**17 on a CPU (about 32 tiles of 64 x 64; on
    2 cores throughput peaked there: batch 1 57, 4 90, 36 110, 72 88 tiles/s of the ACDC 64 x 64 network) and
    2**21 on a GPU.
    """
    value = os.environ.get("NNUNET_DUMM_VOXELS_PER_FORWARD")
    if value is not None:
        return max(1, int(value))
    return 1 << (21 if device.type == "cuda" else 17)


@dataclass
class _Case:
    data: torch.Tensor  # padded image (c, *spatial)
    revert: tuple  # slicer that removes the padding
    slicers: list[tuple]
    logits: torch.Tensor | None = None
    weight_sum: torch.Tensor | None = None


@dataclass
class SlidingWindow:
    """Sliding-window logits of one network, batched.

    Args:
        network: the model, in eval mode (its device is ``device``).
        patch_size: the configuration's patch size (2 entries for 2d, 3 for 3d).
        mirror_axes: spatial axes for mirror TTA (nnU-Net's ``inference_allowed_mirroring_axes``), or None.
        num_classes: number of output channels (segmentation heads).
        device: where the network runs.
        tile_step_size: nnU-Net's default 0.5.
        perform_everything_on_device: keep image and accumulators on a CUDA device (nnU-Net's flag).
    """

    network: torch.nn.Module
    patch_size: tuple[int, ...]
    mirror_axes: tuple[int, ...] | None
    num_classes: int
    device: torch.device
    tile_step_size: float = 0.5
    perform_everything_on_device: bool = True

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)
        self.perform_everything_on_device = self.perform_everything_on_device and self.device.type == "cuda"

    def num_tiles(self, spatial: Sequence[int]) -> int:
        return len(self._slicers(self._padded_shape(spatial)))

    def tiles_per_forward(self) -> int:
        mirrors = len(self._mirror_combinations()) + 1
        return max(1, voxels_per_forward(self.device) // (math.prod(self.patch_size) * mirrors))

    def predict_logits(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits ``(num_classes, *spatial)`` (float32, on the CPU) for each preprocessed image ``(c, *spatial)``."""
        if self.perform_everything_on_device:
            try:
                return self._predict(images, self.device)
            except RuntimeError as error:  # typically CUDA out of memory; nnU-Net falls back the same way
                print(f"prediction on {self.device} failed ({str(error).splitlines()[0]}); accumulating on the CPU")
                empty_cache(self.device)
        return self._predict(images, torch.device("cpu"))

    # ----------------------------------------------------------------------------------------------------------
    def _padded_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        spatial = tuple(spatial)
        tail = spatial[len(spatial) - len(self.patch_size):]
        return spatial[: len(spatial) - len(self.patch_size)] + tuple(max(s, p) for s, p in zip(tail, self.patch_size))

    def _slicers(self, spatial: Sequence[int]) -> list[tuple]:
        """nnU-Net's tiles (``nnUNetPredictor._internal_get_sliding_window_slicers``) of a padded image."""
        spatial = tuple(spatial)
        if len(self.patch_size) < len(spatial):  # 2d configuration on a 3-D image: every slice on its own
            steps = compute_steps_for_sliding_window(spatial[1:], self.patch_size, self.tile_step_size)
            return [(slice(None), d, *(slice(s, s + p) for s, p in zip(start, self.patch_size)))
                    for d in range(spatial[0]) for start in itertools.product(*steps)]
        steps = compute_steps_for_sliding_window(spatial, self.patch_size, self.tile_step_size)
        return [(slice(None), *(slice(s, s + p) for s, p in zip(start, self.patch_size)))
                for start in itertools.product(*steps)]

    def _mirror_combinations(self) -> list[tuple[int, ...]]:
        if not self.mirror_axes:
            return []
        axes = [a + 2 for a in self.mirror_axes]  # batch and channel come first
        return [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]

    def _forward_mirrored(self, tiles: torch.Tensor) -> torch.Tensor:
        """nnU-Net's ``_internal_maybe_mirror_and_predict`` for a batch of tiles, every mirror in one pass unless
        that exceeds ``voxels_per_forward``: the 8 mirrored views of a 128^3 ``3d_fullres`` patch in one batch would
        need 8 times the activation memory of nnU-Net's predictor (one view per pass), so such views go in groups."""
        views = [(), *self._mirror_combinations()]
        views_per_pass = max(1, voxels_per_forward(self.device) // (math.prod(self.patch_size) * tiles.shape[0]))
        prediction = None
        for start in range(0, len(views), views_per_pass):
            group = views[start:start + views_per_pass]
            batch = torch.cat([torch.flip(tiles, axes) if axes else tiles for axes in group])
            for part, axes in zip(self.network(batch).split(tiles.shape[0]), group):
                part = (torch.flip(part, axes) if axes else part).float()
                prediction = part if prediction is None else prediction.add_(part)
        return prediction / len(views)

    @torch.inference_mode()
    def _predict(self, images: Sequence[torch.Tensor], results_device: torch.device) -> list[torch.Tensor]:
        self.network.eval()
        gaussian = compute_gaussian(self.patch_size, sigma_scale=1.0 / 8, value_scaling_factor=10,
                                    dtype=torch.float32, device=results_device)
        cases = []
        for image in images:
            data, revert = pad_nd_image(image.to(results_device), self.patch_size, "constant", {"value": 0}, True,
                                        None)
            case = _Case(data, revert, self._slicers(data.shape[1:]))
            case.logits = torch.zeros((self.num_classes, *data.shape[1:]), device=results_device)
            case.weight_sum = torch.zeros(data.shape[1:], device=results_device)
            cases.append(case)
        work = [(case, slicer) for case in cases for slicer in case.slicers]
        # equal chunks: 10 tiles at 8 per pass run as 5 + 5, not 8 + 2
        batch_size = math.ceil(len(work) / math.ceil(len(work) / self.tiles_per_forward()))
        autocast = torch.autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()
        with autocast:
            for start in range(0, len(work), batch_size):
                chunk = work[start:start + batch_size]
                tiles = torch.stack([case.data[slicer] for case, slicer in chunk]).to(self.device)
                prediction = self._forward_mirrored(tiles).to(results_device)
                for (case, slicer), tile in zip(chunk, prediction):
                    case.logits[(slice(None), *slicer[1:])] += tile * gaussian
                    case.weight_sum[slicer[1:]] += gaussian
        out = []
        for case in cases:  # in place: a large 3-D case holds one full-size array per image here
            case.logits /= case.weight_sum
            out.append(case.logits[(slice(None), *case.revert[1:])].cpu())
            case.logits = case.weight_sum = case.data = None
        return out
