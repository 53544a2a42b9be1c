import pytest

from medgap.evaluation.reports import METRIC_COLUMNS, distance_unit, summary_table


@pytest.mark.parametrize("file_ending, unit", [(".nii.gz", "mm"), (".nii", "mm"), (".h5", "mm"), (".png", "px"),
                                                (".tif", "px"), (".TIFF", "px")])
def test_distances_of_2d_images_without_spacing_are_in_pixels(file_ending, unit):
    assert distance_unit(file_ending) == unit
    row = {"structure": "lesion", "n": 1, **{m: 1.0 for m in METRIC_COLUMNS}, **{f"{m}_std": 0.0 for m in METRIC_COLUMNS}}
    assert f"HD95 ({unit})" in summary_table([row], ["dice", "hd95"], distance_unit(file_ending))
