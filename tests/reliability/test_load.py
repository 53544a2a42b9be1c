"""Load: memory stays flat over many predictions; a corrupt case is skipped (named) or stops with one line."""

import shutil

import numpy as np
import pytest

from conftest import tiny_config, write_tiny_dataset
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import write_nifti
from medgap.errors import DatasetError
from medgap.evaluation.evaluate import load_trained_method
from medgap.inference.predict import predict_folder
from medgap.training.loop import train


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_predicting_200_cases_keeps_memory_flat(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, **{"trainer.max_steps": 1, "trainer.val_every": 1})
    train(config, tmp_path / "run")
    method = load_trained_method(tmp_path / "run", config, load_dataset_json(tiny_dataset))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for index in range(200):
        for channel in range(2):
            write_nifti(inputs / f"p{index:03d}_{channel:04d}.nii.gz",
                        rng.normal(100, 20, (24, 24, 24)).astype(np.float32), np.eye(4))
    memory = {}

    def record(done, total, case):
        if done in (10, 200):
            memory[done] = rss_mib()

    written = predict_folder(method, config, inputs, tmp_path / "out", progress=record)
    assert len(written) == 200
    assert memory[200] < memory[10] * 1.10, memory


def test_corrupt_case_is_skipped_with_its_name_or_stops_training(tmp_path):
    root = write_tiny_dataset(tmp_path / "ds", cases=8, shape=(16, 16, 16))
    shutil.copy(root / "imagesTr" / "case_000_0000.nii.gz", tmp_path / "backup.nii.gz")
    data = (root / "imagesTr" / "case_004_0001.nii.gz").read_bytes()
    (root / "imagesTr" / "case_004_0001.nii.gz").write_bytes(data[: len(data) // 3])
    config = tiny_config(root, **{"trainer.max_steps": 2, "trainer.val_every": 2, "data.val_fraction": 0.0,
                                  "data.test_fraction": 0.0, "data.num_workers": 2})
    with pytest.raises(DatasetError, match="case_004_0001.nii.gz: (corrupt or truncated|not a readable)"):
        train(config, tmp_path / "strict")
    config.data.skip_bad_cases = True
    with pytest.warns(UserWarning, match="skipping case case_004: .*case_004_0001.nii.gz"):
        summary = train(config, tmp_path / "lenient")
    assert summary["steps"] == 2
