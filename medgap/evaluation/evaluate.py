"""Evaluate a trained run: predict the held-out cases, score every structure, write tables and plots."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medgap.atomic import write_json
from medgap.config import ExperimentConfig, load_config
from medgap.data.pipeline import PreparedData, prepare_data
from medgap.data.preprocess import index_to_label
from medgap.errors import ConfigError, RunFolderError
from medgap.evaluation.plots import plot_overlay
from medgap.evaluation.reports import distance_unit, metric_notes, summary_table, write_results
from medgap.inference.predict import predict_case
from medgap.methods.base import ClassificationMethod, Method, SegmentationMethod
from medgap.registry import build_method
from medgap.metrics import EMPTY_MASK_POLICY, SegmentationMetrics, label_to_masks
from medgap.training.checkpoint import load_checkpoint, load_model_state


def load_run_config(run_dir: str | os.PathLike) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"{run_dir}: not a run folder (no config.yaml)")
    return load_config(path)  # the hardened loader: no Python objects, duplicate keys or alias bombs


def load_trained_method(run_dir: str | os.PathLike, config: ExperimentConfig, spec, checkpoint: str = "best"):
    """Build the run's method and load ``checkpoints/<checkpoint>.pt`` (state dict only, strict)."""
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        raise RunFolderError(f"{path}: checkpoint not found (train the run first)")
    method = build_method(config, spec)
    load_model_state(method, load_checkpoint(path)["model"], path)
    return method.eval()


class LoadedRun(NamedTuple):
    config: ExperimentConfig
    data: PreparedData
    method: Method


def load_run(run_dir: str | os.PathLike, split: str | tuple[str, ...] | None = None,
             checkpoint: str = "best") -> LoadedRun:
    """A finished run's config, its prepared data (only ``split``: one name, several, or None for the config's
    ``evaluation.split``; the run's own ``splits.json`` is read, never rewritten) and its method with
    ``checkpoints/<checkpoint>.pt`` loaded, in eval mode."""
    config = load_run_config(run_dir)
    splits = (split,) if isinstance(split, str) else tuple(split or (config.evaluation.split,))
    data = prepare_data(config.data, config.trainer.seed, run_dir, write_splits=False, only_splits=splits)
    return LoadedRun(config, data, load_trained_method(run_dir, config, data.spec, checkpoint))


def evaluate_run(run_dir: str | os.PathLike, *, split: str | None = None, checkpoint: str = "best",
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Score a segmentation run's ``split`` (default: the config's, normally ``test``) and write
    ``results.md/.csv/.json``, ``per_case.csv``, ``plots/overlay.png``; add the numbers to ``summary.json``.
    A classification run is scored by :func:`~medgap.evaluation.subsets.evaluate_subsets` on the modalities each
    case has (accuracy)."""
    run_dir = Path(run_dir)
    config, data, method = load_run(run_dir, split, checkpoint)
    split = split or config.evaluation.split
    if isinstance(method, ClassificationMethod):  # accuracy over the modalities each case has
        from medgap.evaluation.subsets import evaluate_subsets

        return evaluate_subsets(run_dir, subsets="available", split=split, checkpoint=checkpoint, progress=progress)
    if not isinstance(method, SegmentationMethod):
        raise ConfigError(f"{run_dir}: method {config.method.name} is a {method.kind} method; evaluate the run that "
                          "reuses its weights")
    spec = data.spec
    evaluation = config.evaluation
    scores = SegmentationMetrics(hd95_definition=evaluation.hd95_definition, empty_penalty=evaluation.empty_penalty,
                                 voxel_units_too=evaluation.voxel_units_too)
    cases = data.split_cases(split)
    if not cases:
        raise RunFolderError(f"{run_dir}: the {split} split is empty")
    shown = None
    for done, case in enumerate(cases, start=1):
        prediction = predict_case(method, case, config)
        truth = index_to_label(np.asarray(case.label()), spec)
        scores.update(case.case_id, label_to_masks(prediction, spec.regions, spec.labels),
                      label_to_masks(truth, spec.regions, spec.labels), spacing=case.spacing)
        if shown is None:
            shown = (case, truth, prediction)
        if progress is not None:
            progress(done, len(cases))

    metrics = scores.metric_columns
    aggregated = scores.aggregate()
    unit = distance_unit(spec.file_ending)
    intro = [
        f"Run `{run_dir}` — method **{config.method.name}**, dataset **{spec.name}**, checkpoint `{checkpoint}.pt`, "
        f"split `{split}` ({len(cases)} cases).",
        "",
        *metric_notes(evaluation.hd95_definition, evaluation.empty_penalty, unit),
    ]
    table = summary_table(aggregated, metrics, unit)
    paths = write_results(run_dir, title=f"{config.name or config.method.name}: {split} results", intro=intro,
                          table_markdown=table, aggregated=aggregated, records=scores.records,
                          extra={"empty_mask_policy": EMPTY_MASK_POLICY, "empty_penalty": evaluation.empty_penalty,
                                 "hd95_definition": evaluation.hd95_definition,
                                 "checkpoint": checkpoint, "split": split})
    case, truth, prediction = shown
    names = {value: name for name, value in spec.labels.items()}
    plot_overlay(np.asarray(case.image()[int(np.argmax(case.availability))]), truth, prediction,
                 run_dir / "plots" / "overlay.png", title=f"{case.case_id}: {spec.channel_names[0]}",
                 label_names=names)
    result = {"split": split, "checkpoint": checkpoint, "cases": len(cases), "table": table,
              "aggregated": aggregated, "paths": {k: str(v) for k, v in paths.items()}}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["evaluation"] = {"split": split, "checkpoint": checkpoint, "cases": len(cases),
                             "empty_mask_policy": EMPTY_MASK_POLICY["description"],
                             "per_structure": {row["structure"]: {m: row[m] for m in metrics} for row in aggregated}}
    write_json(summary_path, summary)
    return result
