"""``dataset.json``: the nnU-Net v2 description of a dataset folder, validated, plus medgap's optional keys.

Accepted exactly as nnU-Net v2 writes it, including region-based labels (BraTS:
``{"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}`` with
``regions_class_order``). medgap's optional extensions: ``regions`` (named label sets evaluated/trained as
binary outputs while ``labels`` stays plain), ``text`` (reports in ``textTr/``), ``genetics``, ``groups`` (case id →
group, e.g. ACDC frame → patient: splits and labelled draws keep a group together).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgap.atomic import write_json
from medgap.data.io import SUPPORTED_ENDINGS
from medgap.errors import DatasetError

REQUIRED_KEYS = ("channel_names", "labels", "file_ending")
MAX_LABEL_VALUE = 32767  # int16: label maps in memory and predictions


@dataclass(frozen=True)
class DatasetSpec:
    """A validated ``dataset.json``.

    Attributes:
        channel_names: modality names in channel order (index = file suffix ``_0000``, ``_0001``, ...).
        labels: plain label name → integer value, background (0) included. For nnU-Net region-based
            datasets these are the integer values that occur in label files (``label_1``, ...).
        regions: region name → label values, or ``None`` when training/evaluating per label.
        regions_class_order: label written where each region is predicted, in order (later wins).
        groups: case id → group (the patient of each ACDC frame), or ``None``: a group is never split between
            train/val/test and is labelled or unlabelled as a whole (``labelled_count`` counts groups).
    """

    path: Path
    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    file_ending: str
    regions: dict[str, tuple[int, ...]] | None = None
    regions_class_order: tuple[int, ...] | None = None
    num_training: int | None = None
    text: bool = False
    genetics: Any = None
    task: str = "segmentation"  # or "classification": one class per case from labelsTr.csv
    classes: tuple[str, ...] = ()
    groups: dict[str, str] | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """All integer values a label file may contain, sorted, background first."""
        return tuple(sorted(set(self.labels.values())))

    @property
    def foreground_labels(self) -> dict[str, int]:
        return {name: value for name, value in self.labels.items() if value != 0}

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the evaluated structures: the regions, else the foreground labels."""
        return tuple(self.regions) if self.regions else tuple(self.foreground_labels)


def load_dataset_json(dataset_dir: str | os.PathLike) -> DatasetSpec:
    """Read and validate ``DATASET_DIR/dataset.json``; every problem is a one-line :class:`DatasetError`."""
    path = Path(dataset_dir) / "dataset.json"
    return parse_dataset_json(read_json(path, "every dataset folder needs a dataset.json"), path)


def read_json(path: Path, why_needed: str) -> Any:
    """The JSON value in ``path``; an absent or invalid file is a one-line :class:`DatasetError`."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing ({why_needed})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from None


def parse_dataset_json(raw: Any, path: Path) -> DatasetSpec:
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level")
    task = raw.get("task", "segmentation")
    if task not in ("segmentation", "classification"):
        raise DatasetError(f"{path}: task must be 'segmentation' or 'classification', got {task!r}")
    classes = ()
    if task == "classification":  # class names instead of label maps; labels default to background only
        classes = raw.get("classes")
        if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
            raise DatasetError(f"{path}: a classification dataset needs 'classes', a list of >= 2 distinct names")
        classes = tuple(map(str, classes))
        raw = {"labels": {"background": 0}, **raw}
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing and "modality" in raw and "training" in raw:  # the Decathlon's own dataset.json
        raise DatasetError(f"{path}: a Medical Segmentation Decathlon task folder (4-D images, 'modality' and "
                           f"'training' keys); convert it first: medgap convert msd {path.parent} OUT_DIR")
    if missing:
        raise DatasetError(f"{path}: missing required key(s) {', '.join(missing)}")
    channel_names = _parse_channels(raw["channel_names"], path)
    labels, nnunet_regions = _parse_labels(raw["labels"], path)
    file_ending = raw["file_ending"]
    if file_ending not in SUPPORTED_ENDINGS:
        raise DatasetError(f"{path}: file_ending {file_ending!r} not supported ({', '.join(SUPPORTED_ENDINGS)})")

    regions = nnunet_regions
    if "regions" in raw:
        if nnunet_regions:
            raise DatasetError(f"{path}: give regions either as list-valued labels (nnU-Net) or as 'regions', not both")
        regions = _parse_regions(raw["regions"], labels, path)
    order = raw.get("regions_class_order")
    if regions:
        order = _regions_class_order(regions, order, labels, path)
    elif order is not None:
        raise DatasetError(f"{path}: regions_class_order given but no regions are defined")

    num_training = raw.get("numTraining")
    if num_training is not None and (not isinstance(num_training, int) or num_training < 0):
        raise DatasetError(f"{path}: numTraining must be a non-negative integer, got {num_training!r}")
    groups = raw.get("groups")
    if groups is not None and (not isinstance(groups, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in groups.items())):
        raise DatasetError(f"{path}: groups must map case ids to group names, like {{\"patient001_frame01\": \"patient001\"}}")
    return DatasetSpec(
        path=path, name=str(raw.get("name", path.parent.name)), channel_names=channel_names, labels=labels,
        file_ending=file_ending, regions=regions, regions_class_order=order, num_training=num_training,
        text=bool(raw.get("text", False)), genetics=raw.get("genetics"), task=task, classes=classes, groups=groups, raw=raw,
    )


def _parse_channels(channels: Any, path: Path) -> tuple[str, ...]:
    # nnU-Net v1 called this "modality"; v2 "channel_names". Keys are channel indices as strings.
    if not isinstance(channels, dict) or not channels:
        raise DatasetError(f"{path}: channel_names must be a non-empty object like {{\"0\": \"T1\"}}")
    try:
        indices = sorted(int(key) for key in channels)
    except ValueError:
        raise DatasetError(f"{path}: channel_names keys must be channel indices (\"0\", \"1\", ...)") from None
    if indices != list(range(len(indices))):
        raise DatasetError(f"{path}: channel_names keys must be 0..{len(indices) - 1} without gaps, got {indices}")
    names = tuple(str(channels[str(index)]) for index in indices)
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: channel_names has duplicate names {list(names)}")
    return names


def _parse_labels(labels: Any, path: Path) -> tuple[dict[str, int], dict[str, tuple[int, ...]] | None]:
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{path}: labels must be a non-empty object like {{\"background\": 0, \"tumour\": 1}}")
    plain: dict[str, int] = {}
    regions: dict[str, tuple[int, ...]] = {}
    for name, value in labels.items():
        if isinstance(value, bool):
            raise DatasetError(f"{path}: label {name!r} has non-integer value {value!r}")
        if isinstance(value, int):
            plain[name] = value
        elif isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            regions[name] = tuple(sorted(set(value))) if len(value) > 1 else (value[0],)
        else:
            raise DatasetError(f"{path}: label {name!r} must be an integer or a list of integers, got {value!r}")
    if 0 not in plain.values():
        raise DatasetError(f"{path}: labels must declare background with value 0")
    every = [*plain.items(), *((name, v) for name, values in regions.items() for v in values)]
    if any(value < 0 for _, value in every):
        raise DatasetError(f"{path}: label values must be non-negative")
    too_large = next(((name, value) for name, value in every if value > MAX_LABEL_VALUE), None)
    if too_large:  # label maps are int16 in memory; a value of 2**40 would also size lookups at terabytes
        raise DatasetError(f"{path}: label {too_large[0]!r} has value {too_large[1]}, above {MAX_LABEL_VALUE} (the "
                           "largest label value medgap accepts)")
    if not regions:
        if len(set(plain.values())) != len(plain):
            raise DatasetError(f"{path}: two labels share one value")
        return plain, None
    # nnU-Net region-based: plain labels are just background; the file values are the union of the regions.
    values = sorted({v for region in regions.values() for v in region} - {0})
    plain = {"background": 0, **{f"label_{v}": v for v in values}}
    return plain, regions


def _parse_regions(regions: Any, labels: dict[str, int], path: Path) -> dict[str, tuple[int, ...]]:
    if not isinstance(regions, dict) or not regions:
        raise DatasetError(f"{path}: regions must be an object like {{\"WT\": [1, 2, 4]}}")
    known = set(labels.values())
    parsed = {}
    for name, values in regions.items():
        if not isinstance(values, list) or not values or not all(isinstance(v, int) for v in values):
            raise DatasetError(f"{path}: region {name!r} must be a non-empty list of label values")
        unknown = sorted(set(values) - known)
        if unknown:
            raise DatasetError(f"{path}: region {name!r} uses label value(s) {unknown} not declared in labels")
        parsed[name] = tuple(sorted(set(values)))
    return parsed


def _regions_class_order(regions, order, labels, path) -> tuple[int, ...]:
    """The label written for each region (later regions overwrite earlier ones, as in nnU-Net)."""
    if order is not None:
        if not isinstance(order, list) or len(order) != len(regions) or not all(isinstance(v, int) for v in order):
            raise DatasetError(f"{path}: regions_class_order must list one label value per region ({len(regions)})")
        return tuple(order)
    # Derive it for nested regions (BraTS): a region's own label is the value not covered by a smaller region.
    derived = []
    for name, values in regions.items():
        inner = set().union(*(set(v) for other, v in regions.items() if other != name and set(v) < set(values)))
        own = sorted(set(values) - inner)
        if not own:
            raise DatasetError(f"{path}: cannot derive regions_class_order for region {name!r}; give it explicitly")
        derived.append(own[0])
    return tuple(derived)


def write_dataset_json(dataset_dir: str | os.PathLike, raw: dict) -> DatasetSpec:
    """Validate ``raw`` and write it as ``DATASET_DIR/dataset.json`` atomically (used by generators/converters)."""
    path = Path(dataset_dir) / "dataset.json"
    spec = parse_dataset_json(raw, path)
    write_json(path, raw)
    return spec
