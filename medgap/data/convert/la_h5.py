"""The LA (2018 Atrial Segmentation Challenge) h5 layout of UA-MT / SS-Net → medgap's dataset folder.

Source layout: ``<source>/**/<case>/mri_norm2.h5`` (datasets ``image``: normalised float, ``label``: 0/1, both
``(X, Y, Z)``) and the official lists ``train.list`` (80 cases) / ``test.list`` (20 cases), one case per line,
in ``<source>`` or its parent. The h5 files carry no geometry; LA is 0.625 mm isotropic, written as the affine.

``splits.json``: test = ``test.list`` as published; validation = ``val_count`` cases carved from ``train.list``
with a seeded permutation (``seed``), because the official code has no validation split and selects its
checkpoint on the test set, which we do not. The labelled part is drawn later from ``data.labelled_ratio`` /
``labelled_count`` with the run's seed (the official code takes the first 4/8 cases of ``train.list``).
"""

from __future__ import annotations

import os
from pathlib import Path

from medgap.atomic import write_json
from medgap.data.convert.h5_common import (check_labels, new_dataset_folder, read_h5_pair, read_list,
                                           seeded_validation, write_case)
from medgap.data.dataset_json import write_dataset_json
from medgap.errors import DatasetError

DESCRIPTION = "LA heart MRI h5 (UA-MT/SS-Net: <case>/mri_norm2.h5, train.list/test.list)"


def _find_list(source: Path, name: str) -> Path | None:
    for folder in (source, source.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, *, val_count: int = 8, seed: int = 0,
            spacing: tuple[float, float, float] = (0.625, 0.625, 0.625)) -> Path:
    """Convert the LA h5 folder ``source`` into a new dataset folder ``out_dir``; returns ``out_dir``.

    Args:
        val_count: validation cases carved from ``train.list`` (0 = none; then validation is empty).
        seed: seed of that carving (recorded in ``splits.json``).
        spacing: voxel size in mm written into the NIfTI affine.
    """
    source = Path(source)
    if not source.is_dir():
        raise DatasetError(f"{source}: LA source folder not found")
    files = {path.parent.name: path for path in sorted(source.rglob("mri_norm2.h5"))}
    if not files:
        raise DatasetError(f"{source}: no <case>/mri_norm2.h5 files found")
    lists = {name: _find_list(source, f"{name}.list") for name in ("train", "test")}
    listed = {name: read_list(path) for name, path in lists.items() if path is not None}
    cases = sorted({c for names in listed.values() for c in names}) if listed else sorted(files)
    for case in cases:
        if case not in files:
            where = next(str(lists[n]) for n, names in listed.items() if case in names)
            raise DatasetError(f"{where}: case {case!r} has no {case}/mri_norm2.h5 under {source}")
    out = new_dataset_folder(out_dir, source)
    for case in cases:
        image, label = read_h5_pair(files[case])
        if image.ndim != 3:
            raise DatasetError(f"{files[case]}: expected a 3-D volume, got shape {image.shape}")
        write_case(out, case, image, check_labels(label, range(2), files[case]), spacing)
    if "train" in listed and "test" in listed:
        train, val = (seeded_validation(listed["train"], val_count, seed) if val_count
                      else (sorted(listed["train"]), []))
        write_json(out / "splits.json", {
            "seed": seed, "source": "LA train.list/test.list; val carved from train.list with the seed",
            "train": train, "val": val, "test": sorted(listed["test"]), "labelled": train, "unlabelled": []})
    write_dataset_json(out, {"name": "LA", "channel_names": {"0": "MRI"},
                             "labels": {"background": 0, "left_atrium": 1}, "file_ending": ".nii.gz",
                             "numTraining": len(cases)})
    return out
