"""BraTS 2018–2021 folders → medgap's layout (FLAIR, T1, T1c, T2 as channels 0–3; WT/TC/ET regions).

Source layout (any depth below ``source``; BraTS 2018 nests cases under ``HGG/`` and ``LGG/``)::

    BraTS2021_00000/BraTS2021_00000_flair.nii.gz  _t1.nii.gz  _t1ce.nii.gz  _t2.nii.gz  _seg.nii.gz
    Brats18_2013_2_1/Brats18_2013_2_1_flair.nii.gz ...

Cases with a ``_seg`` file go to ``imagesTr``/``labelsTr``, cases without (the challenge's validation data) to
``imagesTs``. An absent sequence file stays absent (a missing modality). The enhancing-tumour label is 4 in
BraTS 2018–2021 and 3 in BraTS 2023-style relabelled sets; it is detected from the label files (or given).

Labels are written in nnU-Net v2's own region-based form (as its Dataset137_BraTS2021 conversion does), so one
folder trains in both tools: consecutive values 1 oedema, 2 necrotic / non-enhancing core, 3 enhancing tumour
(BraTS's 2, 1 and 4), and ``dataset.json`` ``labels`` ``{"background": 0, "WT": [1, 2, 3], "TC": [2, 3],
"ET": [3]}`` with ``regions_class_order`` ``[1, 2, 3]``. ``.nii`` images are re-saved compressed; ``.nii.gz``
images are copied byte for byte.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from medgap.data.cases import check_case_id
from medgap.data.convert.msd import BRATS_REGIONS
from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import read_label, write_nifti
from medgap.errors import DatasetError, MedgapError

DESCRIPTION = "BraTS 2018-2021 case folders (*_flair/_t1/_t1ce/_t2/_seg.nii.gz) -> FLAIR/T1/T1c/T2, regions WT/TC/ET"
SEQUENCES = ("flair", "t1", "t1ce", "t2")  # file suffixes, in channel order
CHANNEL_NAMES = ("FLAIR", "T1", "T1c", "T2")
ENDINGS = (".nii.gz", ".nii")


def _find(folder: Path, suffix: str) -> Path | None:
    for ending in ENDINGS:
        matches = sorted(folder.glob(f"*_{suffix}{ending}"))
        if len(matches) > 1:
            raise DatasetError(f"{folder}: several files end in _{suffix}{ending}")
        if matches:
            return matches[0]
    return None


def find_cases(source: Path) -> dict[str, Path]:
    """Case id (the folder name) → folder, for every folder holding a ``*_flair``/``_t1``/... or ``_seg`` file."""
    cases: dict[str, Path] = {}
    for folder in sorted({path.parent for ending in ENDINGS for path in source.rglob(f"*_*{ending}")}):
        if not any(_find(folder, suffix) for suffix in (*SEQUENCES, "seg")):
            continue
        case_id = check_case_id(folder.name, folder)
        if case_id in cases:
            raise DatasetError(f"{folder}: case id {case_id!r} also in {cases[case_id]}")
        cases[case_id] = folder
    return cases


def _write(source: Path, target: Path) -> None:
    if source.name.endswith(".nii.gz"):
        shutil.copyfile(source, target)
    else:
        import nibabel as nib

        nib.save(nib.load(source), target)


def write_nnunet_label(source: Path, target: Path, enhancing: int) -> None:
    """BraTS labels (1 necrotic, 2 oedema, ``enhancing``) → nnU-Net v2's consecutive 2, 1, 3, same geometry."""
    label, geometry = read_label(source)
    renumber = np.zeros(max(int(label.max()), enhancing) + 1, np.uint8)
    renumber[[1, 2, enhancing]] = [2, 1, 3]
    write_nifti(target, renumber[label], geometry.affine, geometry.header)


def detect_enhancing_label(label_paths: list[Path]) -> int:
    """4 (BraTS 2018–2021) or 3, from the values in the label files; both present is an error."""
    values: set[int] = set()
    for path in label_paths:
        values |= set(np.unique(read_label(path)[0]).tolist())
    unknown = sorted(values - {0, 1, 2, 3, 4})
    if unknown:
        raise DatasetError(f"BraTS labels must be in {{0, 1, 2, 4}} or {{0, 1, 2, 3}}; found {unknown}")
    if {3, 4} <= values:
        raise DatasetError("BraTS labels contain both 3 and 4; give enhancing_label explicitly")
    return 3 if 3 in values else 4


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, *, enhancing_label: int | None = None,
            name: str = "BraTS") -> Path:
    """Convert a BraTS folder tree into ``out_dir`` (which must be absent or empty, and not inside ``source``)."""
    source, out_dir = Path(source).resolve(), Path(out_dir).resolve()
    if not source.is_dir():
        raise MedgapError(f"{source}: source folder not found")
    if out_dir == source or source in out_dir.parents:
        raise MedgapError(f"{out_dir}: the output folder must not be inside the source folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise MedgapError(f"{out_dir}: exists and is not empty")
    cases = find_cases(source)
    if not cases:
        raise DatasetError(f"{source}: no BraTS case folders (*_flair.nii.gz, *_t1.nii.gz, ...) found")
    labelled = {case_id: _find(folder, "seg") for case_id, folder in cases.items()}
    label_paths = [path for path in labelled.values() if path is not None]
    if not label_paths:
        raise DatasetError(f"{source}: no *_seg label file in any case folder")
    enhancing = enhancing_label or detect_enhancing_label(label_paths)
    for part in ("imagesTr", "labelsTr", "imagesTs"):
        (out_dir / part).mkdir(parents=True, exist_ok=True)
    training = 0
    for case_id, folder in cases.items():
        part = "Tr" if labelled[case_id] is not None else "Ts"
        present = [(channel, _find(folder, suffix)) for channel, suffix in enumerate(SEQUENCES)]
        if not any(path for _, path in present):
            raise DatasetError(f"{folder}: case {case_id} has a label but no image sequence")
        for channel, path in present:
            if path is not None:
                _write(path, out_dir / f"images{part}" / f"{case_id}_{channel:04d}.nii.gz")
        if part == "Tr":
            write_nnunet_label(labelled[case_id], out_dir / "labelsTr" / f"{case_id}.nii.gz", enhancing)
            training += 1
    write_dataset_json(out_dir, {
        "name": name, "channel_names": {str(i): n for i, n in enumerate(CHANNEL_NAMES)},
        "labels": BRATS_REGIONS, "regions_class_order": [1, 2, 3], "file_ending": ".nii.gz", "numTraining": training,
        "converted_from": {"format": "brats", "source": source.name, "enhancing_label": enhancing},
    })
    return out_dir
