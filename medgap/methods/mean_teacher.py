"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017) for semi-supervised segmentation.

A student network is trained on the labelled samples with the supervised loss and, on every sample (labelled
and unlabelled), to agree with an EMA teacher that sees a noisy copy of the same image:

    L = L_sup(student(x_l), y_l) + λ(t) · mean ‖softmax(student(x)) − softmax(teacher(x + ξ))‖²

with ξ = clamp(N(0, σ²), −2σ, 2σ) (input noise as in the segmentation adaptations of UA-MT/SSL4MIS) and λ(t)
the sigmoid ramp-up (``training/ramps.py``). The teacher follows the student by EMA after every optimiser step
(``training/ema.py``). SS-Net's papers compare against this; AMVLM reuses the same EMA and ramp.

Normalisation: the student sees labelled and unlabelled images in one batch (as the reference code). With
BatchNorm, the batch statistics couple the two halves while only the labelled half carries the supervised loss;
on a small unaugmented labelled set (AMVLM's ``chest-xray-text`` at 25 %) the student then memorised the labelled
images and called most of every other image foreground, even with λ = 0 (``docs/methods/amvlm.md``). Instance
norm (the U-Net default) has no such coupling.
"""

from __future__ import annotations

import torch

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.losses import SegmentationLoss
from medgap.methods.base import SegmentationMethod, StepOutput
from medgap.methods.options import MeanTeacherOptions
from medgap.nets import build_net
from medgap.training.ema import make_teacher, update_teacher
from medgap.training.ramps import consistency_weight


Config = MeanTeacherOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class MeanTeacher(SegmentationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        self.config = config.method
        dims = len(config.data.patch_size)
        self.net = build_net(config.model, dims, spec.num_channels, self.targets.num_outputs)
        self.teacher = make_teacher(self.net)  # a submodule: saved in checkpoints, resumed exactly
        self.loss = SegmentationLoss(self.output, self.config.dice_weight, self.config.ce_weight)

    def train(self, mode: bool = True):
        """Train the student; the teacher stays in eval mode (its BN uses the EMA running statistics)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch: dict, step: int) -> StepOutput:
        image, labelled = batch["image"], batch["labelled"]
        logits = self.net(image)                                              # (B, K, *S)
        loss_sup = self.loss(logits[labelled], self.targets.targets(batch["label"][labelled]))
        weight = consistency_weight(step, self.config.consistency, self.config.consistency_rampup,
                                    self.config.rampup_unit)
        with torch.no_grad():
            sigma = self.config.noise_std
            noise = torch.clamp(torch.randn_like(image) * sigma, -2 * sigma, 2 * sigma)
            teacher_probabilities = self.targets.probabilities(self.teacher(image + noise))
        student_probabilities = self.targets.probabilities(logits)
        loss_consistency = torch.mean((student_probabilities - teacher_probabilities) ** 2)
        loss = loss_sup + weight * loss_consistency
        return StepOutput(loss, {"loss_sup": float(loss_sup.detach()),
                                 "loss_consistency": float(loss_consistency.detach()), "lambda": weight})

    def on_after_optimizer_step(self, step: int) -> None:
        update_teacher(self.teacher, self.net, self.config.ema_decay, step)

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return (self.teacher if self.config.predict_with == "teacher" else self.net)(image)


def build(config: ExperimentConfig, spec: DatasetSpec) -> MeanTeacher:
    return MeanTeacher(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("consistency term", "MSE of the softmaxes on labelled and unlabelled images", "SSL4MIS: on the "
              "unlabelled half only", "not yet aligned", None, "official code (ycwu1997/SS-Net), read 2026-12-02"),
    Deviation("teacher mode", "eval mode (no dropout, BatchNorm running statistics)", "SSL4MIS: train mode, "
              "with input noise and dropout in the network", "not yet aligned; our configs use no dropout",
              None, "official code (ycwu1997/SS-Net), read 2026-12-02"),
]
