"""Supervised segmentation: a U-Net trained with Dice + CE (labels) or Dice + BCE (BraTS regions).

Every paper's lower bound (labelled cases only) and upper bound (all labels). Missing modalities are zero-filled
at the input, which the data layer already does; unlabelled samples in a batch are ignored.
"""

from __future__ import annotations

import torch

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.losses import DeepSupervisionLoss, SegmentationLoss, deep_supervision_weights
from medgap.methods.base import SegmentationMethod, StepOutput
from medgap.methods.options import SupervisedOptions
from medgap.nets import build_net


Config = SupervisedOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class Supervised(SegmentationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        dims = len(config.data.patch_size)
        # nnU-Net's deep supervision: a head on every lower decoder level it weights (training only; the
        # checkpoint's main path and prediction are unchanged)
        levels = len(config.model.features) - 1
        heads = sum(w > 0 for w in deep_supervision_weights(levels)) - 1 if config.method.deep_supervision else 0
        self.net = build_net(config.model, dims, spec.num_channels, self.targets.num_outputs, heads)
        self.loss = SegmentationLoss(self.output, config.method.dice_weight, config.method.ce_weight,
                                     config.method.region_bce)
        self.deep_supervision = DeepSupervisionLoss(self.loss, levels) if config.method.deep_supervision else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        labelled = batch["labelled"]
        image, label = batch["image"][labelled], batch["label"][labelled]
        if self.deep_supervision is not None:
            loss = self.deep_supervision(self.net.forward_deep_supervision(image), label, self.targets.targets)
        else:
            loss = self.loss(self.net(image), self.targets.targets(label))
        return StepOutput(loss, {"loss_sup": float(loss.detach())})

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def build(config: ExperimentConfig, spec: DatasetSpec) -> Supervised:
    return Supervised(config, spec)
