import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import write_tiny_dataset
from medgap.data.cases import check_case_id, discover_cases, load_case
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_image, write_nifti
from medgap.errors import DatasetError


@pytest.fixture()
def dataset(tmp_path):
    return write_tiny_dataset(tmp_path / "ds", cases=4, shape=(12, 12, 12), unlabelled=(3,), missing={1: (1,)})


def load(root):
    spec = load_dataset_json(root)
    return spec, {case.case_id: case for case in discover_cases(root, spec)}


def test_availability_mask_and_unlabelled_cases(dataset):
    spec, cases = load(dataset)
    assert sorted(cases) == ["case_000", "case_001", "case_002", "case_003"]
    assert cases["case_001"].availability.tolist() == [True, False]
    assert cases["case_000"].availability.tolist() == [True, True]
    assert not cases["case_003"].labelled and cases["case_000"].labelled
    data = load_case(cases["case_001"], spec)
    assert data.image.shape == (2, 12, 12, 12) and not data.image[1].any()
    assert data.geometry.spacing == (1.0, 1.0, 2.0)
    assert set(np.unique(data.label)) <= {0, 1, 2}


def test_wrong_suffix_and_unknown_channel(dataset):
    (dataset / "imagesTr" / "stray.nii.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="stray.nii.gz: image file names must be CASE_XXXX"):
        load(dataset)
    (dataset / "imagesTr" / "stray.nii.gz").unlink()
    shutil.copy(dataset / "imagesTr" / "case_000_0000.nii.gz", dataset / "imagesTr" / "case_000_0005.nii.gz")
    with pytest.raises(DatasetError, match="case_000_0005.nii.gz: channel 0005 is not in dataset.json"):
        load(dataset)


def test_channels_with_different_shape_or_affine(dataset):
    spec, cases = load(dataset)
    path = dataset / "imagesTr" / "case_000_0001.nii.gz"
    write_nifti(path, np.ones((12, 12, 10), np.float32), np.diag([1, 1, 2, 1.0]))
    with pytest.raises(DatasetError, match="case_000_0001.nii.gz: geometry .* does not match"):
        load_case(cases["case_000"], spec)
    write_nifti(path, np.ones((12, 12, 12), np.float32), np.diag([1, 1, 3, 1.0]))
    with pytest.raises(DatasetError, match="shape and affine of all channels"):
        load_case(cases["case_000"], spec)


def test_undeclared_label_values(dataset):
    spec, cases = load(dataset)
    label = np.zeros((12, 12, 12), np.uint8)
    label[2, 2, 2] = 7
    write_nifti(dataset / "labelsTr" / "case_000.nii.gz", label, np.diag([1, 1, 2, 1.0]))
    with pytest.raises(DatasetError, match=r"case_000.nii.gz: label value\(s\) \[7\] not declared"):
        load_case(cases["case_000"], spec)


def test_nan_voxels_and_truncated_file(dataset):
    spec, cases = load(dataset)
    path = dataset / "imagesTr" / "case_002_0000.nii.gz"
    image = np.ones((12, 12, 12), np.float32)
    image[1, 1, 1] = np.nan
    image[2, 2, 2] = np.inf
    write_nifti(path, image, np.diag([1, 1, 2, 1.0]))
    with pytest.raises(DatasetError, match="case_002_0000.nii.gz: 2 NaN/Inf voxels"):
        load_case(cases["case_002"], spec)
    data = (dataset / "imagesTr" / "case_000_0000.nii.gz").read_bytes()
    (dataset / "imagesTr" / "case_000_0000.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="case_000_0000.nii.gz: (corrupt or truncated|not a readable)"):
        load_case(cases["case_000"], spec)


def test_garbage_file_and_memory_budget(tmp_path):
    path = tmp_path / "x_0000.nii.gz"
    path.write_bytes(gzip.compress(b"definitely not nifti" * 20))
    with pytest.raises(DatasetError, match="x_0000.nii.gz: not a readable NIfTI"):
        read_image(path)
    write_nifti(path, np.zeros((64, 64, 64), np.float32))
    with pytest.raises(DatasetError, match=r"needs 1 MiB, over the memory budget"):
        read_image(path, max_bytes=2**19)


def test_4d_file_is_refused_and_singleton_kept(tmp_path):
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), path)
    with pytest.raises(DatasetError, match="expected a 2-D or 3-D image"):
        read_image(path)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 1), np.float32), np.eye(4)), path)
    assert read_image(path)[0].shape == (4, 4, 4)


@pytest.mark.parametrize("case_id", ["../evil", "a/b", ".hidden", "x..y", ""])
def test_case_ids_that_could_escape_are_refused(case_id):
    with pytest.raises(DatasetError, match="is not allowed"):
        check_case_id(case_id)


def test_genetics_csv_and_reports(dataset):
    (dataset / "genetics").mkdir()
    (dataset / "genetics" / "pgs.csv").write_text("case_id,s1,s2\ncase_000,0.5,1\ncase_002,1.5,-2\n")
    (dataset / "textTr").mkdir()
    (dataset / "textTr" / "case_000.txt").write_text("Left lung, one infected area.\n", encoding="utf-8")
    spec, cases = load(dataset)
    assert cases["case_000"].genetics["pgs"].tolist() == [0.5, 1.0]
    assert "pgs" not in cases["case_001"].genetics
    assert load_case(cases["case_000"], spec).text == "Left lung, one infected area."
    (dataset / "textTr" / "case_000.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DatasetError, match="case_000.txt: report is not UTF-8"):
        load_case(load(dataset)[1]["case_000"], spec)
    (dataset / "genetics" / "pgs.csv").write_text("case_id,s1\ncase_000,0.5\ncase_000,1\n")
    with pytest.raises(DatasetError, match=r"pgs.csv:3: duplicate case id 'case_000'"):
        load(dataset)
    (dataset / "genetics" / "pgs.csv").write_text("case_id,s1\ncase_000,abc\n")
    with pytest.raises(DatasetError, match=r"pgs.csv:2: non-numeric value"):
        load(dataset)
