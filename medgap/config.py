"""Experiment configuration: dataclasses with defaults, loaded from YAML, overridable with ``a.b=c``.

Every key is checked: an unknown key or a value of the wrong type is a one-line :class:`ConfigError` naming the
file and the key. The resolved config (defaults filled in) is what a run folder stores as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
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
    nnunet: bool = False  # add nnU-Net v2's rotation, scaling, elastic deformation and gamma to segmentation patches;
    # the nnunet keys below act only with it and default to nnU-Net's values (its mirroring is flip_*: every axis, 0.5)
    rotation_probability: float = 0.2  # nnunet: chance of a rotation about every axis (nnU-Net 0.2)
    rotation_degrees: float | None = None  # nnunet: largest angle per axis; null: nnU-Net's 30° (3-D), 180° (2-D)
    scaling_probability: float = 0.2  # nnunet: chance of an isotropic scaling (nnU-Net 0.2)
    scaling_range: list[float] = field(default_factory=lambda: [0.7, 1.4])  # nnunet: factor range; > 1 = smaller objects
    elastic_probability: float = 0.0  # nnunet: chance of an elastic deformation (nnU-Net v2: 0, off)
    elastic_scale: list[float] = field(default_factory=lambda: [0.0, 0.2])  # nnunet: smoothing σ range, × patch size
    elastic_magnitude: list[float] = field(default_factory=lambda: [0.0, 0.2])  # nnunet: largest shift range, × half patch
    gamma_probability: float = 0.3  # nnunet: chance of a gamma per sample, every channel its own γ (nnU-Net 0.3)
    gamma_inverted_probability: float = 0.1  # nnunet: chance of a gamma on the inverted image (nnU-Net 0.1)
    gamma_range: list[float] = field(default_factory=lambda: [0.7, 1.5])  # nnunet: γ range (below 1 half the time)


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
    train_requires_genetics: list[str] = field(default_factory=list)  # train only on cases with these genetics/*.csv (ContIG inner)
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
    max_steps: int = 1000  # optimiser steps (iterations); the LR schedule spans them
    max_minutes: float | None = None  # also stop once training (validations included, summed over resumes) would
    # pass this many minutes: the step's validation and last.pt are written first. Machine-speed dependent, so a run
    # stopped by it is not reproducible step for step; the LR schedule still spans max_steps.
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
    progress: bool = True  # rich progress bar on a terminal; plain progress lines on stdout otherwise (SLURM, nohup)
    loggers: list[Literal["tensorboard", "csv"]] = field(default_factory=list)  # Lightning Fabric loggers
    # besides metrics.jsonl: RUN/tensorboard/ (extra medgap[tensorboard]), RUN/csv/metrics.csv


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
            raw = load_yaml(path.read_text(encoding="utf-8")) or {}
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
    try:
        return config_from_dict(raw, source)
    except ConfigError as error:
        raise _blame_override(error, overrides, source) from None


def _blame_override(error: ConfigError, overrides, source: str) -> ConfigError:
    """Name the ``a.b=c`` override (not the YAML file) when the offending key came from the command line."""
    key = getattr(error, "key", None)
    if key is None:
        return error
    key = re.sub(r"\[\d+\]", "", key)  # data.patch_size[0] was set by data.patch_size=...
    for override in reversed(overrides):  # the last override of a key is the one that counts
        given = override.partition("=")[0]
        if key == given or key.startswith(given + "."):
            message = str(error).removeprefix(f"{source}: ")
            return _keyed(f"override {override!r}: {message}", error.key)
    return error


# A config has a few hundred values; aliases that expand beyond this are an attack ("billion laughs"): the shared
# nodes cost nothing to load, but copying the config (dataclasses.asdict, saving config.yaml) expands them.
MAX_YAML_VALUES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (a second ``trainer:`` block silently replaced the first)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merges may be overridden, by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: the constructor reports it
                    continue
                if first != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str):
    """Parse YAML safely: no Python objects, no duplicate keys, aliases bounded by ``MAX_YAML_VALUES``."""
    loader = _StrictLoader(text)
    try:
        value = loader.get_single_data()
    finally:
        loader.dispose()
    if _expanded_size(value, {}) > MAX_YAML_VALUES:
        raise yaml.YAMLError(f"aliases expand to more than {MAX_YAML_VALUES} values")
    return value


def _expanded_size(value, sizes: dict) -> int:
    """How many values ``value`` holds once every alias is copied out (shared nodes counted once per use)."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in sizes and sizes[id(value)] is None:
        raise yaml.YAMLError("a recursive alias (a value that contains itself)")
    if id(value) not in sizes:
        sizes[id(value)] = None  # in progress
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += _expanded_size(child, sizes)
            if total > MAX_YAML_VALUES:
                break
        sizes[id(value)] = total
    return sizes[id(value)]


def apply_override(raw: dict, override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``1e-3``, ``[64, 64]``, ``null``)."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r}: expected key.path=value")
    try:
        value = load_yaml(text) if text else ""
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
    from medgap.registry import method_config_class

    raw = dict(raw)
    method_raw = raw.pop("method", {}) or {}
    if isinstance(method_raw, str):
        method_raw = {"name": method_raw}
    if not isinstance(method_raw, dict):
        raise ConfigError(f"{source}: method must be a mapping with a name")
    method_cls = method_config_class(method_raw.get("name", MethodConfig.name), source)
    config = _build(ExperimentConfig, raw, source, "")
    config.method = _build(method_cls, method_raw, source, "method.")
    check_ranges(config, source)
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
        key = str(unknown[0])
        close = difflib.get_close_matches(key, _key_paths(cls), n=1, cutoff=0.6)
        hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(fields)}"
        raise _keyed(f"{source}: unknown key '{prefix}{key}' ({hint})", prefix + key)
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
            raise _keyed(f"{source}: {key} must be one of {list(typing.get_args(hint))}, got {value!r}", key)
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
    return _keyed(f"{source}: {key} must be {name}, got {value!r} ({type(value).__name__})", key)


def _keyed(message: str, key: str) -> ConfigError:
    """A ConfigError that remembers the dotted key it is about (so load_config can name the override)."""
    error = ConfigError(message)
    error.key = key
    return error


def _key_paths(cls) -> list[str]:
    """The keys of ``cls`` and of its sections one level down (``max_steps`` → ``trainer.max_steps``)."""
    paths = []
    for item in dataclasses.fields(cls):
        paths.append(item.name)
        hint = typing.get_type_hints(cls)[item.name]
        if dataclasses.is_dataclass(hint):
            paths += [f"{item.name}.{sub.name}" for sub in dataclasses.fields(hint)]
    return paths


@dataclass(frozen=True)
class Range:
    """Allowed values of a number (or of every item of a list of numbers); ``None`` bound = unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low < value (else low <= value)
    high_open: bool = False  # value < high (else value <= high)

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE, AT_LEAST_ONE, NON_NEGATIVE = Range(0, low_open=True), Range(1), Range(0)
FRACTION, PROBABILITY = Range(0, 1, high_open=True), Range(0, 1)

# Ranges of the shared sections (a None value of an optional key is always allowed). Method configs may declare
# their own as a ``RANGES`` class attribute. Every float must also be finite.
RANGES: dict[type, dict[str, Range]] = {
    AugmentationConfig: {"flip_probability": PROBABILITY, "intensity_scale": NON_NEGATIVE,
                         "intensity_shift": NON_NEGATIVE, "noise_std": NON_NEGATIVE,
                         "rot90_flip_probability": PROBABILITY, "rotation_probability": PROBABILITY,
                         "rotation_degrees": Range(0, 180), "scaling_probability": PROBABILITY,
                         "scaling_range": POSITIVE, "elastic_probability": PROBABILITY, "elastic_scale": NON_NEGATIVE,
                         "elastic_magnitude": NON_NEGATIVE, "gamma_probability": PROBABILITY,
                         "gamma_inverted_probability": PROBABILITY, "gamma_range": POSITIVE},
    DataConfig: {"patch_size": AT_LEAST_ONE, "labelled_batch_size": AT_LEAST_ONE,
                 "unlabelled_batch_size": NON_NEGATIVE, "labelled_ratio": Range(0, 1, low_open=True),
                 "labelled_count": NON_NEGATIVE, "val_fraction": FRACTION, "test_fraction": FRACTION,
                 "foreground_probability": PROBABILITY, "num_workers": NON_NEGATIVE, "max_image_mib": POSITIVE},
    NetConfig: {"features": AT_LEAST_ONE, "dropout": FRACTION},
    OptimConfig: {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "momentum": PROBABILITY, "poly_power": NON_NEGATIVE,
                  "step_size": AT_LEAST_ONE, "gamma": POSITIVE, "warmup_steps": NON_NEGATIVE, "grad_clip": POSITIVE},
    TrainerConfig: {"max_steps": AT_LEAST_ONE, "max_minutes": POSITIVE, "val_every": AT_LEAST_ONE,
                    "val_max_cases": AT_LEAST_ONE, "log_every": AT_LEAST_ONE, "checkpoint_every": AT_LEAST_ONE,
                    "devices": AT_LEAST_ONE, "num_nodes": AT_LEAST_ONE},
    InferenceConfig: {"patch_size": AT_LEAST_ONE, "overlap": FRACTION, "stride": AT_LEAST_ONE,
                      "sw_batch_size": AT_LEAST_ONE},
    EvaluationConfig: {"empty_penalty": NON_NEGATIVE},
}


def check_ranges(config: Any, source: str = "<config>", prefix: str = "") -> None:
    """Raise a one-line ConfigError naming the first key whose value is out of its range or not finite."""
    ranges = {**RANGES.get(type(config), {}), **getattr(type(config), "RANGES", {})}
    for item in dataclasses.fields(config):
        value, key = getattr(config, item.name), prefix + item.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, source, key + ".")
            continue
        for index, number in enumerate(value) if isinstance(value, list) else [(None, value)]:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                continue  # None, text ('auto' devices), ...
            where = key if index is None else f"{key}[{index}]"
            if not math.isfinite(number):
                raise _keyed(f"{source}: {where} must be a finite number, got {number}", where)
            allowed = ranges.get(item.name)
            if allowed is not None and number not in allowed:
                raise _keyed(f"{source}: {where} must be {allowed}, got {number!r}", where)
    if isinstance(config, AugmentationConfig):
        for name in ("scaling_range", "elastic_scale", "elastic_magnitude", "gamma_range"):
            values = getattr(config, name)
            if len(values) != 2 or values[0] > values[1]:
                raise _keyed(f"{source}: {prefix}{name} must be [low, high] with low <= high, got {values}",
                             prefix + name)
    if isinstance(config, DataConfig) and config.val_fraction + config.test_fraction >= 1:
        raise _keyed(f"{source}: {prefix}val_fraction + {prefix}test_fraction must be < 1 (no training cases "
                     f"left), got {config.val_fraction:g} + {config.test_fraction:g}", prefix + "val_fraction")
