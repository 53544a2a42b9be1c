"""2-D PNG datasets and h5 files go through the same loaders as NIfTI."""

import h5py
import numpy as np

from conftest import tiny_config
from medgap.data.cases import discover_cases, load_case
from medgap.data.dataset_json import load_dataset_json, write_dataset_json
from medgap.data.io import read_image, read_label, write_png
from medgap.training.loop import train


def write_png_dataset(root, cases=8):
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    yy, xx = np.mgrid[:32, :32]
    for index in range(cases):
        cy, cx = rng.uniform(10, 22, 2)
        label = ((yy - cy) ** 2 + (xx - cx) ** 2 < 36).astype(np.uint8)
        image = np.clip(60 + 120 * label + rng.normal(0, 15, label.shape), 0, 255).astype(np.uint8)
        write_png(root / "imagesTr" / f"img{index}_0000.png", image)
        write_png(root / "labelsTr" / f"img{index}.png", label)
    write_dataset_json(root, {"channel_names": {"0": "xray"}, "labels": {"background": 0, "lesion": 1},
                              "file_ending": ".png", "numTraining": cases})
    return root


def test_png_dataset_trains_and_evaluates_in_2d(tmp_path):
    root = write_png_dataset(tmp_path / "png")
    spec = load_dataset_json(root)
    case = discover_cases(root, spec)[0]
    data = load_case(case, spec)
    assert data.image.shape == (1, 32, 32) and data.geometry.spacing == (1.0, 1.0)
    config = tiny_config(root, **{"data.patch_size": [32, 32], "data.normalisation": "zscore",
                                  "data.augmentation.flip_axes": [0, 1], "trainer.max_steps": 2,
                                  "trainer.val_every": 2})
    summary = train(config, tmp_path / "run")
    assert summary["steps"] == 2 and 0.0 <= summary["best_val_dice"] <= 1.0


def test_h5_image_and_label_datasets(tmp_path):
    path = tmp_path / "case.h5"
    with h5py.File(path, "w") as handle:
        handle["image"] = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        handle["label"] = np.ones((2, 3, 4), np.uint8)
        handle["image"].attrs["spacing"] = (0.625, 0.625, 0.625)
    image, geometry = read_image(path)
    label, _ = read_label(path)
    assert image.shape == (2, 3, 4) and geometry.spacing == (0.625, 0.625, 0.625) and label.sum() == 24
