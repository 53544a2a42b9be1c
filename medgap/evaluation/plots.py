"""Plots saved as PNG (matplotlib, Agg backend): prediction overlays (training curves: :mod:`medgap.training.curves`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# the Agg backend, the atomic PNG writer, and the training curves (re-exported: the loop writes them)
from medgap.training.curves import _save, plot_training_curves, plt  # noqa: F401
from medgap.phases import timed


def best_slice(label: np.ndarray, axis: int = -1) -> int:
    """Index of the slice (along ``axis``) with the most foreground, or the middle one if none."""
    label = np.moveaxis(label, axis, -1)
    counts = (label > 0).reshape(-1, label.shape[-1]).sum(0)
    return int(np.argmax(counts)) if counts.any() else label.shape[-1] // 2


@timed('plots')
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
