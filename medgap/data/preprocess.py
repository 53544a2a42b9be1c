"""Preprocess cases once into an uncompressed ``.npy`` cache that training memory-maps, as nnU-Net does.

Decoding ``.nii.gz`` every time a patch is drawn would make the loader the bottleneck; the cache stores the
normalised image ``(C, *spatial)`` float32, the label as indices into ``dataset.json``'s label values (uint8, int16 beyond 256 labels),
and up to 20,000 foreground voxel coordinates for foreground oversampling. An entry is reused only while the
source files (size, mtime) and the preprocessing settings are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medgap.atomic import atomic_path, write_json
from medgap.data.cases import Case, check_case_memory, load_case
from medgap.data.dataset_json import DatasetSpec
from medgap.data.transforms import normalise
from medgap.errors import DatasetError

# 2: one folder per case (``<id>/image.npy``...): ``<id>_seg.npy`` names collided between case ids (``A`` and
# ``A_seg``); entries of version 1 are never read again, they are recomputed.
CACHE_VERSION = 2  # also: label indices uint8/int16 by the number of labels (was int8)
MAX_FOREGROUND_POINTS = 20_000


@dataclass(frozen=True)
class PreprocessedCase:
    """Paths of one cached case plus what is needed without opening the arrays."""

    case_id: str
    image_path: Path
    label_path: Path | None
    foreground_path: Path | None
    availability: np.ndarray
    spacing: tuple[float, ...]
    shape: tuple[int, ...]
    text: str | None = None  # the case's report (``textTr/CASE.txt``), carried so batches can hold it

    def image(self) -> np.ndarray:
        return np.load(self.image_path, mmap_mode="r")

    def label(self) -> np.ndarray | None:
        return None if self.label_path is None else np.load(self.label_path, mmap_mode="r")

    def foreground(self) -> np.ndarray | None:
        return None if self.foreground_path is None else np.load(self.foreground_path)

    @property
    def labelled(self) -> bool:
        return self.label_path is not None


def label_index_dtype(spec: DatasetSpec) -> type:
    """The smallest type holding every label index: uint8 up to 256 declared labels, else int16."""
    return np.uint8 if len(spec.label_values) <= 256 else np.int16


def label_to_index(label: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Map label values (e.g. 0, 1, 2, 4) to indices 0..L-1 of ``spec.label_values`` (declared values are at most
    ``MAX_LABEL_VALUE``, so the lookup table stays small)."""
    dtype = label_index_dtype(spec)
    lookup = np.zeros(max(spec.label_values) + 1, dtype=dtype)
    lookup[list(spec.label_values)] = np.arange(len(spec.label_values), dtype=dtype)
    return lookup[label]


def index_to_label(index: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    return np.asarray(spec.label_values, dtype=np.int16)[index]


def _fingerprint(case: Case, normalisation: str, spec: DatasetSpec) -> str:
    parts = [f"v{CACHE_VERSION}", normalisation, repr(spec.label_values)]
    for path in (*case.image_paths, case.label_path, *([case.text_path] if case.text_path else [])):
        if path is None:
            parts.append("-")
        else:
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def preprocess_cases(
    cases: list[Case], spec: DatasetSpec, cache_dir: str | os.PathLike, *, normalisation: str = "zscore_nonzero",
    max_bytes: int | None = None, skip_bad_cases: bool = False, progress: Callable[[int, int], None] | None = None,
) -> list[PreprocessedCase]:
    """Load, check and normalise every case into ``cache_dir`` (reusing valid entries); return their handles.

    With ``skip_bad_cases`` an unreadable case is skipped with a warning naming it; otherwise its
    :class:`DatasetError` propagates.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    handles = []
    for done, case in enumerate(cases, start=1):
        try:
            handles.append(_preprocess_one(case, spec, cache, normalisation, max_bytes))
        except DatasetError as error:
            if not skip_bad_cases:
                raise
            warnings.warn(f"skipping case {case.case_id}: {error}", stacklevel=2)
        if progress is not None:
            progress(done, len(cases))
    return handles


def _preprocess_one(case: Case, spec: DatasetSpec, cache: Path, normalisation: str,
                    max_bytes: int | None) -> PreprocessedCase:
    fingerprint = _fingerprint(case, normalisation, spec)
    entry = cache / case.case_id  # one folder per case: no two cases' file names can collide
    meta_path, image_path = entry / "meta.json", entry / "image.npy"
    label_path, foreground_path = entry / "label.npy", entry / "foreground.npy"
    meta = None
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = None
    if meta is None or meta.get("fingerprint") != fingerprint:
        data = load_case(case, spec, max_bytes=max_bytes)
        image = normalise(data.image, data.availability, normalisation)
        if not np.isfinite(image).all():  # a last guard: training on NaN fails far from the cause
            raise DatasetError(f"{case.first_image_path}: {normalisation} normalisation of case {case.case_id} gives "
                               "NaN/Inf values")
        with atomic_path(image_path) as tmp:
            np.save(tmp, image)
        has_foreground = False
        if data.label is not None:
            index = label_to_index(data.label, spec)
            with atomic_path(label_path) as tmp:
                np.save(tmp, index)
            points = np.argwhere(index > 0).astype(np.int32)
            if len(points) > MAX_FOREGROUND_POINTS:
                keep = np.random.default_rng(0).choice(len(points), MAX_FOREGROUND_POINTS, replace=False)
                points = points[np.sort(keep)]
            with atomic_path(foreground_path) as tmp:
                np.save(tmp, points)
            has_foreground = True
        meta = {"fingerprint": fingerprint, "case_id": case.case_id, "labelled": data.label is not None,
                "foreground": has_foreground, "availability": data.availability.tolist(),
                "spacing": list(data.geometry.spacing), "shape": list(data.geometry.shape), "text": data.text}
        write_json(meta_path, meta)  # written last: it marks the entry complete
    else:  # a cached case still has to fit today's memory budget
        check_case_memory(case, max_bytes)
    return PreprocessedCase(
        case_id=case.case_id, image_path=image_path, label_path=label_path if meta["labelled"] else None,
        foreground_path=foreground_path if meta["foreground"] else None,
        availability=np.asarray(meta["availability"], bool), spacing=tuple(meta["spacing"]),
        shape=tuple(meta["shape"]), text=meta.get("text"))
