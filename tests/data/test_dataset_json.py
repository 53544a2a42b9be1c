import json
from pathlib import Path

import pytest

from medgap.data.dataset_json import load_dataset_json, parse_dataset_json
from medgap.errors import DatasetError

BRATS_NNUNET = {  # exactly as nnU-Net v2's Dataset137_BraTS2021 conversion writes it
    "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
    "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
    "numTraining": 1251, "file_ending": ".nii.gz", "regions_class_order": [1, 2, 3],
    "license": "see https://www.synapse.org/#!Synapse:syn25829067/wiki/610863",
    "reference": "see BraTS2021", "dataset_release": "1.0",
}


def test_nnunet_region_based_brats_is_accepted_unchanged(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps(BRATS_NNUNET))
    spec = load_dataset_json(tmp_path)
    assert spec.channel_names == ("T1", "T1ce", "T2", "Flair")
    assert spec.regions == {"whole tumor": (1, 2, 3), "tumor core": (2, 3), "enhancing tumor": (3,)}
    assert spec.label_values == (0, 1, 2, 3)
    assert spec.regions_class_order == (1, 2, 3)
    assert spec.output_names == ("whole tumor", "tumor core", "enhancing tumor")


def test_medgap_regions_extension_derives_class_order():
    spec = parse_dataset_json({
        "channel_names": {"0": "FLAIR", "1": "T1", "2": "T1c", "3": "T2"}, "file_ending": ".nii.gz",
        "labels": {"background": 0, "necrotic": 1, "edema": 2, "enhancing": 4},
        "regions": {"WT": [1, 2, 4], "TC": [1, 4], "ET": [4]}}, Path("dataset.json"))
    assert spec.label_values == (0, 1, 2, 4)
    # WT-only voxels are oedema (2), TC-only necrosis (1), ET enhancing (4): later regions overwrite earlier.
    assert spec.regions_class_order == (2, 1, 4)


@pytest.mark.parametrize("raw, message", [
    ({"labels": {"background": 0}, "file_ending": ".nii.gz"}, "missing required key(s) channel_names"),
    ({"channel_names": {"0": "A", "2": "B"}, "labels": {"background": 0}, "file_ending": ".nii.gz"}, "without gaps"),
    ({"channel_names": {"x": "A"}, "labels": {"background": 0}, "file_ending": ".nii.gz"}, "channel indices"),
    ({"channel_names": {"0": "A"}, "labels": {"tumour": 1}, "file_ending": ".nii.gz"}, "background with value 0"),
    ({"channel_names": {"0": "A"}, "labels": {"background": 0, "t": "one"}, "file_ending": ".nii.gz"}, "integer"),
    ({"channel_names": {"0": "A"}, "labels": {"background": 0}, "file_ending": ".mnc"}, "not supported"),
    ({"channel_names": {"0": "A"}, "labels": {"background": 0, "t": 1}, "file_ending": ".nii.gz",
      "regions": {"R": [1, 7]}}, "not declared"),
    ([1, 2], "JSON object"),
])
def test_malformed_dataset_json_is_one_clear_line(tmp_path, raw, message):
    (tmp_path / "dataset.json").write_text(json.dumps(raw))
    with pytest.raises(DatasetError) as error:
        load_dataset_json(tmp_path)
    assert message in str(error.value) and "dataset.json" in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_invalid_json(tmp_path):
    with pytest.raises(DatasetError, match="dataset.json: missing"):
        load_dataset_json(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset_json(tmp_path)
