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
    flip_axes: list[int] = field(default_factory=lambda: [0, 1, 2])
    flip_probability: float = 0.5
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    noise_std: float = 0.05


@dataclass
class DataConfig:
    dataset_dir: str = ""
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 64])
    labelled_batch_size: int = 2
    unlabelled_batch_size: int = 0
    labelled_ratio: float | None = None
    labelled_count: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    normalisation: Literal["zscore_nonzero", "zscore", "minmax", "none"] = "zscore_nonzero"
    foreground_probability: float = 0.33
    num_workers: int = 2
    cache_dir: str | None = None
    max_image_mib: float = 4096.0
    skip_bad_cases: bool = False
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)


@dataclass
class NetConfig:
    arch: Literal["unet", "vnet"] = "unet"
    features: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    norm: Literal["instance", "batch", "group"] = "instance"
    dropout: float = 0.0


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.99
    nesterov: bool = True
    schedule: Literal["poly", "cosine", "constant", "step"] = "poly"
    poly_power: float = 0.9
    step_size: int = 1000
    gamma: float = 0.1
    warmup_steps: int = 0
    grad_clip: float | None = 12.0


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    val_every: int = 250
    val_max_cases: int | None = None
    log_every: int = 10
    checkpoint_every: int = 250
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = True


@dataclass
class InferenceConfig:
    patch_size: list[int] | None = None
    overlap: float = 0.5
    stride: list[int] | None = None  # window step per axis (SS-Net: [18, 18, 4]); overrides overlap when given
    mode: Literal["gaussian", "constant"] = "gaussian"
    sw_batch_size: int = 2
    largest_component: bool = False


@dataclass
class EvaluationConfig:
    split: Literal["test", "val"] = "test"
    hd95_definition: Literal["medpy", "monai"] = "medpy"
    empty_penalty: float | None = None
    voxel_units_too: bool = False


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
    name: str = ""
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
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
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
