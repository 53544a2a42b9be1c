"""LViT layouts (QaTa-COV19 with an .xlsx text table, MoNuSeg with a .csv) → medgap's folder with textTr reports."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest

from medgap.data.cases import discover_cases, load_case
from medgap.data.convert import converter
from medgap.data.convert.lvit import read_text_table
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import write_png
from medgap.errors import DatasetError


def write_xlsx(path: Path, rows: list[list[str]]) -> None:
    """A minimal Excel file (shared strings, one sheet), as LViT's ``Train_text.xlsx``."""
    strings = [cell for row in rows for cell in row]
    cells = []
    for r, row in enumerate(rows, start=1):
        refs = "".join(f'<c r="{"AB"[c]}{r}" t="s"><v>{strings.index(cell)}</v></c>' for c, cell in enumerate(row))
        cells.append(f'<row r="{r}">{refs}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/sharedStrings.xml",
                         f'<sst {ns}>' + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
        archive.writestr("xl/worksheets/sheet1.xml", f'<worksheet {ns}><sheetData>{"".join(cells)}</sheetData></worksheet>')


def fake_lvit(root: Path, *, qata: bool) -> Path:
    rng = np.random.default_rng(0)
    for folder, names in (("Train_Folder", ["covid_1", "covid_2", "covid_3"]), ("Test_Folder", ["covid_9"])):
        (root / folder / "img").mkdir(parents=True)
        (root / folder / "labelcol").mkdir(parents=True)
        rows = [["Image", "Description"]]
        for index, name in enumerate(names):
            write_png(root / folder / "img" / f"{name}.png", rng.integers(0, 255, (20, 24)).astype(np.uint8))
            mask = np.zeros((20, 24), np.uint8)
            mask[3:8, 2 + index:9] = 255
            mask_name = f"mask_{name}.png" if qata else f"{name}.png"
            write_png(root / folder / "labelcol" / mask_name, mask)
            rows.append([mask_name, f"Unilateral pulmonary infection, one infected area, upper left lung {name}."])
        stem = folder.split("_")[0]
        if qata:
            write_xlsx(root / folder / f"{stem}_text.xlsx", rows)
        else:
            (root / folder / f"{stem}_text.csv").write_text("\n".join(",".join(f'"{c}"' for c in r) for r in rows))
    return root


@pytest.mark.parametrize("qata", [True, False], ids=["qata-xlsx", "monuseg-csv"])
def test_convert(tmp_path, qata):
    source = fake_lvit(tmp_path / "src", qata=qata)
    out = converter("lvit").convert(source, tmp_path / "out")
    spec = load_dataset_json(out)
    assert spec.text and spec.file_ending == ".png"
    splits = json.loads((out / "splits.json").read_text())
    assert splits["train"] == ["covid_1", "covid_2", "covid_3"] and splits["test"] == ["covid_9"]
    cases = {case.case_id: case for case in discover_cases(out, spec)}
    data = load_case(cases["covid_2"], spec)
    assert data.text == "Unilateral pulmonary infection, one infected area, upper left lung covid_2."
    assert set(np.unique(data.label).tolist()) == {0, 1}  # 0/255 → 0/1
    assert int(data.label.sum()) == 5 * 6


def test_read_text_table_xlsx(tmp_path):
    write_xlsx(tmp_path / "t.xlsx", [["Image", "Description"], ["mask_a.png", "two  words"]])
    assert read_text_table(tmp_path / "t.xlsx") == {"mask_a.png": "two words"}


def test_missing_description_names_the_file(tmp_path):
    source = fake_lvit(tmp_path / "src", qata=False)
    table = source / "Train_Folder" / "Train_text.csv"
    table.write_text("\n".join(table.read_text().splitlines()[:-1]))
    with pytest.raises(DatasetError, match="Train_text.csv: no Description for covid_3.png"):
        converter("lvit").convert(source, tmp_path / "out")


def fake_monuseg(root: Path) -> Path:
    """MoNuSeg as LViT ships it: colour tiles, ``Test_Folder/img/*.tif`` beside ``labelcol/*.png`` masks."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for folder, names, ending in (("Train_Folder", ["TCGA-A1", "TCGA-A2"], ".png"),
                                  ("Test_Folder", ["TCGA-T1", "TCGA-T2", "TCGA-T3"], ".tif")):
        (root / folder / "img").mkdir(parents=True)
        (root / folder / "labelcol").mkdir(parents=True)
        rows = [["Image", "Description"]]
        for name in names:
            Image.fromarray(rng.integers(0, 255, (12, 10, 3)).astype(np.uint8)).save(root / folder / "img" / f"{name}{ending}")
            mask = np.zeros((12, 10), np.uint8)
            mask[2:5, 3:7] = 255
            write_png(root / folder / "labelcol" / f"{name}.png", mask)
            rows.append([f"{name}.png", f"Nuclei of {name}."])
        stem = folder.split("_")[0]
        write_xlsx(root / folder / f"{stem}_text.xlsx", rows)
    return root


def test_monuseg_tif_test_images_are_converted(tmp_path):
    from PIL import Image

    source = fake_monuseg(tmp_path / "MoNuSeg")
    out = converter("lvit").convert(source, tmp_path / "out")
    splits = json.loads((out / "splits.json").read_text())
    assert splits["test"] == ["TCGA-T1", "TCGA-T2", "TCGA-T3"] and splits["source"] == "MoNuSeg"
    spec = load_dataset_json(out)
    data = load_case({c.case_id: c for c in discover_cases(out, spec)}["TCGA-T2"], spec)
    with Image.open(source / "Test_Folder" / "img" / "TCGA-T2.tif") as tile:
        luminance = np.asarray(tile.convert("L"), dtype=np.float32)
    np.testing.assert_array_equal(data.image[0], luminance)
    assert int(data.label.sum()) == 3 * 4


def test_unreadable_image_type_is_refused_not_skipped(tmp_path):
    source = fake_monuseg(tmp_path / "MoNuSeg")
    (source / "Test_Folder" / "img" / "TCGA-T4.jp2").write_bytes(b"\0")
    (source / "Test_Folder" / "img" / "._TCGA-T1.tif").write_bytes(b"\0")  # macOS junk is skipped
    with pytest.raises(DatasetError, match=r"TCGA-T4.jp2: not an image type the converter reads"):
        converter("lvit").convert(source, tmp_path / "out")


def test_case_name_in_two_folders_and_output_inside_source_are_refused(tmp_path):
    source = fake_lvit(tmp_path / "src", qata=True)
    with pytest.raises(DatasetError, match="must not be inside the source folder"):
        converter("lvit").convert(source, source / "converted")
    assert not (source / "converted").exists()
    for part, name in (("img", "covid_1.png"), ("labelcol", "mask_covid_1.png")):
        (source / "Test_Folder" / part / name).write_bytes((source / "Train_Folder" / part / name).read_bytes())
    with pytest.raises(DatasetError, match=r"Test_Folder/img/covid_1.png: case name 'covid_1' also used by .*Train_Folder"):
        converter("lvit").convert(source, tmp_path / "out")
