"""SimCLR (Chen et al., ICML 2020): the image-only self-supervised baseline of ContIG's tables.

Two random views of each image (random rotation ±20°, scale/crop, flip, colour jitter, noise; drawn in torch from a
generator seeded by the step, so a resumed run sees the same views) → the same ResNet encoder as ContIG →
projection head → NT-Xent (τ 0.1). The encoder's weights have the same names as ContIG's (``encoder.*``), so the
downstream classifier loads either.
"""

from __future__ import annotations

import torch

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.data.views import random_views
from medgap.losses.contrastive import nt_xent
from medgap.methods.base import PretrainingMethod, StepOutput
from medgap.methods.options import SimCLROptions
from medgap.nets.encoders import ProjectionHead, ResNetEncoder


Config = SimCLROptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class SimCLR(PretrainingMethod):
    downstream = "fine-tune it with method.name=image_classifier (method.pretrained: its run folder)"

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
        from medgap.data.classification import whole_image_batches

        self.eval()
        total, count = 0.0, 0
        batches = whole_image_batches(data.split_cases(split), config.data.patch_size, self.options.val_batch_size)
        for index, (chunk, image, _) in enumerate(batches):
            if len(chunk) < 2:
                continue
            total += float(self.loss(image.to(device) if device is not None else image, index)) * len(chunk)
            count += len(chunk)
        return {"neg_nt_xent": -total / count if count else float("nan")}


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
    Deviation("negatives", "in-batch NT-Xent", "official SimCLR baseline: a memory bank of 2¹⁶ negatives",
              "not implemented", None, "official code (HealthML/ContIG), read 2026-12-02"),
]
