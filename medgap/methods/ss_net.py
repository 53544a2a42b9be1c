"""SS-Net (Wu et al., MICCAI 2022): pixel-level smoothness and inter-class separation for semi-supervised
segmentation. One module for 2-D (U-Net, ACDC) and 3-D (V-Net, LA); the dimension comes from the patch size.

    L = L_sup + λ(t) · (L_lds + 0.1 · (L_cl_l + L_cl_u))                          (paper Eq. 6; official weights)

- ``L_sup``: the supervised loss on the labelled samples. Deviation: the official code uses soft Dice only
  (3-D: foreground channel; 2-D: the 4 classes); we use the shared :class:`SegmentationLoss` (Dice + CE by
  default, weights configurable) so that the lower/upper bounds, Mean Teacher and SS-Net differ only in their
  unsupervised terms.
- ``L_lds`` (Eqs. 1–3): virtual adversarial training. For every image x (labelled and unlabelled) one power
  iteration estimates the direction r_adv (‖r_adv‖₂ = ε per sample) that changes p(x) most, and the network is
  trained to keep p(x + r_adv) close to p(x) (detached). BatchNorm running statistics are not updated by the two
  perturbed passes (:func:`frozen_batchnorm_statistics`).
- ``L_cl`` (Eqs. 4–5): a projection head and a prediction head on the decoder's last feature map; per
  foreground class (the official code keeps no background entries; ``memory_classes: all`` adds them) a
  memory of the ``memory_size`` highest-confidence, correctly predicted labelled features (projected, detached);
  the loss pulls predicted features of class c towards class-c memory entries, ``1 − cos``, weighted by a
  per-class learned selector (sigmoid weights normalised to mean 1). Labelled voxels use the ground truth,
  unlabelled voxels the argmax pseudo label.
- ``λ(t) = c · exp(−5 (1 − min(⌊t/150⌋, R)/R)²)``, see :func:`medgap.training.ramps.consistency_weight`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.errors import ConfigError
from medgap.losses import SegmentationLoss
from medgap.methods.base import SegmentationMethod, StepOutput
from medgap.methods.options import SSNetOptions
from medgap.nets import build_net
from medgap.training.ramps import consistency_weight


Config = SSNetOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


# ---------------------------------------------------------------------------------------------------------------
# L_lds: virtual adversarial smoothness


@contextmanager
def frozen_batchnorm_statistics(module: nn.Module):
    """Inside the block, BatchNorm layers normalise with batch statistics (train mode) but do not update their
    running mean/var or ``num_batches_tracked``: the perturbed VAT passes must not leak into inference-time BN."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for layer in layers:
        layer.track_running_stats = False  # PyTorch then passes no running buffers to F.batch_norm
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def l2_normalise(direction: torch.Tensor) -> torch.Tensor:
    """Scale each sample of ``(B, ...)`` to unit L2 norm over all its non-batch entries.

    The official code divides by ``norm + 1e-8``; VAT gradients can be that small (1e-5 on a fresh network),
    which would shrink ‖r_adv‖ below ε, so we only guard against an exactly zero norm.
    """
    norm = direction.flatten(1).norm(dim=1).view(-1, *[1] * (direction.ndim - 1))
    return direction / norm.clamp_min(1e-30)


def dice_distance(p_hat: torch.Tensor, p: torch.Tensor, per_class: bool) -> torch.Tensor:
    """A Dice-style distance between two probability maps ``(B, K, *S)``, 0 when they agree perfectly.

    ``per_class=False`` (official 3-D): ``1 − 2 Σ p̂·p / (Σ p̂ + Σ p)`` over all classes and voxels; with
    softmax outputs (Σ_c = 1 per voxel) this is ``1 − mean_voxels Σ_c p̂_c p_c``. It is 0 only for identical
    one-hot maps: against a soft target it also rewards p̂ for sharpening towards the target's argmax.
    ``per_class=True`` (official 2-D): mean over classes of ``1 − (2 Σ p̂_c p_c + s) / (Σ p̂_c² + Σ p_c² + s)``.
    """
    if not per_class:
        return 1.0 - 2.0 * (p_hat * p).sum() / (p_hat.sum() + p.sum() + 1e-8)
    dims = [0, *range(2, p.ndim)]
    smooth = 1e-5
    intersection = (p_hat * p).sum(dims)
    union = (p_hat * p_hat).sum(dims) + (p * p).sum(dims)
    return (1.0 - (2.0 * intersection + smooth) / (union + smooth)).mean()


def vat_perturbation(predict: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                     probabilities: torch.Tensor, xi: float, epsilon: float,
                     distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One power iteration of VAT (Miyato et al. 2018; SS-Net Eq. 2): the adversarial ``r_adv`` ``(B, C, *S)``.

    d ~ U(−0.5, 0.5), normalised per sample; g = ∇_d D(p(x + ξ d), p(x)); r_adv = ε · g / ‖g‖ per sample.
    Only ``d`` receives a gradient: the network's parameter gradients are not touched.

    Args:
        predict: image → probabilities ``(B, K, *S)`` (the network, with BN statistics frozen by the caller).
        image: ``(B, C, *S)``; probabilities: ``p(x)`` ``(B, K, *S)``, detached.
    """
    direction = l2_normalise(torch.rand_like(image) - 0.5).requires_grad_(True)
    adversarial_distance = distance(predict(image.detach() + xi * direction), probabilities)
    (gradient,) = torch.autograd.grad(adversarial_distance, direction)
    return epsilon * l2_normalise(gradient.detach())


# ---------------------------------------------------------------------------------------------------------------
# L_cl: prototype-based inter-class separation


def _mlp(width_in: int, width: int, width_out: int, activation: nn.Module) -> nn.Sequential:
    # The activation may work in place (as the official heads): BatchNorm's backward needs its input, not its
    # output, so one (N, width) tensor per head is not kept for the backward pass.
    return nn.Sequential(nn.Linear(width_in, width), nn.BatchNorm1d(width), activation, nn.Linear(width, width_out))


class ClassMemory(nn.Module):
    """Per class, at most ``size`` feature vectors of correctly predicted labelled voxels, highest confidence
    first. Kept as buffers so checkpoints carry it and a resumed run continues with the same memory.

    Buffers: ``features (K, size, D)``, ``confidence (K, size)``, ``count (K,)`` (entries in use).
    ``background=False`` (the official code) never stores class 0, so it has no prototypes and no pull.
    """

    def __init__(self, num_classes: int, size: int, dim: int, background: bool = True):
        super().__init__()
        self.size, self.first_class = size, 0 if background else 1
        self.register_buffer("features", torch.zeros(num_classes, size, dim))
        self.register_buffer("confidence", torch.zeros(num_classes, size))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))

    @torch.no_grad()
    def update(self, features: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor,
               confidence: torch.Tensor) -> None:
        """Insert this step's best candidates: per class c, the ``size`` voxels with the highest confidence
        among those with ``truth == predicted == c``, ahead of older entries; the memory is then cut to ``size``.

        Args: ``features (N, D)``, ``truth``/``predicted`` ``(N,)`` class indices, ``confidence (N,)`` = p(c).
        """
        for c in range(self.first_class, self.features.shape[0]):
            correct = (truth == c) & (predicted == c)
            if not correct.any():
                continue
            scores = confidence[correct]
            best = scores.topk(min(self.size, scores.numel())).indices  # paper: highest confidence first
            n_old = int(self.count[c])
            kept_features = torch.cat([features[correct][best].detach().to(self.features.dtype),
                                       self.features[c, :n_old]])[: self.size]
            kept_confidence = torch.cat([scores[best].to(self.confidence.dtype), self.confidence[c, :n_old]])[: self.size]
            self.features[c, : len(kept_features)] = kept_features
            self.confidence[c, : len(kept_confidence)] = kept_confidence
            self.count[c] = len(kept_features)

    def entries(self, c: int) -> torch.Tensor:
        return self.features[c, : int(self.count[c])]


class SSNet(SegmentationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec):
        super().__init__(spec)
        if self.output != "softmax":
            raise ConfigError(f"{spec.name}: ss_net needs plain labels (softmax classes), not BraTS-style regions")
        self.config = config.method
        self.dims = len(config.data.patch_size)
        num_classes = self.targets.num_outputs
        # The network first, so that with the same seed it starts from the same weights as ``supervised``.
        self.net = build_net(config.model, self.dims, spec.num_channels, num_classes)
        width, dim = config.model.features[0], self.config.embedding_dim
        self.projection = _mlp(width, dim, dim, nn.ReLU(inplace=True))
        self.prediction = _mlp(dim, dim, dim, nn.ReLU(inplace=True))
        self.selectors = nn.ModuleList(_mlp(dim, dim, 1, nn.LeakyReLU(0.2, inplace=True)) for _ in range(num_classes))
        self.memory = ClassMemory(num_classes, self.config.memory_size, dim,
                                  background=self.config.memory_classes == "all")
        self.loss_sup = SegmentationLoss(self.output, self.config.dice_weight, self.config.ce_weight)
        distance = self.config.vat_distance
        self.per_class_distance = distance == "dice_per_class" or (distance == "auto" and self.dims == 2)

    def distance(self, p_hat: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return dice_distance(p_hat, p, self.per_class_distance)

    def _probabilities(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)

    def lds_loss(self, image: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """L_lds (Eq. 3): D(p(x + r_adv), p(x)) over every image of the batch; ``probabilities`` detached."""
        with frozen_batchnorm_statistics(self.net):
            r_adv = vat_perturbation(self._probabilities, image, probabilities, self.config.vat_xi,
                                     self.config.vat_epsilon, self.distance)
            return self.distance(self._probabilities(image + r_adv), probabilities)

    def prototype_loss(self, predicted: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Selector-weighted mean of ``1 − cos(feature, memory entry of its class)``, summed over classes / K.

        As the official code, class c's selector sees only the class-c voxels (its BatchNorm normalises over them)
        and a class needs two voxels (BatchNorm) and a memory entry to contribute. The official code builds the
        ``(N_c, M)`` matrix of distances to every memory entry; its weighted mean equals, exactly,
        ``mean_i w_i (1 − x_i·v̄_c / ‖x_i‖)`` with ``v̄_c`` the mean of the unit-normalised entries (the cosine is
        linear in the entry), which needs one dot product per voxel instead of M and no ``(N_c, M)`` tensors.

        Args: ``predicted (N, D)`` prediction-head outputs, ``classes (N,)`` (ground truth or pseudo labels).
        """
        total = predicted.sum() * 0.0
        prototypes = {c: F.normalize(self.memory.entries(c), dim=1).mean(0) for c in range(len(self.selectors))
                      if int(self.memory.count[c]) > 0}                     # c → v̄_c (D,); no gradient
        if not prototypes:
            return total
        # F.normalize's guard: x / max(‖x‖, 1e-12). Dot products with every prototype at once: (N, P).
        inverse_norm = 1.0 / predicted.norm(dim=1).clamp_min(1e-12)
        cosines = (predicted @ torch.stack(list(prototypes.values())).T) * inverse_norm[:, None]
        for column, c in enumerate(prototypes):
            mask = classes == c
            count = int(mask.sum())
            if count < 2:  # BatchNorm in the selector needs two rows (the official code skips such classes too)
                continue
            # The selector sees detached features: it learns how much each voxel should count, while only
            # the cosine term moves the features. Weights are normalised to mean 1 over the class's voxels.
            weights = torch.sigmoid(self.selectors[c](predicted.detach()[mask])[:, 0])
            weights = weights * (count / weights.sum().clamp_min(1e-8))
            total = total + (weights * (1.0 - cosines[mask, column])).mean()
        return total / len(self.selectors)

    def _voxels(self, features: torch.Tensor, probabilities: torch.Tensor, rows: torch.Tensor):
        """Flatten the samples ``rows`` of ``(B, F, *S)``/``(B, K, *S)`` to voxels ``(N, F)``, ``(N, K)`` and the
        flat indices kept (a random subset of ``max_voxels`` when set)."""
        flat_features = features[rows].movedim(1, -1).reshape(-1, features.shape[1])
        flat_probabilities = probabilities[rows].movedim(1, -1).reshape(-1, probabilities.shape[1])
        keep = None
        limit = self.config.max_voxels
        if limit is not None and flat_features.shape[0] > limit:
            keep = torch.randperm(flat_features.shape[0], device=features.device)[:limit]
            flat_features, flat_probabilities = flat_features[keep], flat_probabilities[keep]
        return flat_features, flat_probabilities, keep

    def contrastive_losses(self, features: torch.Tensor, probabilities: torch.Tensor, label: torch.Tensor,
                           labelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L_cl_l and L_cl_u (Eqs. 4–5); updates the memory from the labelled voxels first.

        Args: ``features (B, F, *S)`` decoder features, ``probabilities (B, K, *S)`` the main pass's softmax
        (detached), ``label (B, *S)``, ``labelled (B,)``.
        """
        zero = features.sum() * 0.0
        losses = []
        for is_labelled, rows in ((True, labelled), (False, ~labelled)):
            if not rows.any():
                losses.append(zero)
                continue
            voxels, voxel_probabilities, keep = self._voxels(features, probabilities, rows)
            if voxels.shape[0] < 2:
                losses.append(zero)
                continue
            projected = self.projection(voxels)
            confidence, predicted = voxel_probabilities.max(dim=1)
            if is_labelled:
                classes = label[rows].reshape(-1)
                classes = classes if keep is None else classes[keep]
                self.memory.update(projected.detach(), classes, predicted, confidence)
            else:
                classes = predicted  # pseudo labels
            losses.append(self.prototype_loss(self.prediction(projected), classes))
        return losses[0], losses[1]

    def training_step(self, batch: dict, step: int) -> StepOutput:
        image, label, labelled = batch["image"], batch["label"], batch["labelled"]
        logits, features = self.net.forward_features(image)           # (B, K, *S), (B, F, *S)
        loss_sup = self.loss_sup(logits[labelled], label[labelled])
        weight = consistency_weight(step, self.config.consistency, self.config.consistency_rampup,
                                    self.config.rampup_unit)
        logs = {"loss_sup": float(loss_sup.detach()), "lambda": weight}
        if weight == 0.0:  # nothing unsupervised to learn: exactly supervised training
            return StepOutput(loss_sup, logs)
        # p(x) from the main pass, detached, is the VAT target (the official code runs an extra no-grad pass) and
        # gives the prototype memory its confidences and the unlabelled voxels their pseudo labels.
        probabilities = torch.softmax(logits.detach(), dim=1)
        loss_lds = self.lds_loss(image, probabilities)
        loss_cl_l, loss_cl_u = self.contrastive_losses(features, probabilities, label, labelled)
        loss = loss_sup + weight * (loss_lds + self.config.contrastive_weight * (loss_cl_l + loss_cl_u))
        logs.update(loss_lds=float(loss_lds.detach()), loss_cl_l=float(loss_cl_l.detach()),
                    loss_cl_u=float(loss_cl_u.detach()))
        return StepOutput(loss, logs)

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def build(config: ExperimentConfig, spec: DatasetSpec) -> SSNet:
    return SSNet(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("prototype memory selection", "the highest-confidence correctly predicted labelled features",
              "paper: the highest-confidence ones; official code: sorts ascending and keeps the lowest-scored",
              "the paper's description; the official order is a bug", None, "paper; official code (ycwu1997/SS-Net)"),
    Deviation("L_sup", "medgap's Dice + CE for all four methods", "official: soft Dice only (3-D on the foreground "
              "channel; 2-D over the 4 classes)", "lower bound, Mean Teacher and SS-Net then differ only in their "
              "unsupervised terms; `ce_weight: 0` leaves Dice over every class, not the official foreground Dice",
              {"method.ce_weight": 0.0}, "paper; official code (ycwu1997/SS-Net)"),
    Deviation("VAT target", "the main pass's softmax, detached", "official: an extra no-grad forward pass",
              "the same function of x up to the dropout mask (configs: dropout 0.5); one forward pass less", None,
              "paper; official code (ycwu1997/SS-Net)"),
    Deviation("VAT gradient normalisation", "g / ‖g‖ (guarded only against 0): ‖r_adv‖ = ε exactly",
              "official: g / (‖g‖ + 1e-8)", "on a fresh network ‖g‖ ≈ 1e-5, so the official ε shrinks", None,
              "paper; official code (ycwu1997/SS-Net)"),
    Deviation("prototype memory update", "a running memory per class: each step's most confident correctly "
              "predicted labelled features (projected in train mode, detached) go in ahead of older entries, "
              "cut to `memory_size`", "official: rebuilt every step from the current batch's projections, taken "
              "with the heads in eval mode", "noticed while optimising the step (issue 22); not yet changed",
              None, "official code (ycwu1997/SS-Net), read 2026-12-02"),
    Deviation("prototype selector", "input detached; one selector per class on the voxel features",
              "official: also a selector on the memory entries", "the selector learns the weights, only the "
              "cosine term moves the features", None, "paper; official code (ycwu1997/SS-Net)"),
    Deviation("augmentation", "rot90 + flip (`rot90_flip_probability` 1 on LA, 0.5 on ACDC)", "official 2-D "
              "also rotates by ±20° in a quarter of the samples", "not implemented", None,
              "official code (ycwu1997/SS-Net), read 2026-12-02"),
    Deviation("2-D dropout", "Dropout2d 0.5 (whole channels) at the U-Net bottleneck", "official U-Net: "
              "element-wise dropout 0.05/0.1/0.2/0.3/0.5 in the five encoder levels", "medgap's U-Net has one "
              "dropout, channel-wise like the V-Net's Dropout3d", None,
              "official code (ycwu1997/SS-Net), read 2026-12-02"),
    Deviation("2-D U-Net", "strided-conv down, transposed-conv up: 1.94 M parameters", "official: max-pooling, "
              "1×1 conv + bilinear upsampling: 1.81 M", "medgap's shared U-Net (7 % more parameters)", None,
              "paper; official code (ycwu1997/SS-Net)"),
    Deviation("model selection and splits", "`best.pt` on a validation split carved from the training cases; "
              "labelled cases drawn by case id with the run's seed", "official: best checkpoint chosen on the "
              "test set; labelled = the first 4 / 8 cases of `train.list`", "the test set never selects a "
              "model", None, "paper; official code (ycwu1997/SS-Net)"),
    Deviation("HD95 / ASD of an empty prediction", "NaN, counted apart (medgap's empty-mask policy)",
              "official: 0", "an empty prediction is not a perfect one", None, "paper; official code (ycwu1997/SS-Net)"),
]
