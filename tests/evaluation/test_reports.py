"""The one Markdown table builder and p-value cell every results page uses."""

from __future__ import annotations

import math

import pytest

from medgap.evaluation.reports import METRIC_COLUMNS, distance_unit, markdown_table, p_value_cell, summary_table


def test_markdown_table_layout():
    table = markdown_table(["method", "Dice", "n"], [["ShaSpec", "81.20", 3], ["zero-filling", "–", 12]])
    assert table == ("| method | Dice | n |\n"
                     "|---|---|---|\n"
                     "| ShaSpec | 81.20 | 3 |\n"
                     "| zero-filling | – | 12 |\n")
    assert markdown_table(["a"], []) == "| a |\n|---|\n"


def test_p_value_cell_marks_significance_and_missing_tests():
    assert p_value_cell({"p": 0.012345, "significant": True}) == "0.0123*"
    assert p_value_cell({"p": 0.4567, "significant": False}) == "0.457"
    assert p_value_cell({"p": 0.012345, "significant": True}, digits=2) == "0.012*"
    assert p_value_cell(None) == "–"
    assert p_value_cell({"p": math.nan, "significant": False}) == "–"
    assert p_value_cell(None, missing="—") == "—"



@pytest.mark.parametrize("file_ending, unit", [(".nii.gz", "mm"), (".nii", "mm"), (".h5", "mm"), (".png", "px"),
                                                (".tif", "px"), (".TIFF", "px")])
def test_distances_of_2d_images_without_spacing_are_in_pixels(file_ending, unit):
    assert distance_unit(file_ending) == unit
    row = {"structure": "lesion", "n": 1, **{m: 1.0 for m in METRIC_COLUMNS}, **{f"{m}_std": 0.0 for m in METRIC_COLUMNS}}
    assert f"HD95 ({unit})" in summary_table([row], ["dice", "hd95"], distance_unit(file_ending))
