"""Medical Segmentation Decathlon task folders (Task01_BrainTumour's 4-D NIfTI, MSD dataset.json, macOS ``._``
files) → medgap's layout, through the CLI as a user runs it."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from medgap.cli import main
from medgap.data.cases import discover_cases, load_case
from medgap.data.dataset_json import load_dataset_json

MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}


def fake_task01(root, training=("BRATS_001", "BRATS_002"), test=("BRATS_485",)):
    """Task01_BrainTumour as the MSD archive unpacks: 4-D images, 3-D labels, ._ junk beside every file."""
    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    arrays = {}
    for part, names in (("Tr", training), ("Ts", test)):
        (root / f"images{part}").mkdir(parents=True)
        for name in names:
            image = rng.normal(100, 10, (6, 5, 4, 4)).astype(np.float32)
            nib.save(nib.Nifti1Image(image, affine), root / f"images{part}" / f"{name}.nii.gz")
            (root / f"images{part}" / f"._{name}.nii.gz").write_bytes(b"\x00\x05\x16\x07Mac OS X")
            arrays[name] = image
            if part == "Tr":
                (root / "labelsTr").mkdir(exist_ok=True)
                label = rng.integers(0, 4, (6, 5, 4)).astype(np.uint8)
                nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"{name}.nii.gz")
                (root / "labelsTr" / f"._{name}.nii.gz").write_bytes(b"\x00\x05\x16\x07")
                arrays[f"{name}_label"] = label
    (root / "dataset.json").write_text(json.dumps({
        "name": "BRATS", "tensorImageSize": "4D", "modality": MODALITIES, "labels": LABELS,
        "numTraining": len(training), "numTest": len(test),
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in training],
        "test": [f"./imagesTs/{n}.nii.gz" for n in test]}, indent=4))
    return arrays


def test_task01_is_split_into_channels_with_brats_regions(tmp_path, capsys):
    source = tmp_path / "Task01_BrainTumour"
    arrays = fake_task01(source)
    assert main(["verify", str(source)]) == 2  # the raw MSD folder: verify says what to run
    assert "convert it first: medgap convert msd" in capsys.readouterr().err
    out = tmp_path / "Dataset001_BrainTumour"
    assert main(["convert", "msd", str(source), str(out)]) == 0
    spec = load_dataset_json(out)
    assert spec.channel_names == ("FLAIR", "T1w", "t1gd", "T2w")
    assert spec.regions == {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)} and spec.regions_class_order == (1, 2, 3)
    assert spec.raw["converted_from"] == {"format": "msd", "source": "Task01_BrainTumour"}  # no absolute path
    cases = {case.case_id: case for case in discover_cases(out, spec)}
    assert sorted(cases) == ["BRATS_001", "BRATS_002"]  # the ._ files are not cases
    data = load_case(cases["BRATS_002"], spec)
    np.testing.assert_array_equal(data.image, np.moveaxis(arrays["BRATS_002"], -1, 0))
    np.testing.assert_array_equal(data.label, arrays["BRATS_002_label"])
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [f"BRATS_485_{c:04d}.nii.gz" for c in range(4)]
    assert main(["verify", str(out)]) == 0
    assert "regions (cases containing each): WT=2, TC=2, ET=2" in capsys.readouterr().out


def test_single_modality_task_keeps_plain_labels(tmp_path):
    source = tmp_path / "Task02_Heart"
    (source / "imagesTr").mkdir(parents=True)
    (source / "labelsTr").mkdir()
    image = np.arange(60, dtype=np.float32).reshape(5, 4, 3)
    nib.save(nib.Nifti1Image(image, np.diag([1.25, 1.25, 1.37, 1])), source / "imagesTr" / "la_003.nii.gz")
    nib.save(nib.Nifti1Image((image > 30).astype(np.uint8), np.diag([1.25, 1.25, 1.37, 1])),
             source / "labelsTr" / "la_003.nii.gz")
    (source / "dataset.json").write_text(json.dumps({
        "name": "LeftAtrium", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "left atrium"},
        "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}], "test": []}))
    out = tmp_path / "out"
    assert main(["convert", "msd", str(source), str(out)]) == 0
    spec = load_dataset_json(out)
    assert spec.labels == {"background": 0, "left atrium": 1} and spec.regions is None
    data = load_case(discover_cases(out, spec)[0], spec)
    np.testing.assert_array_equal(data.image[0], image)
    assert data.geometry.spacing == pytest.approx((1.25, 1.25, 1.37))


def test_listed_file_missing_is_one_line(tmp_path, capsys):
    source = tmp_path / "Task01_BrainTumour"
    fake_task01(source)
    (source / "imagesTr" / "BRATS_002.nii.gz").unlink()
    assert main(["convert", "msd", str(source), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {source / 'dataset.json'}: lists './imagesTr/BRATS_002.nii.gz', which does not exist\n"
