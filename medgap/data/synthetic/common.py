"""Pieces shared by the synthetic generators: random smooth fields, deformations, MR-like corruption, shapes,
and writing a dataset folder.

Coordinates are in millimetres on a voxel grid given by its shape, spacing and origin (the world position of
voxel 0); arrays keep NIfTI voxel order ``(X, Y[, Z])``. Every random draw comes from the
``numpy.random.Generator`` passed in, so a case is a pure function of its seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage

from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import write_nifti
from medgap.errors import MedgapError

FILE_ENDING = ".nii.gz"


# --------------------------------------------------------------------------------------------- random fields
def smooth_noise(rng: np.random.Generator, shape: Sequence[int], correlation: float | Sequence[float]) -> np.ndarray:
    """A zero-mean, unit-std Gaussian random field whose features are about ``correlation`` voxels wide.

    Drawn as white noise on a coarse grid (about two nodes per feature width), smoothed there and upsampled
    with cubic splines, which is ~100× faster than smoothing full-resolution noise with a wide Gaussian.

    Args:
        shape: output shape ``(X, Y[, Z])``.
        correlation: feature width in voxels, one value or one per axis (use mm / spacing for anisotropic grids).

    Returns:
        float32 array of ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    widths = np.broadcast_to(np.asarray(correlation, dtype=float), (len(shape),))
    coarse = tuple(max(4, int(np.ceil(2.0 * size / max(width, 1.0))) + 3) for size, width in zip(shape, widths))
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=0.6, mode="wrap")
    # Map the output grid into the coarse grid's interior so the spline's boundary handling never shows.
    axes = [np.linspace(1.0, n - 2.0, size, dtype=np.float32) for n, size in zip(coarse, shape)]
    field = _spline_on_grid(field, axes)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field.astype(np.float32, copy=False)


def _spline_on_grid(field: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """Catmull-Rom (C1 cubic) interpolation of ``field`` at the outer product of per-axis positions.

    Separable: one 4-tap 1-D interpolation per axis, ~10× faster than ``ndimage.zoom(order=3)``. Positions must
    lie in ``[1, n - 2]`` so every tap exists.
    """
    result = field.astype(np.float32)
    for axis, positions in enumerate(axes):
        size = result.shape[axis]
        base = np.clip(np.floor(positions).astype(int), 1, size - 3)
        t = (positions - base).astype(np.float32)
        weights = (
            ((-t + 2.0) * t - 1.0) * t * 0.5,
            ((3.0 * t - 5.0) * t * t + 2.0) * 0.5,
            ((-3.0 * t + 4.0) * t + 1.0) * t * 0.5,
            (t - 1.0) * t * t * 0.5,
        )
        shape = [1] * result.ndim
        shape[axis] = len(positions)
        result = sum(np.take(result, base + offset, axis=axis) * weight.reshape(shape)
                     for offset, weight in zip((-1, 0, 1, 2), weights))
    return result


def displacement_field(
    rng: np.random.Generator, shape: Sequence[int], magnitude: float | Sequence[float],
    correlation: float | Sequence[float],
) -> np.ndarray:
    """A smooth random displacement ``(ndim, *shape)``: per axis a field of std ``magnitude`` (in the caller's
    units, usually mm) and feature width ``correlation`` voxels."""
    magnitudes = np.broadcast_to(np.asarray(magnitude, dtype=float), (len(shape),))
    return np.stack([m * smooth_noise(rng, shape, correlation) for m in magnitudes]).astype(np.float32)


def bias_field(rng: np.random.Generator, shape: Sequence[int], strength: float,
               correlation: float | Sequence[float]) -> np.ndarray:
    """A multiplicative coil-sensitivity-like field ``exp(strength · noise)``, smooth over ``correlation`` voxels."""
    return np.exp(strength * smooth_noise(rng, shape, correlation)).astype(np.float32)


def rician_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of std ``sigma``: Rician, as in magnitude MR images
    (noise floor ~1.25σ where the signal is zero, nearly Gaussian where it is bright)."""
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imaginary * imaginary, dtype=np.float32)


def random_tubes(rng: np.random.Generator, shape: Sequence[int], correlation: float | Sequence[float],
                 thickness: float = 0.12) -> np.ndarray:
    """Soft occupancy (0..1) of thin winding tubes, like small vessels: where two independent smooth fields are
    both near zero (the intersection of two random surfaces is a set of curves). ``thickness`` is in field std."""
    first, second = smooth_noise(rng, shape, correlation), smooth_noise(rng, shape, correlation)
    return np.exp(-(first * first + second * second) / (2.0 * thickness**2))


def partial_volume(mask: np.ndarray, sigma: float | Sequence[float]) -> np.ndarray:
    """Soft occupancy of a hard mask (Gaussian-blurred float32), imitating partial-volume edges."""
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma=sigma)


# --------------------------------------------------------------------------------------------- realism
# Effects of the ``realistic`` difficulty (issue 23): each blurs the evidence a segmenter has, the way real scans
# and real annotators do, rather than adding noise for its own sake. Strengths are parameters of each generator's
# ``realistic`` preset; ``easy`` uses none of them.
DIFFICULTIES = ("easy", "realistic")


def check_difficulty(generator_name: str, difficulty: str) -> None:
    if difficulty not in DIFFICULTIES:
        raise MedgapError(f"synth {generator_name}: difficulty must be one of {', '.join(DIFFICULTIES)}, "
                          f"got {difficulty!r}")


def infiltrative_fraction(mask: np.ndarray, width: float, irregularity: np.ndarray | float = 0.0) -> np.ndarray:
    """Soft occupancy (0..1) of a lesion that fades into its surroundings instead of ending at an edge.

    A logistic ramp of the signed distance to the mask's boundary (in voxels, positive outside): 0.5 on the
    boundary, ~0.12 at ``2 · width`` outside, so signal leaks beyond the drawn border and thins inside it, as
    infiltrative glioma and its oedema do. ``irregularity`` (voxels; a field or a constant) shifts the ramp
    locally, so the visible border wanders around the labelled one.
    """
    mask = mask.astype(bool)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    signed = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
    signed = signed.astype(np.float32) + irregularity
    return (1.0 / (1.0 + np.exp(np.clip(signed / np.float32(max(width, 1e-3)), -50.0, 50.0)))).astype(np.float32)


def motion_blur(image: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Blur along the phase-encoding ``axis`` (voxels): slow patient motion smears edges in one direction."""
    if sigma <= 0:
        return image
    return ndimage.gaussian_filter1d(image, sigma, axis=axis).astype(np.float32)


def ghosting(image: np.ndarray, phase_error: float, axis: int) -> np.ndarray:
    """Periodic-motion ghosts: every second k-space line along ``axis`` gets a phase error (radians), which
    puts a copy of the image shifted by half the field of view, of relative amplitude ``sin(phase_error / 2)``."""
    if phase_error == 0:
        return image
    spectrum = np.fft.fft(image, axis=axis)
    shape = [1] * image.ndim
    shape[axis] = image.shape[axis]
    odd_lines = (np.arange(image.shape[axis]) % 2 == 1).reshape(shape)
    spectrum = np.where(odd_lines, spectrum * np.exp(1j * phase_error), spectrum)
    return np.abs(np.fft.ifft(spectrum, axis=axis)).astype(np.float32)


def annotator_label_noise(rng: np.random.Generator, label: np.ndarray, magnitude: float,
                          correlation: float) -> np.ndarray:
    """The label as another rater would draw it: boundaries moved by a smooth random displacement of std
    ``magnitude`` voxels and feature width ``correlation`` voxels (nearest-neighbour resampling, so the label
    values stay valid). Interiors far from any boundary are unchanged."""
    if magnitude <= 0:
        return label
    displacement = displacement_field(rng, label.shape, magnitude, correlation)
    grid = np.indices(label.shape, dtype=np.float32)
    return ndimage.map_coordinates(label, grid + displacement, order=0, mode="nearest").astype(label.dtype)


# --------------------------------------------------------------------------------------------- geometry
def grid_affine(spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """4×4 voxel → world (mm) affine of an axis-aligned RAS grid with the given spacing and voxel-0 position."""
    affine = np.eye(4)
    for axis, (step, start) in enumerate(zip(spacing, origin)):
        affine[axis, axis] = step
        affine[axis, 3] = start
    return affine


def centred_origin(shape: Sequence[int], spacing: Sequence[float]) -> tuple[float, ...]:
    """The voxel-0 position that puts world (0, 0, 0) at the centre of the grid."""
    return tuple(-(n - 1) / 2.0 * s for n, s in zip(shape, spacing))


def grid_mm(shape: Sequence[int], spacing: Sequence[float], origin: Sequence[float] | None = None) -> np.ndarray:
    """World coordinates of every voxel, ``(ndim, *shape)`` float32 in mm (centred grid if ``origin`` is None)."""
    origin = centred_origin(shape, spacing) if origin is None else origin
    axes = [np.float32(start) + np.float32(step) * np.arange(n, dtype=np.float32)
            for n, step, start in zip(shape, spacing, origin)]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation by Euler angles in radians: one angle → 2×2; three (about x, y, z, applied in that order) → 3×3."""
    if len(angles) == 1:
        c, s = np.cos(angles[0]), np.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation(rng: np.random.Generator, max_degrees: float, ndim: int = 3) -> np.ndarray:
    """A rotation with each Euler angle uniform in ±``max_degrees``."""
    count = 1 if ndim == 2 else 3
    return rotation_matrix(np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=count)))


def transform_points(matrix: np.ndarray, points: np.ndarray, offset: Sequence[float] | None = None) -> np.ndarray:
    """``matrix @ p + offset`` for every point of a coordinate field ``(ndim, *shape)``."""
    result = np.tensordot(matrix.astype(np.float32), points, axes=1)
    if offset is not None:
        result += np.asarray(offset, dtype=np.float32).reshape((-1,) + (1,) * (points.ndim - 1))
    return result


def unit(vector: Sequence[float]) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


# --------------------------------------------------------------------------------------------- shapes
def ellipsoid_radius(points: np.ndarray, centre: Sequence[float], radii: Sequence[float],
                     rotation: np.ndarray | None = None) -> np.ndarray:
    """Normalised ellipsoidal radius of every point (1 on the surface, < 1 inside).

    Args:
        points: coordinate field ``(ndim, *shape)`` in mm.
        centre, radii: ellipsoid centre and semi-axes (mm); the semi-axes lie along the columns of ``rotation``.
    """
    local = points - np.asarray(centre, dtype=np.float32).reshape((-1,) + (1,) * (points.ndim - 1))
    if rotation is not None:
        local = transform_points(np.asarray(rotation).T, local)
    squared = sum((local[axis] / np.float32(radius)) ** 2 for axis, radius in enumerate(radii))
    return np.sqrt(squared)


def segment_distance(points: np.ndarray, start: Sequence[float], end: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) from every point to the segment ``start``–``end``, and the position along it (0..1).

    A capsule (tube with round ends) of radius r is ``distance < r``.
    """
    shape = (-1,) + (1,) * (points.ndim - 1)
    start = np.asarray(start, dtype=np.float32).reshape(shape)
    axis = np.asarray(end, dtype=np.float32).reshape(shape) - start
    relative = points - start
    along = np.clip((relative * axis).sum(0) / float((axis * axis).sum()), 0.0, 1.0)
    closest = relative - along[None] * axis
    return np.sqrt((closest * closest).sum(0)), along


def irregular(radius: np.ndarray, noise: np.ndarray, roughness: float) -> np.ndarray:
    """Inside-mask of a shape whose normalised radius field is ``radius``, with its boundary pushed in and out by
    ``roughness`` × a smooth noise field (so a sphere becomes a lobulated blob)."""
    return radius < 1.0 + roughness * noise


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (face connectivity) of a boolean mask; an empty mask stays empty."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Voxels within ``radius_mm`` of ``mask`` (dilation by an ellipsoidal ball in voxel units; for radii of a few
    voxels this is several times faster than a distance transform)."""
    reach = [max(0, int(np.floor(radius_mm / step))) for step in spacing]
    offsets = np.mgrid[tuple(slice(-n, n + 1) for n in reach)]
    ball = sum((offset * step) ** 2 for offset, step in zip(offsets, spacing)) < radius_mm**2
    return ndimage.binary_dilation(mask, structure=ball)


def jitter(rng: np.random.Generator, table: dict[str, float], spread: float) -> dict[str, float]:
    """Each value × U(1 − spread, 1 + spread): per-case variation of tissue intensities."""
    return {name: value * rng.uniform(1.0 - spread, 1.0 + spread) for name, value in table.items()}


# --------------------------------------------------------------------------------------------- the generator API
class SyntheticCase(NamedTuple):
    """One generated case: ``images`` one float32 array ``(X, Y, Z)`` per channel, ``label`` uint8 of the same
    shape, ``affine`` 4×4 voxel → mm."""

    images: list[np.ndarray]
    label: np.ndarray
    affine: np.ndarray


@dataclass(frozen=True)
class Generator:
    """A synthetic dataset family.

    Attributes:
        name: the CLI name (``brain-tumour``).
        case_prefix: case ids are ``{case_prefix}_{index:03d}`` (training) and ``{case_prefix}_test{index:03d}``
            (held out, :func:`case_name`).
        dataset_name, description: written into ``dataset.json``.
        channel_names, labels, regions, regions_class_order: the ``dataset.json`` entries (``labels`` may be
            nnU-Net v2 region-based, list-valued, with ``regions_class_order``).
        options: a dataclass of keyword options (spacing, size, ...) with defaults.
        build: ``options → (rng → SyntheticCase)``; loads what every case shares (e.g. an atlas) once.
        default_cases, default_test_cases: sizes when the caller gives none.
        version: bumped whenever the output for a seed changes, so a stale cached dataset is not reused.
        difficulty_versions: the version of one ``difficulty``'s output where it moved on without the others
            (e.g. ``{"realistic": 4}`` after a recalibration), so datasets of the unchanged difficulties stay valid.
    """

    name: str
    case_prefix: str
    dataset_name: str
    description: str
    channel_names: tuple[str, ...]
    labels: dict[str, int | list[int]]
    options: type
    build: Callable[[Any], Callable[[np.random.Generator], SyntheticCase]]
    default_cases: int
    default_test_cases: int = 4
    regions: dict[str, list[int]] | None = None
    regions_class_order: tuple[int, ...] | None = None
    reference: str | None = None
    version: int = 2  # 2: held-out cases named ..._test000 (they reused training names)
    difficulty_versions: dict[str, int] = dataclasses.field(default_factory=dict)

    def version_of(self, options: Any) -> int:
        """The output version for resolved ``options`` (:attr:`difficulty_versions`, else :attr:`version`)."""
        return self.difficulty_versions.get(getattr(options, "difficulty", None), self.version)

    def case_id(self, index: int, subset: str = "Tr") -> str:
        return case_name(self.case_prefix, index, subset)

    def dataset_json(self, num_training: int, synthetic: dict) -> dict:
        raw = {
            "name": self.dataset_name,
            "description": self.description,
            "channel_names": {str(index): name for index, name in enumerate(self.channel_names)},
            "labels": dict(self.labels),
        }
        if self.regions:
            raw["regions"] = {name: list(values) for name, values in self.regions.items()}
        if self.regions_class_order:
            raw["regions_class_order"] = list(self.regions_class_order)
        raw.update({"file_ending": FILE_ENDING, "numTraining": num_training})
        if self.reference:
            raw["reference"] = self.reference
        raw["synthetic"] = synthetic
        return raw


def case_name(prefix: str, index: int, subset: str = "Tr") -> str:
    """``BrainTumour_007`` in ``imagesTr``, ``BrainTumour_test007`` in ``imagesTs``: a held-out case never shares
    a training case's name, so predictions of both can sit in one folder and be scored against the right label."""
    return f"{prefix}_{index:03d}" if subset == "Tr" else f"{prefix}_test{index:03d}"


# Training cases use stream 0 and held-out cases stream 1, so adding training cases never changes a test case.
TRAIN_STREAM, TEST_STREAM = 0, 1


def case_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator for one case: depends only on (seed, stream, index), never on how many cases are made."""
    return np.random.default_rng([seed, stream, index])


def generate_dataset(
    generator: Generator, out_dir: str | os.PathLike, cases: int | None = None, seed: int = 0,
    test_cases: int | None = None, exist_ok: bool = False, progress: Callable[[int, int], Any] | None = None,
    **options: Any,
) -> Path:
    """Write ``generator``'s dataset to ``out_dir`` (nnU-Net v2 layout); see :func:`medgap.data.synthetic.generate`."""
    out_dir = Path(out_dir)
    cases = generator.default_cases if cases is None else cases
    test_cases = generator.default_test_cases if test_cases is None else test_cases
    for name, value in (("cases", cases), ("test_cases", test_cases), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise MedgapError(f"synth {generator.name}: {name} must be a non-negative integer, got {value!r}")
    if cases < 1:
        raise MedgapError(f"synth {generator.name}: cases must be at least 1, got {cases}")
    try:
        resolved = generator.options(**options)
    except TypeError as error:
        known = ", ".join(field.name for field in dataclasses.fields(generator.options))
        raise MedgapError(f"synth {generator.name}: bad option ({error}); options are: {known}") from None
    synthetic = {
        "generator": generator.name, "version": generator.version_of(resolved), "cases": int(cases), "seed": int(seed),
        "test_cases": int(test_cases), "options": _jsonable(dataclasses.asdict(resolved)),
    }

    if _reuse_existing(out_dir, synthetic, exist_ok):
        return out_dir
    expected = _expected_files(generator, cases, test_cases)
    _remove_stale(out_dir, generator, expected)

    make_case = generator.build(resolved)
    total, done = cases + test_cases, 0
    for stream, subset, count in ((TRAIN_STREAM, "Tr", cases), (TEST_STREAM, "Ts", test_cases)):
        for index in range(count):
            case = make_case(case_rng(seed, stream, index))
            write_case(out_dir, subset, generator.case_id(index, subset), case)
            done += 1
            if progress is not None:
                progress(done, total)
    # dataset.json last: a folder without it is an interrupted generation, never mistaken for a complete one.
    write_dataset_json(out_dir, generator.dataset_json(cases, synthetic))
    return out_dir


def write_case(dataset_dir: Path, subset: str, case_id: str, case: SyntheticCase) -> None:
    """Write ``images{subset}/{case_id}_{channel:04d}.nii.gz`` (float32) and ``labels{subset}/{case_id}.nii.gz``
    (uint8), all with the case's affine."""
    for channel, image in enumerate(case.images):
        if image.shape != case.label.shape:
            raise AssertionError(f"{case_id}: channel {channel} shape {image.shape} != label {case.label.shape}")
        write_nifti(dataset_dir / f"images{subset}" / f"{case_id}_{channel:04d}{FILE_ENDING}",
                    np.asarray(image, dtype=np.float32), case.affine)
    write_nifti(dataset_dir / f"labels{subset}" / f"{case_id}{FILE_ENDING}",
                np.asarray(case.label, dtype=np.uint8), case.affine)


_COMPARED = ("generator", "version", "cases", "seed", "test_cases", "options")


def _reuse_existing(out_dir: Path, synthetic: dict, exist_ok: bool) -> bool:
    """True when ``out_dir`` already holds this exact dataset; raise if it holds something else."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise MedgapError(f"{out_dir}: exists and is not a folder")
    if not any(out_dir.iterdir()):
        return False
    if not exist_ok:
        raise MedgapError(f"{out_dir}: exists; pass --exist-ok (exist_ok=True) to reuse a dataset generated "
                          "with the same parameters")
    path = out_dir / "dataset.json"
    if not path.is_file():
        return False  # an interrupted generation: regenerate over it
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("synthetic")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        previous = None
    if not isinstance(previous, dict):
        raise MedgapError(f"{path}: not a synthetic dataset made by medgap synth; choose another folder")
    wanted = {key: synthetic[key] for key in _COMPARED}
    found = {key: previous.get(key) for key in _COMPARED}
    if isinstance(found["options"], dict) and "difficulty" in (wanted["options"] or {}):
        # Datasets written before the option existed were made at what is now the default.
        found["options"] = {"difficulty": "easy", **found["options"]}
    if found != wanted:
        differing = ", ".join(f"{key}={found[key]!r} (asked {wanted[key]!r})" for key in _COMPARED
                              if found[key] != wanted[key])
        raise MedgapError(f"{out_dir}: holds a synthetic dataset generated with different parameters: {differing}; "
                          "delete it or choose another folder")
    return True


def _expected_files(generator: Generator, cases: int, test_cases: int) -> set[Path]:
    files = set()
    for subset, count in (("Tr", cases), ("Ts", test_cases)):
        for index in range(count):
            case_id = generator.case_id(index, subset)
            files.add(Path(f"labels{subset}") / f"{case_id}{FILE_ENDING}")
            files.update(Path(f"images{subset}") / f"{case_id}_{channel:04d}{FILE_ENDING}"
                         for channel in range(len(generator.channel_names)))
    return files


def _remove_stale(out_dir: Path, generator: Generator, expected: set[Path]) -> None:
    """Delete this generator's case files left by an interrupted larger run (only names it would write)."""
    for subset in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        folder = out_dir / subset
        if folder.is_dir():
            for path in folder.glob(f"{generator.case_prefix}_*{FILE_ENDING}"):
                if path.relative_to(out_dir) not in expected:
                    path.unlink()


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
