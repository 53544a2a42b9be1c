"""SegmentationMetrics: records and summaries checked against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary

from medgap.metrics import SegmentationMetrics, brats_regions


def squares(shift):
    """GT a 4x4 square, prediction the same square shifted by ``shift`` rows (shift < 4 keeps overlap)."""
    gt = np.zeros((12, 12), dtype=bool)
    pred = np.zeros_like(gt)
    gt[2:6, 2:6] = True
    pred[2 + shift:6 + shift, 2:6] = True
    return pred, gt


def test_records_hold_hand_computed_values_and_extra_columns():
    accumulator = SegmentationMetrics(voxel_units_too=True)
    pred, gt = squares(shift=1)
    empty = np.zeros_like(gt)
    new = accumulator.update(
        "case_01", {"LA": pred, "scar": empty}, {"LA": gt, "scar": empty}, spacing=(2.0, 1.0), subset="T1"
    )
    assert new == accumulator.records
    la, scar = accumulator.records
    assert la["case"] == "case_01" and la["structure"] == "LA" and la["subset"] == "T1"
    assert la["dice"] == pytest.approx(2 * 12 / 32) and la["jaccard"] == pytest.approx(12 / 20)
    assert la["hd95"] == pytest.approx(medpy_binary.hd95(pred, gt, voxelspacing=(2.0, 1.0)))
    assert la["asd"] == pytest.approx(medpy_binary.asd(pred, gt, voxelspacing=(2.0, 1.0)))
    assert la["hd95_vox"] == pytest.approx(medpy_binary.hd95(pred, gt))
    assert la["asd_vox"] == pytest.approx(medpy_binary.asd(pred, gt))
    # A row shift of one voxel at 2 mm: the shifted edges are 2 mm apart, the vertical sides coincide.
    assert la["hd95"] == pytest.approx(2.0) and la["hd95_vox"] == pytest.approx(1.0)
    assert la["gt_empty"] is False and la["pred_empty"] is False
    assert scar == {
        "case": "case_01", "structure": "scar", "dice": 1.0, "jaccard": 1.0, "hd95": 0.0, "asd": 0.0,
        "hd95_vox": 0.0, "asd_vox": 0.0, "gt_empty": True, "pred_empty": True, "subset": "T1",
    }


def test_aggregate_numbers_and_nan_counts():
    accumulator = SegmentationMetrics(metrics=("dice", "hd95"))
    pred1, gt1 = squares(shift=1)
    pred2, gt2 = squares(shift=2)
    empty = np.zeros_like(gt1)
    accumulator.update("c1", {"LA": pred1}, {"LA": gt1})
    accumulator.update("c2", {"LA": torch.from_numpy(pred2)}, {"LA": torch.from_numpy(gt2)})
    accumulator.update("c3", {"LA": empty}, {"LA": gt1})  # missed structure: Dice 0, HD95 NaN
    assert "jaccard" not in accumulator.records[0]
    (row,) = accumulator.aggregate()
    dices = [2 * 12 / 32, 2 * 8 / 32, 0.0]
    assert row["structure"] == "LA" and row["n"] == 3
    assert row["dice"] == pytest.approx(np.mean(dices))
    assert row["dice_std"] == pytest.approx(np.std(dices, ddof=1))
    assert row["hd95"] == pytest.approx(np.mean([1.0, 2.0])) and row["hd95_nan"] == 1
    assert row["hd95_std"] == pytest.approx(np.std([1.0, 2.0], ddof=1))
    assert math.isnan(accumulator.records[2]["hd95"]) and accumulator.records[2]["pred_empty"] is True


def test_empty_penalty_and_monai_definition_are_passed_through():
    accumulator = SegmentationMetrics(hd95_definition="monai", empty_penalty=373.13)
    pred, gt = squares(shift=1)
    accumulator.update("c1", {"ET": np.zeros_like(gt)}, {"ET": gt})
    assert accumulator.records[0]["hd95"] == 373.13 and accumulator.records[0]["asd"] == 373.13
    (row,) = accumulator.aggregate()
    assert row["hd95"] == 373.13 and row["hd95_nan"] == 0


def test_brats_regions_feed_the_accumulator_and_reset():
    label = np.zeros((6, 6, 4), dtype=np.int64)
    label[1:5, 1:5, 1:3] = 2
    label[2:4, 2:4, 1:3] = 4
    prediction = label.copy()
    prediction[2:4, 2:4, 1:3] = 1  # enhancing predicted as necrosis: WT and TC perfect, ET missed
    accumulator = SegmentationMetrics()
    accumulator.update("brats_001", brats_regions(prediction), brats_regions(label), spacing=(1.0, 1.0, 1.0))
    dice_by_region = {r["structure"]: r["dice"] for r in accumulator.records}
    assert dice_by_region == {"WT": 1.0, "TC": 1.0, "ET": 0.0}
    accumulator.reset()
    assert accumulator.records == [] and accumulator.aggregate() == []


def test_update_errors_name_the_case():
    accumulator = SegmentationMetrics()
    pred, gt = squares(shift=1)
    with pytest.raises(ValueError, match="case c9: structures differ"):
        accumulator.update("c9", {"LA": pred}, {"RA": gt})
    with pytest.raises(ValueError, match=r"case c9, structure LA: .*\(12, 12\).*\(12, 11\)"):
        accumulator.update("c9", {"LA": pred}, {"LA": gt[:, :11]})
    with pytest.raises(ValueError, match=r"extra columns \['dice'\]"):
        accumulator.update("c9", {"LA": pred}, {"LA": gt}, dice=1.0)
    with pytest.raises(ValueError, match="unknown metrics"):
        SegmentationMetrics(metrics=("dice", "nsd"))
    with pytest.raises(ValueError, match="definition"):
        SegmentationMetrics(hd95_definition="max")
    assert accumulator.records == []
