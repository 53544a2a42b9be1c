"""Whole-volume prediction with MONAI's sliding-window inferer, stitched on the CPU.

The windows run on the model's device; the stitching buffer (the size of the whole volume × classes) stays
in CPU memory, so GPU memory is bounded by ``sw_batch_size`` windows whatever the volume size. A 2-D model on
a 3-D stack predicts slice by slice (slices become the batch) and the result is stacked back.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage


@torch.inference_mode()
def predict_probabilities(
    method, image: np.ndarray | torch.Tensor, availability: np.ndarray | torch.Tensor, patch_size: list[int],
    *, overlap: float = 0.5, mode: str = "gaussian", sw_batch_size: int = 2, device: torch.device | None = None,
) -> torch.Tensor:
    """Class/region probabilities ``(K, *S)`` (float32, CPU) for one case ``image (C, *S)``.

    Args:
        method: a segmentation method (``predict_logits``, ``targets.probabilities``), in eval mode.
        availability: ``(C,)`` bool, present modalities (methods that model missing modalities use it).
        patch_size: window size; 2 entries on a 3-D volume = slice-wise 2-D inference.
        overlap: fraction of window overlap; mode: ``gaussian`` or ``constant`` blending.
    """
    availability = torch.as_tensor(availability, dtype=torch.bool)

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        present = availability.to(windows.device).expand(windows.shape[0], -1)
        return method.targets.probabilities(method.predict_logits(windows, present).float())

    return _slide(method, image, predictor, patch_size, overlap, mode, sw_batch_size, device)


@torch.inference_mode()
def predict_subset_probabilities(
    method, image: np.ndarray | torch.Tensor, availabilities: np.ndarray | torch.Tensor, patch_size: list[int],
    *, overlap: float = 0.5, mode: str = "gaussian", sw_batch_size: int = 2, device: torch.device | None = None,
) -> torch.Tensor:
    """Probabilities ``(M, K, *S)`` of one case ``image (C, *S)`` for each of ``M`` modality subsets
    ``availabilities (M, C)`` bool, in one sliding-window pass: every batch of windows goes through
    ``method.predict_logits_subsets`` once (ShaSpec encodes each modality once for all subsets). The same numbers as
    :func:`predict_probabilities` per subset on the image with the subset's other channels zeroed: MONAI blends
    every output channel separately, so stitching the subsets side by side changes nothing."""
    availabilities = torch.as_tensor(availabilities, dtype=torch.bool)
    subsets = len(availabilities)

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        logits = method.predict_logits_subsets(windows, availabilities.to(windows.device))
        return torch.cat([method.targets.probabilities(subset.float()) for subset in logits], 1)  # (B, M·K, *P)

    probabilities = _slide(method, image, predictor, patch_size, overlap, mode, sw_batch_size, device)
    return probabilities.reshape(subsets, -1, *probabilities.shape[1:])


def _slide(method, image, predictor, patch_size, overlap, mode, sw_batch_size, device) -> torch.Tensor:
    """MONAI's sliding window over one case ``image (C, *S)`` → ``(channels of predictor, *S)`` on the CPU."""
    device = device or next(method.parameters()).device
    image = torch.as_tensor(np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image).float()
    slice_wise = len(patch_size) == 2 and image.ndim == 4
    batch = image.permute(3, 0, 1, 2) if slice_wise else image.unsqueeze(0)
    probabilities = sliding_window_inference(
        batch, roi_size=list(patch_size), sw_batch_size=sw_batch_size, predictor=predictor, overlap=overlap,
        mode=mode, sw_device=device, device=torch.device("cpu"), padding_mode="constant", cval=0.0)
    return probabilities.permute(1, 2, 3, 0) if slice_wise else probabilities[0]


def keep_largest_component(label: np.ndarray) -> np.ndarray:
    """Keep only the largest connected component of each foreground label (SS-Net's LA post-processing).

    Components use full connectivity (26 neighbours in 3-D, 8 in 2-D), as the official code's
    ``skimage.measure.label`` default: two blobs touching at a corner are one object.
    """
    out = np.zeros_like(label)
    full_connectivity = ndimage.generate_binary_structure(label.ndim, label.ndim)
    for value in np.unique(label):
        if value == 0:
            continue
        components, count = ndimage.label(label == value, structure=full_connectivity)
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        out[components == int(np.argmax(sizes)) + 1] = value
    return out
