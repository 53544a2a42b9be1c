"""AMVLM tables: mean ± std over seeds and the paired t-test against scipy, from saved per-image scores."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from medgap.evaluation.amvlm import comparison_table


def fake_scores(dice_per_image, paper_dice):
    """What :func:`medgap.evaluation.amvlm.score_run` returns for one run."""
    per_image = {f"c{i}": {"dice": d, "iou": d / (2 - d)} for i, d in enumerate(dice_per_image)}
    return {"paper_dice": paper_dice, "paper_miou": paper_dice / (2 - paper_dice),
            "lvit_dice": float(np.mean(dice_per_image)),
            "lvit_iou": float(np.mean([v["iou"] for v in per_image.values()])), "per_image": per_image}


def test_comparison_table():
    a = [fake_scores([0.5, 0.6, 0.7, 0.2], 0.6), fake_scores([0.7, 0.6, 0.9, 0.4], 0.8)]
    b = [fake_scores([0.4, 0.5, 0.5, 0.3], 0.5)]
    table = comparison_table({"AMVLM": a, "MT": b}, reference="AMVLM")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    assert rows["AMVLM"][1] == "70.00 ± 10.00"          # paper Dice over two seeds (×100)
    assert rows["MT"][1] == "50.00"
    expected = stats.ttest_rel([0.6, 0.6, 0.8, 0.3], [0.4, 0.5, 0.5, 0.3]).pvalue  # seed-averaged per image
    assert float(rows["MT"][-1].rstrip("*")) == pytest.approx(expected, rel=1e-2)
    assert rows["AMVLM"][-1] == "—"


def test_patch_report_auroc_against_pair_counting():
    """Two images, 3 patches, d = 2: image 0's report points at its patch 0 (its finding), image 1's at patch 2."""
    import torch

    from medgap.evaluation.amvlm import patch_report_auroc

    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], [[0.0, 1.0], [0.8, 0.6], [1.0, 0.1]]])
    reports = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    foreground = torch.tensor([[True, False, False], [False, False, True]])
    result = patch_report_auroc(patches, reports, foreground)

    def auroc(positives, negatives):  # Mann–Whitney: share of (positive, negative) pairs ranked right, ties ½
        pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
        return sum(pairs) / len(pairs)

    own = torch.einsum("bpd,bd->bp", patches, reports)
    shuffled = torch.einsum("bpd,bd->bp", patches, reports[[1, 0]])
    assert result["auroc_own"] == pytest.approx(auroc(own[foreground].tolist(), own[~foreground].tolist()))
    assert result["auroc_shuffled"] == pytest.approx(auroc(shuffled[foreground].tolist(),
                                                           shuffled[~foreground].tolist()))
    assert result["auroc_pair"] == pytest.approx(auroc(own[foreground].tolist(), shuffled[foreground].tolist()))
    assert result["auroc_own"] == 1.0 and (result["foreground_patches"], result["patches"]) == (2, 6)
