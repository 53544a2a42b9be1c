"""The ACDC h5 layout of SSL4MIS / SS-Net (2-D) → medgap's dataset folder, one 3-D stack per case.

Source layout (SSL4MIS ``data/ACDC``): volumes ``data/<case>.h5`` (``image``/``label`` of shape ``(Z, H, W)``,
labels 0 background, 1 RV, 2 myocardium, 3 LV) and/or training slices ``data/slices/<case>_slice_<k>.h5``
(``(H, W)``), with the lists ``train.list`` or ``train_slices.list``, ``val.list`` and ``test.list``. A case
is taken from its volume file when there is one, otherwise its slices are stacked in slice order. Stacks are
written ``(H, W, Z)`` (slices along the last axis), which medgap's 2-D slice-wise training and inference expect.

The h5 files carry no voxel size: distances are then in voxels unless ``spacing`` is given (ACDC is about
1.5 × 1.5 × 10 mm, varying per patient). An h5 ``spacing`` attribute on ``image`` (``(Z, H, W)``) wins.

``splits.json``: train/val/test = the lists as published (70/10/20 patients in SS-Net's split). Cases named
``patient###_frame##`` (ED and ES of one patient) are grouped by patient in ``dataset.json`` ``groups``, so a
labelled draw (``data.labelled_count: 7``, SS-Net's 7 labelled patients) labels both frames of 7 patients and a
new split never puts one frame in training and the other in test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from medgap.atomic import write_json
from medgap.data.convert.h5_common import check_labels, new_dataset_folder, read_h5_pair, read_list, write_case
from medgap.data.dataset_json import write_dataset_json
from medgap.errors import DatasetError

DESCRIPTION = "ACDC h5 (SSL4MIS/SS-Net: data/<case>.h5 volumes, data/slices/<case>_slice_<k>.h5, *.list)"
LABELS = {"background": 0, "RV": 1, "myocardium": 2, "LV": 3}  # as the synthetic cardiac-2d set
_SLICE = re.compile(r"^(?P<case>.+)_slice_(?P<index>\d+)$")
_FRAME = re.compile(r"^(?P<patient>.+)_frame\d+$")  # SSL4MIS names each ED/ES volume patient###_frame##


def patient_groups(cases: list[str]) -> dict[str, str]:
    """``{"patient001_frame01": "patient001", ...}`` for the cases named by frame."""
    return {case: match["patient"] for case in cases if (match := _FRAME.match(case))}


def _h5_spacing(path: Path) -> tuple[float, float, float] | None:
    with h5py.File(path, "r") as handle:
        value = handle["image"].attrs.get("spacing")
    if value is None or len(value) != 3:
        return None
    z, h, w = (float(v) for v in value)
    return h, w, z


def _load_case(case: str, volumes: dict[str, Path], slices: dict[str, list[tuple[int, Path]]]):
    """``(image (H, W, Z), label (H, W, Z), spacing or None, where)`` of one case."""
    if case in volumes:
        path = volumes[case]
        image, label = read_h5_pair(path)
        if image.ndim != 3:
            raise DatasetError(f"{path}: expected a (Z, H, W) volume, got shape {image.shape}")
        return np.moveaxis(image, 0, -1), np.moveaxis(label, 0, -1), _h5_spacing(path), path
    pairs = [read_h5_pair(path) for _, path in sorted(slices[case])]
    shapes = {image.shape for image, _ in pairs}
    first = sorted(slices[case])[0][1]
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise DatasetError(f"{first.parent}: slices of {case} are not 2-D images of one shape ({sorted(shapes)})")
    return (np.stack([image for image, _ in pairs], -1), np.stack([label for _, label in pairs], -1), None, first)


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, *,
            spacing: tuple[float, float, float] | None = None) -> Path:
    """Convert the ACDC h5 folder ``source`` (the folder holding ``data/`` and the lists) into ``out_dir``.

    Args:
        spacing: ``(in-plane, in-plane, slice)`` mm for cases whose h5 has no ``spacing`` attribute; default
            1 mm (distances in voxels).
    """
    source = Path(source)
    data = source / "data" if (source / "data").is_dir() else source
    if not data.is_dir():
        raise DatasetError(f"{source}: ACDC source folder not found")
    volumes = {path.stem: path for path in sorted(data.glob("*.h5"))}
    slices: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted((data / "slices").glob("*.h5")):
        match = _SLICE.match(path.stem)
        if match:
            slices.setdefault(match["case"], []).append((int(match["index"]), path))
    if not volumes and not slices:
        raise DatasetError(f"{data}: no <case>.h5 volumes or slices/<case>_slice_<k>.h5 files found")

    def listed(*names: str) -> list[str] | None:
        for name in names:
            for folder in (source, data):
                if (folder / name).is_file():
                    found = read_list(folder / name)
                    return sorted({_SLICE.match(n)["case"] if _SLICE.match(n) else n for n in found})
        return None

    splits = {"train": listed("train.list", "train_slices.list"), "val": listed("val.list"),
              "test": listed("test.list")}
    cases = sorted({c for names in splits.values() if names for c in names} or set(volumes) | set(slices))
    for case in cases:
        if case not in volumes and case not in slices:
            raise DatasetError(f"{data}: case {case!r} is listed but has no {case}.h5 or slices/{case}_slice_*.h5")
    out = new_dataset_folder(out_dir, source)
    for case in cases:
        image, label, own_spacing, where = _load_case(case, volumes, slices)
        write_case(out, case, image, check_labels(label, range(4), where), own_spacing or spacing or (1.0, 1.0, 1.0))
    if all(splits.values()):
        write_json(out / "splits.json", {"source": "ACDC train/val/test lists as published", **splits,
                                         "labelled": splits["train"], "unlabelled": []})
    groups = patient_groups(cases)
    write_dataset_json(out, {"name": "ACDC", "channel_names": {"0": "cineMRI"}, "labels": LABELS,
                             "file_ending": ".nii.gz", "numTraining": len(cases), **({"groups": groups} if groups else {})})
    return out
