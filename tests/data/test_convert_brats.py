"""BraTS 2018–2021 folder layout → medgap layout, on a tiny fabricated tree."""

import json

import numpy as np
import pytest

from medgap.cli import main
from medgap.data.cases import discover_cases
from medgap.data.convert.brats import convert
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_image, read_label, write_nifti
from medgap.errors import MedgapError


def fabricate(root, cases, enhancing=4, nested="HGG"):
    """``cases``: {case_id: (sequences present, labelled)}; voxel values encode (case, sequence) for checking."""
    for number, (case_id, (sequences, labelled)) in enumerate(cases.items()):
        folder = root / nested / case_id
        folder.mkdir(parents=True)
        for index, sequence in enumerate(("flair", "t1", "t1ce", "t2")):
            if sequence in sequences:
                write_nifti(folder / f"{case_id}_{sequence}.nii.gz",
                            np.full((6, 5, 4), 10 * number + index, np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
        if labelled:
            label = np.zeros((6, 5, 4), np.uint8)
            label[1:3, 1:3, 1:3], label[2, 2, 2], label[4, 3, 2] = 2, enhancing, 1
            write_nifti(folder / f"{case_id}_seg.nii.gz", label, np.eye(4))
    return root


ALL = ("flair", "t1", "t1ce", "t2")


def test_brats_tree_converts_with_missing_sequences_and_unlabelled_cases(tmp_path):
    source = fabricate(tmp_path / "MICCAI_BraTS_2018_Data_Training", {
        "Brats18_2013_2_1": (ALL, True), "Brats18_TCIA_01": (("flair", "t1", "t2"), True),  # lacks T1c
        "Brats18_CBICA_AAA": (ALL, False)})
    out = tmp_path / "Dataset100_BraTS"
    assert main(["convert", "brats", str(source), str(out)]) == 0
    spec = load_dataset_json(out)
    assert spec.channel_names == ("FLAIR", "T1", "T1c", "T2") and spec.num_training == 2
    assert spec.regions == {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)} and spec.regions_class_order == (1, 2, 3)
    raw = json.loads((out / "dataset.json").read_text())  # nnU-Net v2's region-based form, as its Dataset137
    assert raw["labels"] == {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]} and "regions" not in raw
    assert raw["converted_from"] == {"format": "brats", "source": source.name, "enhancing_label": 4}
    cases = {case.case_id: case for case in discover_cases(out, spec, "Tr")}
    assert sorted(cases) == ["Brats18_2013_2_1", "Brats18_TCIA_01"]
    assert cases["Brats18_TCIA_01"].availability.tolist() == [True, True, False, True]
    assert read_image(out / "imagesTr" / "Brats18_2013_2_1_0002.nii.gz")[0].max() == 2  # t1ce → channel 2
    label = read_label(out / "labelsTr" / "Brats18_2013_2_1.nii.gz")[0]
    expected = np.zeros((6, 5, 4), np.int16)  # BraTS 2 oedema → 1, 1 necrotic → 2, 4 enhancing → 3
    expected[1:3, 1:3, 1:3], expected[2, 2, 2], expected[4, 3, 2] = 1, 3, 2
    np.testing.assert_array_equal(label, expected)
    assert [c.case_id for c in discover_cases(out, spec, "Ts")] == ["Brats18_CBICA_AAA"]
    assert (source / "HGG" / "Brats18_2013_2_1" / "Brats18_2013_2_1_seg.nii.gz").is_file()  # source untouched


def test_enhancing_label_three_is_detected_and_mixed_labels_refused(tmp_path):
    source = fabricate(tmp_path / "src", {"BraTS2021_00000": (ALL, True)}, enhancing=3, nested=".")
    spec = load_dataset_json(convert(source, tmp_path / "o"))
    assert spec.raw["converted_from"]["enhancing_label"] == 3
    assert read_label(tmp_path / "o" / "labelsTr" / "BraTS2021_00000.nii.gz")[0][2, 2, 2] == 3
    fabricate(tmp_path / "src", {"BraTS2021_00001": (ALL, True)}, enhancing=4, nested=".")
    with pytest.raises(MedgapError, match="both 3 and 4"):
        convert(source, tmp_path / "o2")
    with pytest.raises(MedgapError, match="not be inside the source"):
        convert(source, source / "out")
    assert json.loads((tmp_path / "o" / "dataset.json").read_text())["converted_from"]["format"] == "brats"
