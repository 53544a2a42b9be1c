"""Pieces shared by the converters of the SS-Net / SSL4MIS h5 layouts (``la_h5``, ``acdc_h5``)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from medgap.data.cases import check_case_id
from medgap.data.io import write_nifti
from medgap.errors import DatasetError


def read_h5_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32, label uint8)`` from an h5 file with datasets ``image`` and ``label`` of one shape."""
    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("image", "label") if key not in handle]
            if missing:
                raise DatasetError(f"{path}: no '{missing[0]}' dataset (found: {', '.join(handle.keys())})")
            image, label = handle["image"][()], handle["label"][()]
    except OSError as error:
        raise DatasetError(f"{path}: not a readable h5 file ({str(error).splitlines()[0][:160]})") from None
    if image.shape != label.shape:
        raise DatasetError(f"{path}: image {image.shape} and label {label.shape} differ in shape")
    if not np.isfinite(image).all():
        raise DatasetError(f"{path}: image has NaN/Inf values")
    return image.astype(np.float32), label


def check_labels(label: np.ndarray, allowed: range, path: Path) -> np.ndarray:
    values = np.unique(label)
    bad = [int(v) for v in values if v not in allowed or v != int(v)]
    if bad:
        raise DatasetError(f"{path}: label values {bad[:5]} outside {list(allowed)}")
    return label.astype(np.uint8)


def read_list(path: Path) -> list[str]:
    """Case names of an SSL4MIS ``*.list`` file, one per line (a trailing ``.h5`` or folder path is dropped)."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip().replace("\\", "/")
        if line:
            name = line.rstrip("/").split("/")[-1]
            names.append(name[:-3] if name.endswith(".h5") else name)
    return names


def new_dataset_folder(out_dir: str | os.PathLike, source: Path) -> Path:
    """Create ``out_dir`` (absent or empty; never inside ``source``) with ``imagesTr``/``labelsTr``."""
    out = Path(out_dir).resolve()
    if out == source.resolve() or source.resolve() in out.parents:
        raise DatasetError(f"{out}: the output folder must not be inside the source folder {source}")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: output folder exists and is not empty")
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    return out


def write_case(out: Path, case_id: str, image: np.ndarray, label: np.ndarray, spacing) -> None:
    """``imagesTr/<case>_0000.nii.gz`` (float32) and ``labelsTr/<case>.nii.gz`` (uint8) with a diagonal affine."""
    check_case_id(case_id, out)
    affine = np.diag([*map(float, spacing), 1.0])
    write_nifti(out / "imagesTr" / f"{case_id}_0000.nii.gz", image.astype(np.float32), affine)
    write_nifti(out / "labelsTr" / f"{case_id}.nii.gz", label.astype(np.uint8), affine)


def seeded_validation(train: list[str], count: int, seed: int) -> tuple[list[str], list[str]]:
    """Carve ``count`` validation cases from ``train`` with a seeded permutation: (train, val), both sorted."""
    if count >= len(train):
        raise DatasetError(f"cannot carve {count} validation cases from {len(train)} training cases")
    order = np.random.default_rng(seed).permutation(len(train))
    val = {train[i] for i in order[:count]}
    return sorted(c for c in train if c not in val), sorted(val)
