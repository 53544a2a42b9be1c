"""Convert LViT's image–text layouts (QaTa-COV19, MoNuSeg) into medgap's folder layout with ``textTr`` reports.

LViT (Li et al., IEEE TMI 2023) distributes each data set as::

    SOURCE/Train_Folder/img/covid_1.png      SOURCE/Train_Folder/labelcol/mask_covid_1.png   (QaTa-COV19)
    SOURCE/Train_Folder/img/TCGA-xx.png      SOURCE/Train_Folder/labelcol/TCGA-xx.png        (MoNuSeg;
    SOURCE/Test_Folder/img/TCGA-xx.tif       SOURCE/Test_Folder/labelcol/TCGA-xx.png           images may be .tif)
    SOURCE/Train_Folder/Train_text.xlsx      columns ``Image`` (the mask file name) and ``Description``
    SOURCE/Val_Folder/...   SOURCE/Test_Folder/...   (same structure, ``Val_text.xlsx`` / ``Test_text.xlsx``)

A ``.csv`` with the same two columns is accepted instead of the spreadsheet (LViT's own tooling exports both).
The text row of an image is found by its mask file name (LViT's key), else by the image file name, with or
without the extension.

Images may be PNG or TIFF (``.tif``, read with Pillow); any other file in an ``img/`` folder is refused rather
than skipped, as is a case name that occurs in two folders. Output: ``imagesTr/CASE_0000.png`` (grayscale; colour MoNuSeg tiles are converted to luminance),
``labelsTr/CASE.png`` (0/1: LViT masks are 0/255), ``textTr/CASE.txt`` (the Description), ``dataset.json``
(``"text": true``) and ``splits.json`` with train/val/test = LViT's Train/Val/Test folders. The case id is the
image file stem. Labelled ratios (25 %, 50 %, few-shot 1 %, 10 %) are drawn later by case id from ``train``
(``data.labelled_ratio``); unlabelled cases keep their reports. The output folder must not be inside the source.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from medgap.atomic import is_within, write_json, write_text
from medgap.data.cases import check_case_id
from medgap.data.dataset_json import write_dataset_json
from medgap.data.io import PILLOW_ENDINGS, read_image, write_png
from medgap.errors import DatasetError

DESCRIPTION = "LViT image-text layout (QaTa-COV19 / MoNuSeg: *_Folder/img, labelcol, *_text.xlsx|csv)"
FOLDERS = {"train": "Train_Folder", "val": "Val_Folder", "test": "Test_Folder"}
_SHEET_NS = {"s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def read_text_table(path: str | os.PathLike) -> dict[str, str]:
    """``Image`` → ``Description`` from an LViT ``.xlsx`` (first sheet) or ``.csv``; whitespace stripped.

    The spreadsheet is read with the standard library (zip + XML), so no spreadsheet package is needed.
    """
    path = Path(path)
    rows = _read_xlsx(path) if path.suffix.lower() == ".xlsx" else _read_csv(path)
    if not rows:
        raise DatasetError(f"{path}: empty text table")
    header = [str(cell).strip() for cell in rows[0]]
    if "Image" not in header or "Description" not in header:
        raise DatasetError(f"{path}: expected columns 'Image' and 'Description', found {header}")
    image_column, text_column = header.index("Image"), header.index("Description")
    table = {}
    for row in rows[1:]:
        row = list(row) + [""] * (len(header) - len(row))
        key, text = str(row[image_column]).strip(), " ".join(str(row[text_column]).split())
        if key:
            table[key] = text
    return table


def _read_csv(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [row for row in csv.reader(handle) if row]
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: unreadable CSV ({error})") from None


def _read_xlsx(path: Path) -> list[list[str]]:
    """Cell values of the first worksheet (shared and inline strings, numbers as text)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            shared = []
            if "xl/sharedStrings.xml" in names:
                root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
                shared = ["".join(t.text or "" for t in item.iter(f"{{{_SHEET_NS['s']}}}t"))
                          for item in root.findall("s:si", _SHEET_NS)]
            sheets = sorted(name for name in names if re.match(r"xl/worksheets/sheet\d+\.xml$", name))
            if not sheets:
                raise DatasetError(f"{path}: no worksheet in the spreadsheet")
            root = ElementTree.fromstring(archive.read(sheets[0]))
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError) as error:
        raise DatasetError(f"{path}: not a readable .xlsx file ({error})") from None
    rows = []
    for row in root.iter(f"{{{_SHEET_NS['s']}}}row"):
        cells: dict[int, str] = {}
        for cell in row.findall("s:c", _SHEET_NS):
            column = _column_index(re.sub(r"\d", "", cell.get("r", "A")))
            kind, value = cell.get("t"), cell.find("s:v", _SHEET_NS)
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{_SHEET_NS['s']}}}t"))
            elif value is None:
                text = ""
            elif kind == "s":
                text = shared[int(value.text)]
            else:
                text = value.text or ""
            cells[column] = text
        rows.append([cells.get(i, "") for i in range(max(cells) + 1)] if cells else [])
    return [row for row in rows if row]


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters.upper():
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _images(folder: Path) -> list[Path]:
    """The image files of an ``img/`` folder; a file of another type is an error (it would be silently lost)."""
    images = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or path.is_dir():  # macOS ._ files, .DS_Store
            continue
        if path.suffix not in PILLOW_ENDINGS:
            raise DatasetError(f"{path}: not an image type the converter reads ({', '.join(PILLOW_ENDINGS)})")
        images.append(path)
    return images


def _mask_for(image_path: Path, mask_dir: Path) -> Path | None:
    """QaTa names masks ``mask_<image>``; MoNuSeg uses the image's own name (``.png``, whatever the image's type)."""
    for name in (f"mask_{image_path.name}", image_path.name, f"{image_path.stem}.png", f"mask_{image_path.stem}.png"):
        if (mask_dir / name).is_file():
            return mask_dir / name
    return None


def _text_for(table: dict[str, str], image_path: Path, mask_path: Path | None) -> str | None:
    keys = [mask_path.name, mask_path.stem] if mask_path is not None else []
    keys += [image_path.name, image_path.stem, f"mask_{image_path.name}"]
    return next((table[key] for key in keys if key in table), None)


def convert(source: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert an LViT data set folder (see the module docstring); returns ``out_dir``.

    Raises:
        DatasetError: no ``Train_Folder``, an image without mask or report, a mask that is not binary, a
            non-empty ``out_dir``.
    """
    source, out = Path(source), Path(out_dir)
    if not (source / FOLDERS["train"]).is_dir():
        raise DatasetError(f"{source}: no {FOLDERS['train']}/ (expected LViT's Train_Folder/Val_Folder/Test_Folder)")
    if is_within(out, source):
        raise DatasetError(f"{out}: the output folder must not be inside the source folder {source}")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: output folder exists and is not empty")
    splits: dict[str, list[str]] = {}
    first_seen: dict[str, Path] = {}  # case id → the image that introduced it
    for split, folder_name in FOLDERS.items():
        folder = source / folder_name
        splits[split] = []
        if not folder.is_dir():
            continue
        stem = folder_name.split("_")[0]
        tables = [folder / f"{stem}_text{ending}" for ending in (".xlsx", ".csv")]
        table_path = next((path for path in tables if path.is_file()), None)
        if table_path is None:
            raise DatasetError(f"{folder}: no {stem}_text.xlsx or {stem}_text.csv")
        table = read_text_table(table_path)
        for image_path in _images(folder / "img"):
            case_id = check_case_id(image_path.stem, image_path)
            if case_id in first_seen:
                raise DatasetError(f"{image_path}: case name {case_id!r} also used by {first_seen[case_id]}")
            first_seen[case_id] = image_path
            mask_path = _mask_for(image_path, folder / "labelcol")
            if mask_path is None:
                raise DatasetError(f"{image_path}: no mask in {folder / 'labelcol'}")
            text = _text_for(table, image_path, mask_path)
            if text is None:
                raise DatasetError(f"{table_path}: no Description for {mask_path.name} (image {image_path.name})")
            image, _ = read_image(image_path)                    # colour images are read as luminance
            mask, _ = read_image(mask_path)
            values = np.unique(mask)
            if not set(values.tolist()) <= {0, 1, 255}:
                raise DatasetError(f"{mask_path}: mask values {values[:5].tolist()} are not binary (0/1 or 0/255)")
            if mask.shape != image.shape:
                raise DatasetError(f"{mask_path}: mask {mask.shape} and image {image.shape} differ in shape")
            write_png(out / "imagesTr" / f"{case_id}_0000.png", np.clip(image, 0, 255).astype(np.uint8))
            write_png(out / "labelsTr" / f"{case_id}.png", (mask > 0).astype(np.uint8))
            write_text(out / "textTr" / f"{case_id}.txt", text + "\n")
            splits[split].append(case_id)
    if not splits["train"]:
        raise DatasetError(f"{source / FOLDERS['train'] / 'img'}: no images ({', '.join(PILLOW_ENDINGS)})")
    write_json(out / "splits.json", {**splits, "source": source.resolve().name, "layout": "lvit"})
    write_dataset_json(out, {
        "name": source.name, "description": f"converted from {DESCRIPTION}", "channel_names": {"0": "image"},
        "labels": {"background": 0, "foreground": 1}, "file_ending": ".png",
        "numTraining": sum(len(cases) for cases in splits.values()), "text": True,
    })
    return out
