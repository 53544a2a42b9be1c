"""Patch sampling and augmentation on numpy arrays, driven by an explicit ``numpy.random.Generator``.

Explicit generators (rather than global RNG state) make every sample reproducible from its own seed; see
:mod:`medgap.data.samplers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalise(image: np.ndarray, availability: np.ndarray, scheme: str = "zscore_nonzero") -> np.ndarray:
    """Per-channel intensity normalisation of ``(C, *spatial)``; missing channels stay zero.

    ``zscore_nonzero`` (BraTS/MRI, nnU-Net's "nonzero" scheme): mean/std over non-zero voxels, background stays 0.
    ``zscore``: over all voxels. ``minmax``: to [0, 1]. ``none``: unchanged.
    """
    out = np.zeros_like(image, dtype=np.float32)
    for channel in np.flatnonzero(availability):
        values = image[channel]
        if scheme == "none":
            out[channel] = values
            continue
        out[channel] = _normalise_channel(values, scheme)
    return out


def _normalise_channel(values: np.ndarray, scheme: str) -> np.ndarray:
    mask = values != 0 if scheme == "zscore_nonzero" else np.ones(values.shape, bool)
    if not mask.any():
        return np.zeros(values.shape, np.float32)
    selected = values[mask]
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow is detected and redone below
        if scheme == "minmax":
            shift, scale = float(selected.min()), float(selected.max()) - float(selected.min())
        else:
            shift, scale = float(selected.mean()), float(selected.std())
        normalised = (values - shift) / max(scale, 1e-8)
    overflowed = not (np.isfinite([shift, scale]).all() and np.isfinite(normalised).all())
    if overflowed and values.dtype != np.float64 and np.isfinite(values).all():
        # finite float32 voxels near 3e38 overflow float32 sums and differences: only such images are normalised
        # in float64, so every other image normalises exactly as before
        return _normalise_channel(values.astype(np.float64), scheme)
    return np.where(mask, normalised, 0.0) if scheme == "zscore_nonzero" else normalised


def crop_patch(image: np.ndarray, label: np.ndarray | None, patch_size: tuple[int, ...], rng: np.random.Generator,
               foreground: np.ndarray | None = None, foreground_probability: float = 0.33):
    """A random patch of ``patch_size`` from ``image (C, *spatial)`` and ``label (*spatial)``, zero-padded if small.

    With probability ``foreground_probability`` the patch is centred on a random row of ``foreground`` (voxel
    coordinates, ``(N, ndim)``), as nnU-Net oversamples foreground. A 2-D ``patch_size`` on a 3-D volume takes a
    random slice along the last axis first (slice-wise 2-D training on stacks, as for ACDC).
    """
    spatial = image.shape[1:]
    if len(patch_size) == 2 and len(spatial) == 3:
        if foreground is not None and len(foreground) and rng.random() < foreground_probability:
            point = foreground[rng.integers(len(foreground))]
            z = int(point[2])
            foreground_2d = point[None, :2]
        else:
            z = int(rng.integers(spatial[2]))
            foreground_2d = None
        image = image[..., z]
        label = None if label is None else label[..., z]
        return crop_patch(image, label, patch_size, rng, foreground_2d, 1.0 if foreground_2d is not None else 0.0)
    if len(patch_size) != len(spatial):
        raise ValueError(f"patch_size {patch_size} does not fit an image with spatial shape {spatial}")
    use_foreground = foreground is not None and len(foreground) and rng.random() < foreground_probability
    centre = foreground[rng.integers(len(foreground))] if use_foreground else None
    starts = []
    for axis, (size, patch) in enumerate(zip(spatial, patch_size)):
        if size <= patch:
            starts.append(-((patch - size) // 2) if centre is None else int(centre[axis]) - patch // 2)
        elif centre is None:
            starts.append(int(rng.integers(size - patch + 1)))
        else:
            starts.append(int(centre[axis]) - patch // 2 + int(rng.integers(-patch // 4, patch // 4 + 1)))
        if size > patch:
            starts[-1] = int(np.clip(starts[-1], 0, size - patch))
    return _extract(image, starts, patch_size), None if label is None else _extract(label[None], starts, patch_size)[0]


def _extract(array: np.ndarray, starts: list[int], patch_size: tuple[int, ...]) -> np.ndarray:
    """``array[:, starts:starts+patch]`` with zero padding where the window leaves the array."""
    out = np.zeros((array.shape[0], *patch_size), dtype=array.dtype)
    source, target = [slice(None)], [slice(None)]
    for start, patch, size in zip(starts, patch_size, array.shape[1:]):
        low, high = max(start, 0), min(start + patch, size)
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    out[tuple(target)] = array[tuple(source)]
    return out


def rot90_flip(image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator):
    """Rotate ``image (C, *S)`` and ``label (*S)`` by k·90° in the first two spatial axes, k ~ U{0..3}, then mirror
    one of those two axes, chosen at random (UA-MT/SS-Net/SSL4MIS ``RandomRotFlip``: always a reflection).

    If the two axes differ in size only k ∈ {0, 2} is drawn, so the patch keeps its shape.
    """
    square = image.shape[1] == image.shape[2]
    k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    axis = int(rng.integers(2))
    image = np.flip(np.rot90(image, k, axes=(1, 2)), axis + 1)
    label = None if label is None else np.flip(np.rot90(label, k, axes=(0, 1)), axis)
    return image, label


@dataclass
class Augmentation:
    """Training-time augmentation of a patch: the official semi-supervised codes' rot90 + flip (optional),
    random flips, intensity scale/shift per channel, Gaussian noise."""

    flip_axes: tuple[int, ...] = (0, 1, 2)
    flip_probability: float = 0.5
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    noise_std: float = 0.05
    rot90_flip_probability: float = 0.0

    def __call__(self, image: np.ndarray, label: np.ndarray | None, availability: np.ndarray,
                 rng: np.random.Generator):
        ndim = image.ndim - 1
        # Drawn only when enabled: with probability 0 the generator's stream (and every result) is unchanged.
        if self.rot90_flip_probability > 0 and ndim >= 2 and rng.random() < self.rot90_flip_probability:
            image, label = rot90_flip(image, label, rng)
        for axis in self.flip_axes:
            if axis < ndim and rng.random() < self.flip_probability:
                image = np.flip(image, axis + 1)
                label = None if label is None else np.flip(label, axis)
        image = np.ascontiguousarray(image)
        channels = image.shape[0]
        scale = 1.0 + rng.uniform(-self.intensity_scale, self.intensity_scale, channels)
        shift = rng.uniform(-self.intensity_shift, self.intensity_shift, channels)
        image = image * scale.reshape(-1, *[1] * ndim).astype(np.float32) + shift.reshape(-1, *[1] * ndim).astype(np.float32)
        if self.noise_std > 0:
            image = image + rng.normal(0, self.noise_std, image.shape).astype(np.float32)
        image[~availability] = 0.0  # missing modalities stay exactly zero
        return image, None if label is None else np.ascontiguousarray(label)
