"""Evaluation over every subset of modalities (ShaSpec Table 1) and side-by-side comparison of runs.

``evaluate_subsets`` predicts every held-out case with each of the 2^N − 1 non-empty subsets of its modalities
(the others are zeroed and marked missing, so a method's missing-modality path is used) and writes
``subsets.md/.csv/.json`` + ``subsets_per_case.csv``: one row per subset, present modalities marked ●/○, Dice per
structure (+ HD95) or accuracy, and the average row. ``compare_runs`` puts several runs side by side with a
paired t-test per subset against the first run. Runs with the same name but different seeds (a method trained
over several seeds) are pooled: their scores are averaged, and cases are paired by (seed, case id), so compare
runs trained with the same seeds (same seed → same split).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medgap.atomic import write_json, write_text
from medgap.data.preprocess import index_to_label
from medgap.errors import MedgapError, RunFolderError
from medgap.evaluation.evaluate import load_run, load_run_config
from medgap.evaluation.reports import distance_unit, markdown_table, p_value_cell, records_to_csv, write_results
from medgap.inference.classify import predict_classes
from medgap.inference.predict import predict_case_subsets
from medgap.methods.base import ClassificationMethod, SegmentationMethod
from medgap.methods.shaspec import SharedSpecificEncoder
from medgap.metrics import SegmentationMetrics, aggregate, label_to_masks, paired_ttest

PRESENT, MISSING = "●", "○"


def all_subsets(modalities: int) -> list[tuple[bool, ...]]:
    """The 2^N − 1 non-empty subsets, as the paper orders them: by size, then in channel order."""
    subsets = []
    for size in range(1, modalities + 1):
        for chosen in itertools.combinations(range(modalities), size):
            subsets.append(tuple(index in chosen for index in range(modalities)))
    return subsets


def subset_symbol(subset: Sequence[bool]) -> str:
    """``(True, False, True, True)`` → ``"●○●●"``."""
    return "".join(PRESENT if present else MISSING for present in subset)


def evaluate_subsets(run_dir: str | os.PathLike, *, subsets: str | Sequence[Sequence[str]] = "all",
                     split: str | None = None, checkpoint: str = "best",
                     progress: Callable[[int, int], None] | None = None, feature_plot: bool = True) -> dict:
    """Score a run on every modality subset (``subsets="all"``), only on what each case has (``"available"``), or
    on the given subsets (lists of channel names, e.g. ``[["FLAIR", "T1", "T2"]]`` for a dedicated model).

    Writes ``subsets.md/.csv/.json`` and ``subsets_per_case.csv`` in the run folder and, for methods with
    shared/specific features (ShaSpec), ``plots/features_tsne.png``.

    Returns:
        ``{"table", "aggregated", "records", "paths", "task", "split", "checkpoint", "seed", "name"}``.
    """
    run_dir = Path(run_dir)
    config, data, method = load_run(run_dir, split, checkpoint)
    split = split or config.evaluation.split
    spec = data.spec
    if not isinstance(method, (ClassificationMethod, SegmentationMethod)):
        raise MedgapError(f"{run_dir}: method {config.method.name} is a {method.kind} method; evaluate the run that "
                          "reuses its weights")
    cases = data.split_cases(split)
    if not cases:
        raise RunFolderError(f"{run_dir}: the {split} split is empty")
    modalities = spec.num_channels
    if isinstance(subsets, str):
        chosen = all_subsets(modalities) if subsets == "all" else [(True,) * modalities]
        label = "as available" if subsets != "all" else None
    else:
        unknown = sorted({name for subset in subsets for name in subset} - set(spec.channel_names))
        if unknown or not all(subsets):
            raise MedgapError(f"{run_dir}: modality subsets {list(subsets)} must be non-empty lists of the dataset's "
                              f"channels {list(spec.channel_names)}")
        chosen = [tuple(name in subset for name in spec.channel_names) for subset in subsets]
        subsets, label = [list(subset) for subset in subsets], None
    total, done = len(chosen) * len(cases), 0
    evaluation = config.evaluation

    def has_subset(case, subset) -> bool:
        """A subset's row holds only the cases that have all its modalities (predicted from exactly the subset);
        ``available`` mode (one row, ``label``) takes whatever each case has."""
        return label is not None or bool(np.all(case.availability[np.asarray(subset)]))

    skipped: dict[str, int] = {}  # per subset: held-out cases lacking one of its modalities (not scored)
    if isinstance(method, ClassificationMethod):
        cases = [case for case in cases if case.case_id in data.class_labels]
        records = []
        for subset in chosen:
            symbol = label or subset_symbol(subset)
            scored = [case for case in cases if has_subset(case, subset)]
            skipped[symbol] = len(cases) - len(scored)
            predicted = predict_classes(method, scored, config, subset=subset)
            truth = [data.class_labels[case.case_id] for case in scored]
            records += [{"case": case.case_id, "subset": symbol, "structure": "class", "accuracy": float(p == t)}
                        for case, p, t in zip(scored, predicted, truth)]
            done += len(cases)
            if progress is not None:
                progress(done, total)
        metrics = ("accuracy",)
    else:
        scores = SegmentationMetrics(metrics=("dice", "hd95"), hd95_definition=evaluation.hd95_definition,
                                     empty_penalty=evaluation.empty_penalty)
        by_subset: dict[tuple, list[dict]] = {subset: [] for subset in chosen}  # records, listed subset by subset
        for subset in chosen:
            symbol = label or subset_symbol(subset)
            skipped[symbol] = sum(not has_subset(case, subset) for case in cases)
        for case in cases:  # every subset of a case in one sliding-window pass (each modality encoded once)
            wanted = [subset for subset in chosen
                      if has_subset(case, subset) and (case.availability & np.asarray(subset)).any()]
            if not wanted:
                continue
            predictions = predict_case_subsets(method, case, config, [np.asarray(s) for s in wanted])
            truth_map = index_to_label(np.asarray(case.label()), spec)
            for subset, prediction in zip(wanted, predictions):
                by_subset[subset] += scores.update(
                    case.case_id, label_to_masks(prediction, spec.regions, spec.labels),
                    label_to_masks(truth_map, spec.regions, spec.labels), spacing=case.spacing,
                    subset=label or subset_symbol(subset))
            if progress is not None:
                progress(done := done + len(chosen), total)
        records, metrics = [record for subset in chosen for record in by_subset[subset]], ("dice", "hd95")
    for record in records:
        record["seed"] = config.trainer.seed
    aggregated = aggregate(records, ("subset", "structure"), metrics)
    table = subset_table(aggregated, spec.channel_names, metrics)
    intro = [f"Run `{run_dir}` — method **{config.method.name}**, dataset **{spec.name}**, checkpoint "
             f"`{checkpoint}.pt`, split `{split}` ({len(cases)} cases), seed {config.trainer.seed}.", "",
             f"{PRESENT} present, {MISSING} missing (zeroed and marked missing at inference). "
             + ("Accuracy (%) over cases." if method.kind == "classification" else
                f"Mean over cases; Dice (%) and HD95 ({evaluation.hd95_definition}, "
                f"{distance_unit(spec.file_ending)}).")]
    if any(skipped.values()):
        intro += ["", "Not scored (the case lacks a modality of the subset): "
                  + ", ".join(f"{symbol} {count}" for symbol, count in skipped.items() if count) + " cases."]
    paths = write_results(run_dir, title=f"{config.name or config.method.name}: modality subsets", intro=intro,
                          table_markdown=table, aggregated=aggregated, records=records, stem="subsets",
                          extra={"task": method.kind, "split": split, "checkpoint": checkpoint,
                                 "seed": config.trainer.seed, "name": config.name, "subsets": subsets,
                                 "skipped_cases": skipped,
                                 "channel_names": list(spec.channel_names)})
    if feature_plot and isinstance(getattr(method, "encoder", None), SharedSpecificEncoder):
        from medgap.evaluation.features import plot_shared_specific

        paths["features"] = plot_shared_specific(method, cases, config, run_dir / "plots" / "features_tsne.png")
    return {"table": table, "aggregated": aggregated, "records": records, "task": method.kind, "split": split,
            "checkpoint": checkpoint, "seed": config.trainer.seed, "name": config.name or config.method.name,
            "channel_names": list(spec.channel_names), "paths": {k: str(v) for k, v in paths.items()}}


def _structures(aggregated: list[dict]) -> list[str]:
    return list(dict.fromkeys(row["structure"] for row in aggregated))


def _subsets(aggregated: list[dict]) -> list[str]:
    return list(dict.fromkeys(row["subset"] for row in aggregated))


def _modality_cells(symbol: str, modalities: int) -> list[str]:
    return list(symbol) if len(symbol) == modalities else [symbol] + [""] * (modalities - 1)


def subset_table(aggregated: list[dict], channel_names: Sequence[str], metrics: Sequence[str]) -> str:
    """Paper Table 1: one row per subset (modalities ●/○), metric per structure (+ their mean), average row."""
    structures, subsets = _structures(aggregated), _subsets(aggregated)
    lookup = {(row["subset"], row["structure"]): row for row in aggregated}
    header = list(channel_names)
    for metric in metrics:
        name = {"dice": "Dice", "hd95": "HD95", "accuracy": "Accuracy (%)"}[metric]
        if metric == "accuracy":
            header.append(name)
        else:
            header += [f"{name} {s}" for s in structures] + ([f"{name} mean"] if len(structures) > 1 else [])
    rows, columns = [], []
    for symbol in subsets:
        cells, values = _modality_cells(symbol, len(channel_names)), []
        for metric in metrics:
            scale = 1.0 if metric == "hd95" else 100.0
            per = [lookup[(symbol, s)][metric] * scale if (symbol, s) in lookup else math.nan for s in structures]
            if len(structures) > 1 and metric != "accuracy":
                per.append(_nanmean(per))
            values += per
        columns.append(values)
        rows.append(cells + [_fmt(v) for v in values])
    if len(subsets) > 1:
        means = [_nanmean(column) for column in zip(*columns)]
        rows.append(["**Average**"] + [""] * (len(channel_names) - 1) + [_fmt(v) for v in means])
    return markdown_table(header, rows)


def _nanmean(values) -> float:
    """Mean of the non-NaN values; NaN (without numpy's warning) when there are none."""
    kept = [float(v) for v in values if not math.isnan(float(v))]
    return sum(kept) / len(kept) if kept else math.nan


def _fmt(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


# ----------------------------------------------------------------------------------------------- comparison
def load_or_evaluate(run_dir: str | os.PathLike, *, subsets: str = "all", split: str | None = None,
                     checkpoint: str = "best", reuse: bool = True) -> dict:
    """The run's ``subsets.json`` if it matches (subsets, split, checkpoint), else a fresh :func:`evaluate_subsets`."""
    path = Path(run_dir) / "subsets.json"
    if reuse and path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        wanted_split = split or load_run_config(run_dir).evaluation.split
        if (saved.get("subsets"), saved.get("split"), saved.get("checkpoint")) == (subsets, wanted_split, checkpoint):
            return {"records": saved["per_case"], "task": saved["task"], "split": saved["split"],
                    "seed": saved["seed"], "name": saved.get("name") or Path(run_dir).name,
                    "channel_names": saved["channel_names"], "checkpoint": checkpoint}
    return evaluate_subsets(run_dir, subsets=subsets, split=split, checkpoint=checkpoint)


def per_case_scores(records: list[dict], metric: str) -> dict[str, dict[tuple, float]]:
    """``{subset: {(seed, case): score}}``; for segmentation the score is the mean over structures (NaN-aware)."""
    grouped: dict[str, dict[tuple, list[float]]] = {}
    for record in records:
        key = (record.get("seed", 0), record["case"])
        grouped.setdefault(record["subset"], {}).setdefault(key, []).append(float(record[metric]))
    return {subset: {key: _nanmean(values) for key, values in cases.items()} for subset, cases in grouped.items()}


def compare_runs(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, subsets: str = "all",
                 split: str | None = None, checkpoint: str = "best", labels: Sequence[str] | None = None,
                 reuse: bool = True) -> dict:
    """Side-by-side subset table of several runs with a paired t-test per subset against the first group.

    Runs are grouped by ``labels`` (default: each run's config name), so several seeds of one method pool into one
    column group (mean over seeds and cases). Writes ``compare.md``, ``compare.csv`` and ``compare.json`` in
    ``out_dir``.
    """
    if len(run_dirs) < 2:
        raise MedgapError("compare: give at least two run folders")
    results = [load_or_evaluate(run, subsets=subsets, split=split, checkpoint=checkpoint, reuse=reuse)
               for run in run_dirs]
    labels = list(labels) if labels else [result["name"] for result in results]
    if len(labels) != len(results):
        raise MedgapError(f"compare: {len(labels)} labels for {len(results)} runs")
    tasks, channels = {r["task"] for r in results}, {tuple(r["channel_names"]) for r in results}
    if len(tasks) > 1 or len(channels) > 1:
        raise MedgapError("compare: runs must share the task and the dataset's modalities")
    task, channel_names = tasks.pop(), list(channels.pop())
    metric = "accuracy" if task == "classification" else "dice"
    groups: dict[str, list[dict]] = {}
    seeds: dict[str, list[int]] = {}
    for label, result in zip(labels, results):
        groups.setdefault(label, []).extend(result["records"])
        seeds.setdefault(label, []).append(result["seed"])
    names = list(groups)
    if len(names) < 2:
        raise MedgapError("compare: all runs have the same name; pass labels to tell the methods apart")
    aggregated = {name: aggregate(records, ("subset", "structure"), (metric,)) for name, records in groups.items()}
    per_case = {name: per_case_scores(records, metric) for name, records in groups.items()}
    structures = _structures(aggregated[names[0]])
    subset_order = _subsets(aggregated[names[0]])
    header = list(channel_names)
    for name in names:
        header += ([f"{name} {s}" for s in structures] + [f"{name} mean"]) if len(structures) > 1 else [name]
    header += [f"p ({name} vs {names[0]})" for name in names[1:]]
    rows, csv_rows, numbers = [], [], []
    for symbol in subset_order:
        row, values = _modality_cells(symbol, len(channel_names)), []
        csv_row: dict = {"subset": symbol}
        for name in names:
            lookup = {r["structure"]: r[metric] for r in aggregated[name] if r["subset"] == symbol}
            per = [lookup.get(s, math.nan) * 100 for s in structures]
            if len(structures) > 1:
                per.append(_nanmean(per))
            values += per
            csv_row.update({f"{name}:{s}": v for s, v in zip([*structures, "mean"], per)})
        tests = {}
        for name in names[1:]:
            a, b = per_case[name].get(symbol, {}), per_case[names[0]].get(symbol, {})
            common = sorted(set(a) & set(b))
            tests[name] = paired_ttest([a[k] for k in common], [b[k] for k in common]) if common else None
            csv_row[f"p:{name}"] = tests[name]["p"] if tests[name] else math.nan
            csv_row[f"mean_diff:{name}"] = tests[name]["mean_diff"] * 100 if tests[name] else math.nan
        numbers.append(values)
        rows.append(row + [_fmt(v) for v in values] + [p_value_cell(tests[name]) for name in names[1:]])
        csv_rows.append(csv_row)
    means = [_nanmean(column) for column in zip(*numbers)]
    rows.append(["**Average**"] + [""] * (len(channel_names) - 1) + [_fmt(v) for v in means] + [""] * (len(names) - 1))
    table = markdown_table(header, rows)
    out_dir = Path(out_dir)
    intro = (f"Runs: {', '.join(f'{name} (seeds {seeds[name]})' for name in names)}; split `{results[0]['split']}`, "
             f"checkpoint `{checkpoint}`.\n\n{'Accuracy' if task == 'classification' else 'Dice'} (%), mean over "
             f"seeds and cases; {PRESENT} present, {MISSING} missing. p: two-sided paired t-test of per-case "
             f"{'accuracy' if task == 'classification' else 'mean Dice over structures'} against "
             f"{names[0]}, cases paired by (seed, case id); * p < 0.05.\n")
    write_text(out_dir / "compare.md", f"# Modality-subset comparison\n\n{intro}\n{table}")
    write_text(out_dir / "compare.csv", records_to_csv(csv_rows))
    write_json(out_dir / "compare.json", {"runs": [str(r) for r in run_dirs], "labels": labels, "rows": csv_rows,
                                          "average": dict(zip(header[len(channel_names):], means))})
    return {"table": table, "rows": csv_rows, "path": str(out_dir / "compare.md")}
