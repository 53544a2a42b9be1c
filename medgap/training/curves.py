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
