"""Every method's options (the YAML ``method:`` section) as dataclasses that import no torch.

Loading and checking a config needs each method's option types but none of its networks, so the options live here
rather than in the method modules (which import torch): a config typo is reported before torch is imported. Each
method module re-exports its class as ``Config``; :mod:`medgap.registry` pairs a method name with its module and
its options class. The ``# comment`` beside a field is its line in ``docs/configuration.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from medgap.config import MethodConfig


@dataclass
class ModalityDropoutOptions:
    """Method options (the YAML ``method:`` section) of methods that train with dropped modalities.

    Attributes:
        modality_dropout: ``none`` (train on what the case has), ``random`` (non-dedicated: per sample keep
            k ~ U{1..m} of its m available modalities, never none) or ``fixed`` (dedicated: keep only
            ``keep_modalities``).
        keep_modalities: channel names kept in ``fixed`` mode (names from ``dataset.json`` channel_names).
        full_modality_steps: warm-up steps trained with every available modality before dropping starts
            (the official ShaSpec schedule trains 80k of 180k iterations with all modalities).
        sparse_modalities, sparse_keep_ratio: SMIL-style training sets: only a ``sparse_keep_ratio`` fraction
            of the training cases keep ``sparse_modalities`` (e.g. audio in 10 % of AV-MNIST); the others never
            see them. Which cases keep them is a fixed function of (seed, case id), so every epoch agrees;
            validation and evaluation are not affected.
    """

    modality_dropout: Literal["none", "random", "fixed"] = "random"
    keep_modalities: list[str] = field(default_factory=list)
    full_modality_steps: int = 0
    sparse_modalities: list[str] = field(default_factory=list)
    sparse_keep_ratio: float = 1.0


@dataclass
class SupervisedOptions(MethodConfig):
    """``method.name: supervised``: :mod:`medgap.methods.supervised`."""
    name: str = "supervised"
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    region_bce: Literal["mean", "sum"] = "mean"  # BraTS-style regions: mean or sum of the per-region BCE terms
    deep_supervision: bool = False  # nnU-Net's: the loss on lower U-Net decoder levels too (weights 1/2^i, normalised)


@dataclass
class ShaSpecOptions(MethodConfig, ModalityDropoutOptions):
    """``method.name: shaspec``: :mod:`medgap.methods.shaspec`."""
    name: str = "shaspec"
    dao_weight: float = 0.1  # α in Eq. 9 (best in the paper's sensitivity study)
    dco_weight: float = 0.02  # β in Eq. 9
    dao_loss: Literal["l1", "mse", "kl", "ce"] = "l1"
    missing_feature: Literal["mean", "copy"] = "mean"  # paper Eq. 4 / official code
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    region_bce: Literal["mean", "sum"] = "sum"  # official: BCE summed over the regions, Dice averaged
    head_hidden: int = 64  # classification: FC–dropout–FC width
    head_dropout: float = 0.5
    head_pooling: Literal["mean", "max", "flatten"] = "mean"  # classification: how each fused map becomes a vector


@dataclass
class ZeroFillingOptions(SupervisedOptions, ModalityDropoutOptions):
    """``method.name: zero_filling``: :mod:`medgap.methods.zero_filling`."""
    name: str = "zero_filling"
    head_hidden: int = 64  # classification datasets: FC–dropout–FC on the pooled encoder features
    head_dropout: float = 0.5
    head_pooling: Literal["mean", "max", "flatten"] = "mean"  # how the bottleneck map becomes a vector


@dataclass
class MeanTeacherOptions(MethodConfig):
    """``method.name: mean_teacher``: :mod:`medgap.methods.mean_teacher`."""
    name: str = "mean_teacher"
    ema_decay: float = 0.99
    consistency: float = 0.1          # final λ (SSL4MIS default)
    consistency_rampup: float = 200.0  # ramp-up length in units of ``rampup_unit`` steps
    rampup_unit: int = 150            # official code: λ evaluated at iter // 150
    noise_std: float = 0.1            # teacher input noise σ, clamped to ±2σ
    teacher_mode: Literal["train", "eval"] = "train"  # SSL4MIS: train (own dropout, batch-statistics BN)
    consistency_on: Literal["unlabelled", "all"] = "unlabelled"  # SSL4MIS: the unlabelled half of the batch
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    predict_with: Literal["student", "teacher"] = "student"


@dataclass
class SSNetOptions(MethodConfig):
    """``method.name: ss_net``: :mod:`medgap.methods.ss_net`."""
    name: str = "ss_net"
    consistency: float = 1.0           # c: final λ (LA 1.0, ACDC 0.1)
    consistency_rampup: float = 40.0   # R in units of ``rampup_unit`` steps (LA 40, ACDC 200)
    rampup_unit: int = 150             # official: λ evaluated at iter // 150
    vat_xi: float = 10.0               # ξ, the finite-difference step of the power iteration
    vat_epsilon: float = 10.0          # ε, the perturbation's L2 norm per sample (LA 10, ACDC 6)
    vat_distance: Literal["auto", "dice_all", "dice_per_class"] = "auto"  # auto: 3-D dice_all, 2-D per class
    contrastive_weight: float = 0.1    # the 0.1 in front of L_cl_l + L_cl_u
    memory_size: int = 32              # features kept per class
    memory_classes: Literal["foreground", "all"] = "foreground"  # official: no background prototypes
    embedding_dim: int = 32            # projection/prediction head width
    max_voxels: int | None = None      # voxels per stream sampled for L_cl each step (None = all, as the paper)
    dice_weight: float = 1.0
    ce_weight: float = 1.0


@dataclass
class AMVLMOptions(MethodConfig):
    """``method.name: amvlm``: :mod:`medgap.methods.amvlm`."""
    name: str = "amvlm"
    # encoders (official: ViT-B/16 at 224², Bio_ClinicalBERT; CPU-sized here)
    vit_patch_size: int = 8
    vit_image_size: int | None = None  # ViT input side; other image sizes are resized to it (None: data.patch_size)
    vit_width: int = 128
    vit_depth: int = 4
    vit_heads: int = 4
    text_width: int = 128
    text_depth: int = 2
    text_heads: int = 4
    max_words: int = 20
    text_encoder_path: str = ""        # a local Hugging Face folder (e.g. CXR-BERT); empty = small transformer
    text_pooling: Literal["cls", "mean"] = "cls"  # the report embedding: CLS (BERT, ours) or mean (sentence-transformers)
    text_lr_scale: float = 1.0          # the text encoder's LR relative to optim.lr; 0 = frozen (eval mode)
    embed_dim: int = 64                 # d of the projection heads (official 128)
    projection_hidden: int = 256        # official 2048
    temperature: float = 0.07
    # components (ablation switches)
    css: bool = True
    pdt: bool = True
    local: bool = True                  # L_local: patches ↔ report CLS, words ↔ image CLS (official)
    icl: bool = True
    icl_ema: bool = True                # encode the augmented view with an EMA copy (official)
    ema_decay: float = 0.995
    # loss weights (official defaults)
    weight_coarse: float = 1.0
    weight_css: float = 0.5
    weight_local: float = 0.1           # official
    weight_icl_coarse: float = 0.1
    weight_icl_fine: float = 0.1
    # the augmented view
    rotation_degrees: float = 20.0
    intensity_jitter: float = 0.1


@dataclass
class AMVLMSSMISOptions(MethodConfig):
    """``method.name: amvlm_ssmis``: :mod:`medgap.methods.amvlm_ssmis`."""
    name: str = "amvlm_ssmis"
    pretrained_run: str = ""            # run folder of an `amvlm` pretraining; empty = untrained encoders
    pretrained_checkpoint: Literal["last", "best"] = "last"
    encoder: dict[str, Any] = field(default_factory=dict)  # amvlm method options (AMVLMOptions) when pretrained_run is empty
    text_guidance: bool = True          # fuse the text-guided mask into the pseudo labels
    text_guided_loss: bool = True       # L_tg
    tg_form: Literal["extended", "own_report"] = "extended"  # official ExtendedInfoNCE, or own-report InfoNCE
    tg_unlabelled_only: bool = True     # extended form: L_tg on the unlabelled images (official)
    tg_temperature: float = 0.07        # extended form: initial τ
    tg_learnable_temperature: bool = True  # extended form: train τ (official intent; its code re-inits it)
    use_report: bool = True             # false: the mask queries a learned vector, not the report (vision only)
    fusion: Literal["mean", "max"] = "max"  # how the teacher and the text mask combine (see fuse_pseudo_label)
    text_weight: float = 0.5            # β of the "mean" fusion rule
    weight_tg: float = 0.1
    weight_mask: float = 1.0
    mask_channels: int = 16
    ema_decay: float = 0.99
    consistency: float = 1.0            # final λ
    consistency_rampup: float = 40.0    # in units of rampup_unit steps
    rampup_unit: int = 10
    noise_std: float = 0.1
    dice_weight: float = 0.5
    ce_weight: float = 0.5
    predict_with: Literal["student", "teacher"] = "student"


@dataclass
class ContIGOptions(MethodConfig):
    """``method.name: contig``: :mod:`medgap.methods.contig`."""
    name: str = "contig"
    modalities: list[str] = field(default_factory=list)  # genetics/<name>.csv; empty = every modality present
    aggregation: Literal["outer", "inner"] = "outer"
    temperature: float = 0.1
    alpha: float = 0.75
    backbone_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    backbone_blocks: int = 1
    input_scale: float = 1 / 255  # 8-bit photographs, data.normalisation: none
    stem_stride: int = 1  # 2 = quarter of the compute (CPU-scale experiments)
    genetic_hidden: list[int] = field(default_factory=list)  # [] = identity (official default)
    projection_hidden: int = 256  # official 2048
    projection_dim: int = 128
    rotation_degrees: float = 20.0  # the paper's random rotation (flips come from data.augmentation); 0 = off
    val_batch_size: int = 64
    mask_same_person: bool = True  # fellow eyes are not negatives (official: not masked)
    genetic_dropout: float = 0.0  # dropout on each genetic input (official: none)
    genetic_weight_decay: float = 0.0  # L2 penalty on the genetic encoders + heads, added to the loss


@dataclass
class SimCLROptions(MethodConfig):
    """``method.name: simclr``: :mod:`medgap.methods.simclr`."""
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


@dataclass
class ImageClassifierOptions(MethodConfig):
    """``method.name: image_classifier``: :mod:`medgap.methods.classifier`."""
    name: str = "image_classifier"
    pretrained: str | None = None  # run folder of a contig/simclr run
    pretrained_checkpoint: Literal["best", "last"] = "last"
    linear_probe: bool = False
    ordinal: bool = True
    backbone_widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    backbone_blocks: int = 1
    input_scale: float = 1 / 255  # 8-bit photographs, data.normalisation: none
    stem_stride: int = 1  # 2 = quarter of the compute (CPU-scale experiments)
    probe_feature_norm: bool = True  # linear probe: standardise the frozen features (BatchNorm without affine)
    calibrate_random_batchnorm: bool = True  # linear probe of a random init: BatchNorm statistics from training data
    calibration_steps: int = 20  # ... from this many first training batches (cumulative average)
