"""Supervised segmentation: a U-Net trained with Dice + CE (labels) or Dice + BCE (BraTS regions).

Every paper's lower bound (labelled cases only) and upper bound (all labels). Missing modalities are zero-filled
at the input, which the data layer already does; unlabelled samples in a batch are ignored.
"""

from __future__ import annotations

import torch

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.losses import SegmentationLoss
from medgap.methods.base import SegmentationMethod, StepOutput
from medgap.methods.options import SupervisedOptions
from medgap.nets import build_net


Config = SupervisedOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class Supervised(SegmentationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        dims = len(config.data.patch_size)
        self.net = build_net(config.model, dims, spec.num_channels, self.targets.num_outputs)
        self.loss = SegmentationLoss(self.output, config.method.dice_weight, config.method.ce_weight,
                                     config.method.region_bce)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        labelled = batch["labelled"]
        image, label = batch["image"][labelled], batch["label"][labelled]
        logits = self.net(image)
        loss = self.loss(logits, self.targets.targets(label))
        return StepOutput(loss, {"loss_sup": float(loss.detach())})

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def build(config: ExperimentConfig, spec: DatasetSpec) -> Supervised:
    return Supervised(config, spec)
