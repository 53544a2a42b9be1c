"""Cases of a dataset folder: which channel files exist (the availability mask), label, report, genetics.

Availability is data, not a flag: a channel file that is absent is a missing modality for that case, a label
file that is absent makes the case unlabelled.
"""

from __future__ import annotations

import csv
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medgap.data.dataset_json import DatasetSpec
from medgap.data.io import Geometry, read_image, read_label, stored_size
from medgap.errors import DatasetError

_SAFE_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass
class Case:
    """One case: per-channel file paths (``None`` where missing), label path, optional report and genetics."""

    case_id: str
    image_paths: tuple[Path | None, ...]
    label_path: Path | None = None
    text_path: Path | None = None
    genetics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def availability(self) -> np.ndarray:
        """``(C,)`` bool: which modalities are present."""
        return np.array([path is not None for path in self.image_paths], dtype=bool)

    @property
    def labelled(self) -> bool:
        return self.label_path is not None

    @property
    def first_image_path(self) -> Path:
        """The first present channel's file: the one error messages name."""
        return next(path for path in self.image_paths if path is not None)


@dataclass
class CaseData:
    """A loaded case. ``image`` is ``(C, *spatial)`` float32 with zeros where a modality is missing."""

    case_id: str
    image: np.ndarray
    availability: np.ndarray
    geometry: Geometry
    label: np.ndarray | None = None
    text: str | None = None


def check_case_id(case_id: str, where: str | os.PathLike = "") -> str:
    """Refuse ids that could escape an output folder (path separators, ``..``, leading dots)."""
    if not _SAFE_CASE_ID.match(case_id) or ".." in case_id:
        prefix = f"{where}: " if where else ""
        raise DatasetError(f"{prefix}case id {case_id!r} is not allowed (letters, digits, '_', '-', '.'; no '..' or '/')")
    return case_id


def present_file(path: Path) -> Path | None:
    """``path`` if it is a regular file, ``None`` if nothing is there (a missing modality, an unlabelled case).

    Anything else under the name (a dangling symlink, a symlink loop, a FIFO, a folder, an unreadable file) is an
    error, not an absence: treating it as missing would silently change the experiment.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise DatasetError(f"{path}: dangling symlink (its target {os.readlink(path)} does not exist)") from None
        return None
    except OSError as error:  # ELOOP, EACCES on a parent ...
        raise DatasetError(f"{path}: cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise DatasetError(f"{path}: expected a file, found {kind}")
    if not os.access(path, os.R_OK):
        raise DatasetError(f"{path}: cannot be read (permission denied)")
    return Path(path)


def channel_pattern(file_ending: str) -> re.Pattern:
    return re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(file_ending) + "$")


def discover_images(folder: Path, spec: DatasetSpec) -> dict[str, list[Path | None]]:
    """Map case id → per-channel paths for ``CASE_XXXX<ending>`` files in ``folder``.

    A file with the dataset's ending but no 4-digit channel suffix, or with a channel index not in
    ``channel_names``, is an error naming the file.
    """
    pattern = channel_pattern(spec.file_ending)
    found: dict[str, list[Path | None]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(spec.file_ending):
            continue
        present_file(path)  # a name that is there but cannot be read is an error, not a missing modality
        match = pattern.match(path.name)
        if not match:
            raise DatasetError(f"{path}: image file names must be CASE_XXXX{spec.file_ending} (4-digit channel suffix)")
        channel = int(match["channel"])
        if channel >= spec.num_channels:
            raise DatasetError(
                f"{path}: channel {channel:04d} is not in dataset.json channel_names (0..{spec.num_channels - 1})")
        case_id = check_case_id(match["case"], path)
        found.setdefault(case_id, [None] * spec.num_channels)[channel] = path
    return found


def discover_cases(dataset_dir: str | os.PathLike, spec: DatasetSpec, part: str = "Tr") -> list[Case]:
    """Cases of ``imagesTr`` (``part="Tr"``) or ``imagesTs``: images, labels, reports and genetics by case id."""
    root = Path(dataset_dir)
    images_dir = root / f"images{part}"
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: folder not found")
    images = discover_images(images_dir, spec)
    if not images:
        raise DatasetError(f"{images_dir}: no image files ending in {spec.file_ending}")
    labels_dir = root / f"labels{part}"
    text_dir = root / f"text{part}"
    genetics = load_genetics(root / "genetics") if part == "Tr" else {}
    # genetics rows are keyed by individual when dataset.json maps images to individuals (both eyes, one person)
    from medgap.data.genetics import case_groups

    individual = case_groups(root, spec.genetics, images) or {}
    cases = []
    for case_id, paths in images.items():
        label_path = labels_dir / f"{case_id}{spec.file_ending}"
        text_path = text_dir / f"{case_id}.txt"
        cases.append(Case(
            case_id=case_id, image_paths=tuple(paths),
            label_path=present_file(label_path), text_path=present_file(text_path),
            genetics={name: rows[key] for name, rows in genetics.items()
                      if (key := individual.get(case_id, case_id)) in rows},
        ))
    if labels_dir.is_dir():
        known = set(images)
        for path in labels_dir.iterdir():
            if path.name.endswith(spec.file_ending) and path.name[: -len(spec.file_ending)] not in known:
                raise DatasetError(f"{path}: label without any image in {images_dir.name}/")
    return cases


def load_genetics(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """``genetics/*.csv``: one modality per file, first column = case id, the rest numeric; absent row = missing."""
    if not folder.is_dir():
        return {}
    modalities = {}
    for path in sorted(folder.glob("*.csv")):
        rows: dict[str, np.ndarray] = {}
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or len(header) < 2:
                raise DatasetError(f"{path}: expected a header row 'case_id,feature1,...'")
            for line_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                case_id = row[0]
                if case_id in rows:
                    raise DatasetError(f"{path}:{line_number}: duplicate case id {case_id!r}")
                if len(row) != len(header):
                    raise DatasetError(f"{path}:{line_number}: {len(row)} columns, header has {len(header)}")
                try:
                    rows[case_id] = np.array([float(value) for value in row[1:]], dtype=np.float32)
                except ValueError:
                    raise DatasetError(f"{path}:{line_number}: non-numeric value for case {case_id!r}") from None
                if not np.isfinite(rows[case_id]).all():  # a missing modality is an absent row, not NaNs
                    raise DatasetError(f"{path}:{line_number}: NaN/Inf value for case {case_id!r}")
        modalities[path.stem] = rows
    return modalities


def load_case(case: Case, spec: DatasetSpec, *, max_bytes: int | None = None, check_labels: bool = True) -> CaseData:
    """Read every present channel (missing ones zero-filled), the label and the report, checking geometry.

    Raises:
        DatasetError: unreadable file, NaN/Inf voxels, channels whose shape/affine disagree, label geometry
            different from the image, label values not declared in dataset.json, non-UTF-8 report.
    """
    check_case_memory(case, max_bytes)
    arrays: list[np.ndarray | None] = []
    reference: Geometry | None = None
    reference_path: Path | None = None
    for path in case.image_paths:
        if path is None:
            arrays.append(None)
            continue
        array, geometry = read_image(path, max_bytes=max_bytes)
        if reference is None:
            reference, reference_path = geometry, path
        elif not reference.matches(geometry):
            raise DatasetError(f"{path}: geometry {_difference(geometry, reference, reference_path.name)} "
                               f"(shape and affine of all channels of case {case.case_id} must agree)")
        arrays.append(array)
    if reference is None:
        raise DatasetError(f"case {case.case_id}: no channel file present")
    image = np.stack([a if a is not None else np.zeros(reference.shape, np.float32) for a in arrays])

    label = None
    if case.label_path is not None:
        label, label_geometry = read_label(case.label_path, max_bytes=max_bytes)
        if not reference.matches(label_geometry):
            raise DatasetError(f"{case.label_path}: label geometry "
                               f"{_difference(label_geometry, reference, 'image ' + reference_path.name)}")
        if check_labels:
            check_label_values(label, spec, case.label_path)

    text = None
    if case.text_path is not None:
        try:
            text = case.text_path.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise DatasetError(f"{case.text_path}: report is not UTF-8 text") from None
    return CaseData(case_id=case.case_id, image=image, availability=case.availability, geometry=reference,
                    label=label, text=text)


def case_memory_bytes(case: Case) -> int:
    """Bytes that loading and normalising ``case`` holds at its peak, from the file headers (no voxel is read).

    Every channel file as stored (its own dtype: float64, int16 ...) plus its float32 copy, the stacked image and
    its normalised copy (float32, missing channels included) with one channel in float64 while it is normalised,
    and the label as stored plus its int16 copy and the
    label-index map. A few MB of gzip can declare gigabytes: only this sum, not one file as float32, bounds the
    memory a case can demand.
    """
    total, voxels = 0, 0
    for path in case.image_paths:
        if path is not None and (size := stored_size(path)) is not None:
            count = int(np.prod(size[0], dtype=np.float64))
            total += count * (size[1] + 4)
            voxels = max(voxels, count)
    total += len(case.image_paths) * voxels * 4 * 2 + voxels * 8  # + one channel normalised in float64
    if case.label_path is not None and (size := stored_size(case.label_path, "label")) is not None:
        total += int(np.prod(size[0], dtype=np.float64)) * (size[1] + 2 + 1)
    return total


def check_case_memory(case: Case, max_bytes: int | None) -> None:
    """Refuse a case whose loading would exceed ``max_bytes`` (:func:`case_memory_bytes`), before reading it."""
    if max_bytes is None:
        return
    need = case_memory_bytes(case)
    if need > max_bytes:
        present = [path for path in case.image_paths if path is not None]
        label = " and a label" if case.label_path is not None else ""
        raise DatasetError(
            f"{case.first_image_path}: case {case.case_id} needs {need / 2**20:.3g} MiB to load ({len(present)} "
            f"channel file(s){label}, as stored and as float32 copies), over the memory budget of "
            f"{max_bytes / 2**20:.3g} MiB (data.max_image_mib / verify --max-image-mib)")


def _difference(geometry: Geometry, reference: Geometry, reference_name: str) -> str:
    """What differs between two geometries that do not match, for an error message."""
    if geometry.shape != reference.shape:
        return f"shape {geometry.shape} does not match {reference_name} {reference.shape}"
    offset = float(np.abs(geometry.affine - reference.affine).max())
    return f"affine does not match {reference_name} (differs by up to {offset:.3g} mm)"


def check_label_values(label: np.ndarray, spec: DatasetSpec, path: Path | str) -> None:
    present = np.unique(label)
    undeclared = sorted(set(present.tolist()) - set(spec.label_values))
    if undeclared:
        raise DatasetError(f"{path}: label value(s) {undeclared} not declared in dataset.json (declared {list(spec.label_values)})")
