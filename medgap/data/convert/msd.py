"""Medical Segmentation Decathlon tasks (``Task01_BrainTumour``, ``Task02_Heart``, ...) → medgap's folder layout.

Source layout, as the MSD archives unpack::

    Task01_BrainTumour/dataset.json     "modality" {"0": "FLAIR", ...}, "labels" {"0": "background", ...},
                                        "training" [{"image": "./imagesTr/BRATS_001.nii.gz", "label": ...}],
                                        "test" ["./imagesTs/BRATS_485.nii.gz", ...]
    Task01_BrainTumour/imagesTr/BRATS_001.nii.gz    4-D (X, Y, Z, channel) when there are several modalities
    Task01_BrainTumour/labelsTr/BRATS_001.nii.gz
    Task01_BrainTumour/imagesTr/._BRATS_001.nii.gz  macOS metadata in the archives: ignored

Cases are those listed in ``dataset.json`` (``._*`` files are never cases). Every 4-D image is split into one
file per channel, ``CASE_0000.nii.gz`` ... (nnU-Net v2's convention), with the image's affine; labels are copied.
``labels`` are inverted to ``{"background": 0, "edema": 1, ...}``. For the brain tumour task (labels 1 edema,
2 non-enhancing tumour, 3 enhancing tumour) ``regions`` (default: automatic) writes nnU-Net v2's region-based
form instead, WT = {1, 2, 3}, TC = {2, 3}, ET = {3}, so that training and evaluation use the BraTS regions.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from medgap.data.cases import check_case_id
from medgap.data.convert.h5_common import new_dataset_folder
from medgap.data.dataset_json import read_json, write_dataset_json
from medgap.data.io import write_nifti
from medgap.errors import DatasetError

DESCRIPTION = "Medical Segmentation Decathlon TaskNN_Name (4-D NIfTI, dataset.json with modality/labels/training)"
BRATS_LABELS = ("background", "edema", "non-enhancing tumor", "enhancing tumour")  # Task01's labels 0-3
BRATS_REGIONS = {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}  # nnU-Net v2 region-based labels


def read_msd_json(source: Path) -> dict:
    """The task's ``dataset.json``, checked for the keys an MSD task has."""
    path = source / "dataset.json"
    raw = read_json(path, "an MSD task folder holds dataset.json, imagesTr/, labelsTr/")
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level")
    missing = [key for key in ("modality", "labels", "training") if key not in raw]
    if missing:
        raise DatasetError(f"{path}: missing MSD key(s) {', '.join(missing)} (is this an MSD task folder?)")
    return raw


def _case_file(source: Path, relative: str, where: Path) -> tuple[str, Path]:
    path = source / relative
    if not path.name.endswith(".nii.gz"):
        raise DatasetError(f"{where}: {relative!r} is not a .nii.gz file")
    if not path.is_file():
        raise DatasetError(f"{where}: lists {relative!r}, which does not exist")
    return check_case_id(path.name[: -len(".nii.gz")], path), path


def _split_channels(path: Path, case_id: str, target: Path, channels: int) -> None:
    """Write ``target/CASE_000c.nii.gz`` for each channel of a 3-D (one channel) or 4-D image."""
    import nibabel as nib

    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for broken files
        raise DatasetError(f"{path}: not a readable NIfTI file ({str(error).splitlines()[0][:160]})") from None
    if data.ndim == 3 and channels == 1:
        data = data[..., None]
    if data.ndim != 4 or data.shape[-1] != channels:
        raise DatasetError(f"{path}: shape {data.shape}, expected (X, Y, Z, {channels}) for {channels} modalities")
    for channel in range(channels):
        write_nifti(target / f"{case_id}_{channel:04d}.nii.gz", np.ascontiguousarray(data[..., channel]),
                    image.affine, image.header)


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, *, regions: bool | None = None) -> Path:
    """Convert the MSD task folder ``source`` into ``out_dir`` (absent or empty, not inside ``source``).

    Args:
        regions: write the BraTS regions WT/TC/ET (nnU-Net v2 region-based labels); default: when the labels are
            Task01's (edema, non-enhancing tumour, enhancing tumour).
    """
    source = Path(source)
    if not source.is_dir():
        raise DatasetError(f"{source}: MSD task folder not found")
    raw = read_msd_json(source)
    where = source / "dataset.json"
    try:
        modalities = [str(raw["modality"][str(i)]) for i in range(len(raw["modality"]))]
        labels = {str(name): int(value) for value, name in raw["labels"].items()}
    except (KeyError, ValueError, AttributeError):
        raise DatasetError(f"{where}: modality/labels must map \"0\", \"1\", ... to names") from None
    if regions is None:
        regions = tuple(name.lower() for name in sorted(labels, key=labels.get)) == BRATS_LABELS
    training = [(_case_file(source, entry["image"], where), _case_file(source, entry["label"], where))
                for entry in raw["training"]]
    test = [_case_file(source, entry if isinstance(entry, str) else entry["image"], where)
            for entry in raw.get("test", [])]
    out = new_dataset_folder(out_dir, source)
    (out / "imagesTs").mkdir(exist_ok=True)
    for (case_id, image), (label_id, label) in training:
        if label_id != case_id:
            raise DatasetError(f"{where}: training entry pairs image {image.name} with label {label.name}")
        _split_channels(image, case_id, out / "imagesTr", len(modalities))
        shutil.copyfile(label, out / "labelsTr" / f"{case_id}.nii.gz")
    for case_id, image in test:
        _split_channels(image, case_id, out / "imagesTs", len(modalities))
    write_dataset_json(out, {
        "name": str(raw.get("name", source.name)), "channel_names": {str(i): n for i, n in enumerate(modalities)},
        "labels": BRATS_REGIONS if regions else labels, **({"regions_class_order": [1, 2, 3]} if regions else {}),
        "file_ending": ".nii.gz", "numTraining": len(training),
        "converted_from": {"format": "msd", "source": source.resolve().name},
    })
    return out
