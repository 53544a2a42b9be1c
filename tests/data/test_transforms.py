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
