"""BraTS regions and per-label masks from hand-made label maps."""

import numpy as np
import pytest
import torch

from medgap.metrics import brats_regions, label_to_masks


def brats_label_map(enhancing_label=4):
    """A 1 x 3 x 4 label map: row 0 background/oedema, row 1 necrosis/enhancing, row 2 mixed."""
    return np.array([[[0, 2, 2, 0], [1, enhancing_label, enhancing_label, 1], [0, 2, 1, enhancing_label]]])


@pytest.mark.parametrize("enhancing_label", [4, 3])
def test_brats_regions_from_label_values(enhancing_label):
    label_map = brats_label_map(enhancing_label)
    regions = brats_regions(label_map, enhancing_label=enhancing_label)
    assert list(regions) == ["WT", "TC", "ET"]
    expected_wt = np.array([[[0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 1]]], dtype=bool)
    expected_tc = np.array([[[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]]], dtype=bool)
    expected_et = np.array([[[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]], dtype=bool)
    np.testing.assert_array_equal(regions["WT"], expected_wt)
    np.testing.assert_array_equal(regions["TC"], expected_tc)
    np.testing.assert_array_equal(regions["ET"], expected_et)
    assert all(mask.dtype == bool for mask in regions.values())
    # Nesting: ET within TC within WT.
    assert not (regions["ET"] & ~regions["TC"]).any() and not (regions["TC"] & ~regions["WT"]).any()


def test_brats_2023_label_3_is_not_enhancing_under_2018_numbering():
    label_map = brats_label_map(enhancing_label=3)
    assert not brats_regions(label_map, enhancing_label=4)["ET"].any()
    assert brats_regions(label_map, enhancing_label=4)["WT"].sum() == 6  # only the labels 1 and 2 remain


def test_label_to_masks_with_regions_and_torch_input():
    label_map = torch.from_numpy(brats_label_map())
    masks = label_to_masks(label_map, regions={"TC": (1, 4), "ED": (2,)})
    assert list(masks) == ["TC", "ED"]
    assert masks["TC"].sum() == 6 and masks["ED"].sum() == 3
    assert isinstance(masks["TC"], np.ndarray)


def test_label_to_masks_per_label_skips_background():
    label_map = np.array([[0, 1, 1], [2, 0, 1]])
    masks = label_to_masks(label_map, labels={"background": 0, "LV": 1, "MYO": 2, "RV": 3})
    assert list(masks) == ["LV", "MYO", "RV"]
    np.testing.assert_array_equal(masks["LV"], [[0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(masks["MYO"], [[0, 0, 0], [1, 0, 0]])
    assert not masks["RV"].any()  # absent label: an empty mask, scored by the empty-mask policy


def test_regions_take_precedence_and_tuple_labels_are_regions():
    label_map = brats_label_map()
    nnunet_labels = {"background": 0, "whole tumour": (1, 2, 4), "enhancing": 4}
    masks = label_to_masks(label_map, labels=nnunet_labels)
    np.testing.assert_array_equal(masks["whole tumour"], brats_regions(label_map)["WT"])
    with_regions = label_to_masks(label_map, regions={"ET": (4,)}, labels=nnunet_labels)
    assert list(with_regions) == ["ET"]


def test_label_to_masks_needs_regions_or_labels():
    with pytest.raises(ValueError, match="regions or labels"):
        label_to_masks(np.zeros((2, 2), dtype=int))
