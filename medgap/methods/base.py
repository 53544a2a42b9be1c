"""What every method provides to the generic training loop and to inference.

A method is an ``nn.Module`` with:
- ``training_step(batch, step) -> StepOutput``: the loss (and scalars to log) for one batch; no optimiser calls.
- ``predict_logits(image, availability) -> logits``: network outputs for inference/validation.
- ``output``: ``"softmax"`` or ``"sigmoid"``, how logits become probabilities.
- optionally ``on_after_optimizer_step(step)`` (e.g. EMA teacher update).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from medgap.data.dataset_json import DatasetSpec


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class SegmentationTargets:
    """How a dataset's labels become network targets and how predictions become label maps.

    Plain labels: softmax over the ``L`` label values (target = label index). Regions (BraTS WT/TC/ET, from
    ``regions`` or nnU-Net list-valued labels): one sigmoid output per region; a prediction becomes a label map by
    writing ``regions_class_order[r]`` where region ``r`` is predicted, later regions overwriting earlier ones.
    """

    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self.values = np.asarray(spec.label_values)
        if spec.regions:
            self.output = "sigmoid"
            # membership[r, i]: label index i belongs to region r
            self.membership = torch.tensor(
                [[value in region for value in spec.label_values] for region in spec.regions.values()])
            self.num_outputs = len(spec.regions)
        else:
            self.output = "softmax"
            self.num_outputs = len(spec.label_values)

    def targets(self, label_index: torch.Tensor) -> torch.Tensor:
        """Label indices ``(B, *S)`` → class indices ``(B, *S)`` or region masks ``(B, R, *S)`` float."""
        if self.output == "softmax":
            return label_index
        membership = self.membership.to(label_index.device)
        return membership[:, label_index].movedim(0, 1).float()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, 1) if self.output == "softmax" else torch.sigmoid(logits)

    def to_label_map(self, probabilities: torch.Tensor | np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """``(K, *S)`` probabilities → label map with the dataset's label values (int16)."""
        probabilities = torch.as_tensor(probabilities)
        if self.output == "softmax":
            return self.values[probabilities.argmax(0).numpy()].astype(np.int16)
        label = np.zeros(probabilities.shape[1:], dtype=np.int16)
        for region, value in enumerate(self.spec.regions_class_order):
            label[(probabilities[region] > threshold).numpy()] = value
        return label


class SegmentationMethod(nn.Module):
    """Base for segmentation methods: holds the targets mapping and the default inference entry points."""

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self.targets = SegmentationTargets(spec)
        self.output = self.targets.output

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_after_optimizer_step(self, step: int) -> None:
        """Hook after each optimiser step (EMA updates); default none."""


class ClassificationMethod(nn.Module):
    """Base for whole-image classification methods (``dataset.json`` ``"task": "classification"``).

    ``predict_logits(image (B, C, *S), availability (B, C)) -> (B, K)`` over ``spec.classes``; the loop validates
    these methods by accuracy and ``medgap evaluate`` writes an accuracy table.
    """

    task = "classification"
    output = "softmax"

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self.spec = spec

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_after_optimizer_step(self, step: int) -> None:
        """Hook after each optimiser step; default none."""
