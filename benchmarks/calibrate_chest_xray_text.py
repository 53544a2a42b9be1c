"""Difficulty calibration of ``chest-xray-text`` (issue 23): the supervised U-Net of ``medgap reproduce amvlm`` (its
``unet`` run at 100 % labelled: same data folder, split, network and scorer) trained to convergence on every
training label, scored on the test split, beside the published U-Net on QaTa-COV19.

Prints a Markdown table and the validation curve, and writes ``<work-dir>/calibration_<difficulty>.json``::

    OMP_NUM_THREADS=1 python benchmarks/calibrate_chest_xray_text.py --difficulty realistic --steps 1000

It is not one of the speed benchmarks (``benchmarks/readme.py`` ignores it); its numbers go to docs/datasets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from medgap.atomic import write_json
from medgap.reproduce import amvlm
from medgap.reproduce.runner import execute, still_rising

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


def calibrate(difficulty: str, steps: int, seed: int, work_dir: Path, budget_name: str = "small") -> dict:
    budget = {**amvlm.BUDGETS[budget_name], "steps": steps}
    data_dir = amvlm.datasets(budget, work_dir / "data", difficulty=difficulty)["chest"]
    run = amvlm._segmentation(budget, "unet", 1.0, seed, data_dir, {}, work_dir / f"unet_all_{difficulty}_seed{seed}")
    run.overrides["trainer.val_every"] = max(steps // 20, 1)   # a curve fine enough to see it flatten
    load_before = os.getloadavg()
    started = time.perf_counter()
    scores, _, reused = execute(run)
    curve = validation_curve(run.run_dir)
    return {
        "difficulty": difficulty, "budget": budget_name, "steps": steps, "seed": seed, "cases": budget["cases"],
        "size": budget["size"], "batch": budget["batch"], "lr": budget["lr"], "features": budget["features"],
        "wall_seconds": round(time.perf_counter() - started, 1), "reused": reused,
        "load_before": load_before, "load_after": os.getloadavg(), "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "test_images": scores["images"], "lvit_dice": scores["lvit_dice"] * 100, "lvit_iou": scores["lvit_iou"] * 100,
        "paper_dice": scores["paper_dice"] * 100, "paper_miou": scores["paper_miou"] * 100,
        "validation_curve": curve, "still_rising": still_rising(run.run_dir),
        "published": {"dice": PUBLISHED_UNET_DICE, "iou": PUBLISHED_UNET_IOU,
                      "source": "LViT (Li et al., IEEE TMI 2023), official repository README, Results: QaTa-COV19 U-Net"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--difficulty", default="realistic", choices=("easy", "realistic"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/calibration/chest_xray_text"))
    args = parser.parse_args(argv)
    result = calibrate(args.difficulty, args.steps, args.seed, args.work_dir)
    write_json(args.work_dir / f"calibration_{args.difficulty}.json", result)
    print("| data | steps | test images | Dice (LViT, %) | IoU (LViT, %) | Dice (pooled, %) | published U-Net Dice / IoU "
          "| wall s | load |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|")
    print(f"| {args.difficulty} | {result['steps']} | {result['test_images']} | {result['lvit_dice']:.2f} | "
          f"{result['lvit_iou']:.2f} | {result['paper_dice']:.2f} | {PUBLISHED_UNET_DICE} / {PUBLISHED_UNET_IOU} | "
          f"{result['wall_seconds']:.0f} | {result['load_before'][0]:.1f} → {result['load_after'][0]:.1f} |")
    print("validation Dice by step: " + ", ".join(f"{step}: {value:.3f}" for step, value in result["validation_curve"]))
    print(f"still rising at the end: {result['still_rising']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
