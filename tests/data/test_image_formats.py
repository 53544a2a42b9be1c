"""Image formats nnU-Net users have besides NIfTI/PNG: 2-D TIFF (Pillow), NRRD and MetaImage (SimpleITK)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from medgap.data.cases import discover_cases, load_case
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_image, read_label, write_image
from medgap.errors import DatasetError


def test_tif_dataset_reads_like_png(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    image = np.arange(12 * 9, dtype=np.uint16).reshape(12, 9) * 300      # 16-bit microscopy-like
    label = (image > 15000).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "imagesTr" / "tile_0000.tif")
    Image.fromarray(label).save(tmp_path / "labelsTr" / "tile.tif")
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "H&E"}, "file_ending": ".tif",
                                                       "labels": {"background": 0, "nucleus": 1}}))
    spec = load_dataset_json(tmp_path)
    data = load_case(discover_cases(tmp_path, spec)[0], spec)
    np.testing.assert_array_equal(data.image[0], image.astype(np.float32))
    np.testing.assert_array_equal(data.label, label)
    floats = np.linspace(-1.5, 2.5, 20, dtype=np.float32).reshape(4, 5)
    Image.fromarray(floats, mode="F").save(tmp_path / "float.tif")   # float TIFFs keep their values
    np.testing.assert_array_equal(read_image(tmp_path / "float.tif")[0], floats)


def test_multipage_tif_is_refused(tmp_path):
    pages = [Image.fromarray(np.full((4, 4), k, np.uint8)) for k in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(DatasetError, match=r"stack.tif: 3 pages; only single-page 2-D images are read"):
        read_image(tmp_path / "stack.tif")


@pytest.mark.parametrize("ending", [".nrrd", ".mha"])
def test_itk_files_get_the_geometry_nifti_would_have(tmp_path, ending):
    """Reference: the same image saved by SimpleITK as NIfTI and read by nibabel (ITK's LPS → NIfTI's RAS)."""
    sitk = pytest.importorskip("SimpleITK", reason="optional extra: pip install 'medgap[itk]'")
    import nibabel as nib

    array = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)   # ITK order (Z, Y, X)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))  # an oblique-free but permuted frame
    sitk.WriteImage(image, str(tmp_path / f"case{ending}"))
    sitk.WriteImage(image, str(tmp_path / "reference.nii.gz"))
    data, geometry = read_image(tmp_path / f"case{ending}")
    reference = nib.load(tmp_path / "reference.nii.gz")
    np.testing.assert_array_equal(data, reference.get_fdata(dtype=np.float32))
    np.testing.assert_allclose(geometry.affine, reference.affine, atol=1e-5)
    assert geometry.spacing == pytest.approx((0.8, 0.9, 2.5))
    labels = (data > 0).astype(np.uint8)
    write_image(tmp_path / f"pred{ending}", labels, geometry)         # predictions keep the input's geometry
    round_trip, round_geometry = read_label(tmp_path / f"pred{ending}")
    np.testing.assert_array_equal(round_trip, labels)
    np.testing.assert_allclose(round_geometry.affine, geometry.affine, atol=1e-5)


def test_itk_file_without_simpleitk_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "case.nrrd").write_bytes(b"NRRD0004\n")
    monkeypatch.setitem(sys.modules, "SimpleITK", None)
    with pytest.raises(DatasetError, match=r"case.nrrd: reading .nrrd files needs SimpleITK \(pip install"):
        read_image(tmp_path / "case.nrrd")
