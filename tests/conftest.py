"""Shared fixtures: tiny datasets in the nnU-Net folder layout, written with medgap's own writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import write_nifti


def write_tiny_dataset(root: Path, *, cases: int = 10, shape=(24, 24, 24), spacing=(1.0, 1.0, 2.0),
                       regions: bool = False, seed: int = 0, unlabelled: tuple[int, ...] = (),
                       missing: dict[int, tuple[int, ...]] | None = None) -> Path:
    """Two channels; a sphere (label 1) visible on channel 0 with a core (label 2) visible only on channel 1.

    ``regions=True`` writes nnU-Net v2 region-based labels (``whole``=[1, 2], ``core``=[2]).
    ``unlabelled``: case indices written without a label file; ``missing``: case index → absent channels.
    """
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(np.float32)
    for index in range(cases):
        margin = min(7.0, min(shape) / 3)
        centre = rng.uniform(margin, np.array(shape) - margin)
        radius = rng.uniform(0.6, 0.95) * margin
        distance = np.linalg.norm(grid - centre, axis=-1)
        label = np.zeros(shape, np.uint8)
        label[distance < radius] = 1
        label[distance < radius * 0.5] = 2
        channel0 = 100 + 80 * (label > 0) + rng.normal(0, 12, shape)
        channel1 = 100 + 90 * (label == 2) + rng.normal(0, 12, shape)
        case = f"case_{index:03d}"
        for channel, image in enumerate((channel0, channel1)):
            if channel in (missing or {}).get(index, ()):
                continue
            write_nifti(root / "imagesTr" / f"{case}_{channel:04d}.nii.gz", image.astype(np.float32), affine)
        if index not in unlabelled:
            write_nifti(root / "labelsTr" / f"{case}.nii.gz", label, affine)
    labels = ({"background": 0, "whole": [1, 2], "core": [2]} if regions
              else {"background": 0, "outer": 1, "core": 2})
    write_dataset_json(root, {"name": "Tiny", "channel_names": {"0": "A", "1": "B"}, "labels": labels,
                              "file_ending": ".nii.gz", "numTraining": cases})
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "Dataset001_Tiny")


@pytest.fixture(scope="session")
def tiny_region_dataset(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_regions") / "Dataset002_TinyRegions", regions=True)


def tiny_config(dataset_dir: Path, **overrides):
    """A config that trains in seconds on the tiny dataset."""
    from medgap.config import load_config

    base = {
        "data.dataset_dir": str(dataset_dir), "data.patch_size": [16, 16, 16], "data.labelled_batch_size": 2,
        "data.num_workers": 0, "data.val_fraction": 0.2, "data.test_fraction": 0.2,
        "model.features": [8, 16, 32], "trainer.max_steps": 6, "trainer.val_every": 3,
        "trainer.checkpoint_every": 3, "trainer.log_every": 1, "trainer.progress": False,
        "optim.lr": 0.01, "inference.sw_batch_size": 4,
    }
    base.update(overrides)
    return load_config(None, [f"{key}={value}" for key, value in base.items()])


def train_interrupted_then_resumed(config, run_dir: Path, monkeypatch, method_class, crash_at_step: int = 4) -> int:
    """Train ``config`` into ``run_dir``, crash in ``method_class.on_after_optimizer_step`` at ``crash_at_step``,
    then resume to the end. Returns the step of the checkpoint the crash left (what the resume started from)."""
    from medgap.training.checkpoint import load_checkpoint
    from medgap.training.loop import train

    class Interrupt(Exception):
        pass

    original = method_class.on_after_optimizer_step

    def crash(self, step):
        if step == crash_at_step:
            raise Interrupt()
        original(self, step)

    monkeypatch.setattr(method_class, "on_after_optimizer_step", crash)
    with pytest.raises(Interrupt):
        train(config, run_dir)
    interrupted_at = load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"]
    monkeypatch.setattr(method_class, "on_after_optimizer_step", original)
    train(config, run_dir, resume=True)
    return interrupted_at
