"""Plots saved as PNG (matplotlib, Agg backend): training curves and prediction overlays."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medgap.atomic import atomic_path  # noqa: E402
from medgap.training.run_folder import read_jsonl  # noqa: E402


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


def plot_training_curves(metrics_jsonl: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Training loss (and its components) and validation Dice against the step."""
    rows = read_jsonl(Path(metrics_jsonl))
    train = [row for row in rows if "loss" in row]
    val = [row for row in rows if "val_dice" in row or "val_accuracy" in row]
    if not train and not val:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for row in train for k in row if k.startswith("loss")}):
        points = [(row["step"], row[key]) for row in train if key in row]
        left.plot(*zip(*points), label=key)
    left.set_xlabel("step"), left.set_ylabel("loss"), left.set_title("training loss")
    if train:
        left.legend(fontsize=8)
    for key in sorted({k for row in val for k in row if k.startswith(("val_dice", "val_accuracy"))}):
        points = [(row["step"], row[key]) for row in val if key in row]
        right.plot(*zip(*points), marker="o", label=key.removeprefix("val_"))
    right.set_xlabel("step"), right.set_ylabel("Dice"), right.set_title("validation Dice"), right.set_ylim(0, 1)
    if val:
        right.legend(fontsize=8)
    return _save(figure, path)


def best_slice(label: np.ndarray, axis: int = -1) -> int:
    """Index of the slice (along ``axis``) with the most foreground, or the middle one if none."""
    label = np.moveaxis(label, axis, -1)
    counts = (label > 0).reshape(-1, label.shape[-1]).sum(0)
    return int(np.argmax(counts)) if counts.any() else label.shape[-1] // 2


def plot_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, path: str | os.PathLike, *,
                 title: str = "", label_names: dict[int, str] | None = None) -> Path:
    """Image slice with ground truth and prediction side by side; 3-D inputs use the slice with most foreground.

    Args:
        image: ``(*S)`` one channel; truth, prediction: label maps ``(*S)``.
    """
    if image.ndim == 3:
        index = best_slice(truth)
        image, truth, prediction = image[..., index], truth[..., index], prediction[..., index]
        title = f"{title} (slice {index})".strip()
    values = sorted(set(np.unique(truth)) | set(np.unique(prediction)) - {0})
    values = [v for v in values if v != 0]
    colours = plt.get_cmap("tab10")
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.3))
    for axis, (name, label) in zip(axes, (("image", None), ("ground truth", truth), ("prediction", prediction))):
        axis.imshow(image.T, cmap="gray", origin="lower")
        if label is not None:
            overlay = np.zeros((*label.T.shape, 4))
            for i, value in enumerate(values):
                overlay[label.T == value] = (*colours(i % 10)[:3], 0.45)
            axis.imshow(overlay, origin="lower")
        axis.set_title(name), axis.axis("off")
    if values:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 10)) for i in range(len(values))]
        names = [(label_names or {}).get(int(v), str(int(v))) for v in values]
        figure.legend(handles, names, loc="lower center", ncol=len(values), fontsize=9)
    figure.suptitle(title)
    return _save(figure, path)
