"""Patch sampling and augmentation on numpy arrays, driven by an explicit ``numpy.random.Generator``.

Explicit generators (rather than global RNG state) make every sample reproducible from its own seed; see
:mod:`medgap.data.samplers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


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
    random flips, intensity scale/shift per channel, Gaussian noise, and nnU-Net's gamma (optional, off by
    default: ``gamma_probability`` / ``gamma_inverted_probability`` 0)."""

    flip_axes: tuple[int, ...] = (0, 1, 2)
    flip_probability: float = 0.5
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    noise_std: float = 0.05
    rot90_flip_probability: float = 0.0
    gamma_probability: float = 0.0
    gamma_inverted_probability: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)

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
        # nnU-Net v2 applies an inverted gamma (p 0.1), then a plain one (p 0.3), each to every channel
        for probability, invert in ((self.gamma_inverted_probability, True), (self.gamma_probability, False)):
            if probability > 0 and rng.random() < probability:
                image = np.stack([adjust_gamma(channel, contrast_factor(self.gamma_range, rng), invert)
                                  for channel in image])
        image[~availability] = 0.0  # missing modalities stay exactly zero
        return image, None if label is None else np.ascontiguousarray(label)


def contrast_factor(value_range: Sequence[float], rng: np.random.Generator) -> float:
    """A factor from ``(low, high)`` that is below 1 half of the time when ``low < 1`` (nnU-Net's ``BGContrast``):
    U(low, 1) or U(max(low, 1), high), so shrinking and stretching are equally likely however asymmetric the range."""
    low, high = value_range
    if low < 1 and rng.random() < 0.5:
        return float(rng.uniform(low, 1.0))
    return float(rng.uniform(max(low, 1.0), high))


def adjust_gamma(values: np.ndarray, gamma: float, invert: bool = False, retain_stats: bool = True) -> np.ndarray:
    """Gamma of one channel ``(*S)``: rescaled to [0, 1] by its min/max, raised to ``gamma``, scaled back; with
    ``invert`` done on ``-values`` (bright and dark swap roles); with ``retain_stats`` the channel's mean and
    standard deviation are restored afterwards (nnU-Net's ``GammaTransform``, ``p_retain_stats=1``)."""
    values = -values if invert else values
    low, span = float(values.min()), float(values.max()) - float(values.min())
    out = ((values - low) / max(span, 1e-7)) ** gamma * span + low
    if retain_stats:
        out = (out - out.mean()) * (values.std() / max(float(out.std()), 1e-7)) + values.mean()
    return (-out if invert else out).astype(np.float32)


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """``(ndim, ndim)`` rotation from angles in radians: one angle in 2-D; in 3-D one about each of axes 0, 1, 2,
    applied in that order (``R = R_2 R_1 R_0``)."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        plane = [a for a in range(3) if a != axis]  # rotate within the two other axes
        turn = np.eye(3)
        turn[np.ix_(plane, plane)] = [[c, -s], [s, c]]
        matrix = turn @ matrix
    return matrix


def elastic_displacement(patch_size: Sequence[int], sigma: Sequence[float], magnitude: Sequence[float],
                         rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement field ``(ndim, *patch_size)`` in voxels: white noise blurred with a Gaussian
    of ``sigma`` voxels (per axis), each component scaled so its largest ``|value|`` is ``magnitude[axis]``."""
    field = rng.standard_normal((len(patch_size), *patch_size))
    for axis in range(len(patch_size)):
        field[axis] = ndimage.gaussian_filter(field[axis], sigma, mode="wrap")
        field[axis] *= magnitude[axis] / max(float(np.abs(field[axis]).max()), 1e-12)
    return field


@dataclass
class SpatialDraw:
    """One sample's spatial transform: output voxel ``o`` reads the source at
    ``centre_source + matrix @ (o - centre_output + displacement[:, o])`` (deform first, then rotate/scale, as
    nnU-Net's ``SpatialTransform``)."""

    matrix: np.ndarray  # (ndim, ndim) rotation × scale; scale > 1 samples a larger region: objects get smaller
    displacement: np.ndarray | None = None  # (ndim, *patch) in voxels

    def source_size(self, patch_size: Sequence[int]) -> tuple[int, ...]:
        """The crop that holds every source coordinate of the patch: ``patch_size`` where the transform stays
        inside it, else larger by an even number of voxels (the centres stay on the voxel grid)."""
        half = (np.asarray(patch_size, float) - 1) / 2
        if self.displacement is not None:
            half = half + np.abs(self.displacement).reshape(len(half), -1).max(1)
        extent = np.abs(self.matrix) @ half  # the farthest corner, per source axis
        grow = np.ceil(np.maximum(extent - (np.asarray(patch_size) - 1) / 2, 0) - 1e-6).astype(int)
        return tuple(int(size + 2 * max(g, 0)) for size, g in zip(patch_size, grow))

    def resample(self, image: np.ndarray, label: np.ndarray | None, patch_size: Sequence[int]):
        """``image (C, *source)`` (linear) and ``label (*source)`` (nearest: values are kept) → ``patch_size``;
        outside the source is 0."""
        coordinates = source_coordinates(image.shape[1:], patch_size, self.matrix, self.displacement)
        out = np.stack([ndimage.map_coordinates(channel, coordinates, order=1, mode="constant", cval=0.0)
                        for channel in image]).astype(np.float32)
        if label is None:
            return out, None
        return out, ndimage.map_coordinates(label, coordinates, order=0, mode="constant", cval=0)


def source_coordinates(source_shape: Sequence[int], patch_size: Sequence[int], matrix: np.ndarray,
                       displacement: np.ndarray | None = None) -> np.ndarray:
    """``(ndim, *patch_size)`` source voxel coordinates of every patch voxel, both grids centred on each other."""
    grid = np.indices(patch_size, dtype=np.float64)
    offsets = grid - ((np.asarray(patch_size, float) - 1) / 2).reshape(-1, *[1] * len(patch_size))
    if displacement is not None:
        offsets = offsets + displacement
    moved = np.tensordot(matrix, offsets, axes=1)
    return moved + ((np.asarray(source_shape, float) - 1) / 2).reshape(-1, *[1] * len(patch_size))


@dataclass
class SpatialAugmentation:
    """nnU-Net v2's spatial augmentation (``SpatialTransform`` in its ``get_training_transforms``): per sample a
    random rotation, isotropic scaling and elastic deformation, each with its own probability, resampled once.

    A sample that draws none of them is cropped without interpolation, as nnU-Net does. ``rotation_degrees`` is
    the largest angle about each axis (``None``: nnU-Net's 30° in 3-D; in 2-D 180°, or 15° for patches more than
    1.5× longer than wide). Elastic: a Gaussian of ``elastic_scale`` × patch size (voxels), largest displacement
    ``elastic_magnitude`` × half the patch size, both drawn from their ranges.
    """

    rotation_probability: float = 0.2
    rotation_degrees: float | None = None
    scaling_probability: float = 0.2
    scaling_range: tuple[float, float] = (0.7, 1.4)
    elastic_probability: float = 0.0
    elastic_scale: tuple[float, float] = (0.0, 0.2)
    elastic_magnitude: tuple[float, float] = (0.0, 0.2)

    def max_angle(self, patch_size: Sequence[int]) -> float:
        """Radians."""
        if self.rotation_degrees is not None:
            return math.radians(self.rotation_degrees)
        if len(patch_size) == 3:
            return math.radians(30.0)
        return math.radians(15.0 if max(patch_size) / min(patch_size) > 1.5 else 180.0)

    def draw(self, patch_size: Sequence[int], rng: np.random.Generator) -> SpatialDraw | None:
        """This sample's transform, or ``None`` when it draws none (then the plain crop is used)."""
        ndim = len(patch_size)
        rotate = rng.random() < self.rotation_probability
        scale = rng.random() < self.scaling_probability
        deform = rng.random() < self.elastic_probability
        if not (rotate or scale or deform):
            return None
        limit = self.max_angle(patch_size)
        angles = rng.uniform(-limit, limit, 1 if ndim == 2 else 3) if rotate else np.zeros(1 if ndim == 2 else 3)
        factor = float(rng.uniform(*self.scaling_range)) if scale else 1.0
        displacement = None
        if deform:
            sigma = [float(rng.uniform(*self.elastic_scale)) * size for size in patch_size]
            magnitude = [float(rng.uniform(*self.elastic_magnitude)) * size / 2 for size in patch_size]
            displacement = elastic_displacement(patch_size, sigma, magnitude, rng)
        return SpatialDraw(rotation_matrix(angles) * factor, displacement)

    def __call__(self, patch_size: Sequence[int], rng: np.random.Generator, crop):
        """Draw a transform, take the source region it reads with ``crop(size, rng) -> (image, label)`` (e.g.
        :func:`crop_patch` of one case), resample it to ``patch_size``."""
        draw = self.draw(patch_size, rng)
        if draw is None:
            return crop(tuple(patch_size), rng)
        return draw.resample(*crop(draw.source_size(patch_size), rng), patch_size)
