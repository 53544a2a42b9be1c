"""Surface-distance metrics between binary masks: HD95 and ASD, in mm from the voxel spacing.

Definitions (the conventions of ``medpy.metric.binary``, which SS-Net and most semi-supervised papers used):

- **Surface** of a mask ``M``: ``M XOR binary_erosion(M, structure=cross, border_value=0)``, where the cross
  is ``generate_binary_structure(ndim, 1)`` (face neighbours). Voxels on the array border count as surface
  (outside the array is background). This is medpy's ``__surface_distances`` and also MONAI 1.6.1's
  ``get_mask_edges`` when it is called without subvoxels (the default of its HD / ASD metrics).
- **Directed surface distances** ``d(P→G)``: for every surface voxel of ``P``, the Euclidean distance (mm,
  using ``spacing``) to the nearest surface voxel of ``G``.
- **HD95, definition "medpy"** (default): ``np.percentile(np.hstack((d(P→G), d(G→P))), 95)`` — the 95th
  percentile of the *pooled* set of both directed distances (``medpy.metric.binary.hd95``).
- **HD95, definition "monai"**: ``max(percentile(d(P→G), 95), percentile(d(G→P), 95))`` — the larger of the
  two *directed* 95th percentiles (``monai.metrics.compute_hausdorff_distance(..., percentile=95)``). It is
  never smaller than the medpy value; the two differ whenever the directed distance sets differ.
- **ASD** (``symmetric=False``, default): ``mean(d(P→G))``, from the prediction surface to the GT surface
  (``medpy.metric.binary.asd(pred, gt)``, ``monai.metrics.compute_average_surface_distance(symmetric=False)``).
- **ASSD** (``asd(..., symmetric=True)``): ``mean(hstack((d(P→G), d(G→P))))``, the mean over the pooled
  distances of both surfaces (``medpy.metric.binary.assd`` in medpy 0.5, MONAI ``symmetric=True``). medpy
  before 0.5 averaged the two directed means instead; the two agree only when both surfaces have the same
  number of voxels.

Empty masks follow :data:`medgap.metrics.overlap.EMPTY_MASK_POLICY`: both empty → 0; exactly one empty →
NaN, or ``empty_penalty`` when given.

Speed: both masks are cropped to their joint bounding box plus a 1-voxel margin (clipped to the array) before
anything else. The result is identical to the uncropped computation: every surface voxel lies in the box,
the margin (or the array border, where the box is clipped) is background exactly as ``border_value=0`` sees
it, and the nearest GT surface voxel of a prediction surface voxel is inside the box. Then one nearest-neighbour
query per direction (a k-d tree of surface voxel centres; a ``distance_transform_edt`` of the box when the
surfaces fill much of it), and both directed distance arrays are reused for HD95 and ASD
(:func:`surface_distance_metrics`), where medpy recomputes surfaces and transforms of the full array per call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from medgap.metrics.overlap import EMPTY_MASK_POLICY, MetricInputError, to_binary_pair

HD95_DEFINITIONS = ("medpy", "monai")
# Above this share of surface voxels in the box a k-d tree is no longer faster than a distance transform.
KD_TREE_MAX_SURFACE_SHARE = 0.25


def normalise_spacing(spacing: Sequence[float] | float | None, ndim: int) -> tuple[float, ...] | None:
    """Return ``spacing`` as a tuple of ``ndim`` positive floats (mm per voxel), or None for voxel units.

    A single number means the same spacing on every axis (as in medpy).
    """
    if spacing is None:
        return None
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if values.ndim != 1:
        raise MetricInputError(f"spacing must be a number or a sequence of numbers, got {spacing!r}")
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise MetricInputError(f"spacing {tuple(values.tolist())} has {values.size} values for {ndim}-D masks")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise MetricInputError(f"spacing must be positive and finite, got {tuple(values.tolist())}")
    return tuple(float(v) for v in values)


def joint_bounding_box(pred: np.ndarray, gt: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``pred | gt`` grown by ``margin`` voxels and clipped to the array.

    Args:
        pred, gt: boolean arrays of equal shape.
        margin: voxels added on every side before clipping.

    Returns:
        One slice per axis, or None when both masks are empty.
    """
    union = pred | gt
    box = []
    for axis in range(union.ndim):
        other_axes = tuple(a for a in range(union.ndim) if a != axis)
        occupied = np.flatnonzero(union.any(axis=other_axes))
        if occupied.size == 0:
            return None
        box.append(slice(max(int(occupied[0]) - margin, 0), min(int(occupied[-1]) + 1 + margin, union.shape[axis])))
    return tuple(box)


def mask_surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: ``mask XOR binary_erosion(mask, cross, border_value=0)``."""
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=cross, border_value=0)


@dataclass(frozen=True)
class SurfacePair:
    """The surfaces of a prediction and a ground truth, cropped to their joint box (spacing-independent).

    Attributes:
        pred_surface, gt_surface: boolean arrays of the cropped box's shape (empty arrays when both masks
            are empty).
        pred_empty, gt_empty: whether the whole (uncropped) mask was empty.
    """

    pred_surface: np.ndarray
    gt_surface: np.ndarray
    pred_empty: bool
    gt_empty: bool


def extract_surfaces(pred: Any, gt: Any) -> SurfacePair:
    """Crop ``pred`` and ``gt`` to their joint bounding box (1-voxel margin) and extract both surfaces.

    Args:
        pred, gt: masks of equal shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
    """
    pred_np, gt_np = to_binary_pair(pred, gt)
    box = joint_bounding_box(pred_np, gt_np, margin=1)
    if box is None:
        empty = np.zeros((0,) * pred_np.ndim, dtype=bool)
        return SurfacePair(empty, empty, pred_empty=True, gt_empty=True)
    pred_box, gt_box = pred_np[box], gt_np[box]
    return SurfacePair(
        pred_surface=mask_surface(pred_box),
        gt_surface=mask_surface(gt_box),
        pred_empty=not pred_box.any(),
        gt_empty=not gt_box.any(),
    )


def directed_surface_distances(
    surfaces: SurfacePair, spacing: Sequence[float] | float | None = None, both_directions: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Directed surface distances ``d(P→G)`` and ``d(G→P)`` in mm (float64, one value per surface voxel).

    Exact nearest-surface-voxel distances by one of two equivalent routes: a k-d tree of one surface's voxel
    centres (in mm) queried at the other's — O(n log n) in the surface size, several times faster than a
    distance transform when the surfaces are a small share of the box, the usual case — or, when the surfaces
    fill a large share of the box, one Euclidean distance transform of the box per direction
    (``distance_transform_edt(~surface)`` read at the other surface's voxels).

    Args:
        surfaces: from :func:`extract_surfaces`; both masks must be non-empty.
        spacing: voxel size per axis in mm; None = voxel units.
        both_directions: when False, ``d(G→P)`` is not computed and None is returned in its place.
    """
    if surfaces.pred_empty or surfaces.gt_empty:
        raise MetricInputError("surface distances need two non-empty masks")
    sampling = normalise_spacing(spacing, surfaces.gt_surface.ndim)
    pred_points, gt_points = np.argwhere(surfaces.pred_surface), np.argwhere(surfaces.gt_surface)
    if len(pred_points) + len(gt_points) > KD_TREE_MAX_SURFACE_SHARE * surfaces.gt_surface.size:
        to_gt = ndimage.distance_transform_edt(~surfaces.gt_surface, sampling=sampling)
        pred_to_gt = to_gt[surfaces.pred_surface]
        if not both_directions:
            return pred_to_gt, None
        to_pred = ndimage.distance_transform_edt(~surfaces.pred_surface, sampling=sampling)
        return pred_to_gt, to_pred[surfaces.gt_surface]
    scale = np.asarray(sampling if sampling is not None else (1.0,) * pred_points.shape[1])
    pred_points, gt_points = pred_points * scale, gt_points * scale
    pred_to_gt = cKDTree(gt_points).query(pred_points)[0]
    if not both_directions:
        return pred_to_gt, None
    return pred_to_gt, cKDTree(pred_points).query(gt_points)[0]


def check_hd95_definition(definition: str) -> None:
    """Raise MetricInputError unless ``definition`` is one of :data:`HD95_DEFINITIONS`."""
    if definition not in HD95_DEFINITIONS:
        raise MetricInputError(f"unknown HD95 definition {definition!r}; expected one of {HD95_DEFINITIONS}")


def _empty_value(surfaces: SurfacePair, metric: str, empty_penalty: float | None) -> float | None:
    """The policy value of ``metric`` when a mask is empty, or None when both masks are non-empty."""
    if surfaces.pred_empty and surfaces.gt_empty:
        return float(EMPTY_MASK_POLICY["both_empty"][metric])
    if surfaces.pred_empty or surfaces.gt_empty:
        return math.nan if empty_penalty is None else float(empty_penalty)
    return None


def _hd95_from_distances(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, definition: str) -> float:
    if definition == "medpy":
        return float(np.percentile(np.hstack((pred_to_gt, gt_to_pred)), 95))
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))


def metrics_from_surfaces(
    surfaces: SurfacePair,
    spacing: Sequence[float] | float | None = None,
    hd95_definition: str = "medpy",
    empty_penalty: float | None = None,
) -> dict[str, float]:
    """HD95 and (directed) ASD from already extracted surfaces; see :func:`surface_distance_metrics`.

    Lets callers that need several spacings (mm and voxel units) extract the surfaces once.
    """
    check_hd95_definition(hd95_definition)
    normalise_spacing(spacing, surfaces.gt_surface.ndim)  # reject a bad spacing even when a mask is empty
    empty = _empty_value(surfaces, "hd95", empty_penalty)
    if empty is not None:
        return {"hd95": empty, "asd": _empty_value(surfaces, "asd", empty_penalty)}
    pred_to_gt, gt_to_pred = directed_surface_distances(surfaces, spacing)
    return {"hd95": _hd95_from_distances(pred_to_gt, gt_to_pred, hd95_definition), "asd": float(pred_to_gt.mean())}


def surface_distance_metrics(
    pred: Any,
    gt: Any,
    spacing: Sequence[float] | float | None = None,
    hd95_definition: str = "medpy",
    empty_penalty: float | None = None,
) -> dict[str, float]:
    """HD95 and ASD together, computing the surfaces and the two distance transforms once.

    Args:
        pred: prediction mask, shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
        gt: ground-truth mask, same shape.
        spacing: voxel size per axis in mm (a number = isotropic); None = voxel units.
        hd95_definition: "medpy" (95th percentile of the pooled directed distances, default) or "monai"
            (max of the two directed 95th percentiles); see the module docstring.
        empty_penalty: value for both metrics when exactly one mask is empty (default NaN).

    Returns:
        ``{"hd95": float, "asd": float}``; ``asd`` is the directed mean ``mean(d(P→G))`` (medpy ``asd``).
    """
    return metrics_from_surfaces(extract_surfaces(pred, gt), spacing, hd95_definition, empty_penalty)


def hd95(
    pred: Any,
    gt: Any,
    spacing: Sequence[float] | float | None = None,
    definition: str = "medpy",
    empty_penalty: float | None = None,
) -> float:
    """95th-percentile Hausdorff distance between the surfaces of two masks, in mm (voxels if no spacing).

    Args:
        pred: prediction mask, shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
        gt: ground-truth mask, same shape.
        spacing: voxel size per axis in mm; None = voxel units.
        definition: "medpy" = ``percentile(hstack((d(P→G), d(G→P))), 95)`` (default, as SS-Net reported);
            "monai" = ``max(percentile(d(P→G), 95), percentile(d(G→P), 95))``.
        empty_penalty: value when exactly one mask is empty (default NaN); both empty → 0.
    """
    return surface_distance_metrics(pred, gt, spacing, definition, empty_penalty)["hd95"]


def asd(
    pred: Any,
    gt: Any,
    spacing: Sequence[float] | float | None = None,
    symmetric: bool = False,
    empty_penalty: float | None = None,
) -> float:
    """Average surface distance, in mm (voxels if no spacing).

    Args:
        pred: prediction mask, shape ``(H, W[, D])``, bool or 0/1, numpy or torch.
        gt: ground-truth mask, same shape.
        spacing: voxel size per axis in mm; None = voxel units.
        symmetric: False (default) = ``mean(d(P→G))``, medpy's ``asd(pred, gt)``; True = ASSD,
            ``mean(hstack((d(P→G), d(G→P))))``, medpy 0.5's ``assd`` (pooled, not the mean of two means).
        empty_penalty: value when exactly one mask is empty (default NaN); both empty → 0.
    """
    surfaces = extract_surfaces(pred, gt)
    normalise_spacing(spacing, surfaces.gt_surface.ndim)  # reject a bad spacing even when a mask is empty
    empty = _empty_value(surfaces, "asd", empty_penalty)
    if empty is not None:
        return empty
    pred_to_gt, gt_to_pred = directed_surface_distances(surfaces, spacing, both_directions=symmetric)
    if gt_to_pred is None:
        return float(pred_to_gt.mean())
    return float(np.hstack((pred_to_gt, gt_to_pred)).mean())
