"""HD95 and ASD against medpy (default definitions), MONAI ("monai" HD95) and hand-computed cases."""

import math
import warnings

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage

from medgap.metrics import asd, hd95, surface_distance_metrics
from medgap.metrics.surface import extract_surfaces, joint_bounding_box, mask_surface, metrics_from_surfaces

DISTANCE_TOL = 1e-3  # mm


def blob_pair(shape, seed, sigma=2.5):
    """Two overlapping random blobs: smoothed noise thresholded, the prediction sharing part of the noise."""
    rng = np.random.default_rng(seed)
    common = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    own = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    gt = common > 0.02
    pred = (0.8 * common + 0.6 * own) > 0.02
    return pred, gt


BLOB_CASES = [
    pytest.param((40, 52), None, 0, id="2d-voxel"),
    pytest.param((40, 52), (0.7, 1.3), 1, id="2d-aniso"),
    pytest.param((22, 26, 18), None, 2, id="3d-voxel"),
    pytest.param((22, 26, 18), (1.0, 1.0, 1.0), 3, id="3d-iso"),
    pytest.param((22, 26, 18), (0.7, 1.0, 2.5), 4, id="3d-aniso"),
]


@pytest.mark.parametrize(("shape", "spacing", "seed"), BLOB_CASES)
def test_matches_medpy_on_random_blobs(shape, spacing, seed):
    pred, gt = blob_pair(shape, seed)
    assert pred.any() and gt.any() and (pred != gt).any()
    ours = surface_distance_metrics(pred, gt, spacing)
    assert ours["hd95"] == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)
    assert ours["asd"] == pytest.approx(medpy_binary.asd(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)
    assert hd95(pred, gt, spacing) == ours["hd95"]
    assert asd(pred, gt, spacing) == ours["asd"]
    assert asd(pred, gt, spacing, symmetric=True) == pytest.approx(
        medpy_binary.assd(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL
    )
    # ASD is directed: swapping the arguments gives medpy's asd(gt, pred).
    assert asd(gt, pred, spacing) == pytest.approx(medpy_binary.asd(gt, pred, voxelspacing=spacing), abs=DISTANCE_TOL)


def _monai(pred, gt, spacing):
    as_batch = lambda mask: torch.from_numpy(mask.astype(np.float32))[None, None]  # noqa: E731
    y_pred, y = as_batch(pred), as_batch(gt)
    hd = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
    directed = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=False, spacing=spacing)
    pooled = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True, spacing=spacing)
    return float(hd), float(directed), float(pooled)


@pytest.mark.parametrize(("shape", "spacing", "seed"), BLOB_CASES)
def test_monai_definition_matches_monai(shape, spacing, seed):
    pred, gt = blob_pair(shape, seed)
    monai_hd95, monai_asd, monai_assd = _monai(pred, gt, spacing)
    ours = surface_distance_metrics(pred, gt, spacing, hd95_definition="monai")
    assert ours["hd95"] == pytest.approx(monai_hd95, abs=DISTANCE_TOL)
    assert hd95(pred, gt, spacing, definition="monai") == ours["hd95"]
    # MONAI 1.6.1 extracts edges exactly as medpy does (erosion XOR mask), so the ASDs coincide too.
    assert ours["asd"] == pytest.approx(monai_asd, abs=DISTANCE_TOL)
    assert asd(pred, gt, spacing, symmetric=True) == pytest.approx(monai_assd, abs=DISTANCE_TOL)
    # The max of the directed 95th percentiles is never below the pooled one.
    assert ours["hd95"] >= hd95(pred, gt, spacing, definition="medpy") - 1e-12


@pytest.mark.parametrize("spacing", [None, (0.5, 2.0, 1.0), (0.9375, 0.9375, 3.0)])
def test_single_voxels_at_known_offset(spacing):
    pred = np.zeros((8, 10, 6), dtype=bool)
    gt = np.zeros_like(pred)
    pred[2, 3, 4] = True
    gt[5, 7, 4] = True
    step = (1.0, 1.0, 1.0) if spacing is None else spacing
    expected = math.hypot(3 * step[0], 4 * step[1])
    for definition in ("medpy", "monai"):
        values = surface_distance_metrics(pred, gt, spacing, hd95_definition=definition)
        assert values["hd95"] == pytest.approx(expected)
        assert values["asd"] == pytest.approx(expected)
    assert asd(pred, gt, spacing, symmetric=True) == pytest.approx(expected)


def nested_squares():
    """GT an 11x11 square, prediction the 7x7 square 2 pixels inside it (both rings of surface pixels).

    Prediction ring (24 px): every pixel is 2 from the GT ring. GT ring (40 px): 28 side pixels at 2, and at
    each corner 1 pixel at sqrt(8) and 2 pixels at sqrt(5).
    """
    gt = np.zeros((16, 16), dtype=bool)
    pred = np.zeros_like(gt)
    gt[2:13, 2:13] = True
    pred[4:11, 4:11] = True
    return pred, gt


def test_nested_squares_hand_computed_both_definitions():
    pred, gt = nested_squares()
    root5, root8 = math.sqrt(5), math.sqrt(8)
    # Pooled 64 sorted values: 52 x 2, 8 x sqrt5, 4 x sqrt8; the 95th percentile sits at index 0.95 * 63 = 59.85.
    medpy_expected = root5 + 0.85 * (root8 - root5)
    # Directed: pred->gt all 2; gt->pred index 0.95 * 39 = 37.05 falls among the sqrt8 values.
    monai_expected = root8
    assert hd95(pred, gt) == pytest.approx(medpy_expected)
    assert hd95(pred, gt, definition="monai") == pytest.approx(monai_expected)
    assert asd(pred, gt) == pytest.approx(2.0)
    assert asd(gt, pred) == pytest.approx((28 * 2 + 8 * root5 + 4 * root8) / 40)
    assert asd(pred, gt, symmetric=True) == pytest.approx((52 * 2 + 8 * root5 + 4 * root8) / 64)
    assert hd95(pred, gt) == pytest.approx(medpy_binary.hd95(pred, gt))
    assert hd95(pred, gt, definition="monai") == pytest.approx(_monai(pred, gt, None)[0], abs=DISTANCE_TOL)
    # With a spacing of 0.5 mm everything halves.
    assert hd95(pred, gt, spacing=0.5) == pytest.approx(medpy_expected / 2)


@pytest.mark.parametrize("spacing", [None, (0.7, 1.0, 2.5)])
def test_shifted_cubes_match_medpy(spacing):
    gt = np.zeros((20, 20, 20), dtype=bool)
    pred = np.zeros_like(gt)
    gt[4:12, 5:13, 6:14] = True
    pred[7:15, 5:13, 6:14] = True  # shifted by 3 voxels along axis 0
    ours = surface_distance_metrics(pred, gt, spacing)
    assert ours["hd95"] == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)
    assert ours["asd"] == pytest.approx(medpy_binary.asd(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)


def test_empty_mask_policy():
    empty = np.zeros((6, 7, 8), dtype=bool)
    cube = empty.copy()
    cube[1:4, 2:5, 3:6] = True
    assert surface_distance_metrics(empty, empty) == {"hd95": 0.0, "asd": 0.0}
    assert surface_distance_metrics(empty, empty, empty_penalty=373.13) == {"hd95": 0.0, "asd": 0.0}
    for pred, gt in ((empty, cube), (cube, empty)):
        values = surface_distance_metrics(pred, gt, spacing=(1.0, 1.0, 2.0))
        assert math.isnan(values["hd95"]) and math.isnan(values["asd"])
        assert math.isnan(hd95(pred, gt)) and math.isnan(asd(pred, gt)) and math.isnan(asd(pred, gt, symmetric=True))
        assert surface_distance_metrics(pred, gt, empty_penalty=373.13) == {"hd95": 373.13, "asd": 373.13}
        assert hd95(pred, gt, definition="monai", empty_penalty=373.13) == 373.13
        assert asd(pred, gt, symmetric=True, empty_penalty=50.0) == 50.0
    assert hd95(empty, empty) == 0.0 and asd(empty, empty, symmetric=True) == 0.0


@pytest.mark.parametrize("spacing", [None, (0.8, 1.7)])
def test_masks_touching_the_border_and_cropping_equivalence(spacing):
    pred, gt = blob_pair((30, 34), seed=7)
    pred[0, :10] = True  # touches the top edge
    gt[:, -1] = True  # runs along the right edge
    pred[-1, -1] = True  # the corner
    assert joint_bounding_box(pred, gt, margin=1) == (slice(0, 30), slice(0, 34))  # clipped to the array
    ours = surface_distance_metrics(pred, gt, spacing)
    assert ours["hd95"] == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)
    assert ours["asd"] == pytest.approx(medpy_binary.asd(pred, gt, voxelspacing=spacing), abs=DISTANCE_TOL)
    # Outside the array counts as background, so embedding in a larger empty array changes nothing.
    padded = surface_distance_metrics(np.pad(pred, 5), np.pad(gt, 5), spacing)
    assert padded == pytest.approx(ours, abs=1e-12)


def test_cropped_surfaces_equal_uncropped_surfaces():
    pred, gt = blob_pair((12, 30, 28), seed=8)
    pred[:, :3] = False
    gt[:, :3] = False  # leave room so the box is a strict sub-array on one axis
    box = joint_bounding_box(pred, gt, margin=1)
    surfaces = extract_surfaces(pred, gt)
    np.testing.assert_array_equal(surfaces.pred_surface, mask_surface(pred)[box])
    np.testing.assert_array_equal(surfaces.gt_surface, mask_surface(gt)[box])
    # Everything outside the box has no surface at all, so no distance is lost by cropping.
    assert mask_surface(pred).sum() == surfaces.pred_surface.sum()
    assert box[1].start == 2  # 1-voxel margin before the first occupied column (3)


def test_joint_bounding_box_margin_and_empty():
    pred = np.zeros((10, 12), dtype=bool)
    gt = np.zeros_like(pred)
    assert joint_bounding_box(pred, gt) is None
    pred[3, 4] = True
    gt[6, 8] = True
    assert joint_bounding_box(pred, gt, margin=1) == (slice(2, 8), slice(3, 10))
    assert joint_bounding_box(pred, gt, margin=0) == (slice(3, 7), slice(4, 9))


def test_voxel_and_mm_units_share_surfaces():
    pred, gt = blob_pair((16, 18, 14), seed=9)
    surfaces = extract_surfaces(pred, gt)
    assert metrics_from_surfaces(surfaces, (0.7, 1.0, 2.5)) == surface_distance_metrics(pred, gt, (0.7, 1.0, 2.5))
    assert metrics_from_surfaces(surfaces, None) == surface_distance_metrics(pred, gt)


def test_torch_inputs_give_the_same_floats():
    pred, gt = blob_pair((18, 20, 16), seed=5)
    expected = surface_distance_metrics(pred, gt, (0.7, 1.0, 2.5))
    got = surface_distance_metrics(torch.from_numpy(pred), torch.from_numpy(gt).to(torch.uint8), (0.7, 1.0, 2.5))
    assert got == expected
    assert hd95(torch.from_numpy(pred), torch.from_numpy(gt), (0.7, 1.0, 2.5)) == expected["hd95"]
    assert asd(torch.from_numpy(pred), torch.from_numpy(gt), (0.7, 1.0, 2.5)) == expected["asd"]
    assert all(isinstance(value, float) for value in got.values())


def test_invalid_inputs():
    a, b = np.zeros((4, 5, 6), dtype=bool), np.zeros((4, 6, 5), dtype=bool)
    with pytest.raises(ValueError, match=r"\(4, 5, 6\).*\(4, 6, 5\)"):
        hd95(a, b)
    with pytest.raises(ValueError, match=r"\(4, 5, 6\).*\(4, 6, 5\)"):
        asd(a, b)
    with pytest.raises(ValueError, match="3 values for 2-D"):
        surface_distance_metrics(np.ones((3, 3)), np.ones((3, 3)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        hd95(np.ones((3, 3)), np.ones((3, 3)), spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="definition"):
        hd95(np.ones((3, 3)), np.ones((3, 3)), definition="nnunet")


def test_no_warnings_on_normal_and_empty_inputs():
    pred, gt = nested_squares()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        surface_distance_metrics(pred, gt)
        surface_distance_metrics(pred, np.zeros_like(gt))


@pytest.mark.parametrize(("shape", "spacing", "seed"), BLOB_CASES)
def test_kd_tree_and_distance_transform_routes_give_the_same_distances(shape, spacing, seed, monkeypatch):
    from medgap.metrics import surface

    surfaces = extract_surfaces(*blob_pair(shape, seed))
    monkeypatch.setattr(surface, "KD_TREE_MAX_SURFACE_SHARE", 0.0)  # always the distance transform
    transform = surface.directed_surface_distances(surfaces, spacing)
    monkeypatch.setattr(surface, "KD_TREE_MAX_SURFACE_SHARE", math.inf)  # always the k-d tree
    tree = surface.directed_surface_distances(surfaces, spacing)
    for a, b in zip(transform, tree):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
