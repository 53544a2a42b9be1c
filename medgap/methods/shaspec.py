"""ShaSpec: shared-specific feature modelling for learning with missing modalities.

Wang et al., "Multi-modal Learning with Missing Modality via Shared-Specific Feature Modelling", CVPR 2023.

For N modalities x^(i) (any N >= 2, named in ``dataset.json``):

    r^(i) = f_sha(x^(i))                 one shared encoder, the same weights for every modality
    s^(i) = f_spec^(i)(x^(i))            one specific encoder per modality
    f^(i) = r^(i) + g([r^(i), s^(i)])    residual fusion at the bottleneck (g: one 3×3 conv, 2C → C)
    f^(n) = mean_{i available} r^(i)     for every missing modality n (paper Eq. 4)

Segmentation: a U-Net decoder over the concatenated fused maps [f^(1), ..., f^(N)], with skips from the shared
encoder (per scale, the N shared maps — missing ones replaced by the mean of the available ones, as Eq. 4 does
at the bottleneck — concatenated and mixed by a 1×1 conv). Classification: each fused map becomes a vector
(``head_pooling``: global average pooling as the paper, or flattened: after InstanceNorm a channel's spatial mean
is its bias whatever the input, so the digits-av config flattens), concatenated and classified by FC–dropout–FC.

Auxiliary objectives, both restricted to the modalities a sample actually uses at this step:
- DCO (domain classification, trains the specific encoders): a linear classifier on the pooled s^(i) predicts
  the modality index i; cross-entropy. The official code forgets to mask dropped modalities; we mask.
- DAO (distribution alignment, trains the shared encoder): a distance between the shared bottleneck features of
  cyclic pairs of the available modalities, (a_1, a_2), (a_2, a_3), ..., (a_m, a_1); L1 by default (the paper's
  chosen variant), ``mse|kl|ce`` for the ablation. Summed over a sample's pairs, then averaged over the samples
  that have a pair (the official code adds its four ``L1Loss`` terms; the paper sums over modalities).

    L = L_task + α·L_dao + β·L_dco,  α = 0.1, β = 0.02     (paper Eq. 9)

Task losses as in the official code: segmentation Dice averaged over the regions + BCE summed over them
(``region_bce: sum``; ``mean`` averages it); classification cross-entropy.

Deviations from the official code (see docs/methods/shaspec.md): the paper's mean (Eq. 4) instead of copying
one available shared feature (``missing_feature: copy`` keeps that behaviour: a random available modality while
training with random dropping, as the official ``random.sample`` order does; the first one otherwise); the plain
nnU-Net-style encoder of :mod:`medgap.nets.unet` instead of a weight-standardised 3-D ResNet; masked DCO.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.errors import ConfigError
from medgap.losses import SegmentationLoss
from medgap.methods.base import ClassificationMethod, SegmentationMethod, StepOutput
from medgap.methods.modality_dropout import ModalityDropper, apply_availability
from medgap.methods.options import ShaSpecOptions
from medgap.nets import UNetDecoder, UNetEncoder
from medgap.nets.heads import ClassificationHead, pool_features, pooled_width


Config = ShaSpecOptions  # the method's options (the YAML ``method:`` section), in methods/options.py

# Third seed word of the copy-source draw: a stream of its own, apart from the dropper's (seed, step) draw.
COPY_SOURCE_STREAM = 1


# ----------------------------------------------------------------------------------------------- feature algebra
def _per_modality(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(B, N)`` → ``(B, N, 1, ...)`` broadcastable against ``(B, N, C, *S)`` (``ndim`` dimensions)."""
    return mask.reshape(*mask.shape, *[1] * (ndim - 2))


def first_available(availability: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` bool → ``(B,)`` index of each row's first ``True`` (the official code's copy source at test)."""
    return availability.float().argmax(1)


def random_available(availability: torch.Tensor, generator: np.random.Generator) -> torch.Tensor:
    """``(B, N)`` bool → ``(B,)`` index of one uniformly drawn ``True`` per row (rows with none: 0).

    The official code's copy source in random mode: ``random.sample`` orders the kept modalities randomly and
    the first of that order fills every missing one.
    """
    counts = availability.sum(1).cpu().numpy()
    picks = [int(np.flatnonzero(row)[generator.integers(count)]) if count else 0
             for row, count in zip(availability.cpu().numpy(), counts)]
    return torch.tensor(picks, dtype=torch.long, device=availability.device)


def generate_missing(shared: torch.Tensor, availability: torch.Tensor, mode: str = "mean",
                     source: torch.Tensor | None = None) -> torch.Tensor:
    """The feature that stands in for every missing modality of each sample.

    Args:
        shared: ``(B, N, C, *S)`` shared features r^(i).
        availability: ``(B, N)`` bool, at least one ``True`` per row.
        mode: ``mean`` (paper Eq. 4: mean of the available r^(i)) or ``copy`` (official code: one available
            r^(i) copied).
        source: ``copy`` only: ``(B,)`` index of the modality to copy (default :func:`first_available`).

    Returns:
        ``(B, 1, C, *S)``.
    """
    if mode == "copy":
        source = first_available(availability) if source is None else source
        return shared[torch.arange(shared.shape[0], device=shared.device), source].unsqueeze(1)
    weight = _per_modality(availability.to(shared.dtype), shared.ndim)
    # Multiplying by the 0/1 weight (not indexing) keeps the batch's subsets mixed in one tensor operation and
    # gives exactly zero gradient to the shared features of missing modalities.
    return (shared * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1)


def _capturing_graph() -> bool:
    """True while the model is traced or exported (TorchScript, torch.export, ONNX): a captured graph keeps the
    branch it took, so the exported model must not take the data-dependent shortcuts that skip work for the
    availability it was traced with."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def substitute_missing(features: torch.Tensor, shared: torch.Tensor, availability: torch.Tensor,
                       mode: str = "mean", source: torch.Tensor | None = None) -> torch.Tensor:
    """``features (B, N, C, *S)`` with the rows of missing modalities replaced by :func:`generate_missing`."""
    # Nothing to replace (inference on complete cases): no full-size temporaries.
    if not _capturing_graph() and bool(availability.all()):
        return features
    generated = generate_missing(shared, availability, mode, source).expand_as(features)
    return torch.where(_per_modality(availability, features.ndim), features, generated)


def modality_classification_loss(specific: torch.Tensor, availability: torch.Tensor,
                                 classifier: nn.Module) -> torch.Tensor:
    """DCO: cross-entropy of a linear modality classifier on pooled specific features, available modalities only.

    Args:
        specific: ``(B, N, C, *S)`` specific features s^(i); availability: ``(B, N)`` bool.
        classifier: ``C → N`` (a ``nn.Linear``).

    Returns:
        Mean cross-entropy over the available (sample, modality) pairs (0 if there are none).
    """
    batch, modalities = availability.shape
    pooled = specific.flatten(3).mean(-1)  # global average pooling: (B, N, C)
    logits = classifier(pooled).reshape(batch * modalities, -1)
    target = torch.arange(modalities, device=specific.device).repeat(batch)  # one-hot t^(i): modality i
    weight = availability.reshape(-1).to(logits.dtype)
    loss = F.cross_entropy(logits, target, reduction="none")
    return (loss * weight).sum() / weight.sum().clamp(min=1)


def cyclic_pairs(availability: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, the cyclic pairs of its available modalities in channel order: (a_1, a_2), ..., (a_m, a_1).

    The official code pairs (FLAIR, T1), (T1, T1c), (T1c, T2), (T2, FLAIR) on BraTS; this is the same rule for
    any N and any subset. A sample with one modality has no pair.

    Returns:
        ``(sample, first, second)`` index tensors of equal length P.
    """
    samples, first, second = [], [], []
    for sample, row in enumerate(availability.tolist()):
        present = [index for index, flag in enumerate(row) if flag]
        if len(present) < 2:
            continue
        for k, modality in enumerate(present):
            samples.append(sample)
            first.append(modality)
            second.append(present[(k + 1) % len(present)])
    as_tensor = lambda values: torch.tensor(values, dtype=torch.long, device=availability.device)  # noqa: E731
    return as_tensor(samples), as_tensor(first), as_tensor(second)


def distribution_alignment_loss(shared: torch.Tensor, availability: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """DAO: distance between shared features of the cyclic pairs of available modalities.

    Args:
        shared: ``(B, N, C, *S)`` shared bottleneck features r^(i); availability: ``(B, N)`` bool.
        kind: ``l1`` | ``mse`` (elementwise), ``kl`` | ``ce`` (between the per-voxel softmax over channels of
            the two features; the paper's ablation of the objective).

    Returns:
        Per pair the mean over elements (voxels for ``kl|ce``), summed over each sample's pairs, then the mean
        over the samples that have a pair (0 with a graph when none has two modalities). With batch 1 and all
        four BraTS modalities this is the official sum of four ``L1Loss`` terms.
    """
    sample, first, second = cyclic_pairs(availability)
    if sample.numel() == 0:
        return shared.sum() * 0.0
    a, b = shared[sample, first], shared[sample, second]  # (P, C, *S)
    if kind == "l1":
        per_pair = (a - b).abs().flatten(1).mean(1)
    elif kind == "mse":
        per_pair = (a - b).pow(2).flatten(1).mean(1)
    elif kind in ("kl", "ce"):
        log_p, log_q = F.log_softmax(a, 1), F.log_softmax(b, 1)
        if kind == "kl":  # KL(p_a || p_b) per voxel
            per_voxel = (log_p.exp() * (log_p - log_q)).sum(1)
        else:  # cross-entropy H(p_a, p_b) per voxel
            per_voxel = -(log_p.exp() * log_q).sum(1)
        per_pair = per_voxel.flatten(1).mean(1)
    else:
        raise ValueError(f"unknown DAO loss {kind!r}")
    per_sample = torch.zeros(availability.shape[0], dtype=per_pair.dtype, device=per_pair.device)
    per_sample = per_sample.index_add(0, sample, per_pair)  # (B,): sum over each sample's pairs
    return per_sample[sample.unique()].mean()


# ----------------------------------------------------------------------------------------------- networks
class ModalityFeatures(NamedTuple):
    """Per-modality features; every tensor is ``(B, N, C, *S)`` at the bottleneck resolution."""

    shared_skips: list[torch.Tensor]  # shared maps at every scale, bottleneck last: ``(B, N, C_i, *S_i)``
    shared: torch.Tensor  # r^(i)
    specific: torch.Tensor  # s^(i)
    fused: torch.Tensor  # f^(i), missing modalities already replaced (Eq. 4)
    copy_source: torch.Tensor  # ``(B,)`` modality copied into missing ones (``missing_feature: copy`` only)


class SharedSpecificEncoder(nn.Module):
    """One shared encoder, N specific encoders and the residual fusion g.

    Args:
        dims: 2 or 3; modalities: N; features: channels per encoder scale (bottleneck = ``features[-1]``).
        missing_feature: ``mean`` (Eq. 4) or ``copy``.
    """

    def __init__(self, dims: int, modalities: int, features: list[int], norm: str = "instance",
                 dropout: float = 0.0, missing_feature: str = "mean"):
        super().__init__()
        self.modalities, self.missing_feature = modalities, missing_feature
        self.shared = UNetEncoder(dims, 1, features, norm, dropout)
        self.specific = nn.ModuleList(UNetEncoder(dims, 1, features, norm, dropout) for _ in range(modalities))
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.fusion = conv(2 * features[-1], features[-1], 3, padding=1)  # g, shared across modalities

    def encode(self, image: torch.Tensor, present: torch.Tensor | None = None) -> ModalityFeatures:
        """Per-modality features before Eq. 4: ``image (B, N, *S)`` → :class:`ModalityFeatures` whose ``fused``
        is r + g([r, s]) for every modality and ``copy_source`` is empty.

        Each modality is encoded on its own (one sample per modality, instance-normalised alone), so an available
        modality's features do not depend on which others are missing: evaluating several subsets of one image
        can encode it once. ``present (N,)`` bool: encode only these modalities; the others' rows are zero (use
        it only when every sample lacks them, so that Eq. 4 replaces those rows)."""
        batch, modalities = image.shape[:2]
        if modalities != self.modalities:
            raise ValueError(f"expected {self.modalities} modalities, got image of shape {tuple(image.shape)}")
        kept = range(modalities) if present is None else [int(i) for i in torch.nonzero(present.cpu()).flatten()]
        # The shared encoder sees every modality as a separate sample: one set of weights for all of them.
        chosen = image[:, list(kept)] if len(kept) < modalities else image
        skips = self.shared(chosen.reshape(batch * len(kept), 1, *image.shape[2:]))
        skips = [skip.reshape(batch, len(kept), *skip.shape[1:]) for skip in skips]
        specific = torch.stack([self.specific[i](image[:, i:i + 1])[-1] for i in kept], 1)
        pairs = torch.cat([skips[-1], specific], 2).flatten(0, 1)  # (B·n, 2C, *s)
        fused = skips[-1] + self.fusion(pairs).reshape(skips[-1].shape)  # f = r + g([r, s])
        if len(kept) < modalities:  # zero rows for the modalities not encoded
            def scatter(tensor: torch.Tensor) -> torch.Tensor:
                full = tensor.new_zeros(batch, modalities, *tensor.shape[2:])
                full[:, list(kept)] = tensor
                return full

            skips, specific, fused = [scatter(skip) for skip in skips], scatter(specific), scatter(fused)
        empty = torch.zeros(0, dtype=torch.long, device=image.device)
        return ModalityFeatures(skips, skips[-1], specific, fused, empty)

    def substitute(self, features: ModalityFeatures, availability: torch.Tensor,
                   copy_source: torch.Tensor | None = None) -> ModalityFeatures:
        """Eq. 4 for one ``availability (B, N)``: the fused rows of missing modalities replaced.

        ``copy_source (B,)``: the modality ``missing_feature: copy`` copies (default: the first available)."""
        copy_source = first_available(availability) if copy_source is None else copy_source
        fused = substitute_missing(features.fused, features.shared, availability, self.missing_feature, copy_source)
        return features._replace(fused=fused, copy_source=copy_source)

    def forward(self, image: torch.Tensor, availability: torch.Tensor,
                copy_source: torch.Tensor | None = None) -> ModalityFeatures:
        """``image (B, N, *S)`` (missing channels zero), ``availability (B, N)`` bool → :class:`ModalityFeatures`.

        ``copy_source (B,)``: the modality ``missing_feature: copy`` copies (default: the first available).
        Without autograd (inference), modalities that no sample has are not encoded at all; while training they
        are, so that every parameter gets its (zero) gradient and the optimiser updates stay the same."""
        present = None if torch.is_grad_enabled() or _capturing_graph() else availability.any(0)
        return self.substitute(self.encode(image, present), availability, copy_source)


def _check_modalities(spec: DatasetSpec) -> int:
    if spec.num_channels < 2:
        raise ConfigError(f"{spec.path}: ShaSpec needs at least 2 modalities, dataset has {spec.num_channels}")
    return spec.num_channels


class _ShaSpecLosses(nn.Module):
    """What both task variants share: modality dropping and the auxiliary objectives."""

    def _setup_shared(self, config: ExperimentConfig, spec: DatasetSpec, dims: int) -> None:
        options, model = config.method, config.model
        self.options = options
        self.encoder = SharedSpecificEncoder(dims, _check_modalities(spec), model.features, model.norm,
                                             model.dropout, options.missing_feature)
        self.modality_classifier = nn.Linear(model.features[-1], spec.num_channels)  # DCO's linear classifier
        self.dropper = ModalityDropper(options, spec.channel_names, config.trainer.seed)

    def _copy_source(self, availability: torch.Tensor, step: int) -> torch.Tensor | None:
        """The official ``copy``: while dropping at random, a random kept modality fills the missing ones; a
        function of ``(seed, step)`` only, so it draws nothing from the global RNG (exact resume)."""
        if self.options.missing_feature != "copy" or self.dropper.mode != "random" or step < self.dropper.warmup:
            return None
        return random_available(availability, np.random.default_rng([self.dropper.seed, step, COPY_SOURCE_STREAM]))

    def _step(self, batch: dict, step: int, task_loss) -> StepOutput:
        """One training step: drop modalities, encode, ``task_loss(features, availability)`` + Eq. 9."""
        availability = self.dropper(batch["availability"], step, batch.get("case"))
        image = apply_availability(batch["image"], availability)
        features = self.encoder(image, availability, self._copy_source(availability, step))
        task = task_loss(features, availability)
        dao = distribution_alignment_loss(features.shared, availability, self.options.dao_loss)
        dco = modality_classification_loss(features.specific, availability, self.modality_classifier)
        loss = task + self.options.dao_weight * dao + self.options.dco_weight * dco  # Eq. 9
        return StepOutput(loss, {"loss_task": float(task.detach()), "loss_dao": float(dao.detach()),
                                 "loss_dco": float(dco.detach()),
                                 "modalities_kept": float(availability.float().sum(1).mean())})


class ShaSpecSegmentation(SegmentationMethod, _ShaSpecLosses):
    """Segmentation: fused bottleneck maps → U-Net decoder with skips from the shared encoder → logits."""

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        SegmentationMethod.__init__(self, spec)
        dims, features = len(config.data.patch_size), config.model.features
        self._setup_shared(config, spec, dims)
        modalities = spec.num_channels
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        # Official design: a 1×1 conv over the concatenation of the N shared skip maps of each scale.
        self.skip_fusion = nn.ModuleList(conv(modalities * c, c, 1) for c in features[:-1])
        self.decoder = UNetDecoder(dims, features, config.model.norm, bottleneck_channels=modalities * features[-1])
        self.head = conv(features[0], self.targets.num_outputs, 1)
        self.loss = SegmentationLoss(self.output, config.method.dice_weight, config.method.ce_weight,
                                     config.method.region_bce)

    def decode(self, features: ModalityFeatures, availability: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, *S)`` from the modality features."""
        mode = self.options.missing_feature
        skips = [fuse(substitute_missing(skip, skip, availability, mode, features.copy_source).flatten(1, 2))
                 for fuse, skip in zip(self.skip_fusion, features.shared_skips[:-1])]
        return self.head(self.decoder([*skips, features.fused.flatten(1, 2)]))

    def forward(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(image, availability), availability)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        labelled = batch["labelled"]
        target = self.targets.targets(batch["label"][labelled])

        def task_loss(features: ModalityFeatures, availability: torch.Tensor) -> torch.Tensor:
            # Decode only the labelled samples; DAO/DCO use every sample (they need no label).
            kept = ModalityFeatures(*([t[labelled] for t in field] if isinstance(field, list) else field[labelled]
                                      for field in features))
            return self.loss(self.decode(kept, availability[labelled]), target)

        return self._step(batch, step, task_loss)

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self(apply_availability(image, availability), availability)

    def predict_subsets_logits(self, image: torch.Tensor, subsets: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, S, K, *S)`` of ``image (B, N, *S)`` under each availability of ``subsets (S, N)`` bool:
        ``[:, s]`` equals ``predict_logits(image, subsets[s])``, but every modality is encoded once for all S
        subsets (8 encoder passes for BraTS' 15 subsets instead of 8 per subset); only Eq. 4 and the decoder run
        per subset."""
        features = self.encoder.encode(image, subsets.any(0))  # only the modalities some subset uses
        logits = []
        for subset in subsets:
            availability = subset.expand(image.shape[0], -1)
            logits.append(self.decode(self.encoder.substitute(features, availability), availability))
        return torch.stack(logits, 1)


class ShaSpecClassification(ClassificationMethod, _ShaSpecLosses):
    """Classification: fused maps → vectors (``head_pooling``) → concatenation → FC–dropout–FC → logits."""

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        ClassificationMethod.__init__(self, spec)
        self._setup_shared(config, spec, len(config.data.patch_size))
        model, options = config.model, config.method
        width = pooled_width(model.features[-1], config.data.patch_size, len(model.features), options.head_pooling)
        self.head = ClassificationHead(spec.num_channels * width, options.head_hidden, len(spec.classes),
                                       options.head_dropout)

    def classify(self, features: ModalityFeatures) -> torch.Tensor:
        fused = features.fused  # (B, N, C, *s)
        pooled = pool_features(fused.flatten(0, 1), self.options.head_pooling)  # (B·N, F)
        return self.head(pooled.reshape(fused.shape[0], -1))  # (B, N·F) → (B, K)

    def forward(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder(image, availability))

    def training_step(self, batch: dict, step: int) -> StepOutput:
        labelled = batch["labelled"]
        return self._step(batch, step, lambda features, availability: F.cross_entropy(
            self.classify(features)[labelled], batch["label"][labelled]))

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self(apply_availability(image, availability), availability)


def build(config: ExperimentConfig, spec: DatasetSpec) -> nn.Module:
    if spec.task == "classification":
        return ShaSpecClassification(config, spec)
    return ShaSpecSegmentation(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("feature of a missing modality", "mean of the available shared features r^(i) (Eq. 4)",
              "paper: the mean (Eq. 4); official code: a copy of the first available shared feature, of a random "
              "available one in random (non-dedicated) mode",
              "the paper's equation; `copy` copies a random kept one while dropping at random, the first otherwise",
              {"method.missing_feature": "copy"}, "paper; official code (billhhh/ShaSpec), read 2026-12-02"),
    Deviation("decoder skips of a missing modality", "Eq. 4 at every scale: mean of the available shared skip maps, "
              "then the official 1×1 mixing conv", "paper: not stated; official: 1×1×1 conv over the N shared skip "
              "maps (zero inputs' features for missing ones)", "the paper's rule applied consistently; a zero "
              "input's features carry no information", None, "paper; official code (billhhh/ShaSpec)"),
    Deviation("DCO over dropped modalities", "cross-entropy averaged over the available (sample, modality) pairs "
              "only", "official code also classifies the specific features of dropped (zero-input) modalities",
              "the paper describes DCO over available modalities; the official code forgets the mask", None,
              "paper; official code (billhhh/ShaSpec)"),
    Deviation("DAO pairs", "cyclic pairs of each sample's available modalities in channel order, any N",
              "official: fixed pairs (F,T1), (T1,T1c), (T1c,T2), (T2,F) at the bottleneck",
              "the same rule for any N and any subset; equal to the official pairs when all four are present",
              None, "paper; official code (billhhh/ShaSpec)"),
    Deviation("DAO over samples", "per pair the mean over elements, summed over a sample's pairs (official), then "
              "averaged over the samples that have two or more modalities", "official: batch 1, all four modalities "
              "(dropped ones included)", "a batch mixes subsets; a sample with one modality has no pair", None,
              "official code (billhhh/ShaSpec), read 2026-12-02"),
    Deviation("segmentation Dice", "batch soft Dice (MONAI, smoothing 1e-5), averaged over the regions; BCE summed "
              "over them as the official code (`region_bce: sum`)", "official: per-sample soft Dice with smoothing 1, "
              "averaged over samples", "medgap's shared loss (nnU-Net batch Dice)", None,
              "official code (billhhh/ShaSpec), read 2026-12-02"),
    Deviation("backbone", "nnU-Net-style `UNetEncoder`/`UNetDecoder` (conv–InstanceNorm–LeakyReLU ×2, strided "
              "conv down, transposed conv up); the bottleneck keeps a spatial extent; use instance or group norm (batch "
              "norm would mix modalities and zero inputs in the shared encoder's statistics)", "official: weight-"
              "standardised 3-D ResNet encoder, InstanceNorm on 1×1×1 maps (a bug)", "medgap's shared networks; "
              "no normalisation over a single voxel", None, "paper; official code (billhhh/ShaSpec)"),
    Deviation("classification pooling", "the InstanceNorm-ed fused maps flattened into FC–dropout–FC "
              "(`head_pooling: flatten` in `configs/shaspec_digits_av.yaml`; 0.59 M parameters)", "paper: pooled "
              "vectors (0.22 M parameters)", "after InstanceNorm a channel's mean is its bias: average pooling "
              "stayed at 75.5 % vs 97.5 % flattened (digits-av, 300 steps)", {"method.head_pooling": "mean"},
              "paper; spec correction 2026-12-02"),
    Deviation("schedule", "CPU-sized configs: AdamW, poly, thousands of steps of small patches; "
              "`configs/shaspec_brats_paper.yaml` has the paper's recipe", "paper: SGD Nesterov 0.99, LR 0.01, "
              "cosine (official: poly 0.9), 180k iterations of 80×160×160, batch 1; official: 80k all-modality "
              "iterations, then random dropping", "CPU budget", {"optim.name": "sgd", "optim.lr": 0.01,
                                                                 "optim.schedule": "cosine",
                                                                 "method.full_modality_steps": 80000},
              "paper; official code (billhhh/ShaSpec), read 2026-12-02"),
    Deviation("ShaSpec* (prediction smoothness post-processing)", "not implemented", "paper: ShaSpec* rows",
              "optional post-processing, not part of the method", None, "paper; official code (billhhh/ShaSpec)"),
    Deviation("learning-rate schedule of the paper config", "one cosine schedule over all 180k steps "
              "(`configs/shaspec_brats_paper.yaml`), the first 80k with all modalities", "official: poly decay, "
              "restarted when random modality dropping starts at 80k", "one schedule per run in medgap's loop", None,
              "official code (billhhh/ShaSpec), read 2026-12-02"),
]
