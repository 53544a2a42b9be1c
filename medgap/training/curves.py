"""The training-curve plot every run writes (``plots/training_curves.png``), and the PNG writer of all plots
(matplotlib, Agg backend, atomic)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medgap.atomic import atomic_path  # noqa: E402
from medgap.phases import timed  # noqa: E402
from medgap.training.run_folder import read_jsonl  # noqa: E402


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


@timed('plots')
def plot_training_curves(metrics_jsonl: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Training loss (and its components) and every validation score against the step."""
    figure = training_curves_figure(read_jsonl(Path(metrics_jsonl)))
    return _save(figure, path) if figure is not None else None


def training_curves_figure(rows: list[dict]):
    """The two panels of ``plot_training_curves`` from metrics.jsonl rows; None when there is nothing to plot.

    The right panel shows whatever the method validates on (Dice or accuracy of a segmenter or classifier, retrieval
    and the negative contrastive loss of a pretraining run), so no run gets an empty panel."""
    train = [row for row in rows if "loss" in row]
    val_keys = sorted({key for row in rows for key, value in row.items()
                       if key.startswith("val_") and isinstance(value, (int, float)) and not isinstance(value, bool)})
    if not train and not val_keys:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for row in train for k in row if k.startswith("loss")}):
        points = [(row["step"], row[key]) for row in train if key in row]
        left.plot(*zip(*points), label=key)
    left.set_xlabel("step"), left.set_ylabel("loss"), left.set_title("training loss")
    if train:
        left.legend(fontsize=8)
    values = []
    for key in val_keys:
        points = [(row["step"], row[key]) for row in rows if key in row and "step" in row]
        values += [value for _, value in points]
        right.plot(*zip(*points), marker="o", label=key.removeprefix("val_"))
    right.set_xlabel("step"), right.set_ylabel("score"), right.set_title("validation")
    if values and all(0 <= value <= 1 for value in values):  # Dice, accuracy, retrieval: the whole scale
        right.set_ylim(0, 1)
    if val_keys:
        right.legend(fontsize=8)
    return figure
