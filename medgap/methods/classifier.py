"""Downstream image classifier on a (pre)trained ResNet encoder: fine-tuning or linear probing (ContIG Sec. 4).

``method.pretrained: RUN_DIR`` loads the ``encoder.*`` weights of a ContIG/SimCLR run (``checkpoints/best.pt`` or
``last.pt``, ``weights_only=True``, strict key/shape check); ``null`` = random init. ``linear_probe: true`` freezes
the encoder (BatchNorm statistics included) and trains only the linear head, behind a parameter-free BatchNorm of
the features (``probe_feature_norm``, as MAE's linear probe). A *random-init* encoder's BatchNorm statistics were
never trained (mean 0, variance 1): the network is then positively homogeneous and its eval-mode features are
mostly the image's brightness along one direction — they vary by ~0.001 between images (0.15 with batch
statistics) and by 10× more under the loader's ±10 % intensity augmentation — so the probe learnt brightness and
scored kappa 0.000 at every fraction. Its statistics are therefore recomputed on the first
``calibration_steps`` training batches (no gradients; ``calibrate_random_batchnorm``) before the encoder is frozen.
Label fractions come from ``data.labelled_ratio``.

Ordinal grades (``ordinal: true``, the paper's APTOS setting): K−1 cumulative logits ℓ_k for P(y > k), trained with
BCE against [y > k], biases initialised to ordered thresholds (every grade equally likely at zero features); class
probabilities p(y = k) = P(y > k−1) − P(y > k) (clamped), returned as log-probabilities so the softmax-based
evaluation gets them back unchanged. Scores: quadratic-weighted Cohen's kappa and accuracy over
the whole split (not averaged per batch); kappa picks ``best.pt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.errors import CheckpointError, ConfigError
from medgap.methods.base import ClassificationMethod, StepOutput
from medgap.methods.options import ImageClassifierOptions
from medgap.nets.encoders import ResNetEncoder


Config = ImageClassifierOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


def load_pretrained_encoder(encoder: nn.Module, run_dir: str, checkpoint: str = "last") -> None:
    """Copy ``encoder.*`` weights of a pretraining run into ``encoder`` (strict: same keys and shapes)."""
    from medgap.training.checkpoint import load_checkpoint, load_model_state

    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    state = load_checkpoint(path)["model"]
    encoder_state = {key[len("encoder."):]: value for key, value in state.items() if key.startswith("encoder.")}
    if not encoder_state:
        raise CheckpointError(f"{path}: no encoder.* weights (not a contig/simclr run?)")
    load_model_state(encoder, encoder_state, path)


class ImageClassifier(ClassificationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        options: Config = config.method
        self.options = options
        self.encoder = ResNetEncoder(spec.num_channels, tuple(options.backbone_widths), options.backbone_blocks,
                                     options.input_scale,
                                     options.stem_stride)
        if options.pretrained:
            load_pretrained_encoder(self.encoder, options.pretrained, options.pretrained_checkpoint)
        if options.linear_probe:
            self.encoder.requires_grad_(False)
        self.calibrating = options.linear_probe and not options.pretrained and options.calibrate_random_batchnorm
        if self.calibrating:
            for module in self.encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.reset_running_stats()
                    module.momentum = None  # cumulative average over the calibration batches
        classes = len(spec.classes)
        # Trained statistics of the frozen features (train mode: batch statistics, eval: running ones).
        probe_norm = options.linear_probe and options.probe_feature_norm
        self.feature_norm = nn.BatchNorm1d(self.encoder.out_features, affine=False) if probe_norm else nn.Identity()
        self.head = nn.Linear(self.encoder.out_features, classes - 1 if options.ordinal else classes)
        if options.ordinal:
            # Ordered thresholds P(y > k) = 1 − (k + 1)/K at zero features: every grade equally likely, and one
            # feature direction moves a case across the grades. With PyTorch's near-zero bias init all K−1
            # cumulative logits start equal, so only grades 0 and K−1 get probability mass and a short fine-tuning
            # run never learns the middle grades.
            with torch.no_grad():
                self.head.bias.copy_(torch.logit(1 - torch.arange(1, classes) / classes))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.options.linear_probe:
            self.encoder.eval()  # frozen encoder: BatchNorm keeps the pretrained statistics
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_norm(self.encoder(image)))

    def training_step(self, batch: dict, step: int) -> StepOutput:
        labelled = batch["labelled"]
        image, label = batch["image"][labelled], batch["label"][labelled]
        if self.calibrating and step < self.options.calibration_steps:
            with torch.no_grad():  # batch statistics into the running ones; the encoder stays frozen otherwise
                self.encoder.train()
                self.encoder(batch["image"])
                self.encoder.eval()
        outputs = self(image)
        if self.options.ordinal:
            thresholds = torch.arange(outputs.shape[1], device=label.device)
            loss = F.binary_cross_entropy_with_logits(outputs, (label[:, None] > thresholds).float())
        else:
            loss = F.cross_entropy(outputs, label)
        return StepOutput(loss, {"loss_sup": float(loss.detach())})

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        outputs = self(image)
        if not self.options.ordinal:
            return outputs
        exceed = torch.sigmoid(outputs)  # P(y > k), k = 0..K-2
        ones, zeros = torch.ones_like(exceed[:, :1]), torch.zeros_like(exceed[:, :1])
        upper = torch.cat([ones, exceed], 1)
        lower = torch.cat([exceed, zeros], 1)
        return torch.log((upper - lower).clamp_min(1e-6))

    @torch.no_grad()
    def validation_scores(self, data, config: ExperimentConfig, device=None, split: str = "val") -> dict[str, float]:
        """Quadratic-weighted kappa and accuracy over every labelled case of ``split`` at once."""
        from medgap.data.classification import whole_image_batches

        self.eval()
        cases = [case for case in data.split_cases(split) if case.case_id in data.class_labels]
        if not cases:
            return {"kappa": float("nan"), "accuracy": float("nan")}
        predicted = []
        for _, image, availability in whole_image_batches(cases, config.data.patch_size, 128):
            if device is not None:
                image, availability = image.to(device), availability.to(device)
            predicted.append(self.predict_logits(image, availability).argmax(1).cpu().numpy())
        return grading_scores(np.array([data.class_labels[case.case_id] for case in cases]),
                              np.concatenate(predicted))


def grading_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Quadratic-weighted Cohen's kappa and accuracy of predicted grades ``(N,)`` against ``truth (N,)`` (kappa 0
    when a single grade occurs in both: it is undefined)."""
    from sklearn.metrics import cohen_kappa_score

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    kappa = cohen_kappa_score(truth, predicted, weights="quadratic") if len(set(truth) | set(predicted)) > 1 else 0.0
    return {"kappa": float(kappa), "accuracy": float((predicted == truth).mean())}


def build(config: ExperimentConfig, spec: DatasetSpec) -> ImageClassifier:
    if spec.task != "classification":
        raise ConfigError(f"image_classifier: {config.data.dataset_dir} is not a classification dataset")
    return ImageClassifier(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("ordinal head initialisation", "the K−1 cumulative-logit biases start at ordered thresholds "
              "(every grade equally likely at zero features)", "paper: cumulative multi-label BCE, "
              "initialisation not stated (a plain linear layer's near-zero biases)", "with equal biases only "
              "grades 0 and K−1 get probability and short runs never predict the middle grades", None,
              "paper; official code (HealthML/ContIG)"),
    Deviation("pretrained checkpoint", "the encoder after the last pretraining step (`last.pt`)", "paper: a "
              "fixed ~100-epoch schedule (its last step)", "the lowest validation contrastive loss comes early "
              "(ContIG overfits 600 people's genetics) and fine-tuned to validation kappa 0.25 vs 0.56",
              None, "paper; docs/methods/contig.md"),
    Deviation("random-init linear probe", "BatchNorm statistics averaged over the first training batches without "
              "gradients before probing a never-trained encoder", "no equivalent", "uncalibrated statistics made the "
              "frozen features mostly image brightness (probe kappa 0.000)", None,
              "issue 19 measurement; official code (HealthML/ContIG)"),
]
