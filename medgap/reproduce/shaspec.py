"""ShaSpec's Tables 1, 2 and the AV-MNIST table in miniature: ShaSpec vs the zero-filling baseline on the
synthetic ``brain-tumour`` set at difficulty ``realistic`` (all 15 modality subsets, non-dedicated and dedicated
training) and on the ``digits-av`` set (SMIL protocol: only a fraction of the training cases keep the spectrogram,
both modalities at test), plus the t-SNE of shared vs specific features.

Segmentation is 2-D slice-wise (3-D ShaSpec is ~3 s per step on a CPU): ``configs/<method>_brain_tumour.yaml``
with 2-D patches, smaller encoders and AdamW at LR 0.01 (the paper's SGD LR). At the configs' LR 0.003 both
methods spend the first 300+ steps predicting no enhancing tumour at all (ET is ~0.1 % of the voxels), which is
what made ShaSpec's ET Dice a constant 16.7 in an earlier 300-step run; at 0.01 both learn ET within ~200 steps.
Models are selected on the validation split (all modalities) and scored on the test split.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from medgap.data.synthetic import generate
from medgap.data.synthetic.brain_tumour import CHANNELS as BRAIN_CHANNELS
from medgap.evaluation.references import Reference, SanityCheck, classical_reference, network_reference
from medgap.evaluation.reports import markdown_table, p_value_cell
from medgap.evaluation.subsets import all_subsets, subset_symbol
from medgap.metrics.stats import Comparison, case_scores, compare
from medgap.reproduce.runner import Claim, Context, Report, Run

METHODS = ("shaspec", "zerofill")
LABELS = {"shaspec": "ShaSpec", "zerofill": "zero-filling"}
STRUCTURES = ("ET", "TC", "WT")  # the paper's column order
RATIOS = (0.1, 0.2, 1.0)  # share of training cases that keep the spectrogram (SMIL protocol)

BUDGETS = {
    "tiny": {"seeds": 1,
             "segmentation": {"cases": 10, "spacing": 8.0, "patch": [24, 24], "features": [4, 8, 16], "batch": 2,
                              "steps": 4},
             "dedicated": [["FLAIR", "T1", "T2"]], "dedicated_seeds": 1,
             "classification": {"cases": 150, "features": [4, 8, 16], "steps": 4, "seeds": 1}},
    # ≥ 3 seeds everywhere, ≥ 20 test cases of the 3-D volumes (20 % of 100), the whole digits-av test split (359)
    # (issue 17: a minimum detectable difference of a few points)
    "small": {"seeds": 3,
              "segmentation": {"cases": 100, "spacing": 4.0, "patch": [48, 48], "features": [8, 16, 32, 64],
                               "batch": 8, "steps": 400},
              "dedicated": [["FLAIR", "T1", "T2"]], "dedicated_seeds": 3,
              "classification": {"cases": None, "features": [16, 32, 48], "steps": 300, "seeds": 3}},
    "medium": {"seeds": 3,
               "segmentation": {"cases": 60, "spacing": 3.0, "patch": [64, 64], "features": [16, 32, 64, 128],
                                "batch": 16, "steps": 3000},
               "dedicated": [["FLAIR", "T1", "T2"], ["T1", "T1c"]], "dedicated_seeds": 3,
               "classification": {"cases": None, "features": [16, 32, 48], "steps": 3000, "seeds": 3}},
}

PAPER_NUMBERS = """\
ShaSpec as published (Wang et al., CVPR 2023) — on BraTS 2018 and AV-MNIST, which we do not have here. We quote
only the numbers we are sure of; for the Dice and accuracy cells see the paper's tables.

- **Table 1** (BraTS 2018, non-dedicated: one model for all missing-modality cases): for each of the 15 subsets
  of FLAIR/T1/T1c/T2 (●/○), Dice (%) of enhancing tumour, tumour core and whole tumour for HeMIS, U-HVED,
  RobustSeg, RFNet, mmFormer, ShaSpec and ShaSpec* (with prediction smoothing), plus the average row. The paper
  reports ShaSpec ahead of these methods on average; for every method ET Dice drops sharply on the subsets
  without T1c (the claims checked below).
- **Table 2** (BraTS 2018, dedicated: one model per missing set): ShaSpec trained per subset against methods
  designed for dedicated training, on the same 15 subsets.
- **AV-MNIST** (SMIL protocol: only a small fraction of the training samples keep the audio; image and audio at
  test): accuracy at several audio ratios; the paper reports ShaSpec ahead of the baselines (SMIL among them).
- **Cost on AV-MNIST** (one RTX 3090, batch 4, mean of 30 iterations): ShaSpec 0.0257 s per training iteration,
  0.0016 s per test iteration, 1421 MiB constant, 0.22 M parameters; SMIL 0.1309 s / 0.0019 s, memory growing
  to OOM, 0.33 M parameters (ours: `benchmarks/bench_train_step.py`).
- Loss weights α = 0.1 (DAO), β = 0.02 (DCO) are the paper's best in its sensitivity study (α = β = 1 hurts);
  the paper's t-SNE shows shared features of different modalities mixed and specific features separated.
"""


# ----------------------------------------------------------------------------------------------- data and runs
# The brain-tumour set at the difficulty tuned against BraTS (docs/datasets.md), in a folder of its own: a
# folder of an earlier `easy` reproduction is never mistaken for it.
BRAIN_DIFFICULTY = "realistic"
BRAIN_FOLDER = f"brain_tumour_{BRAIN_DIFFICULTY}"


def datasets(budget: dict, root: Path, create: bool = True) -> dict[str, Path]:
    if not create:
        return {"brain_tumour": root / BRAIN_FOLDER, "digits_av": root / "digits_av"}
    seg, cls = budget["segmentation"], budget["classification"]
    return {"brain_tumour": generate("brain-tumour", root / BRAIN_FOLDER, cases=seg["cases"], seed=0,
                                     test_cases=0, exist_ok=True, spacing=seg["spacing"],
                                     difficulty=BRAIN_DIFFICULTY),
            "digits_av": generate("digits-av", root / "digits_av", cases=cls["cases"], seed=0, exist_ok=True)}


def _segmentation_overrides(budget: dict, seed: int, data_dir: Path) -> dict:
    sizes = budget["segmentation"]
    steps = sizes["steps"]
    return {
        "data.dataset_dir": str(data_dir), "data.patch_size": sizes["patch"], "model.features": sizes["features"],
        "data.labelled_batch_size": sizes["batch"], "data.val_fraction": 0.1, "data.test_fraction": 0.2,
        "data.num_workers": 0, "data.foreground_probability": 0.5, "data.augmentation.flip_axes": [0, 1],
        "optim.lr": 0.01, "trainer.max_steps": steps, "trainer.val_every": max(steps // 5, 1),
        "trainer.checkpoint_every": steps, "trainer.log_every": max(steps // 20, 1), "trainer.seed": seed,
        "trainer.progress": False, "trainer.val_max_cases": 3, "inference.patch_size": sizes["patch"],
        "inference.sw_batch_size": 16,
    }


def _classification_overrides(budget: dict, ratio: float, seed: int, data_dir: Path) -> dict:
    sizes = budget["classification"]
    steps = sizes["steps"]
    return {"data.dataset_dir": str(data_dir), "method.sparse_keep_ratio": ratio, "model.features": sizes["features"],
            "trainer.max_steps": steps, "trainer.val_every": max(steps // 4, 1), "trainer.checkpoint_every": steps,
            "trainer.log_every": max(steps // 20, 1), "trainer.seed": seed, "trainer.progress": False}


def _evaluate(run_dir: Path, subsets="all", feature_plot: bool = False) -> dict:
    """Per-case scores on the test split for each modality subset (+ the t-SNE silhouettes of a ShaSpec run)."""
    from medgap.evaluation.subsets import evaluate_subsets

    result = evaluate_subsets(run_dir, subsets=subsets, feature_plot=feature_plot)
    metric = "accuracy" if result["task"] == "classification" else "dice"
    records = [{"subset": r["subset"], "case": r["case"], "structure": r["structure"], "score": float(r[metric])}
               for r in result["records"]]
    tsne = Path(result["paths"].get("features", "")) if "features" in result["paths"] else None
    silhouettes = json.loads(tsne.with_suffix(".json").read_text()) if tsne else None
    return {"records": records, "seed": result["seed"], "channel_names": result["channel_names"],
            "tsne": str(tsne) if tsne else None, "silhouettes": silhouettes}


def _name(subset: list[str]) -> str:
    return "-".join(subset)


def runs(budget: dict, seeds: list[int], data: dict[str, Path], root: Path) -> list[Run]:
    planned = []
    for seed in seeds:  # Table 1: non-dedicated, every subset
        for method in METHODS:
            planned.append(Run(root / f"bt_{method}_seed{seed}", f"{method}_brain_tumour.yaml",
                               _segmentation_overrides(budget, seed, data["brain_tumour"]),
                               functools.partial(_evaluate, feature_plot=method == "shaspec" and seed == seeds[0]),
                               {"table": "non-dedicated", "method": method, "seed": seed}))
    cls_seeds = seeds[: budget["classification"]["seeds"]]
    for ratio in RATIOS:  # AV-MNIST table (SMIL protocol)
        for seed in cls_seeds:
            for method in METHODS:
                plot = method == "shaspec" and ratio == RATIOS[-1] and seed == seeds[0]
                planned.append(Run(root / f"digits_{method}_r{ratio}_seed{seed}", f"{method}_digits_av.yaml",
                                   _classification_overrides(budget, ratio, seed, data["digits_av"]),
                                   functools.partial(_evaluate, feature_plot=plot),
                                   {"table": "classification", "ratio": ratio, "method": method, "seed": seed}))
    for seed in seeds:  # the sanity reference: the baseline network trained and tested with every modality
        overrides = {**_segmentation_overrides(budget, seed, data["brain_tumour"]), "method.modality_dropout": "none"}
        planned.append(Run(root / f"bt_all_modalities_seed{seed}", "zerofill_brain_tumour.yaml", overrides,
                           functools.partial(_evaluate, subsets=[list(BRAIN_CHANNELS)]),
                           {"table": "upper bound", "method": "zerofill", "seed": seed}))
    for keep in budget["dedicated"]:  # Table 2: one model per missing set
        for seed in seeds[: budget["dedicated_seeds"]]:
            for method in METHODS:
                overrides = {**_segmentation_overrides(budget, seed, data["brain_tumour"]),
                             "method.modality_dropout": "fixed", "method.keep_modalities": keep}
                planned.append(Run(root / f"bt_dedicated_{_name(keep)}_{method}_seed{seed}",
                                   f"{method}_brain_tumour.yaml", overrides,
                                   functools.partial(_evaluate, subsets=[keep]),
                                   {"table": "dedicated", "keep": _name(keep), "method": method, "seed": seed}))
    return planned


# ----------------------------------------------------------------------------------------------- tabulation
def _scores(context: Context, **tags) -> dict[str, dict[tuple, dict[str, float]]]:
    """``{subset symbol: {(seed, case): {structure: score}}}`` pooled over the runs with ``tags``."""
    pooled: dict[str, dict[tuple, dict[str, float]]] = {}
    for run in context.select(**tags):
        result = context.results[run.run_dir]
        for record in result["records"]:
            key = (result["seed"], record["case"])
            pooled.setdefault(record["subset"], {}).setdefault(key, {})[record["structure"]] = record["score"]
    return pooled


def _nanmean(values) -> float:
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(kept)) if kept else math.nan


def _structure_mean(cases: dict[tuple, dict[str, float]], structure: str) -> float:
    """Mean over (seed, case) of one structure's score, in %."""
    return 100 * _nanmean(scores.get(structure, math.nan) for scores in cases.values())


def _case_means(cases: dict[tuple, dict[str, float]]) -> dict[tuple, float]:
    """Per (seed, case): the mean over structures (the quantity the paired t-test compares)."""
    return {key: _nanmean(scores.values()) for key, scores in cases.items()}


def _per_case(scores: dict[str, dict[tuple, dict[str, float]]], symbols, structures=None) -> dict[tuple, float]:
    """(seed, case) → the case's mean over the given subsets and structures (NaN skipped): one pair per case,
    however many subsets score it."""
    return case_scores({(*key, symbol, structure): value for symbol in symbols
                        for key, per in scores.get(symbol, {}).items() for structure, value in per.items()
                        if structures is None or structure in structures})


def _minus(a: dict[tuple, float], b: dict[tuple, float]) -> dict[tuple, float]:
    return {key: a[key] - b[key] for key in a.keys() & b.keys()}


def _test(a: dict[tuple, dict], b: dict[tuple, dict]) -> dict | None:
    """The table's p: :func:`~medgap.metrics.stats.compare` of per-case means over structures, ``a`` − ``b``, as a
    ``paired_ttest``-style dict (a case's difference averaged over the seeds that scored it)."""
    return _as_test(compare(_case_means(a), _case_means(b)))


def _as_test(comparison: Comparison) -> dict | None:
    test = comparison.as_ttest()
    return None if test is None else {**test, "comparison": comparison}


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _channels(context: Context) -> list[str]:
    """The brain-tumour set's modality names in channel order."""
    names = json.loads((context.data["brain_tumour"] / "dataset.json").read_text())["channel_names"]
    return [names[key] for key in sorted(names, key=int)]


def _non_dedicated(context: Context) -> tuple[str, dict]:
    """Table 1 layout: subsets ●/○, ET/TC/WT Dice per method, p per subset, the average row."""
    channels = list(_channels(context))
    scores = {method: _scores(context, table="non-dedicated", method=method) for method in METHODS}
    symbols = [subset_symbol(s) for s in all_subsets(len(channels))]
    header = channels + [f"{LABELS[m]} {s}" for m in METHODS for s in (*STRUCTURES, "mean")] + ["p"]
    rows, numbers = [], {}
    for symbol in symbols:
        values = []
        for method in METHODS:
            cases = scores[method].get(symbol, {})
            per = [_structure_mean(cases, s) for s in STRUCTURES]
            numbers[(method, symbol)] = dict(zip((*STRUCTURES, "mean"), [*per, _nanmean(per)]))
            values += [*per, _nanmean(per)]
        test = _test(scores["shaspec"].get(symbol, {}), scores["zerofill"].get(symbol, {}))
        numbers[("test", symbol)] = test
        rows.append(list(symbol) + [_fmt(v) for v in values] + [p_value_cell(test)])
    average = {m: {s: _nanmean(numbers[(m, sym)][s] for sym in symbols) for s in (*STRUCTURES, "mean")}
               for m in METHODS}
    # the average row's test: one pair per case, its mean over the 15 subsets and 3 regions (never 15 × 3 pairs)
    numbers["average"], numbers["test_average"] = average, _as_test(
        compare(_per_case(scores["shaspec"], symbols), _per_case(scores["zerofill"], symbols)))
    numbers["scores"] = scores
    rows.append(["**Average**"] + [""] * (len(channels) - 1)
                + [_fmt(average[m][s]) for m in METHODS for s in (*STRUCTURES, "mean")]
                + [p_value_cell(numbers["test_average"])])
    seeds = sorted({run.tags["seed"] for run in context.select(table="non-dedicated")})
    cases = len(next(iter(scores["shaspec"].values()), {}))
    text = (f"One model per method for all 15 subsets (each training step keeps k ~ U{{1..4}} random modalities per "
            f"sample). Dice (%) on the test split, mean over {cases} (seed, case) pairs (seeds {seeds}); "
            f"● present, ○ missing (zeroed and marked missing at inference). p: two-sided paired t-test of the "
            f"per-case mean Dice over ET/TC/WT, ShaSpec vs zero-filling (a case's difference averaged over the seeds "
            f"that scored it); the average row pairs each case's mean over all 15 subsets; * p < 0.05.\n\n")
    return text + markdown_table(header, rows), numbers


def _dedicated(context: Context, table1: dict) -> tuple[str, dict]:
    channels = list(_channels(context))
    keeps = list(dict.fromkeys(run.tags["keep"] for run in context.select(table="dedicated")))
    if not keeps:
        return "Not run at this budget.\n", {}
    header = channels + ["training"] + [f"{LABELS[m]} {s}" for m in METHODS for s in (*STRUCTURES, "mean")] + ["p"]
    rows, numbers = [], {}
    for keep in keeps:
        symbol = subset_symbol([name in keep.split("-") for name in channels])
        scores = {m: _scores(context, table="dedicated", keep=keep, method=m).get(symbol, {}) for m in METHODS}
        values = []
        for method in METHODS:
            per = [_structure_mean(scores[method], s) for s in STRUCTURES]
            numbers[(method, keep)] = _nanmean(per)
            values += [*per, _nanmean(per)]
        test = _test(scores["shaspec"], scores["zerofill"])
        numbers[("test", keep)] = test
        rows.append(list(symbol) + ["dedicated"] + [_fmt(v) for v in values] + [p_value_cell(test)])
        reference = [table1[(m, symbol)][s] for m in METHODS for s in (*STRUCTURES, "mean")]
        rows.append(list(symbol) + ["non-dedicated (Table 1 row)"] + [_fmt(v) for v in reference]
                    + [p_value_cell(table1[("test", symbol)])])
    text = ("One model per method trained with only the listed modalities (`method.modality_dropout: fixed`), "
            "scored on that subset; the non-dedicated models' row of the table above is repeated for comparison. "
            "Dice (%), test split, mean over (seed, case); p: paired t-test of per-case mean Dice, ShaSpec vs "
            "zero-filling. A dedicated model without T1c can still place much of the enhancing tumour here: the "
            "synthetic enhancing rim is the outer shell of the tumour core, so the core's shape on the other "
            "sequences gives it away (in BraTS it does not).\n\n")
    return text + markdown_table(header, rows), numbers


def _classification(context: Context) -> tuple[str, dict]:
    runs = context.select(table="classification")
    channels = context.results[runs[0].run_dir]["channel_names"]
    symbols = [subset_symbol(s) for s in all_subsets(len(channels))][::-1]  # both modalities first
    header = ["train cases with spectrogram", f"subset ({', '.join(channels)})",
              *[LABELS[m] for m in METHODS], "difference", "p"]
    rows, numbers = [], {}
    for ratio in RATIOS:
        scores = {m: _scores(context, table="classification", ratio=ratio, method=m) for m in METHODS}
        for symbol in symbols:
            accuracy = {m: _structure_mean(scores[m].get(symbol, {}), "class") for m in METHODS}
            test = _test(scores["shaspec"].get(symbol, {}), scores["zerofill"].get(symbol, {}))
            numbers[(ratio, symbol)] = {**accuracy, "test": test,
                                        "cases": {m: _case_means(scores[m].get(symbol, {})) for m in METHODS}}
            protocol = symbol == subset_symbol([True] * len(channels))
            cells = [f"**{_fmt(accuracy[m])}**" if protocol else _fmt(accuracy[m]) for m in METHODS]
            rows.append([f"{round(ratio * 100)} %", " ".join(symbol) + (" (protocol)" if protocol else ""), *cells,
                         f"{accuracy['shaspec'] - accuracy['zerofill']:+.2f}", p_value_cell(test)])
    seeds = sorted({run.tags["seed"] for run in runs})
    cases = len(next(iter(_scores(context, table="classification", ratio=RATIOS[0], method="shaspec").values())))
    text = (f"Test accuracy (%) over {cases} (seed, case) pairs (seeds {seeds}). Only the given share of the "
            "training cases keeps the spectrogram (a fixed draw per case); validation and test cases keep both. "
            "The SMIL/AV-MNIST protocol is the row with both modalities (bold); the single-modality rows are "
            "extra. p: paired t-test of per-case correctness, ShaSpec vs zero-filling; * p < 0.05.\n\n")
    return text + markdown_table(header, rows), numbers


# ----------------------------------------------------------------------------------------------- plots
def _plot_subsets(table1: dict, channels: list[str], path: Path) -> Path:
    from medgap.evaluation.plots import _save, plt

    symbols = [subset_symbol(s) for s in all_subsets(len(channels))]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(symbols))
    for offset, method in zip((-0.2, 0.2), METHODS):
        axes[0].bar(x + offset, [table1[(method, s)]["mean"] for s in symbols], 0.4, label=LABELS[method])
    axes[0].set_xticks(x, ["\n".join(s) for s in symbols], fontsize=7)  # first channel on top
    axes[0].set_ylabel("mean Dice over ET/TC/WT (%)")
    axes[0].set_title(f"per subset ({'/'.join(channels)} top to bottom: ● present, ○ missing)", fontsize=10)
    axes[0].legend(fontsize=8)
    for offset, method in zip((-0.2, 0.2), METHODS):
        axes[1].bar(np.arange(3) + offset, [table1["average"][method][s] for s in STRUCTURES], 0.4,
                    label=LABELS[method])
    axes[1].set_xticks(np.arange(3), STRUCTURES)
    axes[1].set_title("average over the 15 subsets (Dice %)", fontsize=10)
    figure.suptitle("ShaSpec vs zero-filling, synthetic brain tumour (non-dedicated)")
    return _save(figure, path)


def _plot_ratios(numbers: dict, channels: list[str], path: Path) -> Path:
    from medgap.evaluation.plots import _save, plt

    both = subset_symbol([True] * len(channels))
    figure, axis = plt.subplots(figsize=(5.5, 4))
    for method in METHODS:
        axis.plot([r * 100 for r in RATIOS], [numbers[(r, both)][method] for r in RATIOS], "o-", label=LABELS[method])
    axis.set_xscale("log")
    axis.minorticks_off()
    axis.set_xticks([r * 100 for r in RATIOS], [f"{round(r * 100)} %" for r in RATIOS])
    axis.set_xlabel("training cases that keep the spectrogram")
    axis.set_ylabel("test accuracy, both modalities (%)")
    axis.set_title("digits-av, SMIL protocol", fontsize=10)
    axis.legend(fontsize=8)
    return _save(figure, path)


# ----------------------------------------------------------------------------------------------- report
TABLE_TITLES = ("### Table 1: non-dedicated training, all 15 modality subsets",
                "### Table 2: dedicated training (one model per missing set)",
                "### AV-MNIST-style classification (digits-av, SMIL protocol)",
                "### Shared vs specific features (t-SNE)")


def report(context: Context) -> Report:
    plots = context.plots_dir
    plots.mkdir(parents=True, exist_ok=True)
    channels = list(_channels(context))
    sections, claims = [], []

    table1_text, table1 = _non_dedicated(context)
    _plot_subsets(table1, channels, plots / "subsets.png")
    sections.append(f"{TABLE_TITLES[0]}\n\n{table1_text}\n![ShaSpec vs zero-filling per subset]"
                    f"({context.paper}/subsets.png)\n")
    table2_text, table2 = _dedicated(context, table1)
    sections.append(f"{TABLE_TITLES[1]}\n\n{table2_text}")
    table3_text, table3 = _classification(context)
    cls_channels = context.results[context.select(table="classification")[0].run_dir]["channel_names"]
    _plot_ratios(table3, cls_channels, plots / "ratios.png")
    sections.append(f"{TABLE_TITLES[2]}\n\n{table3_text}\n![accuracy vs spectrogram ratio]"
                    f"({context.paper}/ratios.png)\n")
    sections.append(_features_section(context))

    logistic = _logistic_references(context, cls_channels)
    claims += _segmentation_claims(context, table1, table2, channels)
    claims += _classification_claims(context, table3, cls_channels, logistic)
    claims.append(_feature_claim(context))
    return Report(sections=sections, paper_numbers=PAPER_NUMBERS, claims=claims, setup=_setup(context),
                  sanity=_sanity(context, table1, table3, cls_channels, logistic),
                  deviations=("shaspec", "zero_filling", "medgap.reproduce.shaspec"))


def _features_section(context: Context) -> str:
    lines = [TABLE_TITLES[3], "",
             "Pooled bottleneck features of the test cases, one point per (case, present modality), embedded by "
             "t-SNE and coloured by modality (the paper's visualisation). Silhouette by modality in the feature "
             "space: near 0 or below = modalities mixed (what DAO asks of the shared encoder), near 1 = separated "
             "(what DCO asks of the specific encoders).", ""]
    rows, images = [], []
    for run in context.runs:
        result = context.results[run.run_dir]
        if not result or not result.get("tsne"):
            continue
        data = "brain tumour" if run.tags["table"] == "non-dedicated" else "digits-av"
        scores = result["silhouettes"]
        rows.append([data, f"`{run.run_dir.name}`", scores["points"], f"{scores['silhouette_shared']:.2f}",
                     f"{scores['silhouette_specific']:.2f}"])
        target = context.plots_dir / f"tsne_{run.run_dir.name}.png"
        if Path(result["tsne"]).is_file():
            shutil.copyfile(result["tsne"], target)
        if target.is_file():
            images.append(f"![t-SNE, {data}]({context.paper}/{target.name})")
    table = markdown_table(["data", "run", "points", "silhouette, shared r", "silhouette, specific s"], rows)
    return "\n".join(lines + [table] + images) + "\n"


def _silhouettes(context: Context) -> list[tuple[str, dict]]:
    return [(run.run_dir.name, context.results[run.run_dir]["silhouettes"]) for run in context.runs
            if context.results[run.run_dir] and context.results[run.run_dir].get("silhouettes")]


def _feature_claim(context: Context) -> Claim:
    found = _silhouettes(context)
    holds = bool(found) and all(s["silhouette_shared"] < s["silhouette_specific"] for _, s in found)
    evidence = "; ".join(f"{name}: shared {s['silhouette_shared']:.2f}, specific {s['silhouette_specific']:.2f}"
                         for name, s in found)
    return Claim("Shared features of different modalities mix, specific features separate by modality (t-SNE)",
                 holds if found else None, evidence or "no ShaSpec feature plot",
                 "" if holds else _why_not(context))


def _claim(context: Context, text: str, evidence: str, pairs: list, why: str = "", unit: str = "Dice points") -> Claim:
    """A claim judged by its paired comparisons; ``why`` (or the budget's reason) explains a verdict other than
    reproduced."""
    claim = Claim(text, None, evidence, "", pairs, unit=unit)
    claim.explanation = "" if claim.verdict == "reproduced" else (
        why if why and context.budget != "tiny" else _why_not(context))
    return claim


def _segmentation_claims(context: Context, table1: dict, table2: dict, channels: list[str]) -> list[Claim]:
    claims = []
    symbols = [subset_symbol(s) for s in all_subsets(len(channels))]
    scores, average = table1["scores"], table1["average"]
    sha, zero = average["shaspec"]["mean"], average["zerofill"]["mean"]
    per = ", ".join(f"{s} {average['shaspec'][s]:.1f} vs {average['zerofill'][s]:.1f}" for s in STRUCTURES)
    wins = sum(table1[("shaspec", s)]["mean"] >= table1[("zerofill", s)]["mean"] for s in symbols)
    overall = table1["test_average"]["comparison"] if table1["test_average"] else \
        compare(_per_case(scores["shaspec"], symbols), _per_case(scores["zerofill"], symbols))
    claims.append(_claim(context, "ShaSpec ≥ the baseline on average over the 15 subsets (Table 1)",
                         f"mean Dice {sha:.2f} vs {zero:.2f} ({per}); ShaSpec ahead on {wins} of 15 subsets",
                         [("ShaSpec − zero-filling", overall)]))

    # The most informative modality: the one whose absence costs the baseline the most mean Dice.
    def without(method, index, present):
        return _nanmean(table1[(method, s)]["mean"] for s in symbols if (s[index] == "●") == present)

    costs = {name: without("zerofill", i, True) - without("zerofill", i, False) for i, name in enumerate(channels)}
    key = max(costs, key=costs.get)
    index = channels.index(key)
    missing = [s for s in symbols if s[index] == "○"]
    present = [s for s in symbols if s[index] == "●"]
    gain_missing = _minus(_per_case(scores["shaspec"], missing), _per_case(scores["zerofill"], missing))
    gain_present = _minus(_per_case(scores["shaspec"], present), _per_case(scores["zerofill"], present))
    gains = ", ".join(f"{s} {average['shaspec'][s] - average['zerofill'][s]:+.1f}" for s in STRUCTURES)
    claims.append(_claim(
        context, "ShaSpec is clearly better on the subsets missing the most informative modality",
        f"most informative here: {key} (baseline loses {costs[key]:.1f} Dice points without it; "
        + ", ".join(f"{n} {c:.1f}" for n, c in costs.items() if n != key)
        + f"); ShaSpec − baseline: {without('shaspec', index, False) - without('zerofill', index, False):+.2f} on "
          f"the {len(missing)} subsets without {key}, "
          f"{without('shaspec', index, True) - without('zerofill', index, True):+.2f} on the {len(present)} with it",
        [(f"ShaSpec − baseline without {key}", compare(_per_case(scores["shaspec"], missing),
                                                       _per_case(scores["zerofill"], missing))),
         (f"gain without {key} − gain with it", compare(gain_missing, {k: v for k, v in gain_present.items()}))],
        f"ShaSpec's gain is spread over all subsets rather than concentrated where {key} is missing (average gain "
        f"per region: {gains}; per subset: Table 1)"))

    t1c = channels.index("T1c") if "T1c" in channels else 2
    with_t1c = [s for s in symbols if s[t1c] == "●"]
    without_t1c = [s for s in symbols if s[t1c] == "○"]
    parts, pairs = [], []
    for method in METHODS:
        et_with = _per_case(scores[method], with_t1c, ("ET",))
        et_without = _per_case(scores[method], without_t1c, ("ET",))
        parts.append(f"{LABELS[method]} ET {_nanmean(table1[(method, s)]['ET'] for s in with_t1c):.1f} with T1c → "
                     f"{_nanmean(table1[(method, s)]['ET'] for s in without_t1c):.1f} without")
        pairs.append((f"{LABELS[method]}: ET without − ½ ET with",
                      compare(et_without, {k: 0.5 * v for k, v in et_with.items()}, direction=-1)))
    claims.append(_claim(
        context, "ET collapses without T1c for every method (here: mean ET Dice over the subsets without T1c below "
        "half of that with it)", "; ".join(parts), pairs,
        "the synthetic enhancing rim is the outer shell of the tumour core, so its position can be guessed from "
        "the core's shape on the other sequences; in BraTS it cannot"))

    if table2:
        keeps = sorted({k[1] for k in table2 if isinstance(k, tuple) and k[0] == "shaspec"}, key=str)
        claims.append(_claim(
            context, "Dedicated training: ShaSpec ≥ the baseline on the same missing set (Table 2)",
            "; ".join(f"{k}: {table2[('shaspec', k)]:.2f} vs {table2[('zerofill', k)]:.2f} mean Dice" for k in keeps),
            [(k, table2[("test", k)]["comparison"]) for k in keeps if table2[("test", k)]]))
    return claims


def _classification_claims(context: Context, numbers: dict, channels: list[str],
                           logistic: dict[tuple[bool, ...], Reference]) -> list[Claim]:
    both = subset_symbol([True] * len(channels))
    spectrogram = subset_symbol([i != 0 for i in range(len(channels))])
    gains = {r: numbers[(r, both)]["shaspec"] - numbers[(r, both)]["zerofill"] for r in RATIOS}
    cases = {r: numbers[(r, both)]["cases"] for r in RATIOS}
    comparisons = {r: compare(cases[r]["shaspec"], cases[r]["zerofill"]) for r in RATIOS}
    evidence = "; ".join(f"{round(r * 100)} %: {numbers[(r, both)]['shaspec']:.1f} vs "
                         f"{numbers[(r, both)]['zerofill']:.1f}" for r in RATIOS)
    low = min(RATIOS)
    gain = {r: _minus(cases[r]["shaspec"], cases[r]["zerofill"]) for r in RATIOS}
    # Measured reasons, not guesses: how close both models are to the classical ceiling where the margin vanishes,
    # and how well each learned the rare modality (spectrogram alone) at each ratio.
    ceiling = logistic[tuple([True] * len(channels))].score
    why_every = "; ".join(
        f"at {round(r * 100)} % both models are within {ceiling - min(numbers[(r, both)][m] for m in METHODS):.1f} "
        f"points of the logistic regression on raw pixels ({ceiling:.1f} %), the task's ceiling here"
        for r in RATIOS if comparisons[r].verdict != "reproduced")
    learned = ", ".join(f"{round(r * 100)} % {numbers[(r, spectrogram)]['shaspec']:.1f} / "
                        f"{numbers[(r, spectrogram)]['zerofill']:.1f}" for r in RATIOS)
    why_low = (f"spectrogram-alone accuracy (ShaSpec / zero-filling): {learned}, vs "
               f"{logistic[tuple(i != 0 for i in range(len(channels)))].score:.1f} for logistic regression on all training "
               "cases: the margin follows how much of the rare spectrogram the models learn at each ratio")
    return [_claim(context, "Classification (SMIL protocol): ShaSpec > the baseline at every spectrogram ratio",
                   evidence, [(f"{round(r * 100)} %", comparisons[r]) for r in RATIOS], why_every,
                   unit="accuracy points"),
            _claim(context, "... and the margin is largest at the lowest ratio",
                   ", ".join(f"{round(r * 100)} %: {g:+.1f}" for r, g in gains.items()),
                   [(f"gain at {round(low * 100)} % − gain at {round(r * 100)} %", compare(gain[low], gain[r]))
                    for r in RATIOS if r != low], why_low, unit="accuracy points")]


def _logistic_references(context: Context, channels: list[str]) -> dict[tuple[bool, ...], Reference]:
    """Logistic regression on the raw pixels of digits-av (all channels, image, spectrogram), fitted on each seed's
    training split and scored on its test split; accuracy (%) averaged over seeds, keyed by the present channels."""
    runs = context.select(table="classification", method="shaspec", ratio=RATIOS[-1])
    references = {}
    for chosen in (None, [0], [1]):
        present = tuple(True for _ in channels) if chosen is None else tuple(i in chosen for i in range(len(channels)))
        scores, name = [], ""
        for run in runs:
            splits = json.loads((run.run_dir / "splits.json").read_text())
            result = classical_reference(context.data["digits_av"], splits["train"], splits["test"], channels=chosen)
            scores.append(result.score)
            name = result.name
        references[present] = Reference(f"{name}, all training cases", "classical", "accuracy (%)",
                                        float(np.mean(scores)))
    return references


def _sanity(context: Context, table1: dict, numbers: dict, channels: list[str],
            logistic: dict[tuple[bool, ...], Reference]) -> list[SanityCheck]:
    """Segmentation: a U-Net trained and tested with every modality (no dropping) at the same budget, the upper
    bound of the all-modality row. Classification: the logistic regressions of :func:`_logistic_references`
    against the network rows that see the same modalities."""
    seg_channels = _channels(context)
    full = subset_symbol([True] * len(seg_channels))
    upper = _per_case(_scores(context, table="upper bound"), [full])
    checks = [SanityCheck(network_reference("U-Net trained and tested with all four modalities (no dropping)",
                                            {f"{seed}/{case}": value for (seed, case), value in upper.items()},
                                            "mean Dice over ET/TC/WT (%)", scale=100),
                          {f"{LABELS[m]} (non-dedicated), subset {' '.join(full)}": table1[(m, full)]["mean"]
                           for m in METHODS})]
    for present, reference in logistic.items():
        symbol = subset_symbol(list(present))
        checks.append(SanityCheck(reference, {f"{LABELS[m]}, {round(r * 100)} % spectrogram, subset "
                                              f"{' '.join(symbol)}": numbers[(r, symbol)][m]
                                              for r in RATIOS for m in METHODS}))
    return checks


def _setup(context: Context) -> str:
    budget = BUDGETS[context.budget]
    seg, cls = budget["segmentation"], budget["classification"]
    return (f"**Segmentation**: synthetic `brain-tumour` at difficulty `{BRAIN_DIFFICULTY}` (tuned against "
            f"BraTS, docs/datasets.md; FLAIR/T1/T1c/T2, BraTS regions ET/TC/WT), {seg['cases']} "
            f"cases at {seg['spacing']:g} mm (70 % train / 10 % val / 20 % test), 2-D slice-wise {seg['patch']} "
            f"patches, encoders {seg['features']}, batch {seg['batch']}, {seg['steps']} steps of AdamW at LR 0.01 "
            "with a poly schedule, Dice + BCE per region, half of the patches on tumour slices; ShaSpec with α = 0.1 "
            "(DAO, L1), β = 0.02 (DCO), missing features = mean of the available shared features (Eq. 4). The "
            "baseline is a 4-channel U-Net of the same width with the same random modality dropping "
            "(`configs/zerofill_brain_tumour.yaml`). Dedicated runs keep "
            + ", ".join("/".join(k) for k in budget["dedicated"])
            + f" only (seeds {context.seeds[:budget['dedicated_seeds']]}). The segmentation sanity reference is the "
            "baseline U-Net trained without dropping (every modality, every seed). "
            f"**Classification**: `digits-av` ({cls['cases'] or 1797} cases, image + tone spectrogram, 65/15/20 % "
            f"split), {cls['steps']} steps of 32 with the paper's optimiser (Adam, weight decay 1e-2, LR 1e-3 ×0.9 "
            f"every 20 epochs), encoders {cls['features']}, FC–dropout–FC head; "
            f"seeds {context.seeds[:cls['seeds']]}. "
            "The baseline is one CNN over both zero-filled channels with the same head. "
            "Everything else as in `configs/{shaspec,zerofill}_{brain_tumour,digits_av}.yaml`. "
            f"Per-run seconds: {_run_seconds(context)}; 1-minute load average when this page was written: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (on a shared machine the times above are inflated "
            "by about load / cores).")


def _run_seconds(context: Context) -> str:
    """Median training + evaluation seconds per kind of run, from the runs' ``reproduce.json``."""
    seconds: dict[str, list[float]] = {}
    for run in context.runs:
        marker = run.run_dir / "reproduce.json"
        if marker.is_file():
            kind = f"{run.tags['table']} {LABELS[run.tags['method']]}"
            seconds.setdefault(kind, []).append(json.loads(marker.read_text()).get("seconds", math.nan))
    return ", ".join(f"{kind} {np.median(values):.0f}" for kind, values in seconds.items()) or "–"


def _why_not(context: Context) -> str:
    if context.budget == "tiny":
        return "tiny budget: a few steps only, for tests"
    return "a few hundred CPU steps on a small synthetic set (the paper trains 180k iterations on BraTS)"


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (the page's table: medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("data", "synthetic `brain-tumour` (FLAIR/T1/T1c/T2, BraTS regions) and `digits-av` (sklearn digits + "
              "tone spectrogram)", "paper: BraTS 2018 and AV-MNIST", "no downloads; the numbers are not comparable "
              "in absolute terms", None, "paper"),
    Deviation("dimensionality", "2-D slice-wise training and inference on the 3-D volumes, scored per volume",
              "paper: 3-D patches of 80×160×160", "3-D ShaSpec is ~3 s per step on a CPU", None,
              "paper; official code (billhhh/ShaSpec)"),
    Deviation("optimiser", "AdamW, LR 0.01, poly, 400 steps of batch 8", "paper: SGD Nesterov 0.99, LR 0.01, cosine, "
              "180k iterations of batch 1", "CPU budget; at the configs' LR 0.003 neither model learned ET in 300 "
              "steps", None, "paper; official code (billhhh/ShaSpec)"),
]
