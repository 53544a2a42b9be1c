"""digits-av (AV-MNIST-like classification set) and the generic classification data path."""

import json

import numpy as np
import pytest

from conftest import tiny_config
from medgap.cli import main
from medgap.data.classification import load_class_labels
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_image
from medgap.data.pipeline import prepare_data, training_loader
from medgap.data.synthetic import generate
from medgap.errors import DatasetError
from medgap.training.loop import train


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return generate("digits-av", tmp_path_factory.mktemp("digits") / "digits_av", cases=80, seed=0)


def test_dataset_is_a_classification_folder_with_real_digits(digits):
    from sklearn.datasets import load_digits

    spec = load_dataset_json(digits)
    assert spec.task == "classification" and spec.classes == tuple("0123456789")
    assert spec.channel_names == ("image", "spectrogram") and spec.file_ending == ".png"
    labels = load_class_labels(digits, spec)
    assert len(labels) == 80
    reference = load_digits()
    case_id, label = next(iter(labels.items()))
    index = int(case_id.split("_")[1])
    assert label == reference.target[index]  # the class is the real digit's
    image, _ = read_image(digits / "imagesTr" / f"{case_id}_0000.png")
    spectrogram, _ = read_image(digits / "imagesTr" / f"{case_id}_0001.png")
    assert image.shape == spectrogram.shape == (32, 32)
    # the digit image correlates with the upsampled 8×8 original despite the noise
    from scipy import ndimage

    upsampled = ndimage.zoom(reference.images[index] / 16.0, 4, order=1)
    assert np.corrcoef(image.ravel(), upsampled.ravel())[0, 1] > 0.5
    # the spectrogram's loudest frequency band moves up with the digit
    bands = {}
    for case_id, label in labels.items():
        spectrum = read_image(digits / "imagesTr" / f"{case_id}_0001.png")[0].mean(1)
        bands.setdefault(label, []).append(np.argmax(spectrum[:30]))
    assert np.mean(bands[min(bands)]) < np.mean(bands[max(bands)])
    assert generate("digits-av", digits, cases=80, seed=0, exist_ok=True) == digits


def test_class_table_errors_name_the_line(digits, tmp_path):
    spec = load_dataset_json(digits)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labelsTr.csv").write_text("case_id,class\nDigit_0001,7\nDigit_0002,eleven\n")
    with pytest.raises(DatasetError, match=r"labelsTr.csv:3: class 'eleven' not in dataset.json classes"):
        load_class_labels(bad, spec)


def test_loader_gives_whole_images_and_class_indices(digits, tmp_path):
    config = tiny_config(digits, **{"data.patch_size": [32, 32], "data.normalisation": "zscore",
                                    "data.augmentation.flip_axes": []})
    data = prepare_data(config.data, 0, tmp_path / "run")
    assert data.class_labels is not None and len(data.splits["test"]) == 16
    batch = next(iter(training_loader(data, config.data, 0)))
    assert batch["image"].shape == (2, 2, 32, 32) and batch["label"].shape == (2,)
    assert all(batch["label"][i] == data.class_labels[case] for i, case in enumerate(batch["case"]))


def test_train_and_evaluate_by_accuracy_with_sparse_second_modality(digits, tmp_path, capsys):
    config = tiny_config(digits, **{"method.name": "shaspec", "data.patch_size": [32, 32], "model.features": [4, 8],
                                    "data.normalisation": "zscore", "data.augmentation.flip_axes": [],
                                    "method.modality_dropout": "none", "method.sparse_modalities": ["spectrogram"],
                                    "method.sparse_keep_ratio": 0.1, "trainer.max_steps": 4, "trainer.val_every": 2,
                                    "optim.name": "adam", "optim.schedule": "step"})
    summary = train(config, tmp_path / "run")
    assert 0.0 <= summary["best_val_accuracy"] <= 1.0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_accuracy" in r] == [2, 4]
    assert all(r["modalities_kept"] < 2 for r in rows if "modalities_kept" in r)  # most cases lack the spectrogram
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    table = (tmp_path / "run" / "subsets.md").read_text()
    assert "| as available |  | " in table and "Accuracy (%)" in table
    assert main(["evaluate", str(tmp_path / "run"), "--modality-subsets", "all"]) == 0
    saved = json.loads((tmp_path / "run" / "subsets.json").read_text())
    assert [row["subset"] for row in saved["aggregated"]] == ["●○", "○●", "●●"]
    assert all(row["n"] == 16 for row in saved["aggregated"])


def test_verify_counts_classification_labels_from_the_csv(digits):
    from collections import Counter

    from medgap.data.verify import format_report, verify_dataset

    report = verify_dataset(digits)
    spec = load_dataset_json(digits)
    assert report.ok and report.labelled == report.cases == 80
    assert report.label_counts == Counter(load_class_labels(digits, spec).values())
    assert "80 labelled, 0 unlabelled" in format_report(report)
    assert "classes (cases in each)" in format_report(report)
