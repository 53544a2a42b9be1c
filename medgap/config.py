"""Experiment configuration: dataclasses with defaults, loaded from YAML, overridable with ``a.b=c``.

Every key is checked: an unknown key or a value of the wrong type is a one-line :class:`ConfigError` naming the
file and the key. The resolved config (defaults filled in) is what a run folder stores as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from medgap.errors import ConfigError

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass
class AugmentationConfig:
    flip_axes: list[int] = field(default_factory=lambda: [0, 1, 2])  # spatial axes that may be mirrored
    flip_probability: float = 0.5  # per axis
    intensity_scale: float = 0.1  # random multiplicative factor 1 ± this, per channel
    intensity_shift: float = 0.1  # random additive shift ± this (in normalised units), per channel
    noise_std: float = 0.05  # Gaussian noise standard deviation (normalised units)
    rot90_flip_probability: float = 0.0  # chance of k·90° in the first two axes + a mirror (UA-MT/SS-Net RandomRotFlip)


@dataclass
class DataConfig:
    dataset_dir: str = ""  # nnU-Net-style folder with dataset.json (see docs/your_data.md)
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 64])  # 3 entries: 3-D; 2 entries: 2-D slices
    labelled_batch_size: int = 2  # labelled samples per batch (per device)
    unlabelled_batch_size: int = 0  # unlabelled samples per batch (semi-supervised methods)
    labelled_ratio: float | None = None  # keep labels for this fraction of the training cases (by case id)
    labelled_count: int | None = None  # ... or for this many training cases; unset both: every label is used
    val_fraction: float = 0.2  # of all cases, when the dataset has no splits.json
    test_fraction: float = 0.2  # of all cases, when the dataset has no splits.json
    normalisation: Literal["zscore_nonzero", "zscore", "minmax", "none"] = "zscore_nonzero"  # per case and channel
    foreground_probability: float = 0.33  # chance that a patch is centred on a labelled foreground voxel
    num_workers: int = 2  # DataLoader worker processes
    cache_dir: str | None = None  # preprocessed .npy cache (default: <runs>/.medgap_cache/<dataset>-<hash>, shared by runs)
    max_image_mib: float = 4096.0  # refuse a case larger than this in memory, with its size
    skip_bad_cases: bool = False  # skip unreadable cases with a warning instead of stopping
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


@dataclass
class NetConfig:
    arch: Literal["unet", "vnet"] = "unet"  # V-Net is 3-D only
    features: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # channels per resolution level
    norm: Literal["instance", "batch", "group"] = "instance"
    dropout: float = 0.0


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.99  # SGD only
    nesterov: bool = True  # SGD only
    schedule: Literal["poly", "cosine", "constant", "step"] = "poly"  # over trainer.max_steps
    poly_power: float = 0.9  # poly: lr (1 - step / max_steps)^power
    step_size: int = 1000  # step: multiply lr by gamma every step_size steps
    gamma: float = 0.1
    warmup_steps: int = 0  # linear warm-up before the schedule
    grad_clip: float | None = 12.0  # max gradient norm; null: no clipping


@dataclass
class TrainerConfig:
    max_steps: int = 1000  # optimiser steps (iterations)
    val_every: int = 250  # validate on the val split (picks best.pt) every this many steps
    val_max_cases: int | None = None  # validate on at most this many cases
    log_every: int = 10  # metrics.jsonl row every this many steps
    checkpoint_every: int = 250  # checkpoints/last.pt every this many steps
    seed: int = 0  # seeds splits, sampling, augmentation and initialisation
    accelerator: str = "auto"  # Lightning Fabric: cpu, cuda, gpu, auto (CLI --accelerator)
    devices: int | str = 1  # Fabric devices per node (CLI --devices)
    num_nodes: int = 1  # Fabric nodes (CLI --num-nodes)
    strategy: str = "auto"  # Fabric strategy, e.g. ddp (CLI --strategy)
    precision: str = "32-true"  # Fabric precision: 32-true, bf16-mixed, 16-mixed (CLI --precision)
    progress: bool = True  # rich progress bar on the terminal


@dataclass
class InferenceConfig:
    patch_size: list[int] | None = None  # sliding-window size (default: data.patch_size)
    overlap: float = 0.5  # fraction of a window shared with its neighbour
    stride: list[int] | None = None  # window step per axis (SS-Net: [18, 18, 4]); overrides overlap when given
    mode: Literal["gaussian", "constant"] = "gaussian"  # blending of overlapping windows
    sw_batch_size: int = 2  # windows per forward pass
    largest_component: bool = False  # keep the largest connected component per structure (SS-Net's LA)


@dataclass
class EvaluationConfig:
    split: Literal["test", "val"] = "test"  # the split medgap evaluate scores
    hd95_definition: Literal["medpy", "monai"] = "medpy"  # see docs/metrics.md
    empty_penalty: float | None = None  # HD95/ASD when exactly one mask is empty (default: NaN, counted apart)
    voxel_units_too: bool = False  # also report distances in voxels


@dataclass
class MethodConfig:
    """Base of every method's config; the ``name`` picks the method module."""

    name: str = "supervised"


@dataclass
class ExperimentConfig:
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: NetConfig = field(default_factory=NetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    name: str = ""  # experiment name (default run folder runs/<name>)
    run_dir: str | None = None


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Load a YAML config (or only defaults when ``path`` is None), apply ``key.path=value`` overrides, validate."""
    source = str(path) if path is not None else "<defaults>"
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            where = f"line {mark.line + 1}: " if mark else ""
            raise ConfigError(f"{path}: not valid YAML ({where}{problem})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        raw.setdefault("name", path.stem)
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw, source)


def apply_override(raw: dict, override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``1e-3``, ``[64, 64]``, ``null``)."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r}: expected key.path=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = value


def config_from_dict(raw: dict, source: str = "<config>") -> ExperimentConfig:
    from medgap.methods import method_config_class

    raw = dict(raw)
    method_raw = raw.pop("method", {}) or {}
    if isinstance(method_raw, str):
        method_raw = {"name": method_raw}
    if not isinstance(method_raw, dict):
        raise ConfigError(f"{source}: method must be a mapping with a name")
    method_cls = method_config_class(method_raw.get("name", MethodConfig.name), source)
    config = _build(ExperimentConfig, raw, source, "")
    config.method = _build(method_cls, method_raw, source, "method.")
    return config


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    from medgap.atomic import write_text

    write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _build(cls, raw: Any, source: str, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(fields)})")
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, source, prefix + name)
    return cls(**values)


def _coerce(hint, value, source: str, key: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, source, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, source, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0] if len(errors) == 1 else _wrong(source, key, hint, value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{source}: {key} must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _wrong(source, key, hint, value)
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(source, key, hint, value)
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _wrong(source, key, hint, value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(source, key, hint, value)
        return value
    if hint is float:
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)  # PyYAML (YAML 1.1) reads 1e-3 as a string; users mean the number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(source, key, hint, value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _wrong(source, key, hint, value)
        return value
    raise ConfigError(f"{source}: {key}: unsupported config type {hint}")


def _wrong(source, key, hint, value) -> ConfigError:
    name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return ConfigError(f"{source}: {key} must be {name}, got {value!r} ({type(value).__name__})")
