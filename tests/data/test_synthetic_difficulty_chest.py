"""``chest-xray-text`` difficulty (issue 23): ``easy`` is the historical output bit for bit, ``realistic`` is
deterministic, recorded, still described by its report, and measurably harder for a fixed simple segmenter."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage

from medgap.data.synthetic import generate
from medgap.data.synthetic.chest_xray_text import (NORMAL_REPORTS, REALISTIC, VAGUE_REPORTS, ChestXrayTextOptions,
                                                   Realism, ground_glass_opacity, make_case, patient_positioning,
                                                   vessel_markings)
from medgap.data.synthetic.common import case_rng
from medgap.errors import MedgapError


def digest(image, mask, phrasings) -> str:
    sha = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    sha.update(np.ascontiguousarray(mask).tobytes())
    sha.update("\n".join(phrasings).encode())
    return sha.hexdigest()


@pytest.mark.parametrize("index, before", [
    # Computed at commit 7a13c56 (before `difficulty` existed) for ChestXrayTextOptions(), case (seed 0, Tr, index).
    (0, "34b8f2e57216d186d1521f3ddb10ccd6970a434c8bb71092745656dcf7371c65"),
    (1, "3d02144bf3f7d18efc4514e6a05b56374feabf0b4a3715cb3b777bae341fcada"),
])
def test_easy_is_the_output_from_before_the_option(index, before):
    default = make_case(ChestXrayTextOptions(), case_rng(0, 0, index))
    easy = make_case(ChestXrayTextOptions(difficulty="easy"), case_rng(0, 0, index))
    assert digest(*default) == digest(*easy) == before


def test_realistic_is_deterministic_and_recorded(tmp_path):
    first = generate("chest-xray-text", tmp_path / "a", cases=2, test_cases=1, size=48, difficulty="realistic")
    again = generate("chest-xray-text", tmp_path / "b", cases=2, test_cases=1, size=48, difficulty="realistic")
    easy = generate("chest-xray-text", tmp_path / "c", cases=2, test_cases=1, size=48)
    for name in ("imagesTr/CXR_001_0000.png", "labelsTr/CXR_001.png", "textTr/CXR_001.alt.txt",
                 "imagesTs/CXR_test000_0000.png"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "imagesTr/CXR_001_0000.png").read_bytes() != (easy / "imagesTr/CXR_001_0000.png").read_bytes()

    assert json.loads((first / "dataset.json").read_text())["synthetic"]["options"]["difficulty"] == "realistic"
    assert generate("chest-xray-text", first, cases=2, test_cases=1, size=48, exist_ok=True,
                    difficulty="realistic") == first
    with pytest.raises(MedgapError, match="different parameters: version=3 .*options="):
        generate("chest-xray-text", first, cases=2, test_cases=1, size=48, exist_ok=True)


def test_dataset_from_before_the_option_counts_as_easy(tmp_path):
    folder = generate("chest-xray-text", tmp_path / "old", cases=1, test_cases=0, size=48)
    path = folder / "dataset.json"
    raw = json.loads(path.read_text())
    del raw["synthetic"]["options"]["difficulty"]   # as written before the option existed
    path.write_text(json.dumps(raw))
    assert generate("chest-xray-text", folder, cases=1, test_cases=0, size=48, exist_ok=True) == folder
    with pytest.raises(MedgapError, match="different parameters"):
        generate("chest-xray-text", folder, cases=1, test_cases=0, size=48, exist_ok=True, difficulty="realistic")


def test_realistic_images_are_all_infected_and_old_realistic_folders_are_refused(tmp_path):
    """QaTa-COV19 has no normal images: realistic draws none (an empty mask scores per-image Dice 0 for one false
    positive pixel), easy keeps its 15 % and an explicit ``empty_fraction`` still wins; the realistic data of
    version 2 (which had normal images) is not reused."""
    realistic = [make_case(ChestXrayTextOptions(size=32, difficulty="realistic"), case_rng(0, 0, index))[1]
                 for index in range(40)]
    easy = [make_case(ChestXrayTextOptions(size=32), case_rng(0, 0, index))[1] for index in range(40)]
    assert all(mask.mean() > 0.01 for mask in realistic)       # no tiny lesion (400 images of 64²: ≥ 1.4 %)
    assert sum(not mask.any() for mask in easy) == 6            # easy: 15 % of 40, its draws unchanged
    normal = ChestXrayTextOptions(size=32, difficulty="realistic", empty_fraction=1.0)
    assert not make_case(normal, case_rng(0, 0, 0))[1].any()

    folder = generate("chest-xray-text", tmp_path / "r", cases=1, test_cases=0, size=32, difficulty="realistic")
    synthetic = json.loads((folder / "dataset.json").read_text())["synthetic"]
    assert synthetic["version"] == 3 and synthetic["options"]["empty_fraction"] == 0.0
    easy_folder = generate("chest-xray-text", tmp_path / "e", cases=1, test_cases=0, size=32)
    easy_synthetic = json.loads((easy_folder / "dataset.json").read_text())["synthetic"]
    assert easy_synthetic["version"] == 2 and easy_synthetic["options"]["empty_fraction"] == 0.15
    raw = json.loads((folder / "dataset.json").read_text())
    raw["synthetic"]["version"] = 2
    (folder / "dataset.json").write_text(json.dumps(raw))
    with pytest.raises(MedgapError, match="different parameters: version=2"):
        generate("chest-xray-text", folder, cases=1, test_cases=0, size=32, exist_ok=True, difficulty="realistic")


def test_unknown_difficulty(tmp_path):
    with pytest.raises(MedgapError, match="chest-xray-text: difficulty must be one of easy, realistic, got 'hard'"):
        generate("chest-xray-text", tmp_path / "x", cases=1, difficulty="hard")
    assert not (tmp_path / "x").exists()


def test_realistic_reports_still_describe_the_mask():
    """The text keeps its signal: a side is named ⇔ the mask reaches into that side beyond a central band (patient
    positioning moves a lesion by up to ~3 pixels, so its edge may cross the midline); normal ⇔ empty mask."""
    options = ChestXrayTextOptions(difficulty="realistic")
    checked = 0
    for index in range(30):
        _, mask, phrasings = make_case(options, case_rng(0, 0, index))
        if not mask.any():
            assert set(phrasings) == set(NORMAL_REPORTS)
            continue
        if set(phrasings) == set(VAGUE_REPORTS):
            continue
        template = next(p for p in phrasings if "pulmonary infection," in p)
        half, band = mask.shape[1] // 2, 4
        assert ("right lung" in template) == bool(mask[:, : half - band].any())   # the patient's right: image left
        assert ("left lung" in template) == bool(mask[:, half + band:].any())
        checked += 1
    assert checked >= 15


# ------------------------------------------------------------------------------------------ the effects themselves
def test_ground_glass_is_faint_and_fades_across_the_border():
    mask = np.zeros((64, 64), dtype=bool)
    mask[20:44, 20:44] = True
    realism = Realism(border_wander=0.0, opacity_patchiness=0.0, opacity_contrast=(0.1, 0.1), opacity_fade=0.03)
    opacity = ground_glass_opacity(np.random.default_rng(0), mask, realism)
    assert opacity[32, 32] == pytest.approx(0.1, abs=1e-3)                     # the core: the full contrast
    assert 0.03 < opacity[32, 44] < 0.05                                      # first pixel outside: < half
    assert 0.0 < opacity[32, 50] < 0.01                                       # signal leaks beyond the border
    assert not ground_glass_opacity(np.random.default_rng(0), np.zeros((8, 8), bool), realism).any()


def test_positioning_without_motion_is_the_identity_and_moves_image_and_mask_together():
    rng = np.random.default_rng(1)
    image = rng.random((48, 48)).astype(np.float32)
    mask = np.zeros((48, 48), dtype=bool)
    mask[10:20, 12:30] = True
    still = Realism(positioning_degrees=0.0, positioning_shift=0.0, anatomy_warp=0.0)
    same_image, same_mask = patient_positioning(np.random.default_rng(0), image, mask, still)
    np.testing.assert_allclose(same_image, image, atol=1e-5)
    assert (same_mask == mask).all()
    shifted = Realism(positioning_degrees=0.0, positioning_shift=0.1, anatomy_warp=0.0)
    moved_image, moved_mask = patient_positioning(np.random.default_rng(0), mask.astype(np.float32), mask, shifted)
    assert (moved_mask == (moved_image > 0.5)).mean() > 0.99 and (moved_mask != mask).any()


def test_vessel_markings_lie_in_the_lungs_only():
    lungs = np.zeros((64, 64), dtype=np.float32)
    lungs[10:50, 8:28] = 1.0
    markings = vessel_markings(np.random.default_rng(0), lungs, contrast=0.1)
    assert markings[lungs == 0].max() == 0.0 and 0.05 < markings.max() <= 0.1


# ------------------------------------------------------------------------------------------ harder, measurably
def pixel_features(image: np.ndarray) -> np.ndarray:
    """Per pixel: the per-image z-scored intensity, its smoothings at 1, 2 and 4 pixels, the local contrast to an
    8-pixel surround, and the position (a fixed, context-aware but tiny segmenter's inputs)."""
    image = (image - image.mean()) / (image.std() + 1e-6)
    smooth = [ndimage.gaussian_filter(image, sigma) for sigma in (1.0, 2.0, 4.0)]
    contrast = smooth[0] - ndimage.gaussian_filter(image, 8.0)
    rows, cols = np.indices(image.shape) / image.shape[0]
    return np.stack([image, *smooth, contrast, rows, cols, (cols - 0.5) ** 2], -1).reshape(-1, 8)


def held_out_dice(difficulty: str, realism: Realism | None = None, train: int = 16, test: int = 8) -> float:
    """Mean Dice on held-out images of a fixed pixel classifier (gradient-boosted trees on :func:`pixel_features`,
    100 rounds, no early stopping) fitted on ``train`` images; no image is empty."""
    ensemble = pytest.importorskip("sklearn.ensemble")
    options = ChestXrayTextOptions(size=48, empty_fraction=0.0, difficulty=difficulty)
    training = [make_case(options, case_rng(0, 0, index), realism) for index in range(train)]
    model = ensemble.HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    model.fit(np.concatenate([pixel_features(image / 255.0) for image, _, _ in training]),
              np.concatenate([mask.ravel() for _, mask, _ in training]))
    scores = []
    for index in range(test):
        image, mask, _ = make_case(options, case_rng(0, 1, index), realism)
        predicted = model.predict_proba(pixel_features(image / 255.0))[:, 1].reshape(mask.shape) > 0.5
        truth = mask > 0
        scores.append(2 * (predicted & truth).sum() / max(predicted.sum() + truth.sum(), 1))
    return float(np.mean(scores))


# `realistic` with every effect that hides a lesion switched off: the same lesions (realistic's larger, confluent
# ones, as in QaTa-COV19; the random draws are the same) rendered as `easy` renders its blobs.
LESIONS_ONLY = dataclasses.replace(
    REALISTIC, opacity_contrast=(0.18, 0.3), opacity_fade=1e-3, border_wander=0.0, opacity_patchiness=0.0,
    rib_contrast=0.10, vessel_contrast=0.0, heart_scale=(1.0, 1.0), positioning_degrees=0.0, positioning_shift=0.0,
    anatomy_warp=0.0, exposure_gamma=0.0, exposure_gradient=0.0, noise_std=0.03, label_noise=0.0)


def test_realistic_effects_make_the_same_lesions_harder_for_a_fixed_pixel_classifier():
    lesions_only, realistic = held_out_dice("realistic", LESIONS_ONLY), held_out_dice("realistic")
    # Measured: 0.65 (the realistic lesions alone) vs 0.49 (realistic); easy's smaller blobs: 0.43. Larger lesions
    # make Dice easier, so realistic is compared with its own lesions, not with easy (docs/datasets.md).
    assert lesions_only > 0.55
    assert realistic < lesions_only - 0.1
