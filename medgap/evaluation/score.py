"""Score a folder of predicted label maps against a folder of reference labels (nnU-Net's
``compute_metrics_on_folder`` habit): the metrics, regions, empty-mask policy and tables of ``medgap evaluate``,
for predictions made by any tool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from medgap.data.cases import check_label_values
from medgap.data.dataset_json import load_dataset_json
from medgap.data.io import read_label
from medgap.errors import DatasetError
from medgap.evaluation.reports import distance_unit, metric_notes, summary_table, write_results
from medgap.metrics import EMPTY_MASK_POLICY, SegmentationMetrics, label_to_masks


def _label_files(folder: Path, ending: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    return {path.name[: -len(ending)]: path for path in sorted(folder.iterdir())
            if path.name.endswith(ending) and not path.name.startswith(".")}


def score_folder(prediction_dir: str | os.PathLike, label_dir: str | os.PathLike, dataset_dir: str | os.PathLike, *,
                 out_dir: str | os.PathLike | None = None, hd95_definition: str = "medpy",
                 empty_penalty: float | None = None, voxel_units_too: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every ``PRED_DIR/CASE<file_ending>`` against ``LABEL_DIR/CASE<file_ending>``.

    ``dataset_dir``'s ``dataset.json`` gives the file ending, the label values and the regions (BraTS WT/TC/ET
    are scored as regions, as ``medgap evaluate`` does). Distances come from the reference label's voxel spacing
    (mm; pixels for PNG/TIFF). Writes ``score.md``, ``score.csv``, ``score_per_case.csv`` and ``score.json`` into
    ``out_dir`` (default: ``prediction_dir``, as nnU-Net writes its ``summary.json`` beside the predictions).

    Raises:
        DatasetError: no predictions, a prediction without a reference label, shapes that differ, label values
            not declared in ``dataset.json``.
    """
    prediction_dir, label_dir = Path(prediction_dir), Path(label_dir)
    spec = load_dataset_json(dataset_dir)
    predictions = _label_files(prediction_dir, spec.file_ending)
    references = _label_files(label_dir, spec.file_ending)
    if not predictions:
        raise DatasetError(f"{prediction_dir}: no predictions named CASE{spec.file_ending}")
    unmatched = sorted(set(predictions) - set(references))
    if unmatched:
        raise DatasetError(f"{predictions[unmatched[0]]}: no reference label {label_dir / unmatched[0]}{spec.file_ending}"
                           + (f" (and {len(unmatched) - 1} more prediction(s) without one)" if len(unmatched) > 1 else ""))
    scores = SegmentationMetrics(hd95_definition=hd95_definition, empty_penalty=empty_penalty,
                                 voxel_units_too=voxel_units_too)
    for done, (case_id, path) in enumerate(predictions.items(), start=1):
        prediction, _ = read_label(path)
        truth, geometry = read_label(references[case_id])
        if prediction.shape != truth.shape:
            raise DatasetError(f"{path}: shape {prediction.shape} differs from the reference label {truth.shape}")
        for label, where in ((prediction, path), (truth, references[case_id])):
            check_label_values(label, spec, where)
        scores.update(case_id, label_to_masks(prediction, spec.regions, spec.labels),
                      label_to_masks(truth, spec.regions, spec.labels), spacing=geometry.spacing)
        if progress is not None:
            progress(done, len(predictions))

    unit = distance_unit(spec.file_ending)
    not_predicted = sorted(set(references) - set(predictions))
    intro = [f"Predictions `{prediction_dir}` against `{label_dir}`, dataset **{spec.name}** ({len(predictions)} "
             "cases" + (f"; {len(not_predicted)} reference label(s) without a prediction, not scored, e.g. "
                        f"{not_predicted[0]}" if not_predicted else "") + ").", "",
             *metric_notes(hd95_definition, empty_penalty, unit)]
    table = summary_table(scores.aggregate(), scores.metric_columns, unit)
    paths = write_results(Path(out_dir) if out_dir is not None else prediction_dir,
                          title=f"{spec.name}: scores of {prediction_dir.name}", intro=intro, table_markdown=table,
                          aggregated=scores.aggregate(), records=scores.records, stem="score",
                          extra={"empty_mask_policy": EMPTY_MASK_POLICY, "empty_penalty": empty_penalty,
                                 "hd95_definition": hd95_definition, "predictions": str(prediction_dir),
                                 "labels": str(label_dir), "not_predicted": not_predicted})
    return {"cases": len(predictions), "table": table, "paths": {k: str(v) for k, v in paths.items()}}
