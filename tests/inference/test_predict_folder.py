import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import tiny_config
from medgap.data.dataset_json import load_dataset_json
from medgap.errors import MedgapError
from medgap.evaluation.evaluate import load_trained_method
from medgap.inference.predict import predict_folder
from medgap.training.loop import train


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("predict") / "run"
    config = tiny_config(tiny_dataset, **{"trainer.max_steps": 2, "trainer.val_every": 2})
    train(config, run)
    return run, config, load_trained_method(run, config, load_dataset_json(tiny_dataset))


def test_predictions_keep_the_input_geometry_and_handle_missing_channels(trained, tiny_dataset, tmp_path):
    run, config, method = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shift = np.diag([1.0, 1.0, 2.0, 1.0])
    shift[:3, 3] = [10, -5, 3]
    for name in ("case_000_0000", "case_000_0001", "case_001_0000"):  # case_001 lacks channel 1
        image = nib.load(tiny_dataset / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(image.get_fdata().astype(np.float32), shift), inputs / f"{name}.nii.gz")
    written = predict_folder(method, config, inputs, tmp_path / "out")
    assert [p.name for p in written] == ["case_000.nii.gz", "case_001.nii.gz"]
    for path in written:
        prediction = nib.load(path)
        assert prediction.shape == (24, 24, 24)
        np.testing.assert_allclose(prediction.affine, shift)
        assert set(np.unique(prediction.get_fdata())) <= {0, 1, 2}
    assert sorted(p.name for p in inputs.iterdir()) == ["case_000_0000.nii.gz", "case_000_0001.nii.gz",
                                                          "case_001_0000.nii.gz"]


def test_output_inside_input_is_refused(trained, tiny_dataset, tmp_path):
    _, config, method = trained
    inputs = tmp_path / "in"
    shutil.copytree(tiny_dataset / "imagesTr", inputs)
    with pytest.raises(MedgapError, match="must not be the input folder"):
        predict_folder(method, config, inputs, inputs)
    with pytest.raises(MedgapError, match="must not be the input folder or inside it"):
        predict_folder(method, config, inputs, inputs / "sub")


def test_an_empty_availability_is_refused_with_one_line(trained):
    # Predicting from all-zero inputs would silently give the network's prior: refuse instead.
    from types import SimpleNamespace

    from medgap.inference.predict import predict_array, predict_case

    _, config, method = trained
    image = np.zeros((2, 24, 24, 24), np.float32)
    with pytest.raises(MedgapError, match=r"^image: no modality available \(empty availability\)"):
        predict_array(method, image, np.array([False, False]), config)
    case = SimpleNamespace(case_id="case_007", availability=np.array([True, False]), image=lambda: image)
    with pytest.raises(MedgapError, match=r"^case case_007: no modality available") as error:
        predict_case(method, case, config, availability=np.array([False, True]))  # asks only for what is absent
    assert "\n" not in str(error.value)
