"""The contract between a method and the rest of medgap: one base class per **kind** of method.

A method is an ``nn.Module`` built by its module's ``build(config, spec)`` and derived from exactly one kind:

- ``"segmentation"`` (:class:`SegmentationMethod`): label maps; ``medgap evaluate``/``predict`` segment with
  ``predict_logits``;
- ``"classification"`` (:class:`ClassificationMethod`): one class per whole image (``dataset.json``
  ``"task": "classification"``); ``medgap evaluate`` writes an accuracy table;
- ``"pretraining"`` (:class:`PretrainingMethod`): representations learnt without the task's labels; another
  method (its ``downstream``) reuses the weights.

The kind is data (``method.kind``), and code that must treat kinds differently (evaluation) asks
``isinstance(method, SegmentationMethod)`` etc., never ``hasattr`` or strings. Every method provides:

- ``training_step(batch, step) -> StepOutput``: the loss (and scalars to log) for one batch; no optimiser calls.
  ``batch`` holds ``image (B, C, *P)``, ``label``, ``availability (B, C)`` bool, ``labelled (B,)`` bool,
  ``case`` (ids) and, where the dataset has them, ``text`` (reports).
- ``validation_scores(data, config, device, split="val") -> dict[str, float]``: scores of the ``split`` cases of
  ``data`` (a :class:`~medgap.data.pipeline.PreparedData`). The training loop calls it (after ``eval()``, under
  ``torch.inference_mode``) every ``trainer.val_every`` steps and logs every entry as ``val_<name>``; the **first
  entry selects** ``checkpoints/best.pt`` (**higher is better**; negate a loss) and names the summary's
  ``best_val_<name>``. Segmentation and classification kinds supply a default (mean Dice; accuracy).
- ``on_after_optimizer_step(step)``: a hook after each optimiser step (EMA teachers); default none.
- ``predict_logits(image (B, C, *S), availability (B, C)) -> logits``: ``(B, K, *S)`` for segmentation,
  ``(B, K)`` over ``spec.classes`` for classification; a pretraining method refuses with a one-line error naming
  the method that uses its weights.
- ``output``: ``"softmax"`` or ``"sigmoid"``, how logits become probabilities; segmentation methods also have
  ``targets`` (:class:`SegmentationTargets`), classification methods ``spec``.

Everything else (devices, precision, optimiser, schedule, checkpoints, resume, logging) is the loop's job; the loop
knows no kind. Checkpoints hold ``method.state_dict()``, so renaming an attribute breaks old checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from medgap.data.dataset_json import DatasetSpec
from medgap.data.preprocess import index_to_label
from medgap.errors import ConfigError
from medgap.inference.classify import predict_classes
from medgap.inference.predict import predict_case
from medgap.metrics import dice, label_to_masks


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


class Method(nn.Module, ABC):
    """What every kind shares; derive from a kind below, not from this class."""

    kind: ClassVar[str]
    output: str = "softmax"

    def training_step(self, batch: dict, step: int) -> StepOutput:
        """The loss of one batch (no optimiser calls); every trainable method defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not train")

    @abstractmethod
    def validation_scores(self, data, config, device=None, split: str = "val") -> dict[str, float]:
        """Scores of the ``split`` cases; the first entry selects ``best.pt`` (higher is better)."""

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on_after_optimizer_step(self, step: int) -> None:
        """Hook after each optimiser step (EMA updates); default none."""


class SegmentationMethod(Method):
    """Base for segmentation methods: holds the targets mapping; validation is the mean Dice over structures."""

    kind = "segmentation"

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self.targets = SegmentationTargets(spec)
        self.output = self.targets.output

    # True where predict_logits_subsets shares work between the subsets (ShaSpec encodes each modality once): the
    # subset evaluation then predicts all subsets in one sliding-window pass. Otherwise one pass per subset is as
    # fast (stitching M times the channels costs what the shared pass saves in calls).
    shares_subset_work: ClassVar[bool] = False

    def predict_logits_subsets(self, image: torch.Tensor, availabilities: torch.Tensor) -> list[torch.Tensor]:
        """Logits of the same windows ``image (B, C, *S)`` for each modality subset ``availabilities (M, C)`` bool:
        a list of ``M`` ``(B, K, *S)``, each what ``predict_logits`` gives on the image with the subset's other
        channels zeroed (a missing-modality evaluation asks for all 2^C − 1). A method whose per-modality features
        do not depend on the other modalities overrides it to encode each modality once (ShaSpec)."""
        logits = []
        for subset in availabilities:
            present = subset.expand(image.shape[0], -1)
            kept = present.reshape(*present.shape, *[1] * (image.ndim - 2))
            logits.append(self.predict_logits(torch.where(kept, image, torch.zeros((), dtype=image.dtype)), present))
        return logits

    def validation_scores(self, data, config, device=None, split: str = "val") -> dict[str, float]:
        """Mean Dice per structure over the ``split`` cases (whole volumes, sliding window; at most
        ``trainer.val_max_cases``): ``{"dice": mean over structures, "dice_<structure>": ...}``."""
        cases = data.split_cases(split)[: config.trainer.val_max_cases or None]
        spec = data.spec
        per_structure: dict[str, list[float]] = {name: [] for name in spec.output_names}
        for case in cases:
            prediction = predict_case(self, case, config, device=device)
            truth = index_to_label(np.asarray(case.label()), spec)
            predicted_masks = label_to_masks(prediction, spec.regions, spec.labels)
            true_masks = label_to_masks(truth, spec.regions, spec.labels)
            for name in per_structure:
                per_structure[name].append(dice(predicted_masks[name], true_masks[name]))
        means = {name: float(np.mean(values)) if values else float("nan") for name, values in per_structure.items()}
        return {"dice": float(np.nanmean(list(means.values()))) if cases else float("nan"),
                **{f"dice_{name}": value for name, value in means.items()}}


class ClassificationMethod(Method):
    """Base for whole-image classification methods (``dataset.json`` ``"task": "classification"``).

    ``predict_logits(image (B, C, *S), availability (B, C)) -> (B, K)`` over ``spec.classes``; validated by
    accuracy, and ``medgap evaluate`` writes an accuracy table.
    """

    kind = "classification"

    def __init__(self, spec: DatasetSpec):
        super().__init__()
        self.spec = spec

    def validation_scores(self, data, config, device=None, split: str = "val") -> dict[str, float]:
        """``{"accuracy": ...}`` over the labelled ``split`` cases (at most ``trainer.val_max_cases``)."""
        cases = [case for case in data.split_cases(split) if case.case_id in data.class_labels]
        cases = cases[: config.trainer.val_max_cases or None]
        if not cases:
            return {"accuracy": float("nan")}
        predicted = predict_classes(self, cases, config, device)
        truth = np.array([data.class_labels[case.case_id] for case in cases])
        return {"accuracy": float((predicted == truth).mean())}


class PretrainingMethod(Method):
    """Base for methods that learn representations without the task's labels (ContIG, SimCLR, AMVLM step 1).

    ``validation_scores`` is the method's own label-free score (e.g. a negated contrastive loss, retrieval
    accuracy). ``downstream`` names the method that reuses the weights; ``predict_logits`` refuses with it.
    """

    kind = "pretraining"
    downstream: ClassVar[str] = ""

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"{type(self).__name__} is a pretraining method (no predictions of its own): "
                          f"{self.downstream}")
