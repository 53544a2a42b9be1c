"""Whole-image classification datasets: ``dataset.json`` ``"task": "classification"`` + ``labelsTr.csv``.

Layout (the segmentation layout with a table instead of label maps)::

    dataset.json     {"task": "classification", "classes": ["0", "1", ...], "channel_names": ..., "file_ending": ".png"}
    imagesTr/CASE_0000.png CASE_0001.png ...   # one file per modality; an ABSENT file = missing modality
    labelsTr.csv     case_id,class             # class = a name from "classes"; a case without a row = unlabelled

Images go through the same preprocessing cache as segmentation cases; training items are the whole image
(centre-cropped/zero-padded to ``data.patch_size``, which should equal the image size) with a class index.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medgap.data.dataset_json import DatasetSpec
from medgap.data.preprocess import PreprocessedCase
from medgap.data.samplers import Sample
from medgap.data.transforms import Augmentation, crop_patch
from medgap.errors import DatasetError

LABELS_FILE = "labelsTr.csv"


def load_class_labels(dataset_dir: str | Path, spec: DatasetSpec, case_ids: set[str] | None = None) -> dict[str, int]:
    """``labelsTr.csv`` → ``{case_id: class index into spec.classes}``.

    Raises:
        DatasetError: missing file, bad header, unknown class, duplicate or unknown case id (file:line).
    """
    path = Path(dataset_dir) / LABELS_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a classification dataset lists case_id,class here)")
    index = {name: i for i, name in enumerate(spec.classes)}
    labels: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["case_id", "class"]:
            raise DatasetError(f"{path}: expected the header 'case_id,class'")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise DatasetError(f"{path}:{line}: expected 'case_id,class'")
            case_id, name = row[0].strip(), row[1].strip()
            if name not in index:
                raise DatasetError(f"{path}:{line}: class {name!r} not in dataset.json classes {list(spec.classes)}")
            if case_id in labels:
                raise DatasetError(f"{path}:{line}: duplicate case id {case_id!r}")
            if case_ids is not None and case_id not in case_ids:
                raise DatasetError(f"{path}:{line}: case {case_id!r} has no image in imagesTr/")
            labels[case_id] = index[name]
    return labels


class ClassificationDataset(Dataset):
    """Whole images with a class index; indexed by ``(case index, sample seed)`` like :class:`PatchDataset`.

    Each item: ``image (C, *patch)`` float32, ``label ()`` int64 (0 when unlabelled), ``availability (C,)``,
    ``labelled``, ``case``.
    """

    def __init__(self, cases: list[PreprocessedCase], patch_size: tuple[int, ...], class_labels: dict[str, int],
                 labelled: list[bool], augmentation: Augmentation | None = None):
        self.cases, self.patch_size, self.class_labels = cases, tuple(patch_size), class_labels
        self.labelled, self.augmentation = labelled, augmentation

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, item: Sample) -> dict:
        index, seed = item
        case = self.cases[index]
        rng = np.random.default_rng(seed)
        image, _ = crop_patch(np.asarray(case.image()), None, self.patch_size, rng)
        if self.augmentation is not None:
            image, _ = self.augmentation(image, None, case.availability, rng)
        use_label = self.labelled[index]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "label": torch.tensor(self.class_labels[case.case_id] if use_label else 0, dtype=torch.long),
            "availability": torch.from_numpy(case.availability.copy()),
            "labelled": torch.tensor(use_label),
            "case": case.case_id,
        }


def whole_images(cases: list[PreprocessedCase], patch_size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation batch: ``image (B, C, *patch)`` (centre crop / zero pad) and ``availability (B, C)``."""
    rng = np.random.default_rng(0)  # unused when the image fits; crop_patch centres when size <= patch
    images = [crop_patch(np.asarray(case.image()), None, tuple(patch_size), rng)[0] for case in cases]
    return (torch.from_numpy(np.stack(images).astype(np.float32)),
            torch.from_numpy(np.stack([case.availability for case in cases])))


def whole_image_batches(cases: list[PreprocessedCase], patch_size: tuple[int, ...], batch_size: int):
    """Consecutive chunks of ``batch_size`` cases as :func:`whole_images` batches: yields
    ``(chunk, image (b, C, *patch), availability (b, C))``; the last chunk may be smaller."""
    for start in range(0, len(cases), batch_size):
        chunk = cases[start:start + batch_size]
        yield (chunk, *whole_images(chunk, patch_size))
