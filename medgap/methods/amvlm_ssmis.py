"""AMVLM step 2: text-guided semi-supervised medical image segmentation (SSMIS) with a Mean Teacher U-Net.

Pieces (Pan et al.; ``medgap.methods.amvlm`` holds step 1):

- **Text mask generator.** The pretrained AMVLM encoders are frozen; a light decoder upsamples the image's patch
  embeddings to dense embeddings e(x) ``(B, d, H, W)`` (the image itself joins at full resolution for sharp
  edges) and the text-guided mask is m = sigmoid(s·⟨ê(x), t̂^cls⟩ + b) with the CLS embedding of *that image's
  own report* (learned scale s and bias b; hats = L2-normalised). The decoder is trained with
  Dice + BCE on labelled images and with L_tg on all images.
- **L_tg** (text-guided InfoNCE). Default ``tg_form: extended``, the official form (TCL's ExtendedInfoNCE,
  :func:`medgap.losses.contrastive.extended_infonce`): image b is pooled with the mask that report n draws on it,
  v_{b|n} = normalise(Σ_hw m_{b|n} ê_b / Σ_hw m_{b|n}), m_{b|n} = sigmoid(s·⟨ê_b, t̂_n⟩ + b), and
      L_tg = ½ [ CE_n(S[b, :]/τ, b) + CE_b(S[:, n]/τ, n) ],  S[b, n] = sim(v_{b|n}, t_n),
  on the unlabelled images of the batch (``tg_unlabelled_only``) with a learnable τ (initial 0.07, 1/τ ≤ 100).
  (The official code builds its loss module anew at every call, so its τ never leaves 0.07; we train it as the
  module intends.) ``tg_form: own_report`` is the simplification the paper's equation suggests: only the own
  report's mask, v_text,i = normalise(Σ_hw m_i ê_i / Σ_hw m_i), symmetric InfoNCE at the pretraining's fixed τ
  over all images:
      L_tg = −1/(2B) Σ_i [ log e^{sim(v_text,i, t_i)/τ} / Σ_j e^{sim(v_text,i, t_j)/τ}
                          + log e^{sim(t_i, v_text,i)/τ} / Σ_j e^{sim(t_i, v_text,j)/τ} ].
  The mask decoder itself (a light decoder trained with Dice + BCE on the labelled images) is ours: neither the
  paper nor the official code supervises the text mask with labels.
- **Mean Teacher.** Student U-Net; teacher = EMA copy (``training/ema.py``: initialised as a copy, decay
  min(1 − 1/(step + 1), 0.99), eval mode, no_grad) that sees the image with clamped Gaussian noise.
- **Pseudo label (fusion rule).** The paper says only that the teacher's probability and the text mask are fused.
  Default ``fusion: max``: p_fused = max(p_teacher, m), pseudo label = [p_fused > 0.5]: the report can add a
  finding the teacher missed but cannot erase one it found, so a text mask that is still poor costs the teacher's
  pseudo labels little. ``fusion: mean``: p_fused = (1 − β)·p_teacher + β·m, β = ``method.text_weight``; both
  must agree for a call, and on our synthetic chest set a weak text mask then vetoed most of the teacher's
  foreground (test Dice 36.8 vs 46.3 with ``max``, 25 % labelled, seed 0). Either way an empty lung (p_teacher ≈ 0,
  m ≈ 0) gives an empty pseudo label (the official sigmoid(p + m) is > 0.5 everywhere).
- **Losses.** L = L_sup + λ(t)·L_unsup + w_tg·L_tg + w_mask·L_mask with L_sup = 0.5 Dice + 0.5 CE (= BCE for
  the binary task) on labelled images, L_unsup the same loss of the student on unlabelled images against the
  pseudo labels, λ(t) the sigmoid ramp-up (``training/ramps.py``), L_mask = Dice + BCE of the text mask on
  labelled images.

Ablation switches: ``text_guidance: false`` (pseudo labels from the teacher alone — the "MT" row),
``text_guided_loss: false`` (no L_tg), ``use_report: false`` (the "vision only" row: the same pretrained image
encoder and mask-guided pseudo labels, but the mask decoder queries one learned vector instead of the report's
embedding, so no text reaches the segmentation; requires ``text_guided_loss: false``). Inference uses the
student U-Net only (no report needed at test time).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medgap.config import ExperimentConfig, load_config
from medgap.data.dataset_json import DatasetSpec
from medgap.errors import ConfigError, MedgapError
from medgap.losses import SegmentationLoss
from medgap.losses.contrastive import extended_infonce, info_nce
from medgap.methods import amvlm
from medgap.methods.amvlm import AMVLMEncoders
from medgap.methods.base import SegmentationMethod, StepOutput
from medgap.methods.options import AMVLMSSMISOptions
from medgap.nets import build_net
from medgap.training.ema import make_teacher, update_teacher
from medgap.training.ramps import consistency_weight


Config = AMVLMSSMISOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


def fuse_pseudo_label(teacher_probability: torch.Tensor, text_mask: torch.Tensor | None,
                      text_weight: float, fusion: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """The fusion rule: ``mean``: p = (1 − β) p_teacher + β m; ``max``: p = max(p_teacher, m) (the text can add
    foreground the teacher missed, never remove what it found); pseudo label ``p > 0.5``.

    Args:
        teacher_probability: foreground probability ``(B, H, W)``; text_mask: the text-guided mask ``(B, H, W)``
            in [0, 1] or None (teacher only).
    Returns:
        ``(p (B, H, W) float, pseudo label (B, H, W) int64)``.
    """
    if text_mask is None:
        fused = teacher_probability
    elif fusion == "max":
        fused = torch.maximum(teacher_probability, text_mask)
    else:
        fused = (1 - text_weight) * teacher_probability + text_weight * text_mask
    return fused, (fused > 0.5).long()


class TextMaskGenerator(nn.Module):
    """Patch embeddings ``(B, P, d)`` + the image ``(B, C, H, W)`` + report CLS ``(B, d)`` → mask logits ``(B, H, W)``
    and the dense embeddings ``(B, d, H/2, W/2)`` (L2-normalised over d).

    The dense embeddings live at half resolution (the mask logits are upsampled bilinearly): on CPU the
    full-resolution convolution cost as much as the whole student U-Net."""

    def __init__(self, dim: int, in_channels: int, channels: int = 32):
        super().__init__()
        self.lift = nn.Sequential(nn.Conv2d(dim, channels, 3, padding=1), nn.GroupNorm(4, channels), nn.GELU())
        self.refine = nn.Sequential(nn.Conv2d(channels + in_channels, channels, 3, padding=1),
                                    nn.GroupNorm(4, channels), nn.GELU(), nn.Conv2d(channels, dim, 1))
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, patches: torch.Tensor, image: torch.Tensor, text_cls: torch.Tensor):
        batch, count, dim = patches.shape
        grid = int(round(count ** 0.5))
        features = self.lift(patches.transpose(1, 2).reshape(batch, dim, grid, grid))
        half = F.avg_pool2d(image, 2)
        features = F.interpolate(features, size=half.shape[-2:], mode="bilinear", align_corners=False)
        dense = F.normalize(self.refine(torch.cat([features, half], 1)), dim=1)           # (B, d, H/2, W/2)
        logits = self.scale * torch.einsum("bdhw,bd->bhw", dense, F.normalize(text_cls, dim=-1)) + self.bias
        logits = F.interpolate(logits[:, None], size=image.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return logits, dense

    def pair_masks(self, dense: torch.Tensor, text_cls: torch.Tensor) -> torch.Tensor:
        """The mask every report draws on every image, at the dense embeddings' resolution: ``dense (B, d, h, w)``,
        ``text_cls (N, d)`` → probabilities ``(B, N, h, w)`` ([b, n]: image b under report n)."""
        return torch.sigmoid(self.scale * torch.einsum("bdhw,nd->bnhw", dense, F.normalize(text_cls, dim=-1))
                             + self.bias)


class AMVLMSegmentation(SegmentationMethod):
    def __init__(self, config: ExperimentConfig, spec: DatasetSpec, tokenizer=None):
        super().__init__(spec)
        if len(spec.label_values) != 2:
            raise ConfigError(f"{spec.path}: amvlm_ssmis segments one foreground class (binary labels), "
                              f"found labels {list(spec.label_values)}")
        self.config = method = config.method
        dims = len(config.data.patch_size)
        self.net = build_net(config.model, dims, spec.num_channels, self.targets.num_outputs)
        self.teacher = make_teacher(self.net)
        self.loss = SegmentationLoss(self.output, method.dice_weight, method.ce_weight)
        if method.text_guided_loss and not method.use_report:
            raise ConfigError("amvlm_ssmis: method.text_guided_loss needs the report (method.use_report: true)")
        if method.text_guidance or method.text_guided_loss:
            self.encoders, encoder_config = load_pretrained_encoders(method, config, spec, tokenizer)
            for parameter in self.encoders.parameters():
                parameter.requires_grad_(False)
            self.mask_generator = TextMaskGenerator(self.encoders.image_projection.second.out_features,
                                                    spec.num_channels, method.mask_channels)
            self.mask_loss = SegmentationLoss("sigmoid", 1.0, 1.0)
            self.temperature = float(encoder_config.temperature)
            # log(1/τ) of the extended L_tg (CLIP/TCL parametrisation)
            self.tg_log_scale = nn.Parameter(torch.tensor(-math.log(method.tg_temperature)),
                                             requires_grad=method.tg_learnable_temperature)
            if not method.use_report:  # vision only: one learned query replaces the report's CLS embedding
                self.query = nn.Parameter(torch.randn(self.encoders.image_projection.second.out_features) * 0.1)

    def train(self, mode: bool = True):
        """The student and the mask decoder train; the teacher and the frozen encoders stay in eval mode."""
        super().train(mode)
        self.teacher.eval()
        if hasattr(self, "encoders"):
            self.encoders.eval()
        return self

    @property
    def has_text_mask(self) -> bool:
        """Whether the text-guided mask generator exists (``text_guidance`` or ``text_guided_loss`` on)."""
        return hasattr(self, "encoders")

    def text_mask(self, image: torch.Tensor, texts: list[str] | None):
        """``(mask logits (B, H, W), dense embeddings (B, d, H, W), report CLS (B, d))`` for each image and *its*
        report (the learned query instead with ``use_report: false``); the case id plays no part."""
        with torch.no_grad():
            patches = self.encoders.encode_image(image).tokens
            text_cls = self.encoders.encode_text(texts).cls if self.config.use_report else None
        if text_cls is None:
            text_cls = self.query.expand(len(image), -1)
        logits, dense = self.mask_generator(patches, image, text_cls)
        return logits, dense, text_cls

    @torch.no_grad()
    def pseudo_label(self, image: torch.Tensor, text_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher (noisy input, eval mode, no_grad) fused with the text mask: ``(p_fused, pseudo label)``."""
        sigma = self.config.noise_std
        noise = torch.clamp(torch.randn_like(image) * sigma, -2 * sigma, 2 * sigma)
        teacher_probability = self.targets.probabilities(self.teacher(image + noise))[:, 1]
        return fuse_pseudo_label(teacher_probability, text_mask, self.config.text_weight, self.config.fusion)

    def training_step(self, batch: dict, step: int) -> StepOutput:
        method = self.config
        image, labelled, label = batch["image"], batch["labelled"], batch["label"]
        logits = self.net(image)
        loss_sup = self.loss(logits[labelled], self.targets.targets(label[labelled]))
        logs = {"loss_sup": float(loss_sup.detach())}
        loss = loss_sup
        text_mask = None
        if hasattr(self, "encoders"):
            texts = batch.get("text")
            if method.use_report and (texts is None or any(text is None for text in texts)):
                raise MedgapError(f"{batch['case'][0]}...: amvlm_ssmis needs a report (textTr/CASE.txt) per image")
            mask_logits, dense, text_cls = self.text_mask(image, texts)
            if labelled.any():
                loss_mask = self.mask_loss(mask_logits[labelled][:, None], (label[labelled] > 0)[:, None].float())
                loss = loss + method.weight_mask * loss_mask
                logs["loss_mask"] = float(loss_mask.detach())
            if method.text_guided_loss:
                loss_tg = self.text_guided_loss(mask_logits, dense, text_cls, labelled)
                if loss_tg is not None:
                    loss = loss + method.weight_tg * loss_tg
                    logs["loss_tg"] = float(loss_tg.detach())
            if method.text_guidance:
                text_mask = torch.sigmoid(mask_logits.detach())
        unlabelled = ~labelled
        weight = consistency_weight(step, method.consistency, method.consistency_rampup, method.rampup_unit)
        if unlabelled.any():
            _, pseudo = self.pseudo_label(image[unlabelled], None if text_mask is None else text_mask[unlabelled])
            loss_unsup = self.loss(logits[unlabelled], pseudo)
            loss = loss + weight * loss_unsup
            logs.update(loss_unsup=float(loss_unsup.detach()), pseudo_foreground=float(pseudo.float().mean()))
        logs["lambda"] = weight
        return StepOutput(loss, logs)

    def text_guided_loss(self, mask_logits: torch.Tensor, dense: torch.Tensor, text_cls: torch.Tensor,
                         labelled: torch.Tensor) -> torch.Tensor | None:
        """L_tg of the batch (see the module docstring): ``mask_logits (B, H, W)``, ``dense (B, d, H/2, W/2)``,
        ``text_cls (B, d)``, ``labelled (B,)``; None when fewer than two images take part."""
        if self.config.tg_form == "own_report":
            weights = F.avg_pool2d(torch.sigmoid(mask_logits)[:, None], 2)                    # (B, 1, H/2, W/2)
            pooled = (weights * dense).sum((2, 3)) / weights.sum((2, 3)).clamp_min(1e-6)        # (B, d)
            return info_nce(F.normalize(pooled, dim=-1), F.normalize(text_cls, dim=-1), self.temperature)
        rows = ~labelled if self.config.tg_unlabelled_only else torch.ones_like(labelled)
        if int(rows.sum()) < 2:
            return None
        dense, text = dense[rows], F.normalize(text_cls[rows], dim=-1)
        masks = self.mask_generator.pair_masks(dense, text)                                    # (R, R, h, w)
        pooled = torch.einsum("bnhw,bdhw->bnd", masks, dense) / masks.sum((2, 3))[..., None].clamp_min(1e-6)
        similarity = torch.einsum("bnd,nd->bn", F.normalize(pooled, dim=-1), text)              # (R, R)
        return extended_infonce(similarity, self.tg_log_scale.exp().clamp(max=100.0))

    def on_after_optimizer_step(self, step: int) -> None:
        update_teacher(self.teacher, self.net, self.config.ema_decay, step)

    def predict_logits(self, image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
        return (self.teacher if self.config.predict_with == "teacher" else self.net)(image)


def load_pretrained_encoders(method: Config, config: ExperimentConfig, spec: DatasetSpec,
                             tokenizer=None) -> tuple[AMVLMEncoders, amvlm.Config]:
    """The encoders of the pretraining run ``method.pretrained_run`` (its config and checkpoint) and that run's
    method config, or untrained encoders built from ``method.encoder`` when no run is given. ``tokenizer``
    overrides the vocabulary built from the data set's ``textTr`` (benchmarks, tests)."""
    if not method.pretrained_run:
        encoder_config = amvlm.Config(**method.encoder)
        pretraining_config = ExperimentConfig(method=encoder_config, data=config.data)
        model = amvlm.AMVLMPretraining(pretraining_config, spec, tokenizer)
    else:
        run = Path(method.pretrained_run)
        checkpoint = run / "checkpoints" / f"{method.pretrained_checkpoint}.pt"
        if not (run / "config.yaml").is_file() or not checkpoint.is_file():
            raise ConfigError(f"{run}: not a finished amvlm pretraining run (needs config.yaml and {checkpoint.name})")
        pretraining_config = load_config(run / "config.yaml")
        if pretraining_config.method.name != "amvlm":
            raise ConfigError(f"{run}: method is {pretraining_config.method.name!r}, expected an amvlm pretraining run")
        if list(pretraining_config.data.patch_size) != list(config.data.patch_size):
            raise ConfigError(f"{run}: pretrained on images of {pretraining_config.data.patch_size}, "
                              f"but data.patch_size is {config.data.patch_size}")
        from medgap.training.checkpoint import load_checkpoint, load_model_state

        model = amvlm.AMVLMPretraining(pretraining_config, spec, tokenizer)
        load_model_state(model, load_checkpoint(checkpoint)["model"], checkpoint)
        encoder_config = pretraining_config.method
    return model.encoders, encoder_config


def build(config: ExperimentConfig, spec: DatasetSpec) -> AMVLMSegmentation:
    return AMVLMSegmentation(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("text mask input", "the CLS embedding of the image's own report", "official: chosen by file names",
              "an official bug: the mask must follow the report", None, "official code (QingtaoPan/AMVLM)"),
    Deviation("text mask resolution", "dense embeddings at half the image size, the mask upsampled bilinearly",
              "paper: the mask at image resolution", "at full resolution the decoder cost as much as the student "
              "U-Net on a CPU", None, "docs/methods/amvlm.md"),
    Deviation("pseudo-label fusion", "max(p_teacher, m) > 0.5 (`fusion: max`)", "paper: 'fused' (unspecified); "
              "official: sigmoid(p + m), > 0.5 everywhere", "an empty lung must give an empty pseudo label; the "
              "official rule is a bug, so no option reproduces it (`fusion: mean` is the other sound rule)",
              None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("teacher", "a copy of the student, eval mode, no_grad, EMA min(1 − 1/(t+1), 0.99)", "official: "
              "randomly initialised and in train mode", "official bugs", None, "official code (QingtaoPan/AMVLM)"),
    Deviation("L_tg temperature", "the official ExtendedInfoNCE over every (image, report mask) pair on unlabelled "
              "images (`tg_form: extended`, default) with a learnable τ that is trained", "official: the same loss, "
              "but its code re-initialises τ", "the paper's intent; `tg_form: own_report` is the paper's "
              "equation (each image with its own report, on all images)", None,
              "official code (QingtaoPan/AMVLM), read 2026-12-02"),
    Deviation("views", "the teacher sees the image with clamped Gaussian noise", "paper/official: weak and "
              "strong views", "not yet aligned", None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("normalisation", "instance norm in every `configs/amvlm_*_chest.yaml` U-Net", "official: BatchNorm "
              "over the labelled + unlabelled batch", "with BatchNorm the batch coupling broke Mean Teacher on "
              "the small unaugmented set (docs/methods/amvlm.md)", {"model.norm": "batch"},
              "docs/methods/amvlm.md"),
    Deviation("model selection", "`best.pt` on a separate validation split", "official: a shuffled validation "
              "set that is the test set", "the test set never selects a model", None,
              "official code (QingtaoPan/AMVLM)"),
    Deviation("vision-only row", "the mask decoder queries one learned vector instead of the report "
              "(`use_report: false`)", "paper: not spelled out", "the closest variant without text", None,
              "paper; official code (QingtaoPan/AMVLM)"),
]
