"""SimCLR (Chen et al., ICML 2020): the image-only self-supervised baseline of ContIG's tables.

Two random views of each image (random rotation ±20°, scale/crop, flip, colour jitter, noise; drawn in torch from a
generator seeded by the step, so a resumed run sees the same views) → the same ResNet encoder as ContIG →
projection head → NT-Xent (τ 0.1). The encoder's weights have the same names as ContIG's (``encoder.*``), so the
downstream classifier loads either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from medgap.config import ExperimentConfig, MethodConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.data.views import random_views
from medgap.errors import ConfigError
from medgap.losses.contrastive import nt_xent
from medgap.methods.base import StepOutput
from medgap.nets.encoders import ProjectionHead, ResNetEncoder


@dataclass
class Config(MethodConfig):
    name: str = "simclr"
    temperature: float = 0.1
    backbone_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    backbone_blocks: int = 1
    input_scale: float = 1 / 255  # 8-bit photographs, data.normalisation: none
    stem_stride: int = 1  # 2 = quarter of the compute (CPU-scale experiments)
    projection_hidden: int = 256
    projection_dim: int = 128
    rotation_degrees: float = 20.0
    min_scale: float = 0.6
    colour_jitter: float = 0.3
    val_batch_size: int = 64


class SimCLR(nn.Module):
    task = "pretraining"

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__()
        self.options: Config = config.method
        self.seed = config.trainer.seed
        self.encoder = ResNetEncoder(spec.num_channels, tuple(self.options.backbone_widths), self.options.backbone_blocks,
                                     self.options.input_scale,
                                     self.options.stem_stride)
        self.head = ProjectionHead(self.encoder.out_features, self.options.projection_hidden, self.options.projection_dim)

    def loss(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        o = self.options
        first = random_views(image, generator, o.rotation_degrees, o.min_scale, o.colour_jitter)
        second = random_views(image, generator, o.rotation_degrees, o.min_scale, o.colour_jitter)
        both = self.head(self.encoder(torch.cat([first, second])))  # one BatchNorm pass over both views
        return nt_xent(*both.chunk(2), o.temperature)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        loss = self.loss(batch["image"], self.seed * 1_000_003 + step)
        return StepOutput(loss, {"loss_nt_xent": float(loss.detach())})

    @torch.no_grad()
    def validation_scores(self, data, config: ExperimentConfig, device=None, split: str = "val") -> dict[str, float]:
        """Negated NT-Xent over the split in fixed chunks with fixed views (higher is better)."""
        from medgap.data.classification import whole_images

        self.eval()
        cases, size, total, count = data.split_cases(split), self.options.val_batch_size, 0.0, 0
        for index, start in enumerate(range(0, len(cases), size)):
            chunk = cases[start:start + size]
            if len(chunk) < 2:
                continue
            image, _ = whole_images(chunk, config.data.patch_size)
            total += float(self.loss(image.to(device) if device is not None else image, index)) * len(chunk)
            count += len(chunk)
        return {"neg_nt_xent": -total / count if count else float("nan")}

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        raise ConfigError("simclr is a pretraining method: fine-tune it with method.name=image_classifier")

    def on_after_optimizer_step(self, step: int) -> None:
        """Nothing to update."""


def build(config: ExperimentConfig, spec: DatasetSpec) -> SimCLR:
    return SimCLR(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("views", "rotation ±20°, zoom-in crop to ≥ 60 % of the side, flip, brightness/contrast jitter, "
              "Gaussian noise", "SimCLR paper: random resized crop (8–100 % of the area), strong colour "
              "distortion with greyscale, Gaussian blur", "fundus images: a crop of 8 % can lose the disc and "
              "every vessel, colour carries the pigmentation trait", None, "SimCLR paper (Chen et al., ICML 2020); "
              "ContIG paper (image-only SSL baselines)"),
    Deviation("encoder and head", "ContIG's small ResNet-style CNN, projection 256 → 128",
              "ContIG paper: ResNet-50 at 448 px; SimCLR paper: 2048-d hidden layer", "CPU scale; the same "
              "encoder as ContIG so downstream rows differ only in pretraining", {"method.projection_hidden": 2048},
              "paper; official code (HealthML/ContIG)"),
]
