"""AMVLM's evaluation: Dice/mIoU in both published conventions, per-image scores, paper-layout tables with paired
t-tests, and the two figures (text-guided mask vs prediction vs GT; similarity under alignment multiplicity).

Conventions (both reported, both labelled):
- **paper** (AMVLM tables): Dice and mIoU from the confusion counts pooled over every pixel of the split,
  foreground class only (binary task; background excluded, see ``docs/methods/amvlm.md``).
- **LViT** (the test script AMVLM's baselines use): per image, foreground Dice and IoU of the prediction
  thresholded at 0.5, averaged over images; an image with empty GT and empty prediction scores 1
  (medgap's empty-mask policy).

The paper's experiments are run and tabulated by ``medgap reproduce amvlm`` (``medgap/reproduce/amvlm.py``).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import torch

from medgap.atomic import write_json, write_text
from medgap.evaluation.evaluate import load_run, load_run_config, load_trained_method
from medgap.evaluation.reports import markdown_table, p_value_cell
from medgap.inference.predict import predict_case
from medgap.methods.amvlm_ssmis import AMVLMSegmentation
from medgap.metrics import dice, jaccard
from medgap.metrics.stats import paired_ttest
from medgap.phases import timed


def score_run(run_dir: str | os.PathLike, split: str = "test", checkpoint: str = "best") -> dict:
    """Predict ``split`` with the run's U-Net and score it in both conventions; writes ``amvlm_scores.csv``
    (per image: dice, iou) and ``amvlm_scores.json`` (pooled + per-image means) into the run folder."""
    run_dir = Path(run_dir)
    config, data, method = load_run(run_dir, split, checkpoint)
    counts = np.zeros(3, np.int64)  # pooled TP, FP, FN
    mask_counts = np.zeros(3, np.int64)  # the same for the text-guided mask alone (methods that have one)
    rows = []
    for case in data.split_cases(split):
        prediction = predict_case(method, case, config) > 0
        truth = np.asarray(case.label()) > 0
        counts += [(prediction & truth).sum(), (prediction & ~truth).sum(), (~prediction & truth).sum()]
        rows.append({"case": case.case_id, "dice": dice(prediction, truth), "iou": jaccard(prediction, truth)})
        if isinstance(method, AMVLMSegmentation) and method.has_text_mask and case.text is not None:
            mask = text_mask_probability(method, case) > 0.5
            mask_counts += [(mask & truth).sum(), (mask & ~truth).sum(), (~mask & truth).sum()]
    tp, fp, fn = (float(c) for c in counts)
    result = {
        "run_dir": str(run_dir), "split": split, "checkpoint": checkpoint, "images": len(rows),
        "paper_dice": 2 * tp / max(2 * tp + fp + fn, 1.0), "paper_miou": tp / max(tp + fp + fn, 1.0),
        "lvit_dice": float(np.mean([r["dice"] for r in rows])), "lvit_iou": float(np.mean([r["iou"] for r in rows])),
        "per_image": {r["case"]: {"dice": r["dice"], "iou": r["iou"]} for r in rows},
        "conventions": "paper = pooled pixels, foreground; lvit = per-image foreground mean, empty/empty = 1",
    }
    if mask_counts.any():
        mtp, mfp, mfn = (float(c) for c in mask_counts)
        result["text_mask_dice"] = 2 * mtp / max(2 * mtp + mfp + mfn, 1.0)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["case", "dice", "iou"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / "amvlm_scores.csv", buffer.getvalue())
    write_json(run_dir / "amvlm_scores.json", result)
    return result


@torch.no_grad()
def text_mask_probability(method, case) -> np.ndarray:
    """The text-guided mask ``(H, W)`` in [0, 1] of an ``amvlm_ssmis`` method for one case and its own report."""
    image = torch.from_numpy(np.array(case.image(), np.float32))[None]
    return torch.sigmoid(method.text_mask(image, [case.text])[0])[0].numpy()


def seed_averaged_dice(runs: list[dict]) -> dict[str, float]:
    """Per test image, the LViT Dice averaged over the :func:`score_run` results of several seeds."""
    return {case: float(np.mean([run["per_image"][case]["dice"] for run in runs]))
            for case in sorted(runs[0]["per_image"])}


def comparison_table(scores: dict[str, list[dict]], reference: str | None = None) -> str:
    """Markdown table: one row per method of :func:`score_run` results (one per seed): mean ± std over seeds of
    paper Dice/mIoU and LViT Dice/IoU (×100), and the paired t-test p-value vs ``reference`` on per-image LViT
    Dice averaged over seeds (every run must be scored on the same test images)."""
    header = ["Method", "seeds", "Dice (paper)", "mIoU (paper)", "Dice (LViT)", "IoU (LViT)"]
    if reference:
        header.append(f"p vs {reference}")
    rows = []
    for label, runs in scores.items():
        cells = [label, str(len(runs))]
        for key in ("paper_dice", "paper_miou", "lvit_dice", "lvit_iou"):
            values = np.array([r[key] for r in runs]) * 100
            cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if len(values) > 1 else f"{values.mean():.2f}")
        if reference:
            test = paired_ttest(seed_averaged_dice(scores[reference]), seed_averaged_dice(runs)) \
                if label != reference else None
            cells.append(p_value_cell(test, missing="—"))
        rows.append(cells)
    return markdown_table(header, rows)


@torch.no_grad()
@timed('plots')
def plot_text_guided(run_dir: str | os.PathLike, path: str | os.PathLike, cases: int = 4, split: str = "test",
                     checkpoint: str = "best") -> Path:
    """Rows of (image + report, text-guided mask, prediction, ground truth) for an ``amvlm_ssmis`` run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    config, data, method = load_run(run_dir, split, checkpoint)
    chosen = [c for c in data.split_cases(split) if np.asarray(c.label()).any()][:cases]
    figure, axes = plt.subplots(len(chosen), 4, figsize=(10, 2.7 * len(chosen)), squeeze=False)
    for row, case in zip(axes, chosen):
        image = torch.from_numpy(np.array(case.image(), np.float32))[None]
        mask = text_mask_probability(method, case) \
            if isinstance(method, AMVLMSegmentation) and method.has_text_mask else None
        prediction = predict_case(method, case, config)
        panels = [(image[0, 0].numpy(), "\n".join(_wrap(case.text or "", 38))), (mask, "text-guided mask"),
                  (prediction, "prediction"), (np.asarray(case.label()), "ground truth")]
        for axis, (array, title) in zip(row, panels):
            axis.axis("off")
            if array is not None:
                is_mask = array is not panels[0][0]
                axis.imshow(array, cmap="gray", vmin=0 if is_mask else None, vmax=1 if is_mask else None)
            axis.set_title(title, fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


@torch.no_grad()
def similarity_under_multiplicity(pretrain_run: str | os.PathLike, dataset_dir: str | os.PathLike,
                                  image_case: str, report_case: str, images_for_report: list[str],
                                  other_cases: list[str] = ()) -> dict:
    """The uncertainty analysis: similarity (the model's own: sim' with PDT, cosine without) of one image to its
    4 equivalent reports (``textTr/CASE.alt.txt``) and of one report to 4 images it fits.

    ``other_cases`` (optional): cases with other findings; their reports (images) give ``image_to_others``
    (``report_to_others``), the scale of that model's similarities against which a spread is judged."""
    from medgap.data.io import read_image
    from medgap.data.transforms import normalise

    run = Path(pretrain_run)
    config = load_run_config(run)
    method = load_trained_method(run, config, _spec(config), "last")
    dataset_dir = Path(dataset_dir)

    def image(case):
        array = read_image(dataset_dir / "imagesTr" / f"{case}_0000.png")[0][None].astype(np.float32)
        return torch.from_numpy(normalise(array, np.ones(1, bool), config.data.normalisation))[None]

    reports = (dataset_dir / "textTr" / f"{image_case}.alt.txt").read_text().splitlines()[:4]
    encoders = method.encoders
    one_image, alternatives = encoders.encode_image(image(image_case)), encoders.encode_text(reports)
    report = (dataset_dir / "textTr" / f"{report_case}.txt").read_text().strip()
    many_images = encoders.encode_image(torch.cat([image(c) for c in images_for_report]))
    one_report = encoders.encode_text([report])
    result = {"reports": reports, "report": report, "images": images_for_report, "pdt": bool(encoders.pdt),
              "image_to_reports": encoders.similarity(one_image, alternatives)[0].tolist(),
              "report_to_images": encoders.similarity(many_images, one_report)[:, 0].tolist()}
    if other_cases:
        other_reports = [(dataset_dir / "textTr" / f"{case}.txt").read_text().strip() for case in other_cases]
        other_images = encoders.encode_image(torch.cat([image(c) for c in other_cases]))
        result["image_to_others"] = encoders.similarity(one_image, encoders.encode_text(other_reports))[0].tolist()
        result["report_to_others"] = encoders.similarity(other_images, one_report)[:, 0].tolist()
    if encoders.pdt:  # the same model's plain cosine of the means: what the similarity is without the PDT gate
        result["image_to_reports_cosine"] = (one_image.cls @ alternatives.cls.T)[0].tolist()
        result["report_to_images_cosine"] = (many_images.cls @ one_report.cls.T)[:, 0].tolist()
    return result


def _spec(config):
    from medgap.data.dataset_json import load_dataset_json

    return load_dataset_json(config.data.dataset_dir)


@timed('plots')
def plot_uncertainty(results: dict[str, dict], path: str | os.PathLike) -> Path:
    """Bar plots of :func:`similarity_under_multiplicity` for several pretraining runs (e.g. with/without PDT)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / max(len(results), 1)
    for offset, (label, result) in enumerate(results.items()):
        for axis, key in zip(axes, ("image_to_reports", "report_to_images")):
            values = result[key]
            axis.bar(np.arange(len(values)) + offset * width, values, width,
                     label=f"{label} (std {np.std(values):.3f})")
    axes[0].set_title("one image vs 4 equivalent reports", fontsize=9)
    axes[1].set_title("one report vs 4 matching images", fontsize=9)
    for axis in axes:
        axis.set_ylabel("similarity")
        axis.legend(fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def patch_report_auroc(patches: torch.Tensor, report_cls: torch.Tensor, foreground: torch.Tensor) -> dict:
    """The zero-shot pretraining gate on tensors: does ⟨patch, report⟩ point at the finding, and is it the report?

    Args:
        patches: ``(B, P, d)`` patch embeddings of B held-out images; report_cls: ``(B, d)`` the CLS embedding of
            each image's own report; foreground: ``(B, P)`` bool, patches mostly inside the finding's mask.

    Returns:
        ``auroc_own``: AUROC of s = ⟨patch, own report⟩ for foreground vs background patches (what the text mask
        sigmoid(s) can find); ``auroc_shuffled``: the same with each image's report replaced by the next image's
        (what the image alone gives); ``auroc_pair``: over foreground patches, ⟨patch, own report⟩ vs ⟨patch,
        shuffled report⟩ (0.5 = the report does not matter). NaN where a class is empty.
    """
    from sklearn.metrics import roc_auc_score

    own = torch.einsum("bpd,bd->bp", patches, report_cls).flatten().numpy()
    shuffled = torch.einsum("bpd,bd->bp", patches, report_cls.roll(1, 0)).flatten().numpy()
    labels = foreground.flatten().numpy()
    two_classes = 0 < labels.sum() < len(labels)
    pair = np.concatenate([own[labels], shuffled[labels]])
    pair_labels = np.r_[np.ones(labels.sum()), np.zeros(labels.sum())]
    return {"auroc_own": float(roc_auc_score(labels, own)) if two_classes else float("nan"),
            "auroc_shuffled": float(roc_auc_score(labels, shuffled)) if two_classes else float("nan"),
            "auroc_pair": float(roc_auc_score(pair_labels, pair)) if labels.any() else float("nan"),
            "images": int(len(report_cls)), "foreground_patches": int(labels.sum()), "patches": int(len(labels))}


@torch.no_grad()
def patch_report_gate(pretrain_run: str | os.PathLike, dataset_dir: str | os.PathLike, cases: list[str],
                      foreground_fraction: float = 0.5) -> dict:
    """:func:`patch_report_auroc` of an ``amvlm`` pretraining run (``last.pt``) on ``cases`` (held-out images with
    a report and a mask): a patch is foreground when at least ``foreground_fraction`` of its pixels are."""
    from medgap.data.io import read_image, read_label
    from medgap.data.transforms import normalise

    run = Path(pretrain_run)
    config = load_run_config(run)
    method = load_trained_method(run, config, _spec(config), "last").eval()
    dataset_dir = Path(dataset_dir)
    images = torch.cat([torch.from_numpy(normalise(
        read_image(dataset_dir / "imagesTr" / f"{case}_0000.png")[0][None].astype(np.float32), np.ones(1, bool),
        config.data.normalisation))[None] for case in cases])
    masks = torch.stack([torch.from_numpy((read_label(dataset_dir / "labelsTr" / f"{case}.png")[0] > 0)
                                          .astype(np.float32)) for case in cases])
    reports = [(dataset_dir / "textTr" / f"{case}.txt").read_text(encoding="utf-8").strip() for case in cases]
    encoders = method.encoders
    patches = encoders.encode_image(images).tokens                                            # (B, P, d)
    grid = int(round(patches.shape[1] ** 0.5))
    share = torch.nn.functional.adaptive_avg_pool2d(masks[:, None], grid).flatten(1)          # (B, P) row-major
    return patch_report_auroc(patches, encoders.encode_text(reports).cls, share >= foreground_fraction)
