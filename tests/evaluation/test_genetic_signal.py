"""Per-modality genetic R² of a trait: a modality that carries the trait scores near 1, noise near or below 0."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medgap.errors import DatasetError
from medgap.evaluation.genetic_signal import genetic_r2


def write_cohort(root, people: int = 200):
    rng = np.random.default_rng(0)
    trait = rng.normal(size=people)
    ids = [f"P{i:03d}" for i in range(people)]
    (root / "genetics").mkdir(parents=True)
    carries = np.column_stack([trait + 0.1 * rng.normal(size=people), rng.normal(size=(people, 4))])
    noise = rng.normal(size=(people, 5))
    for name, table, keep in (("carries", carries, slice(None)), ("noise", noise, slice(0, people - 20))):
        lines = ["individual_id," + ",".join(f"f{k}" for k in range(table.shape[1]))]
        lines += [f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in zip(ids[keep], table[keep])]
        (root / "genetics" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    (root / "truth.json").write_text(json.dumps({"trait_values": {"vessel": dict(zip(ids, trait.tolist()))}}))
    (root / "dataset.json").write_text(json.dumps({"genetics": {"truth": "truth.json"}}))
    return ids, trait, carries


def test_r2_per_modality_against_an_independent_least_squares_fit(tmp_path):
    ids, trait, carries = write_cohort(tmp_path)
    result = genetic_r2(tmp_path, "vessel", ids[:140], ids[140:])
    assert result["noise"]["test"] == 40 and result["noise"]["train"] == 140  # the last 20 people lack "noise"
    assert result["carries"]["test"] == 60
    assert -0.2 < result["noise"]["r2"] < 0.05
    # Reference: ordinary least squares on the carrying column alone (ridge's shrinkage is small at n = 140).
    x_train, x_test = carries[:140, 0], carries[140:, 0]
    slope, intercept = np.polyfit(x_train, trait[:140], 1)
    residual = trait[140:] - (slope * x_test + intercept)
    reference = 1 - (residual ** 2).sum() / ((trait[140:] - trait[140:].mean()) ** 2).sum()
    assert reference > 0.95
    assert result["carries"]["r2"] == pytest.approx(reference, abs=0.02)


def test_missing_truth_or_trait_is_one_line(tmp_path):
    ids, _, _ = write_cohort(tmp_path)
    with pytest.raises(DatasetError, match="no trait 'disc'"):
        genetic_r2(tmp_path, "disc", ids[:10], ids[10:])
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(DatasetError, match="no truth file"):
        genetic_r2(tmp_path, "vessel", ids[:10], ids[10:])
