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
    ``inner``: only individuals who have every requested modality take part. As the official code, the *dataset*
    is filtered (``data.train_requires_genetics`` lists the modalities; ``configs/contig_fundus_inner.yaml``), so
    batches are full; rows of incomplete people that still reach a batch are dropped here as a safeguard.
    ``outer``: everyone; person i contributes to term m only if they have modality m (neither as positive nor as
    negative otherwise), and a term with fewer than two people is skipped. Missing rows are never zero-filled, so
    BatchNorm in the genetic MLPs sees real data only (an official bug we avoid).
Fellow eyes: the two eyes of a person share the genetics, so they are never each other's negatives
(``mask_same_person``; the official code does not mask: ~0.1 % of its rows vs 6.5 % in our 600-person cohort),
in training and in the validation loss and retrieval.
Regularisation of the genetic side (``genetic_dropout`` on its input, ``genetic_weight_decay`` an L2 penalty on
the genetic encoders and heads): on a miniature cohort the genetic heads memorise the training people (train loss
2.25 vs validation 4.68, issue 19); the official code has only Adam's weight decay 1e-6 on everything.
Positive control: a modality named ``oracle_<trait>`` (e.g. ``oracle_vessel``) is the true trait of every person
from the dataset's ``genetics.truth`` file (synthetic cohorts): what the mechanism gives when the "genetics"
determine the image property exactly.
One optimiser (the loop's) steps every parameter once per batch; the official code stepped the shared trunk once
per modality. The genetic tables are looked up by case id from the dataset folder (``genetics/*.csv``, keyed by
individual through ``individuals.csv``), so the generic loader needs no genetics support.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.data.genetics import case_groups
from medgap.data.views import random_views
from medgap.errors import ConfigError, DatasetError
from medgap.losses.contrastive import cross_modal_infonce, same_group_pairs
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
        oracle = oracle_traits(dataset_dir, spec, cases, [m for m in modalities if m.startswith(ORACLE)])
        for case in cases:
            case.genetics.update({name: values[case.case_id] for name, values in oracle.items()})
        available = sorted({name for case in cases for name in case.genetics})
        self.modalities = list(modalities) or [m for m in available if not m.startswith(ORACLE)]
        if not self.modalities:
            raise DatasetError(f"{dataset_dir}/genetics: no genetic modality found (ContIG needs genetics/*.csv)")
        unknown = [m for m in self.modalities if m not in available]
        if unknown:
            raise ConfigError(f"method.modalities: {unknown} not in {dataset_dir}/genetics (found {available})")
        self.index = {case.case_id: i for i, case in enumerate(cases)}
        groups = case_groups(dataset_dir, spec.genetics, list(self.index)) or {c: c for c in self.index}
        person_ids = {person: k for k, person in enumerate(sorted(set(groups.values())))}
        self.register_buffer("person", torch.tensor([person_ids[groups[c]] for c in self.index]), persistent=False)
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
        rows = self._rows(case_ids)
        values = [getattr(self, f"values_{m}")[rows] for m in range(len(self.modalities))]
        present = torch.stack([getattr(self, f"present_{m}")[rows] for m in range(len(self.modalities))], 1)
        return values, present

    def persons(self, case_ids: list[str]) -> torch.Tensor:
        """``(B,)`` integer person of each case (both eyes of one individual share it)."""
        return self.person[self._rows(case_ids)]

    def _rows(self, case_ids: list[str]) -> torch.Tensor:
        return torch.tensor([self.index[c] for c in case_ids], device=self.person.device)


ORACLE = "oracle_"


def oracle_traits(dataset_dir: str, spec: DatasetSpec, cases, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{"oracle_<trait>": {case id: (1,) true trait}}`` from the truth file named in ``dataset.json``
    (``"genetics": {"truth": ...}``, written by synthetic cohorts) — the positive control's "genetics"."""
    if not names:
        return {}
    truth_name = spec.genetics.get("truth") if isinstance(spec.genetics, dict) else None
    path = Path(dataset_dir) / str(truth_name or "")
    if not truth_name or not path.is_file():
        raise ConfigError(f"method.modalities {names}: oracle modalities need the truth file of a synthetic cohort "
                          f"(dataset.json genetics.truth); {dataset_dir} has none")
    truth = json.loads(path.read_text(encoding="utf-8"))
    groups = case_groups(dataset_dir, spec.genetics, [case.case_id for case in cases]) or {}
    oracle = {}
    for name in names:
        values = truth.get("trait_values", {}).get(name[len(ORACLE):])
        if values is None:
            raise ConfigError(f"method.modalities: {name!r}: no trait {name[len(ORACLE):]!r} in {path} "
                              f"(traits: {sorted(truth.get('trait_values', {}))})")
        oracle[name] = {case.case_id: np.array([values[groups.get(case.case_id, case.case_id)]], np.float32)
                        for case in cases if groups.get(case.case_id, case.case_id) in values}
    return oracle


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
                         temperature: float | None = None, alpha: float | None = None,
                         person: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Eq. 3 over one batch. ``image (B, C, H, W)``, ``genetics[m] (B, F_m)``, ``present (B, M)`` bool,
        ``person (B,)`` the individual of each row (fellow eyes are then not negatives) or None.

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
            z_image, z_genetic = self.embed(name, features[rows], genetics[m][rows])
            group = person[rows] if person is not None and self.options.mask_same_person else None
            term = cross_modal_infonce(z_image, z_genetic, temperature, alpha, group)
            loss = loss + term / len(self.modalities)  # 1/M: fixed weight per modality (official)
            logs[f"loss_{name}"] = float(term.detach())
        logs["complete_rows"] = float(present.all(1).sum())
        return loss, logs

    def embed(self, name: str, features: torch.Tensor, genetics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projections of one modality's term: image ``(N, d)`` from pooled features ``(N, C)``, genetic ``(N, d)``
        from the inputs ``(N, F)`` (dropout on the genetic input while training)."""
        genetics = nn.functional.dropout(genetics, self.options.genetic_dropout, self.training)
        return self.image_heads[name](features), self.genetic_heads[name](self.genetic_encoders[name](genetics))

    def genetic_penalty(self) -> torch.Tensor:
        """Σ ‖W‖² over the weight matrices of the genetic encoders and heads (biases and BatchNorm excluded)."""
        weights = [p for module in (self.genetic_encoders, self.genetic_heads) for p in module.parameters() if p.ndim > 1]
        return sum((w * w).sum() for w in weights)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        genetics, present = self.tables.lookup(batch["case"])
        image = batch["image"]
        if self.options.rotation_degrees > 0:  # rotation only: no crop, flip (done by the loader) or colour jitter
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            image = random_views(image, generator, self.options.rotation_degrees, min_scale=1.0, jitter=0.0,
                                 flip=False, noise=0.0)
        loss, logs = self.contrastive_loss(image, genetics, present, person=self.tables.persons(batch["case"]))
        if self.options.genetic_weight_decay > 0:
            penalty = self.genetic_penalty()
            loss = loss + self.options.genetic_weight_decay * penalty
            logs["genetic_l2"] = float(penalty.detach())
        return StepOutput(loss, logs)

    @torch.no_grad()
    def validation_scores(self, data, config: ExperimentConfig, device=None, split: str = "val") -> dict[str, float]:
        """Negated contrastive loss over the split in fixed chunks (no labels needed; higher is better), and the
        mean image→genetics top-1 retrieval accuracy within chunks over modalities; a person's fellow eye is
        neither a negative nor a retrieval candidate (``mask_same_person``)."""
        from medgap.data.classification import whole_image_batches

        self.eval()
        batches = whole_image_batches(data.split_cases(split), config.data.patch_size, self.options.val_batch_size)
        loss_sum, retrieval, count = 0.0, [], 0
        for chunk, image, _ in batches:
            if len(chunk) < 2:  # one leftover case has no negatives
                continue
            count += len(chunk)
            image = image.to(device) if device is not None else image
            ids = [c.case_id for c in chunk]
            genetics, present = self.tables.lookup(ids)
            person = self.tables.persons(ids)
            loss, _ = self.contrastive_loss(image, genetics, present, person=person)
            loss_sum += float(loss) * len(chunk)
            features = self.encoder(image)
            for m, name in enumerate(self.modalities):
                rows = present[:, m]
                if int(rows.sum()) < 2:
                    continue
                z_v, z_g = (nn.functional.normalize(z, dim=1) for z in self.embed(name, features[rows], genetics[m][rows]))
                similarity = z_v @ z_g.T
                if self.options.mask_same_person:  # the fellow eye is not a retrieval candidate
                    similarity = similarity.masked_fill(same_group_pairs(person[rows]), float("-inf"))
                hits = similarity.argmax(1) == torch.arange(len(z_v), device=z_v.device)
                retrieval.append(float(hits.float().mean()))
        return {"neg_contrastive_loss": -loss_sum / count if count else float("nan"),
                "retrieval_top1": float(np.mean(retrieval)) if retrieval else float("nan")}


def build(config: ExperimentConfig, spec: DatasetSpec) -> ContIG:
    if len(config.data.patch_size) != 2:
        raise ConfigError("contig: data.patch_size must be 2-D (the whole image, e.g. [64, 64])")
    return ContIG(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("image encoder", "a small ResNet-style CNN from scratch (`backbone_widths`, `stem_stride`), 64 px "
              "images in the fundus configs", "paper/official: ResNet-50 from scratch at 448 px, 2048-d features",
              "CPU scale; the backbone is configurable", None, "paper; official code (HealthML/ContIG)"),
    Deviation("projection heads", "Linear(in → 256)–ReLU–Linear(256 → 128)", "official: hidden width 2048",
              "CPU scale", {"method.projection_hidden": 2048}, "paper; official code (HealthML/ContIG)"),
    Deviation("optimiser steps", "one optimiser steps every parameter once per batch", "official: one optimiser "
              "per modality, stepping the shared image trunk M times per batch", "an official bug", None,
              "paper; official code (HealthML/ContIG)"),
    Deviation("missing genetic rows", "never fed to a network: term m uses only the rows of people with m",
              "official: zero-filled rows pass through BatchNorm; a missing-mask column order bug",
              "official bugs", None, "paper; official code (HealthML/ContIG)"),
    Deviation("fellow eyes", "a person's fellow eye is neither a negative in training nor a retrieval candidate in "
              "validation (`mask_same_person: true`)", "official: not masked", "both eyes share the person's "
              "genetics, so neither is a negative for the other (unmasked, retrieval is capped at about 0.5)",
              {"method.mask_same_person": False}, "official code (HealthML/ContIG), read 2026-12-02"),
    Deviation("rotation augmentation", "`method.rotation_degrees: 20` by default; the fundus configs set 0",
              "paper: random rotation ±20°", "at 64 px an encoder pretrained with rotations could not be "
              "fine-tuned in 100 steps (validation kappa 0.00 vs 0.56, seed 0; docs/methods/contig.md)",
              {"method.rotation_degrees": 20.0}, "paper; official code (HealthML/ContIG)"),
    Deviation("metrics", "validation loss and retrieval over the whole split", "official: averaged per batch",
              "an official bug", None, "paper; official code (HealthML/ContIG)"),
    Deviation("genetic regularisation", "fundus configs: dropout 0.5 and L2 1e-3 on the genetic heads",
              "official: Adam weight decay 1e-6 only", "600–1,500 people: without it the genetic side memorises "
              "people (train/validation loss 2.27/4.65 vs 3.30/3.76 with it, 300 steps)",
              {"method.genetic_dropout": 0.0, "method.genetic_weight_decay": 0.0}, "official code (HealthML/ContIG), read 2026-12-02"),
    Deviation("oracle modality", "a modality `oracle_<trait>` holding the true trait (the reproduction's positive "
              "control)", "none", "shows what the mechanism can give on this data", None, "official code (HealthML/ContIG), read 2026-12-02"),
    Deviation("attribution noise tunnel", "SmoothGrad over integrated gradients, 10 samples, σ = 0.1 × the input's "
              "std", "official: captum's NoiseTunnel defaults (5 samples, σ = 1.0)", "σ 1.0 is as large as the 0/1/2 "
              "dosages themselves", None, "official code (HealthML/ContIG), read 2026-12-02"),
]
