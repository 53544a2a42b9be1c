"""Zero-filling baseline: a multi-channel U-Net trained with the same random modality dropping as ShaSpec.

The simplest missing-modality baseline (ShaSpec Table 1's lower reference): missing inputs are zeros, the network
has to cope. Dropping uses :mod:`medgap.methods.modality_dropout`, the same code ShaSpec uses, so the two see
the same subsets at the same steps for the same seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.methods import supervised
from medgap.methods.base import ClassificationMethod, StepOutput
from medgap.methods.modality_dropout import ModalityDropper, apply_availability
from medgap.methods.options import ZeroFillingOptions
from medgap.nets import UNetEncoder
from medgap.nets.heads import ClassificationHead, pool_features, pooled_width


Config = ZeroFillingOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class ZeroFilling(supervised.Supervised):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(config, spec)
        self.dropper = ModalityDropper(config.method, spec.channel_names, config.trainer.seed)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        availability = self.dropper(batch["availability"], step, batch.get("case"))
        batch = {**batch, "availability": availability, "image": apply_availability(batch["image"], availability)}
        output = super().training_step(batch, step)
        output.logs["modalities_kept"] = float(availability.float().sum(1).mean())
        return output


class ZeroFillingClassifier(ClassificationMethod):
    """Classification counterpart: one encoder over all (zero-filled) channels, its bottleneck map made a vector
    (``head_pooling``; the digits-av config flattens it, since mean pooling after InstanceNorm erases it),
    FC–dropout–FC."""

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        model, dims = config.model, len(config.data.patch_size)
        self.encoder = UNetEncoder(dims, spec.num_channels, model.features, model.norm, model.dropout)
        self.pooling = config.method.head_pooling
        width = pooled_width(model.features[-1], config.data.patch_size, len(model.features), self.pooling)
        self.head = ClassificationHead(width, config.method.head_hidden, len(spec.classes), config.method.head_dropout)
        self.dropper = ModalityDropper(config.method, spec.channel_names, config.trainer.seed)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(pool_features(self.encoder(image)[-1], self.pooling))

    def training_step(self, batch: dict, step: int) -> StepOutput:
        availability = self.dropper(batch["availability"], step, batch.get("case"))
        labelled = batch["labelled"]
        logits = self(apply_availability(batch["image"], availability)[labelled])
        loss = F.cross_entropy(logits, batch["label"][labelled])
        return StepOutput(loss, {"loss_sup": float(loss.detach()),
                                 "modalities_kept": float(availability.float().sum(1).mean())})

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self(apply_availability(image, availability))


def build(config: ExperimentConfig, spec: DatasetSpec):
    if spec.task == "classification":
        return ZeroFillingClassifier(config, spec)
    return ZeroFilling(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("baseline of the missing-modality tables", "a zero-filling U-Net (segmentation) or one CNN over the "
              "zero-filled channels with ShaSpec's FC–dropout–FC head (classification), trained with ShaSpec's "
              "modality dropping", "paper: HeMIS, U-HVED, RobustSeg, RFNet, mmFormer (BraTS) and SMIL (AV-MNIST)",
              "the simplest baseline, sharing every piece with ShaSpec but the shared-specific model; the paper's "
              "baselines are not implemented", None, "paper; official code (billhhh/ShaSpec)"),
]
