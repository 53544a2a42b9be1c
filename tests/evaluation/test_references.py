"""Sanity references: classical models on raw pixels of a hand-made classification set whose answer is known, the
block-average downsampling, network rows, and the flag of a network row below its reference."""

import math

import numpy as np
import pytest

from medgap.atomic import write_text
from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import write_png
from medgap.errors import DatasetError
from medgap.evaluation.references import (Reference, _downsample, below_reference, classical_reference, flag,
                                          network_reference, raw_pixels)


def make_set(folder, classes=3, per_class=12, seed=0):
    """Two 8×8 channels: ``cue`` is bright in the row band of the case's class, ``noise`` is noise only."""
    rng = np.random.default_rng(seed)
    (folder / "imagesTr").mkdir(parents=True)
    rows, ids = ["case_id,class"], []
    for index in range(classes * per_class):
        grade = index % classes
        cue = rng.uniform(0, 40, size=(8, 8))
        cue[grade * 2:(grade + 1) * 2] += 200
        case = f"c_{index:03d}"
        write_png(folder / "imagesTr" / f"{case}_0000.png", cue.astype(np.uint8))
        write_png(folder / "imagesTr" / f"{case}_0001.png", rng.uniform(0, 255, size=(8, 8)).astype(np.uint8))
        rows.append(f"{case},{grade}")
        ids.append(case)
    write_text(folder / "labelsTr.csv", "\n".join(rows) + "\n")
    write_dataset_json(folder, {"name": "Cue", "task": "classification", "classes": [str(c) for c in range(classes)],
                                "channel_names": {"0": "cue", "1": "noise"}, "file_ending": ".png",
                                "numTraining": len(ids)})
    return folder, ids[: 2 * len(ids) // 3], ids[2 * len(ids) // 3:]


def test_logistic_regression_reads_the_informative_modality(tmp_path):
    folder, train, test = make_set(tmp_path / "cue")
    both = classical_reference(folder, train, test)
    cue = classical_reference(folder, train, test, channels=[0])
    noise = classical_reference(folder, train, test, channels=[1])
    assert both.score == 100.0 and cue.score == 100.0 and noise.score < 70.0
    assert cue.name == "logistic regression on raw pixels (cue)" and both.metric == "accuracy (%)"
    assert sorted(cue.per_case) == sorted(test) and set(cue.per_case.values()) == {1.0}
    assert noise.score == pytest.approx(100 * np.mean(list(noise.per_case.values())))


def test_ridge_grades_ordinal_classes_with_quadratic_kappa(tmp_path):
    folder, train, test = make_set(tmp_path / "cue", classes=4, per_class=12)
    result = classical_reference(folder, train, test, model="ridge", channels=[0], size=4)
    assert result.metric == "quadratic kappa" and result.score == pytest.approx(1.0)
    assert set(result.per_case.values()) == {0.0}  # squared grade errors
    with pytest.raises(ValueError, match="unknown model"):
        classical_reference(folder, train, test, model="forest")
    with pytest.raises(DatasetError, match="no class for cases"):
        classical_reference(folder, train, ["nobody"])


def test_raw_pixels_block_average_and_missing_channels(tmp_path):
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert _downsample(image, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert _downsample(image, 4) is image
    folder, train, _ = make_set(tmp_path / "cue")
    assert raw_pixels(folder, train[:3]).shape == (3, 128)
    assert raw_pixels(folder, train[:3], channels=[1], size=4).shape == (3, 16)
    (folder / "imagesTr" / f"{train[0]}_0001.png").unlink()  # a missing modality is zeros
    assert not raw_pixels(folder, train[:1], channels=[1]).any()


def test_a_network_row_below_its_reference_is_flagged():
    reference = Reference("logistic regression", "classical", "accuracy (%)", 96.0)
    assert below_reference(27.6, reference) and not below_reference(96.0, reference)
    assert not below_reference(math.nan, reference)
    error = Reference("ridge", "classical", "squared error", 0.5, higher_is_better=False)
    assert below_reference(0.8, error) and not below_reference(0.4, error)
    upper = network_reference("supervised upper bound", {"a": 0.8, "b": 0.6, "c": math.nan}, "Dice (%)", scale=100)
    assert upper.score == pytest.approx(70.0) and upper.kind == "upper bound"
    assert below_reference(65.0, upper)
    assert flag(65.0, upper) == "" and flag(75.0, upper).startswith("⚠ above the upper bound")
    assert flag(27.6, reference) == "⚠ below the reference" and flag(97.0, reference) == ""
    with pytest.raises(ValueError, match="kind"):
        network_reference("x", {}, "Dice", kind="oracle")
