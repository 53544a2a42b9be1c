import json

import h5py
import numpy as np
import pytest

from medgap.data.cases import discover_cases, load_case
from medgap.data.convert import converter
from medgap.data.dataset_json import load_dataset_json
from medgap.errors import DatasetError


def write_h5(path, image, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("image", data=image)
        handle.create_dataset("label", data=label)


@pytest.fixture()
def la_source(tmp_path):
    """The UA-MT/SS-Net LA layout: 2018LA_Seg_Training Set/<case>/mri_norm2.h5 plus train.list/test.list."""
    root = tmp_path / "LA"
    rng = np.random.default_rng(0)
    arrays = {}
    for index in range(6):
        case = f"CASE{index}ABC"
        image = rng.normal(size=(6, 5, 4)).astype(np.float32)
        label = (rng.random((6, 5, 4)) > 0.7).astype(np.uint8)
        write_h5(root / "2018LA_Seg_Training Set" / case / "mri_norm2.h5", image, label)
        arrays[case] = (image, label)
    (root / "train.list").write_text("".join(f"CASE{i}ABC\n" for i in range(4)))
    (root / "test.list").write_text("CASE4ABC\nCASE5ABC\n")
    return root, arrays


def test_la_converter_writes_volumes_with_spacing_and_the_official_split(la_source, tmp_path):
    source, arrays = la_source
    out = converter("la_h5").convert(source, tmp_path / "Dataset010_LA", val_count=1)
    spec = load_dataset_json(out)
    assert spec.labels == {"background": 0, "left_atrium": 1} and spec.num_channels == 1
    cases = {case.case_id: case for case in discover_cases(out, spec)}
    assert sorted(cases) == sorted(arrays)
    data = load_case(cases["CASE2ABC"], spec)
    np.testing.assert_array_equal(data.image[0], arrays["CASE2ABC"][0])
    np.testing.assert_array_equal(data.label, arrays["CASE2ABC"][1])
    assert data.geometry.spacing == pytest.approx((0.625, 0.625, 0.625))
    splits = json.loads((out / "splits.json").read_text())
    assert splits["test"] == ["CASE4ABC", "CASE5ABC"] and len(splits["val"]) == 1 and len(splits["train"]) == 3
    assert sorted(splits["train"] + splits["val"]) == [f"CASE{i}ABC" for i in range(4)]


def test_la_converter_errors_name_the_file(la_source, tmp_path):
    source, _ = la_source
    (source / "test.list").write_text("CASE4ABC\nMISSING\n")
    with pytest.raises(DatasetError, match=r"test.list: case 'MISSING' has no MISSING/mri_norm2.h5"):
        converter("la_h5").convert(source, tmp_path / "out")
    (source / "test.list").write_text("CASE4ABC\n")
    write_h5(source / "bad" / "CASE9" / "mri_norm2.h5", np.zeros((2, 2, 2), np.float32), np.full((2, 2, 2), 3, np.uint8))
    (source / "test.list").write_text("CASE9\n")
    with pytest.raises(DatasetError, match=r"CASE9/mri_norm2.h5: label values \[3\] outside \[0, 1\]"):
        converter("la_h5").convert(source, tmp_path / "out2")


def test_acdc_converter_stacks_volumes_and_slices_along_the_last_axis(tmp_path):
    """SSL4MIS layout: data/<case>.h5 volumes (Z, H, W), data/slices/<case>_slice_<k>.h5 (H, W), lists."""
    source = tmp_path / "ACDC"
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(3, 8, 7)).astype(np.float32)
    volume_label = rng.integers(0, 4, (3, 8, 7)).astype(np.uint8)
    write_h5(source / "data" / "patient001_frame01.h5", volume, volume_label)
    for case in ("patient002_frame01", "patient003_frame01"):
        write_h5(source / "data" / f"{case}.h5", volume[:2], volume_label[:2])
    slices = [(rng.normal(size=(8, 7)).astype(np.float32), rng.integers(0, 4, (8, 7)).astype(np.uint8)) for _ in range(2)]
    for k, (image, label) in reversed(list(enumerate(slices))):  # slice-only case, written out of order
        write_h5(source / "data" / "slices" / f"patient004_frame02_slice_{k}.h5", image, label)
    (source / "train_slices.list").write_text("patient001_frame01_slice_0\npatient001_frame01_slice_1\n"
                                              "patient004_frame02_slice_0\npatient004_frame02_slice_1\n")
    (source / "val.list").write_text("patient002_frame01\n")
    (source / "test.list").write_text("patient003_frame01\n")
    out = converter("acdc_h5").convert(source, tmp_path / "Dataset011_ACDC", spacing=(1.5, 1.5, 10.0))
    spec = load_dataset_json(out)
    assert spec.labels == {"background": 0, "RV": 1, "myocardium": 2, "LV": 3}
    cases = {case.case_id: case for case in discover_cases(out, spec)}
    first = load_case(cases["patient001_frame01"], spec)
    np.testing.assert_array_equal(first.image[0], np.moveaxis(volume, 0, -1))
    np.testing.assert_array_equal(first.label, np.moveaxis(volume_label, 0, -1))
    assert first.geometry.spacing == pytest.approx((1.5, 1.5, 10.0))
    stacked = load_case(cases["patient004_frame02"], spec)
    np.testing.assert_array_equal(stacked.image[0], np.stack([s[0] for s in slices], -1))
    splits = json.loads((out / "splits.json").read_text())
    assert splits["train"] == ["patient001_frame01", "patient004_frame02"]
    assert splits["val"] == ["patient002_frame01"] and splits["test"] == ["patient003_frame01"]
    with pytest.raises(DatasetError, match="not empty"):
        converter("acdc_h5").convert(source, out)


def test_converter_options_from_the_cli(la_source, tmp_path, capsys):
    """A small LA pilot needs val_count below the default 8: options reach the converter, typed by its signature."""
    from medgap.cli import main

    source, _ = la_source
    out = tmp_path / "Dataset010_LA"
    assert main(["convert", "la-h5", str(source), str(out), "--option", "val_count=2", "--option", "seed=3",
                 "--option", "spacing=1,1,2.5"]) == 0
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["val"]) == 2 and len(splits["train"]) == 2 and splits["seed"] == 3
    spec = load_dataset_json(out)
    assert load_case(discover_cases(out, spec)[0], spec).geometry.spacing == pytest.approx((1, 1, 2.5))
    capsys.readouterr()
    for option, message in (
            ("val_cont=2", "--option val_cont: unknown option of la_h5 (known: val_count=8, seed=0, "
                           "spacing=0.625,0.625,0.625)"),
            ("val_count=two", "--option val_count: 'two' is not an integer"),
            ("spacing=1,x,1", "--option spacing: '1,x,1' is not comma-separated numbers"),
            ("val_count", "--option 'val_count': expected NAME=VALUE")):
        assert main(["convert", "la_h5", str(source), str(tmp_path / "again"), "--option", option]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "again").exists()


def test_acdc_frames_are_grouped_by_patient_for_the_labelled_draw(tmp_path):
    """SSL4MIS ships both frames of each patient (patient001_frame01, patient001_frame12): labelled_count: 2 must
    label both frames of 2 patients, never one frame of a patient and not the other."""
    from medgap.config import DataConfig
    from medgap.data.pipeline import prepare_data

    source = tmp_path / "ACDC"
    rng = np.random.default_rng(2)
    frames = {p: [f"patient{p:03d}_frame01", f"patient{p:03d}_frame{10 + p:02d}"] for p in range(1, 9)}
    for cases in frames.values():
        for case in cases:
            write_h5(source / "data" / f"{case}.h5", rng.normal(size=(2, 6, 5)).astype(np.float32),
                     rng.integers(0, 4, (2, 6, 5)).astype(np.uint8))
    (source / "train_slices.list").write_text("".join(f"{c}_slice_{k}\n" for p in range(1, 7) for c in frames[p]
                                                      for k in (0, 1)))
    (source / "val.list").write_text("\n".join(frames[7]) + "\n")
    (source / "test.list").write_text("\n".join(frames[8]) + "\n")
    out = converter("acdc_h5").convert(source, tmp_path / "Dataset011_ACDC")
    spec = load_dataset_json(out)
    assert spec.groups == {case: f"patient{p:03d}" for p, cases in frames.items() for case in cases}
    for seed in range(4):
        data = prepare_data(DataConfig(dataset_dir=str(out), labelled_count=2, num_workers=0), seed,
                            tmp_path / f"run{seed}", only_splits=("val",))
        labelled = data.splits["labelled"]
        assert len(labelled) == 4 and len({spec.groups[c] for c in labelled}) == 2
        assert sorted(labelled + data.splits["unlabelled"]) == sorted(c for p in range(1, 7) for c in frames[p])
