"""The one Markdown table builder and p-value cell every results page uses."""

from __future__ import annotations

import math

from medgap.evaluation.reports import markdown_table, p_value_cell


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
