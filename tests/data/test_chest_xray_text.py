"""``chest-xray-text``: the report is generated from the mask, cases are deterministic, and reports reach batches."""

from __future__ import annotations

import numpy as np
import pytest

from medgap.config import DataConfig
from medgap.data.io import read_image
from medgap.data.pipeline import prepare_data, training_loader
from medgap.data.synthetic import generate
from medgap.data.synthetic.chest_xray_text import NORMAL_REPORTS, VAGUE_REPORTS, report_phrasings


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    return generate("chest-xray-text", tmp_path_factory.mktemp("cxr") / "cxr", cases=16, test_cases=1, seed=3,
                    size=48, vague_fraction=0.0)


def test_reports_describe_the_mask(chest):
    """Sides named in the report ⇔ mask pixels in that half (patient's left = image right); empty ⇔ normal."""
    checked = 0
    for path in sorted((chest / "labelsTr").glob("*.png")):
        mask, _ = read_image(path)
        case_id = path.stem
        phrasings = (chest / "textTr" / f"{case_id}.alt.txt").read_text().splitlines()
        assert (chest / "textTr" / f"{case_id}.txt").read_text().strip() == phrasings[0]
        assert len(phrasings) == 4
        if mask.sum() == 0:
            assert set(phrasings) == set(NORMAL_REPORTS)
            continue
        template = next(p for p in phrasings if "pulmonary infection," in p)  # the LViT template
        half = mask.shape[1] // 2
        assert ("right lung" in template) == bool(mask[:, :half].any())
        assert ("left lung" in template) == bool(mask[:, half:].any())
        assert template.startswith("Bilateral") == (mask[:, :half].any() and mask[:, half:].any())
        checked += 1
    assert checked >= 5


def test_phrasings_are_equivalent():
    rng = np.random.default_rng(0)
    zones = [("upper", "left"), ("lower", "right")]
    phrasings = report_phrasings(zones, rng)
    assert phrasings[0] == "Bilateral pulmonary infection, two infected areas, upper left lung and lower right lung."
    for text in phrasings:  # every phrasing names both zones' words and the count
        lowered = text.lower()
        assert "two" in lowered and "upper" in lowered and "lower" in lowered
    assert report_phrasings(zones, rng, vague=True) == list(VAGUE_REPORTS)


def test_deterministic(chest, tmp_path):
    again = generate("chest-xray-text", tmp_path / "again", cases=2, test_cases=0, seed=3, size=48,
                     vague_fraction=0.0)
    for name in ("imagesTr/CXR_001_0000.png", "labelsTr/CXR_001.png", "textTr/CXR_001.txt"):
        assert (again / name).read_bytes() == (chest / name).read_bytes()


def test_batches_carry_reports_and_labelled_ratio(chest, tmp_path):
    config = DataConfig(dataset_dir=str(chest), patch_size=[48, 48], labelled_batch_size=2, unlabelled_batch_size=2,
                        labelled_ratio=0.25, num_workers=0, normalisation="zscore")
    config.augmentation.flip_axes = []
    data = prepare_data(config, seed=0, run_dir=tmp_path / "run")
    train = data.splits["train"]
    assert abs(len(data.splits["labelled"]) - 0.25 * len(train)) <= 0.5  # drawn by case id, seeded
    batch = next(iter(training_loader(data, config, seed=0)))
    assert batch["labelled"].tolist() == [True, True, False, False]
    for case_id, text in zip(batch["case"], batch["text"]):  # unlabelled images keep their reports
        assert text == (chest / "textTr" / f"{case_id}.txt").read_text().strip()
    assert batch["image"].shape == (4, 1, 48, 48)
