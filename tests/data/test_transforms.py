import pytest
import numpy as np

from medgap.data.transforms import Augmentation, crop_patch, normalise


def test_normalise_zscore_nonzero_keeps_background_and_missing_zero():
    rng = np.random.default_rng(0)
    image = np.zeros((2, 10, 10, 10), np.float32)
    image[0, 2:8, 2:8, 2:8] = rng.normal(500, 50, (6, 6, 6))
    out = normalise(image, np.array([True, False]))
    brain = out[0, 2:8, 2:8, 2:8]
    assert abs(brain.mean()) < 1e-5 and abs(brain.std() - 1) < 1e-4
    assert out[0, 0].max() == 0 and not out[1].any()


def test_crop_pads_small_volumes_and_centres_on_foreground():
    rng = np.random.default_rng(0)
    image = np.arange(2 * 6 * 20 * 20, dtype=np.float32).reshape(2, 6, 20, 20)
    label = np.zeros((6, 20, 20), np.int8)
    label[3, 15, 15] = 1
    patch, patch_label = crop_patch(image, label, (8, 8, 8), rng, np.argwhere(label > 0), 1.0)
    assert patch.shape == (2, 8, 8, 8) and patch_label.shape == (8, 8, 8)
    assert patch_label.sum() == 1  # the foreground voxel is inside the patch
    assert (patch[:, 0] == 0).all()  # axis 0 (6 < 8) is zero-padded


def test_2d_patch_from_3d_stack_takes_a_slice():
    rng = np.random.default_rng(1)
    image = np.random.default_rng(0).normal(size=(1, 32, 32, 5)).astype(np.float32)
    label = np.zeros((32, 32, 5), np.int8)
    label[10:20, 10:20, 2] = 3
    patch, patch_label = crop_patch(image, label, (16, 16), rng, np.argwhere(label > 0), 1.0)
    assert patch.shape == (1, 16, 16) and (patch_label == 3).any()
    z_match = [np.allclose(patch[0], image[0, a:a + 16, b:b + 16, 2]) for a in range(17) for b in range(17)]
    assert any(z_match)


def test_augmentation_is_seeded_and_keeps_missing_channels_zero():
    image = np.random.default_rng(0).normal(size=(3, 8, 8, 8)).astype(np.float32)
    image[1] = 0
    label = np.zeros((8, 8, 8), np.int8)
    label[0, 0, 0] = 1
    availability = np.array([True, False, True])
    a = Augmentation()(image, label, availability, np.random.default_rng(5))
    b = Augmentation()(image, label, availability, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not a[0][1].any() and a[1].sum() == 1


def test_rot90_flip_is_always_one_of_the_four_reflections_and_moves_the_label_with_the_image():
    from medgap.data.transforms import rot90_flip

    image = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    label = (image[0] % 5).astype(np.int8)
    reflections = {}  # the official RandomRotFlip: rot90^k then a mirror → det −1, never the identity
    for k in range(4):
        for axis in (0, 1):
            reflected = np.flip(np.rot90(image, k, axes=(1, 2)), axis + 1)
            reflections[reflected.tobytes()] = (k, axis)
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(200):
        out, out_label = rot90_flip(image, label, rng)
        assert out.shape == image.shape and out.tobytes() in reflections
        assert np.array_equal(out_label, (out[0] % 5).astype(np.int8))  # the label follows the image voxel by voxel
        seen.add(out.tobytes())
    assert len(seen) == 4  # the four distinct reflections of a square, each reached
    wide = np.zeros((1, 4, 6), np.float32)  # unequal axes: only 0° / 180°, the shape is kept
    assert all(rot90_flip(wide, None, rng)[0].shape == (1, 4, 6) for _ in range(20))


def test_rot90_flip_probability_is_used_by_the_augmentation():
    image = np.random.default_rng(1).normal(size=(1, 6, 6)).astype(np.float32)
    off = dict(flip_axes=(), intensity_scale=0.0, intensity_shift=0.0, noise_std=0.0)
    unchanged, _ = Augmentation(**off)(image, None, np.array([True]), np.random.default_rng(3))
    assert np.array_equal(unchanged, image)
    always = Augmentation(**off, rot90_flip_probability=1.0)
    assert not any(np.array_equal(always(image, None, np.array([True]), np.random.default_rng(s))[0], image)
                   for s in range(20))


# nnU-Net-style augmentation (data.augmentation.nnunet): hand-made volumes with known answers

def test_a_90_degree_rotation_moves_each_voxel_as_rot90_and_keeps_label_values():
    from medgap.data.transforms import SpatialDraw, rotation_matrix

    image = np.random.default_rng(0).normal(size=(2, 5, 5)).astype(np.float32)  # two channels
    label = np.zeros((5, 5), np.int16)
    label[0, 2], label[1, 3] = 3, 7
    draw = SpatialDraw(rotation_matrix([np.pi / 2]))
    assert draw.source_size((5, 5)) == (5, 5)  # a square turned by 90° needs no larger crop
    out, out_label = draw.resample(image, label, (5, 5))
    # output o reads the source at c + R (o - c): with R = [[0, -1], [1, 0]], out[i, j] = in[4 - j, i]
    np.testing.assert_allclose(out, np.rot90(image, -1, axes=(1, 2)), atol=1e-5)
    assert out_label[2, 4] == 3 and out_label[3, 3] == 7  # (0, 2) → (2, 4), (1, 3) → (3, 3)
    assert sorted(np.unique(out_label)) == [0, 3, 7]


def test_3d_rotation_about_axis_0_turns_the_other_two_axes():
    from medgap.data.transforms import SpatialDraw, rotation_matrix

    volume = np.random.default_rng(1).normal(size=(1, 3, 6, 6)).astype(np.float32)
    out, _ = SpatialDraw(rotation_matrix([np.pi / 2, 0.0, 0.0])).resample(volume, None, (3, 6, 6))
    np.testing.assert_allclose(out, np.rot90(volume, -1, axes=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(rotation_matrix([0.0, 0.0, 0.0]), np.eye(3))


def test_scaling_by_two_reads_every_second_voxel_from_a_crop_twice_as_large():
    from medgap.data.transforms import SpatialDraw

    draw = SpatialDraw(np.eye(1) * 2.0)  # scale 2: the patch covers twice the field of view (smaller objects)
    assert draw.source_size((5,)) == (9,)
    ramp = np.arange(9, dtype=np.float32)[None]
    out, out_label = draw.resample(ramp, ramp[0].astype(np.int8), (5,))
    np.testing.assert_allclose(out[0], [0, 2, 4, 6, 8])
    assert out_label.tolist() == [0, 2, 4, 6, 8]


def test_elastic_displacement_is_smooth_and_bounded_by_its_magnitude():
    from medgap.data.transforms import elastic_displacement

    field = elastic_displacement((16, 16, 16), [3.0] * 3, [2.0, 1.0, 0.5], np.random.default_rng(0))
    assert field.shape == (3, 16, 16, 16)
    np.testing.assert_allclose(np.abs(field).reshape(3, -1).max(1), [2.0, 1.0, 0.5])
    rough = elastic_displacement((16, 16, 16), [0.0] * 3, [2.0] * 3, np.random.default_rng(0))  # no blur
    assert np.abs(np.diff(field[0], axis=0)).max() < 0.35 * 2.0 < np.abs(np.diff(rough[0], axis=0)).max()


def test_gamma_on_a_known_ramp():
    from medgap.data.transforms import adjust_gamma

    ramp = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_allclose(adjust_gamma(ramp, 2.0, retain_stats=False), ramp**2, atol=1e-6)
    np.testing.assert_allclose(adjust_gamma(ramp, 2.0, invert=True, retain_stats=False), 1 - (1 - ramp) ** 2,
                               atol=1e-6)
    shifted = 3 * ramp - 1  # [-1, 2]: rescaled to [0, 1] by its min/max first
    np.testing.assert_allclose(adjust_gamma(shifted, 0.5, retain_stats=False), 3 * np.sqrt(ramp) - 1, atol=1e-5)
    kept = adjust_gamma(shifted, 0.5)  # nnU-Net's p_retain_stats=1: mean and standard deviation restored
    assert abs(kept.mean() - shifted.mean()) < 1e-5 and abs(kept.std() - shifted.std()) < 1e-5
    assert not np.allclose(kept, shifted)


def test_gamma_factor_shrinks_half_the_time_within_its_range():
    from medgap.data.transforms import contrast_factor

    rng = np.random.default_rng(0)
    factors = np.array([contrast_factor((0.7, 1.5), rng) for _ in range(4000)])
    assert factors.min() >= 0.7 and factors.max() <= 1.5
    assert abs((factors < 1).mean() - 0.5) < 0.03  # nnU-Net's BGContrast, not U(0.7, 1.5) (which is < 1 37 %)


def test_mirroring_every_axis_moves_a_voxel_to_the_opposite_corner():
    image = np.zeros((1, 4, 5, 6), np.float32)
    image[0, 0, 1, 2] = 1
    label = (image[0] * 2).astype(np.int8)
    always = Augmentation(flip_axes=(0, 1, 2), flip_probability=1.0, intensity_scale=0, intensity_shift=0,
                          noise_std=0)
    out, out_label = always(image, label, np.array([True]), np.random.default_rng(0))
    assert out[0, 3, 3, 3] == 1 and out.sum() == 1 and out_label[3, 3, 3] == 2


def test_spatial_augmentation_draws_nothing_when_off_and_crops_as_before():
    from medgap.data.transforms import SpatialAugmentation

    image = np.random.default_rng(2).normal(size=(2, 12, 12, 12)).astype(np.float32)
    label = (image[0] > 1).astype(np.int8) * 4

    def crop(size, rng):
        return crop_patch(image, label, size, rng)

    off = SpatialAugmentation(rotation_probability=0, scaling_probability=0, elastic_probability=0)
    rng = np.random.default_rng(3)
    assert off.draw((8, 8, 8), rng) is None
    a, _ = off((8, 8, 8), np.random.default_rng(4), crop)
    reference = np.random.default_rng(4)
    reference.random(3)  # the three coin flips, then the plain crop
    b, _ = crop((8, 8, 8), reference)
    assert np.array_equal(a, b)
    on = SpatialAugmentation(rotation_probability=1, scaling_probability=1, elastic_probability=1)
    for seed in range(5):
        out, out_label = on((8, 8, 8), np.random.default_rng(seed), crop)
        again, again_label = on((8, 8, 8), np.random.default_rng(seed), crop)
        assert out.shape == (2, 8, 8, 8) and np.array_equal(out, again) and np.array_equal(out_label, again_label)
        assert set(np.unique(out_label)) <= {0, 4}  # nearest: no new label values


def test_nnunet_defaults_and_2d_rotation_range():
    from medgap.config import AugmentationConfig
    from medgap.data.pipeline import build_augmentation
    from medgap.data.transforms import SpatialAugmentation

    augmentation, spatial = build_augmentation(AugmentationConfig())
    assert spatial is None and augmentation.gamma_probability == augmentation.gamma_inverted_probability == 0
    augmentation, spatial = build_augmentation(AugmentationConfig(nnunet=True))
    assert (spatial.rotation_probability, spatial.scaling_probability, spatial.elastic_probability) == (0.2, 0.2, 0)
    assert spatial.scaling_range == (0.7, 1.4) and augmentation.gamma_range == (0.7, 1.5)
    assert (augmentation.gamma_probability, augmentation.gamma_inverted_probability) == (0.3, 0.1)
    assert np.degrees(SpatialAugmentation().max_angle((64, 64, 64))) == pytest.approx(30)
    assert np.degrees(SpatialAugmentation().max_angle((64, 64))) == pytest.approx(180)
    assert np.degrees(SpatialAugmentation().max_angle((32, 64))) == pytest.approx(15)
