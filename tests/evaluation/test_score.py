"""``medgap score PRED_DIR LABEL_DIR --dataset DIR``: any tool's predictions scored with evaluate's metrics,
regions, empty-mask policy and tables."""

from __future__ import annotations

import json
import math

import numpy as np

from medgap.cli import main
from medgap.data.io import write_nifti, write_png


def region_dataset(root):
    """nnU-Net v2 region-based BraTS labels; two held-out reference labels and one never predicted."""
    (root / "labelsTs").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({
        "name": "Tiny", "channel_names": {"0": "FLAIR"}, "file_ending": ".nii.gz", "numTraining": 0,
        "labels": {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}, "regions_class_order": [1, 2, 3]}))
    truth = np.zeros((8, 8, 8), np.uint8)
    truth[1:6, 1:6, 1:6], truth[2:5, 2:5, 2:5], truth[3, 3, 3] = 1, 2, 3
    for case in ("case_a", "case_b", "case_c"):
        write_nifti(root / "labelsTs" / f"{case}.nii.gz", truth, np.diag([2.0, 2.0, 2.0, 1.0]))
    return truth


def test_score_folder_uses_regions_and_the_empty_mask_policy(tmp_path, capsys):
    truth = region_dataset(tmp_path / "ds")
    predictions = tmp_path / "pred"
    write_nifti(predictions / "case_a.nii.gz", truth, np.diag([2.0, 2.0, 2.0, 1.0]))   # perfect
    missed = truth.copy()
    missed[3, 3, 3] = 2                                                                 # ET missed: core instead
    write_nifti(predictions / "case_b.nii.gz", missed, np.diag([2.0, 2.0, 2.0, 1.0]))
    assert main(["score", str(predictions), str(tmp_path / "ds" / "labelsTs"), "--dataset", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert "| WT |" in out and "| ET |" in out and f"wrote {predictions / 'score.md'}" in out
    result = json.loads((predictions / "score.json").read_text())
    rows = {row["structure"]: row for row in result["aggregated"]}
    assert rows["WT"]["dice"] == 1.0 and rows["TC"]["dice"] == 1.0 and rows["WT"]["hd95"] == 0.0
    assert rows["ET"]["dice"] == 0.5 and rows["ET"]["n"] == 2     # case_b: ET present, prediction empty → Dice 0
    assert rows["ET"]["hd95_nan"] == 1                            # ... and HD95 NaN, counted apart
    per_case = {(r["case"], r["structure"]): r for r in result["per_case"]}
    assert per_case[("case_b", "ET")]["dice"] == 0.0 and math.isnan(per_case[("case_b", "ET")]["hd95"])
    assert result["not_predicted"] == ["case_c"] and result["hd95_definition"] == "medpy"
    markdown = (predictions / "score.md").read_text()
    assert "Empty-mask policy:" in markdown and "distances in mm" in markdown and "without a prediction" in markdown


def test_png_scores_are_in_pixels_and_a_prediction_without_label_is_one_line(tmp_path, capsys):
    root = tmp_path / "ds"
    (root / "labelsTs").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"name": "Xray", "channel_names": {"0": "xray"},
                                                   "labels": {"background": 0, "infection": 1}, "file_ending": ".png"}))
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1
    prediction = np.zeros((10, 10), np.uint8)
    prediction[2:6, 2:4] = 1                                     # half the mask: Dice 2·8/(16+8) = 2/3
    write_png(root / "labelsTs" / "CXR_test000.png", truth)
    write_png(tmp_path / "pred" / "CXR_test000.png", prediction)
    assert main(["score", str(tmp_path / "pred"), str(root / "labelsTs"), "--dataset", str(root),
                 "--out", str(tmp_path / "scores")]) == 0
    result = json.loads((tmp_path / "scores" / "score.json").read_text())
    assert abs(result["aggregated"][0]["dice"] - 2 / 3) < 1e-6
    assert "distances in px" in (tmp_path / "scores" / "score.md").read_text()
    capsys.readouterr()
    write_png(tmp_path / "pred" / "CXR_test001.png", prediction)
    assert main(["score", str(tmp_path / "pred"), str(root / "labelsTs"), "--dataset", str(root)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'pred' / 'CXR_test001.png'}: no reference label "
                                       f"{root / 'labelsTs' / 'CXR_test001.png'}\n")
