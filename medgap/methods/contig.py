"""ContIG: contrastive learning of images with genetics (Taleb et al., CVPR 2022).

Each image (a fundus photograph; both eyes of a person are two samples sharing the person's genetics) is aligned
with every genetic modality of the same individual (raw SNPs, polygenic scores, burden scores) and pushed away
from the other individuals in the batch. No labels are used; the image encoder is reused downstream
(:mod:`medgap.methods.classifier`).

Model (per requested genetic modality m):
    image x_v ──ResNet──▶ h_v ──image head_m──▶ z_v^m          (one image projection head per modality)
    genetics x_m ──MLP_m──▶ h_m ──genetic head_m──▶ z_m
Loss (Eq. 3 of the paper, official weighting):
    L = Σ_m (1/M) · L_pair(z_v^m[has_m], z_m[has_m]),  L_pair = α CE(v→g) + (1−α) CE(g→v),  τ 0.1, α 0.75
Aggregation:
    ``inner``: only individuals who have every requested modality take part (rows of the others are dropped).
    ``outer``: everyone; person i contributes to term m only if they have modality m (neither as positive nor as
    negative otherwise), and a term with fewer than two people is skipped. Missing rows are never zero-filled, so
    BatchNorm in the genetic MLPs sees real data only (an official bug we avoid).
One optimiser (the loop's) steps every parameter once per batch; the official code stepped the shared trunk once
per modality. The genetic tables are looked up by case id from the dataset folder (``genetics/*.csv``, keyed by
individual through ``individuals.csv``), so the generic loader needs no genetics support.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.data.views import random_views
from medgap.errors import ConfigError, DatasetError
from medgap.losses.contrastive import cross_modal_infonce
from medgap.methods.base import PretrainingMethod, StepOutput
from medgap.methods.options import ContIGOptions
from medgap.nets.encoders import ProjectionHead, ResNetEncoder, genetic_mlp


Config = ContIGOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


class GeneticTables(nn.Module):
    """Per-case genetic inputs as non-persistent buffers: ``values[m] (cases, F_m)``, ``present[m] (cases,)``.

    Non-persistent so checkpoints hold only weights; rows of individuals without the modality are zero but are
    never fed to a network (``present`` selects rows first).
    """

    def __init__(self, dataset_dir: str, spec: DatasetSpec, modalities: list[str]):
        super().__init__()
        from medgap.data.cases import discover_cases

        cases = discover_cases(dataset_dir, spec, "Tr")
        available = sorted({name for case in cases for name in case.genetics})
        self.modalities = list(modalities) or available
        if not self.modalities:
            raise DatasetError(f"{dataset_dir}/genetics: no genetic modality found (ContIG needs genetics/*.csv)")
        unknown = [m for m in self.modalities if m not in available]
        if unknown:
            raise ConfigError(f"method.modalities: {unknown} not in {dataset_dir}/genetics (found {available})")
        self.index = {case.case_id: i for i, case in enumerate(cases)}
        self.widths = {}
        for m, name in enumerate(self.modalities):
            width = next(len(case.genetics[name]) for case in cases if name in case.genetics)
            values = np.zeros((len(cases), width), np.float32)
            present = np.zeros(len(cases), bool)
            for i, case in enumerate(cases):
                if name in case.genetics:
                    values[i], present[i] = case.genetics[name], True
            self.register_buffer(f"values_{m}", torch.from_numpy(values), persistent=False)
            self.register_buffer(f"present_{m}", torch.from_numpy(present), persistent=False)
            self.widths[name] = width

    def lookup(self, case_ids: list[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Rows for a batch: per modality ``(B, F_m)`` values and a ``(B, M)`` bool presence mask."""
        rows = torch.tensor([self.index[c] for c in case_ids], device=self.values_0.device)
        values = [getattr(self, f"values_{m}")[rows] for m in range(len(self.modalities))]
        present = torch.stack([getattr(self, f"present_{m}")[rows] for m in range(len(self.modalities))], 1)
        return values, present


class ContIG(PretrainingMethod):
    downstream = "fine-tune it with method.name=image_classifier (method.pretrained: its run folder)"

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__()
        options: Config = config.method
        self.options = options
        self.seed = config.trainer.seed
        self.tables = GeneticTables(config.data.dataset_dir, spec, options.modalities)
        self.modalities = self.tables.modalities
        self.encoder = ResNetEncoder(spec.num_channels, tuple(options.backbone_widths), options.backbone_blocks,
                                     options.input_scale,
                                     options.stem_stride)
        self.genetic_encoders, self.genetic_heads, self.image_heads = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        for name in self.modalities:
            mlp, width = genetic_mlp(self.tables.widths[name], options.genetic_hidden)
            self.genetic_encoders[name] = mlp
            self.genetic_heads[name] = ProjectionHead(width, options.projection_hidden, options.projection_dim)
            self.image_heads[name] = ProjectionHead(self.encoder.out_features, options.projection_hidden,
                                                    options.projection_dim)

    def contrastive_loss(self, image: torch.Tensor, genetics: list[torch.Tensor], present: torch.Tensor,
                         temperature: float | None = None, alpha: float | None = None) -> tuple[torch.Tensor, dict]:
        """Eq. 3 over one batch. ``image (B, C, H, W)``, ``genetics[m] (B, F_m)``, ``present (B, M)`` bool.

        Returns the loss (a zero connected to the graph when no term has two people) and per-term logs.
        """
        temperature = self.options.temperature if temperature is None else temperature
        alpha = self.options.alpha if alpha is None else alpha
        if self.options.aggregation == "inner":  # only complete individuals take part in any term
            present = present & present.all(1, keepdim=True)
        features = self.encoder(image)
        loss, logs = features.sum() * 0.0, {}
        for m, name in enumerate(self.modalities):
            rows = present[:, m]
            if int(rows.sum()) < 2:  # a term with nobody (or one person: no negatives, BatchNorm undefined)
                continue
            z_genetic = self.genetic_heads[name](self.genetic_encoders[name](genetics[m][rows]))
            z_image = self.image_heads[name](features[rows])
            term = cross_modal_infonce(z_image, z_genetic, temperature, alpha)
            loss = loss + term / len(self.modalities)  # 1/M: fixed weight per modality (official)
            logs[f"loss_{name}"] = float(term.detach())
        logs["complete_rows"] = float(present.all(1).sum())
        return loss, logs

    def training_step(self, batch: dict, step: int) -> StepOutput:
        genetics, present = self.tables.lookup(batch["case"])
        image = batch["image"]
        if self.options.rotation_degrees > 0:  # rotation only: no crop, flip (done by the loader) or colour jitter
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            image = random_views(image, generator, self.options.rotation_degrees, min_scale=1.0, jitter=0.0,
                                 flip=False, noise=0.0)
        loss, logs = self.contrastive_loss(image, genetics, present)
        return StepOutput(loss, logs)

    @torch.no_grad()
    def validation_scores(self, data, config: ExperimentConfig, device=None, split: str = "val") -> dict[str, float]:
        """Negated contrastive loss over the split in fixed chunks (no labels needed; higher is better), and the
        mean image→genetics top-1 retrieval accuracy within chunks over modalities."""
        from medgap.data.classification import whole_image_batches

        self.eval()
        batches = whole_image_batches(data.split_cases(split), config.data.patch_size, self.options.val_batch_size)
        loss_sum, retrieval, count = 0.0, [], 0
        for chunk, image, _ in batches:
            if len(chunk) < 2:  # one leftover case has no negatives
                continue
            count += len(chunk)
            image = image.to(device) if device is not None else image
            genetics, present = self.tables.lookup([c.case_id for c in chunk])
            loss, _ = self.contrastive_loss(image, genetics, present)
            loss_sum += float(loss) * len(chunk)
            features = self.encoder(image)
            for m, name in enumerate(self.modalities):
                rows = present[:, m]
                if int(rows.sum()) < 2:
                    continue
                z_v = nn.functional.normalize(self.image_heads[name](features[rows]), dim=1)
                z_g = nn.functional.normalize(self.genetic_heads[name](self.genetic_encoders[name](genetics[m][rows])), dim=1)
                retrieval.append(float(((z_v @ z_g.T).argmax(1) == torch.arange(len(z_v), device=z_v.device)).float().mean()))
        return {"neg_contrastive_loss": -loss_sum / count if count else float("nan"),
                "retrieval_top1": float(np.mean(retrieval)) if retrieval else float("nan")}


def build(config: ExperimentConfig, spec: DatasetSpec) -> ContIG:
    if len(config.data.patch_size) != 2:
        raise ConfigError("contig: data.patch_size must be 2-D (the whole image, e.g. [64, 64])")
    return ContIG(config, spec)
