import numpy as np
import torch

from medgap.data.dataset_json import parse_dataset_json
from medgap.inference.sliding_window import keep_largest_component, predict_probabilities
from medgap.methods.base import SegmentationMethod
from medgap.nets import UNet
from pathlib import Path

SPEC = parse_dataset_json({"channel_names": {"0": "A"}, "labels": {"background": 0, "x": 1, "y": 2},
                           "file_ending": ".nii.gz"}, Path("dataset.json"))


class Wrapped(SegmentationMethod):
    def __init__(self, dims):
        super().__init__(SPEC)
        torch.manual_seed(0)
        self.net = UNet(dims, 1, 3, [4, 8]).eval()

    def predict_logits(self, image, availability):
        return self.net(image)


def test_window_equal_to_volume_matches_a_direct_forward_pass():
    method = Wrapped(3)
    image = torch.randn(1, 16, 16, 8)
    probabilities = predict_probabilities(method, image, np.array([True]), [16, 16, 8], mode="constant")
    direct = torch.softmax(method.net(image[None]), 1)[0]
    assert probabilities.shape == (3, 16, 16, 8)
    torch.testing.assert_close(probabilities, direct, atol=1e-5, rtol=1e-5)


def test_overlapping_windows_give_normalised_probabilities_on_cpu():
    method = Wrapped(3)
    probabilities = predict_probabilities(method, np.random.randn(1, 20, 18, 10).astype(np.float32),
                                          np.array([True]), [8, 8, 8], overlap=0.5, sw_batch_size=3)
    assert probabilities.device.type == "cpu" and probabilities.shape == (3, 20, 18, 10)
    torch.testing.assert_close(probabilities.sum(0), torch.ones(20, 18, 10), atol=1e-5, rtol=0)


def test_2d_model_on_a_stack_predicts_slice_by_slice():
    method = Wrapped(2)
    stack = torch.randn(1, 16, 16, 5)
    probabilities = predict_probabilities(method, stack, np.array([True]), [16, 16], mode="constant")
    assert probabilities.shape == (3, 16, 16, 5)
    third = torch.softmax(method.net(stack[None, ..., 3]), 1)[0]
    torch.testing.assert_close(probabilities[..., 3], third, atol=1e-5, rtol=1e-5)


def test_region_outputs_become_nested_label_maps():
    spec = parse_dataset_json({"channel_names": {"0": "A"}, "file_ending": ".nii.gz",
                               "labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "active": [3]},
                               "regions_class_order": [1, 2, 3]}, Path("dataset.json"))
    targets = SegmentationMethod(spec).targets
    label_index = torch.tensor([[0, 1, 2, 3]])
    regions = targets.targets(label_index)
    assert regions.shape == (1, 3, 4)
    assert regions[0].tolist() == [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]
    assert targets.to_label_map(regions[0]).tolist() == [0, 1, 2, 3]


def test_largest_component_per_label():
    label = np.zeros((10, 10), np.int16)
    label[0:2, 0:2] = 1
    label[5:9, 5:9] = 1
    label[0, 9] = 2
    kept = keep_largest_component(label)
    assert kept[0:2, 0:2].sum() == 0 and (kept[5:9, 5:9] == 1).all() and kept[0, 9] == 2


def test_largest_component_uses_full_26_connectivity():
    # Two 2×2×2 blocks that touch only at one corner are ONE object (skimage's default, the official code);
    # with 6-connectivity the smaller one (8 voxels) would be removed, leaving the larger (27 voxels).
    label = np.zeros((8, 8, 8), np.int16)
    label[0:2, 0:2, 0:2] = 1
    label[2:5, 2:5, 2:5] = 1
    label[7, 7, 7] = 1  # a truly separate voxel is still removed
    kept = keep_largest_component(label)
    assert (kept[0:2, 0:2, 0:2] == 1).all() and (kept[2:5, 2:5, 2:5] == 1).all()
    assert kept[7, 7, 7] == 0 and int((kept == 1).sum()) == 8 + 27
