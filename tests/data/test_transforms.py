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
