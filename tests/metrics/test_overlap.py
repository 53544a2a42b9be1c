"""Dice, Jaccard and mIoU against medpy and hand-computed values."""

import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary

from medgap.metrics import EMPTY_MASK_POLICY, dice, jaccard, miou
from medgap.metrics.overlap import MetricInputError


@pytest.mark.parametrize("shape", [(33, 47), (12, 17, 9)])
@pytest.mark.parametrize("density", [0.05, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_dice_jaccard_match_medpy_on_random_masks(shape, density, seed):
    rng = np.random.default_rng(seed)
    pred, gt = rng.random(shape) < density, rng.random(shape) < density
    assert dice(pred, gt) == pytest.approx(medpy_binary.dc(pred, gt), abs=1e-6)
    assert jaccard(pred, gt) == pytest.approx(medpy_binary.jc(pred, gt), abs=1e-6)


def test_dice_jaccard_hand_computed():
    pred = np.zeros((4, 4), dtype=bool)
    gt = np.zeros((4, 4), dtype=bool)
    pred[0, :3] = True  # 3 voxels
    gt[0, 1:] = True  # 3 voxels, 2 shared
    assert dice(pred, gt) == pytest.approx(2 * 2 / 6)
    assert jaccard(pred, gt) == pytest.approx(2 / 4)
    # 0/1 integers and a spacing (ignored) give the same numbers.
    assert dice(pred.astype(np.uint8), gt.astype(np.int64), spacing=(0.5, 3.0)) == pytest.approx(2 / 3)


def test_empty_mask_policy_for_overlap():
    empty = np.zeros((5, 5), dtype=bool)
    full = np.ones((5, 5), dtype=bool)
    assert dice(empty, empty) == 1.0 == EMPTY_MASK_POLICY["both_empty"]["dice"]
    assert jaccard(empty, empty) == 1.0 == EMPTY_MASK_POLICY["both_empty"]["jaccard"]
    assert dice(empty, full) == 0.0 and dice(full, empty) == 0.0
    assert jaccard(empty, full) == 0.0 and jaccard(full, empty) == 0.0
    assert isinstance(EMPTY_MASK_POLICY["description"], str)


def test_torch_inputs_give_the_same_floats():
    rng = np.random.default_rng(3)
    pred, gt = rng.random((9, 10, 11)) < 0.3, rng.random((9, 10, 11)) < 0.3
    assert dice(torch.from_numpy(pred), torch.from_numpy(gt).float()) == dice(pred, gt)
    assert jaccard(torch.from_numpy(pred), gt) == jaccard(pred, gt)
    assert isinstance(dice(torch.from_numpy(pred), gt), float)


@pytest.mark.parametrize("metric", [dice, jaccard])
def test_shape_mismatch_names_both_shapes(metric):
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        metric(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(MetricInputError):
        metric(np.zeros((3, 4)), np.zeros((4, 3)))


def test_miou_hand_computed():
    gt = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [2, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 2, 0], [2, 2, 0, 0]])
    # class 0: gt {00,01,10,23}, pred {00,10,13,22,23} -> inter 3, union 6
    # class 1: gt {02,03,13}, pred {01,02,03} -> inter 2, union 4
    # class 2: gt {11,12,20,21,22}, pred {11,12,20,21} -> inter 4, union 5
    iou0, iou1, iou2 = 3 / 6, 2 / 4, 4 / 5
    assert miou(pred, gt, classes=(0, 1, 2)) == pytest.approx((iou1 + iou2) / 2)
    assert miou(pred, gt, classes=(0, 1, 2), include_background=True) == pytest.approx((iou0 + iou1 + iou2) / 3)
    # A class absent from both maps scores 1, as in the empty-mask policy.
    assert miou(pred, gt, classes=(1, 3)) == pytest.approx((iou1 + 1.0) / 2)
    assert miou(torch.from_numpy(pred), torch.from_numpy(gt), classes=range(3)) == pytest.approx((iou1 + iou2) / 2)


def test_miou_rejects_no_foreground_class_and_shape_mismatch():
    labels = np.zeros((3, 3), dtype=int)
    with pytest.raises(ValueError, match="no class"):
        miou(labels, labels, classes=(0,))
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 2\)"):
        miou(labels, labels[:, :2], classes=(1,))
    assert not math.isnan(miou(labels, labels, classes=(0,), include_background=True))
