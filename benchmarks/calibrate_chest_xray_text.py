"""Difficulty calibration of ``chest-xray-text`` (issue 23): the supervised U-Net of ``medgap reproduce amvlm`` (its
``unet`` run at 100 % labelled: same data folder, split, network and scorer) trained to convergence on every
training label, scored on the test split, beside the published U-Net on QaTa-COV19.

Prints a Markdown table, the validation curve and the per-image Dice split by the test images' lesion size, and
writes ``<work-dir>/calibration_<difficulty>_seed<seed>.json``::

    OMP_NUM_THREADS=1 python benchmarks/calibrate_chest_xray_text.py --difficulty realistic --steps 1000

``--size`` / ``--cases`` override the budget's grid and number of images; ``--empty-fraction`` the generator's
share of normal (uninfected) images, for the diagnosis of how empty masks weigh on per-image Dice. The seconds per
training step are the training phase's wall time over the steps (one torch thread: ``OMP_NUM_THREADS=1``) beside
the process CPU time per step; both are taken under whatever load the machine has, recorded beside them.

It is not one of the speed benchmarks (``benchmarks/readme.py`` ignores it); its numbers go to docs/datasets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from medgap.atomic import write_json
from medgap.reproduce import amvlm
from medgap.reproduce.runner import execute, saved_phases, still_rising

# LViT's official repository (HUANGLIZI/LViT, README "4. Results"): U-Net on QaTa-COV19, fully supervised, test
# Dice / IoU (%) as LViT's test script computes them (per image, averaged); AMVLM's comparison quotes the same row.
PUBLISHED_UNET_DICE = 79.02
PUBLISHED_UNET_IOU = 69.46


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, validation Dice) of every validation the run logged."""
    curve = []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        keys = [key for key in row if key.startswith("val_")]
        if keys and isinstance(row[keys[0]], (int, float)):
            curve.append((int(row.get("step", len(curve))), float(row[keys[0]])))
    return curve


def dice_by_lesion_size(scores: dict, data_dir: Path) -> dict[str, dict]:
    """Mean per-image (LViT) test Dice of the images whose mask is empty, covers under 3 % of the image, or more:
    one false-positive pixel scores an empty image 0, and a few boundary pixels weigh heavily on a tiny lesion."""
    from medgap.data.io import read_label

    groups: dict[str, list[float]] = {"empty": [], "under 3 %": [], "3 % or more": []}
    for case, image_scores in scores["per_image"].items():
        share = float((read_label(data_dir / "labelsTr" / f"{case}.png")[0] > 0).mean())
        key = "empty" if share == 0 else "under 3 %" if share < 0.03 else "3 % or more"
        groups[key].append(image_scores["dice"] * 100)
    return {key: {"images": len(values), "dice": float(np.mean(values)) if values else None}
            for key, values in groups.items()}


def calibrate(difficulty: str, steps: int, seed: int, work_dir: Path, budget_name: str = "small",
              size: int | None = None, cases: int | None = None, empty_fraction: float | None = None) -> dict:
    budget = {**amvlm.BUDGETS[budget_name], "steps": steps}
    budget.update({key: value for key, value in (("size", size), ("cases", cases)) if value is not None})
    options = {} if empty_fraction is None else {"empty_fraction": empty_fraction}
    data_dir = amvlm.datasets(budget, work_dir / "data", difficulty=difficulty, **options)["chest"]
    run = amvlm._segmentation(budget, "unet", 1.0, seed, data_dir, {}, work_dir / f"unet_all_{difficulty}_seed{seed}")
    run.overrides["trainer.val_every"] = max(steps // 20, 1)   # a curve fine enough to see it flatten
    load_before = os.getloadavg()
    started, cpu_started = time.perf_counter(), time.process_time()
    scores, _, reused = execute(run)
    cpu_seconds = time.process_time() - cpu_started
    curve = validation_curve(run.run_dir)
    training_seconds = saved_phases(run).get("training")
    return {
        "difficulty": difficulty, "budget": budget_name, "steps": steps, "seed": seed, "cases": budget["cases"],
        "size": budget["size"], "batch": budget["batch"], "lr": budget["lr"], "features": budget["features"],
        "empty_fraction": empty_fraction,
        "wall_seconds": round(time.perf_counter() - started, 1), "reused": reused,
        "training_seconds_per_step": None if training_seconds is None else training_seconds / steps,
        "cpu_seconds_per_step": None if reused else cpu_seconds / steps,
        "load_before": load_before, "load_after": os.getloadavg(), "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "test_images": scores["images"], "lvit_dice": scores["lvit_dice"] * 100, "lvit_iou": scores["lvit_iou"] * 100,
        "paper_dice": scores["paper_dice"] * 100, "paper_miou": scores["paper_miou"] * 100,
        "dice_by_lesion_size": dice_by_lesion_size(scores, data_dir),
        "validation_curve": curve, "still_rising": still_rising(run.run_dir),
        "published": {"dice": PUBLISHED_UNET_DICE, "iou": PUBLISHED_UNET_IOU,
                      "source": "LViT (Li et al., IEEE TMI 2023), official repository README, Results: QaTa-COV19 U-Net"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--difficulty", default="realistic", choices=("easy", "realistic"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=None, help="image side (default: the budget's)")
    parser.add_argument("--cases", type=int, default=None, help="number of images (default: the budget's)")
    parser.add_argument("--empty-fraction", type=float, default=None,
                        help="share of uninfected images (default: the difficulty's)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/calibration/chest_xray_text"))
    args = parser.parse_args(argv)
    result = calibrate(args.difficulty, args.steps, args.seed, args.work_dir, size=args.size, cases=args.cases,
                       empty_fraction=args.empty_fraction)
    write_json(args.work_dir / f"calibration_{args.difficulty}_seed{args.seed}.json", result)
    print("| data | steps | test images | Dice (LViT, %) | IoU (LViT, %) | Dice (pooled, %) | published U-Net Dice / IoU "
          "| wall s | load |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    print(f"| {args.difficulty} | {result['steps']} | {result['test_images']} | {result['lvit_dice']:.2f} | "
          f"{result['lvit_iou']:.2f} | {result['paper_dice']:.2f} | {PUBLISHED_UNET_DICE} / {PUBLISHED_UNET_IOU} | "
          f"{result['wall_seconds']:.0f} | {result['load_before'][0]:.1f} → {result['load_after'][0]:.1f} |")
    print("validation Dice by step: " + ", ".join(f"{step}: {value:.3f}" for step, value in result["validation_curve"]))
    print(f"still rising at the end: {result['still_rising']}")
    print("test Dice by lesion size: " + ", ".join(
        f"{key}: {group['images']} images" + ("" if group["dice"] is None else f", {group['dice']:.1f}")
        for key, group in result["dice_by_lesion_size"].items()))
    if result["training_seconds_per_step"] is not None:
        print(f"training: {result['training_seconds_per_step']:.3f} s/step (wall), CPU "
              f"{result['cpu_seconds_per_step'] or float('nan'):.3f} s/step (whole run), "
              f"{result['size']}² × {result['cases']} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
