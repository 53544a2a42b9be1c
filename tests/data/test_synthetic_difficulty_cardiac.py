"""``cardiac-2d``'s ``difficulty`` option (issue 23): ``easy`` is the historical output bit for bit, ``realistic`` is
deterministic, recorded, has ACDC's ambiguous base and apex, and is measurably harder for a fixed small U-Net."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from medgap.data.synthetic import generate
from medgap.data.synthetic.cardiac import (
    LABELS,
    REALISTIC,
    CardiacOptions,
    _anatomy,
    _annotate,
    _draw_heart,
    banding,
    make_case,
    slice_profile,
)
from medgap.data.synthetic.common import case_rng, grid_mm
from medgap.errors import MedgapError
from medgap.nets.unet import UNet
from test_synthetic_difficulty import digest  # the brain-tumour file's case hash (tests/data is on sys.path)

SMALL = {"size": (48, 48), "spacing": (4.0, 4.0, 10.0)}   # the SS-Net reproduction's "small" grid


@pytest.mark.parametrize("options, stream, index, before", [
    # Computed at commit 7a13c56 (before `difficulty` existed).
    (SMALL, 0, 0, "85eb585991c586139b2b0d6c19beff7d3d07512bad067ac2bf782fcf39690145"),
    ({}, 1, 3, "8be3d324ef95ee66d3986afd09066b6268314c470caeb0f0ce33e18f92d6d562"),
])
def test_easy_is_the_output_from_before_the_option(options, stream, index, before):
    default = make_case(CardiacOptions(**options), case_rng(0, stream, index))
    easy = make_case(CardiacOptions(**options, difficulty="easy"), case_rng(0, stream, index))
    assert digest(default) == digest(easy) == before


def test_realistic_is_deterministic_and_recorded(tmp_path):
    kwargs = {"cases": 1, "test_cases": 1, "difficulty": "realistic", **SMALL}
    first = generate("cardiac-2d", tmp_path / "a", **kwargs)
    again = generate("cardiac-2d", tmp_path / "b", **kwargs)
    easy = generate("cardiac-2d", tmp_path / "c", cases=1, test_cases=1, **SMALL)
    for name in ("imagesTr/Cardiac_000_0000.nii.gz", "labelsTr/Cardiac_000.nii.gz",
                 "imagesTs/Cardiac_test000_0000.nii.gz", "labelsTs/Cardiac_test000.nii.gz"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "imagesTr/Cardiac_000_0000.nii.gz").read_bytes() != \
        (easy / "imagesTr/Cardiac_000_0000.nii.gz").read_bytes()
    assert json.loads((first / "dataset.json").read_text())["synthetic"]["options"]["difficulty"] == "realistic"
    with pytest.raises(MedgapError, match="different parameters: options="):
        generate("cardiac-2d", first, cases=1, test_cases=1, exist_ok=True, **SMALL)


def test_unknown_difficulty(tmp_path):
    with pytest.raises(MedgapError, match="synth cardiac-2d: difficulty must be one of easy, realistic, got 'hard'"):
        generate("cardiac-2d", tmp_path / "x", cases=1, difficulty="hard")


# ------------------------------------------------------------------------------------------ the effects themselves
def test_slice_profile_averages_planes_across_the_slab():
    planes = slice_profile(lambda position: np.full((2, 2), position), centre=3.0, thickness=0.8, samples=4)
    assert planes == pytest.approx(np.full((2, 2), 3.0))          # symmetric offsets ±0.1, ±0.3
    step = slice_profile(lambda position: np.full((1,), float(position > 3.15)), 3.0, 0.8, 4)
    assert step == pytest.approx([0.25])                             # one of the four planes (3.3) lies beyond


def test_banding_darkens_a_thin_band_only():
    field = banding(np.random.default_rng(0), (64, 64, 2), depth=0.7, correlation=(20.0, 20.0, 2.0))
    assert field.min() == pytest.approx(0.3, abs=0.05) and field.max() == pytest.approx(1.0, abs=1e-3)
    assert 0.01 < (field < 0.65).mean() < 0.25                       # a band, not a global darkening


def heart_and_plane():
    heart = _draw_heart(np.random.default_rng(0), REALISTIC)
    heart.valve_slice, heart.outflow_angle, heart.apex_end, heart.apex_cap = 0.5, np.deg2rad(-35.0), 0.9, False
    xy = grid_mm((64, 64), (2.0, 2.0))
    return heart, lambda position: _anatomy(heart, xy, heart.centre, position, 8, (2.0, 2.0, 10.0), REALISTIC)


def test_realistic_base_shows_atria_then_the_outflow_tract():
    heart, anatomy = heart_and_plane()
    above = anatomy(0.3)                     # above the valve plane: atria and the aortic root, nothing labelled
    assert not (above["lv"].any() or above["myocardium"].any() or above["rv"].any())
    assert above["atrium"].sum() > 100 and above["aorta"].sum() > 20
    outflow, below = anatomy(0.8), anatomy(2.0)
    # Just below it the LV outflow tract opens the ring: the opening is LV (the annotator closes the cavity) ...
    assert outflow["outflow"].sum() > 5 and (outflow["lv"] & outflow["outflow"]).sum() == outflow["outflow"].sum()
    assert not (outflow["myocardium"] & outflow["outflow"]).any()
    # ... further down the ring is closed and no outflow tract remains.
    assert not below["outflow"].any() and below["myocardium"].sum() > outflow["myocardium"].sum()


def test_realistic_apex_cavity_vanishes_then_the_cap():
    heart, anatomy = heart_and_plane()
    # apex_end 0.9 of a 8-slice stack: the cavity ends at slice 6.3; the cap (one wall thickness) shortly after.
    assert anatomy(6.0)["lv"].any() and not anatomy(6.5)["lv"].any()
    assert anatomy(6.5)["myocardium"].any()
    assert not anatomy(6.3 + heart.wall / 10.0 + 0.05)["myocardium"].any()


def test_annotator_leaves_out_a_doubtful_apical_slice():
    heart, _ = heart_and_plane()
    label = np.zeros((8, 8, 4), dtype=np.uint8)
    label[2:6, 2:6, :3] = LABELS["LV"]
    label[3:5, 3:5, 3] = LABELS["LV"]        # the apical slice: a quarter of the largest cavity
    heart.valve_slice = -5.0                  # the basal slice is not cut by the valve plane: never skipped
    always = dataclasses.replace(REALISTIC, slice_skip_probability=1.0, label_noise_mm=0.0)
    annotated = _annotate(np.random.default_rng(0), label, heart, always, (1.0, 1.0, 10.0))
    assert not annotated[:, :, 3].any() and (annotated[:, :, :3] == label[:, :, :3]).all()
    never = dataclasses.replace(always, slice_skip_probability=0.0)
    assert (_annotate(np.random.default_rng(0), label, heart, never, (1.0, 1.0, 10.0)) == label).all()


# ------------------------------------------------------------------------------------------ harder, measurably
def slices(cases):
    images = np.concatenate([case.images[0] for case in cases], axis=2).transpose(2, 0, 1)
    labels = np.concatenate([case.label for case in cases], axis=2).transpose(2, 0, 1)
    # Per-slice z-score, as the training pipeline normalises each case.
    images = (images - images.mean((1, 2), keepdims=True)) / (images.std((1, 2), keepdims=True) + 1e-6)
    return torch.from_numpy(images[:, None].astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def held_out_dice(difficulty, train=16, test=6, steps=300):
    """Per-class Dice of a tiny 2-D U-Net trained ``steps`` Adam steps on ``train`` stacks: a fixed probe."""
    options = CardiacOptions(**SMALL, difficulty=difficulty)
    images, labels = slices([make_case(options, case_rng(0, 0, index)) for index in range(train)])
    torch.manual_seed(0)
    net = UNet(2, 1, 4, features=[8, 16, 32], norm="batch")
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    # Linear decay to 0: with a constant rate the last step's weights oscillated, and one CPU's float path landed
    # on an easy LV of 0.88 (realistic 0.93), deciding nothing about the data.
    decay = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1.0 - step / steps)
    order = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(len(images), (16,), generator=order)
        loss = torch.nn.functional.cross_entropy(net(images[batch]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        decay.step()
    net.eval()
    images, labels = slices([make_case(options, case_rng(0, 1, index)) for index in range(test)])
    with torch.no_grad():
        predicted = net(images).argmax(1)
    return {name: float(2 * ((predicted == value) & (labels == value)).sum()
                        / ((predicted == value).sum() + (labels == value).sum()))
            for name, value in LABELS.items() if value}


@pytest.mark.slow
def test_realistic_is_harder_for_a_fixed_small_unet():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # convolution sums depend on the thread count; restored for the tests that follow
    try:
        easy, realistic = held_out_dice("easy"), held_out_dice("realistic")
    finally:
        torch.set_num_threads(threads)
    # Measured (voxels pooled over the 6 held-out stacks), RV / Myo / LV: easy 0.82 / 0.90 / 0.98, realistic
    # 0.81 / 0.81 / 0.92 (2026-12-04). The RV of this 6-stack miniature swings by ±0.03 between CPUs (their float
    # maths differ), so the test asks for a harder mean and for the thin myocardium, which the realism targets, to
    # be clearly harder.
    mean = {level: sum(scores.values()) / len(scores) for level, scores in (("easy", easy), ("realistic", realistic))}
    assert mean["realistic"] < mean["easy"] - 0.02, (easy, realistic)
    assert realistic["myocardium"] < easy["myocardium"] - 0.03, (easy, realistic)
    assert realistic["LV"] < easy["LV"], (easy, realistic)
    assert easy["LV"] > 0.9 and realistic["LV"] > 0.8   # both are learnable: harder, not broken
