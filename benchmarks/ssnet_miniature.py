"""Miniature SS-Net experiments on the synthetic sets: lower bound, Mean Teacher, SS-Net, upper bound.

A CPU-sized imitation of the paper's table, NOT its protocol: small volumes, few hundred steps, a smaller
network, the ramp-ups compressed to the same fraction of the schedule as in the official runs (LA: λ reaches
its final value at 40 % of training; ACDC: at the end). Every run is the config of ``configs/`` with the
overrides printed in the JSON, then evaluated on its test split with ``best.pt`` (chosen on validation).

Run: ``OMP_NUM_THREADS=1 python benchmarks/ssnet_miniature.py atrium3d --seeds 0 1 --steps 200``; prints a
Markdown table, writes ``benchmarks/results/ssnet_miniature_<dataset>.json`` (per-case scores included) and a
paired t-test (SS-Net vs lower bound, per-case mean Dice, pairs pooled over seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from medgap.atomic import write_json
from medgap.config import load_config
from medgap.data.synthetic import generate
from medgap.evaluation.evaluate import evaluate_run
from medgap.metrics.stats import paired_ttest
from medgap.training.loop import train
from medgap.training.run_folder import environment

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("supervised_lower", "mean_teacher", "ss_net", "supervised_upper")
SETUPS = {
    # name: (generator, generator options, cases, patch, network features, labelled counts, λ reaches c at)
    "atrium3d": ("atrium-3d", {"shape": (48, 48, 32), "spacing": 2.5}, 40, [48, 48, 32], [8, 16, 32, 64, 128],
                 (1, 3), 0.4),
    "cardiac2d": ("cardiac-2d", {"size": (48, 48), "spacing": (4.0, 4.0, 10.0)}, 40, [48, 48],
                  [16, 32, 64, 128, 256], (1, 3), 1.0),
}


def overrides_for(dataset: str, method: str, count: int | None, seed: int, steps: int, data_dir: Path) -> dict:
    _, _, _, patch, features, _, ramp_fraction = SETUPS[dataset]
    config = load_config(ROOT / "configs" / f"{method}_{dataset}.yaml")
    values = {
        "data.dataset_dir": str(data_dir), "data.patch_size": patch, "data.val_fraction": 0.1,
        "data.test_fraction": 0.2, "data.num_workers": 0, "model.features": features,
        "trainer.max_steps": steps, "trainer.val_every": max(steps // 4, 1), "trainer.checkpoint_every": steps,
        "trainer.log_every": 10, "trainer.seed": seed, "trainer.progress": False,
        "optim.schedule": "poly", "inference.patch_size": patch, "inference.stride": None,
        "inference.overlap": 0.25, "inference.sw_batch_size": 8,
    }
    if dataset == "cardiac2d":
        values["data.labelled_batch_size"] = 2 if method != "supervised_upper" else 4
        if config.data.unlabelled_batch_size:
            values["data.unlabelled_batch_size"] = 2
    if method != "supervised_upper":
        values["data.labelled_count"] = count
    if method in ("mean_teacher", "ss_net"):
        rampup = config.method.consistency_rampup
        values["method.rampup_unit"] = max(1, round(ramp_fraction * steps / rampup))
    return values


def mean_scores(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per case: the mean over foreground structures of each metric."""
    cases: dict[str, dict[str, list[float]]] = {}
    for record in records:
        for metric in ("dice", "jaccard", "hd95", "asd", "hd95_vox", "asd_vox"):
            if metric in record and record[metric] is not None:
                cases.setdefault(record["case"], {}).setdefault(metric, []).append(float(record[metric]))
    return {case: {m: float(np.mean(v)) for m, v in metrics.items()} for case, metrics in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=list(SETUPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--out", default="runs/ssnet_miniature")
    args = parser.parse_args()
    torch.set_num_threads(1)
    name, options, cases, *_ , counts, _ = SETUPS[args.dataset]
    out = Path(args.out)
    data_dir = generate(name, out / "data" / args.dataset, cases=cases, seed=0, test_cases=0, exist_ok=True,
                        **options)
    runs = []
    for seed in args.seeds:
        for method in args.methods:
            for count in ((None,) if method == "supervised_upper" else counts):
                run_dir = out / args.dataset / f"{method}_n{count or 'all'}_seed{seed}"
                values = overrides_for(args.dataset, method, count, seed, args.steps, data_dir)
                config = load_config(ROOT / "configs" / f"{method}_{args.dataset}.yaml",
                                     [f"{k}={json.dumps(v)}" for k, v in values.items()])
                started = time.perf_counter()
                summary = train(config, run_dir, overwrite=True)
                result = evaluate_run(run_dir)
                records = json.loads(Path(result["paths"]["json"]).read_text())["per_case"]
                runs.append({"method": method, "labelled": count, "seed": seed, "run_dir": str(run_dir),
                             "overrides": values, "best_val_dice": summary["best_val_dice"],
                             "labelled_cases": summary["splits"]["labelled"], "train_cases": summary["splits"]["train"],
                             "seconds": round(time.perf_counter() - started, 1), "per_case": mean_scores(records)})
                print(f"{method:17s} n={count} seed={seed}: test Dice "
                      f"{np.mean([s['dice'] for s in runs[-1]['per_case'].values()]):.4f} ({runs[-1]['seconds']} s)",
                      flush=True)

    table = ["| labelled | method | Dice (%) | Jaccard (%) | 95HD (mm) | ASD (mm) | 95HD (vox) | ASD (vox) | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    tests = {}
    for count in counts:
        for method in args.methods:
            chosen = [r for r in runs if r["method"] == method and r["labelled"] in (count, None)
                      and (method == "supervised_upper") == (r["labelled"] is None)]
            if not chosen:
                continue
            cells = []
            for metric, scale in (("dice", 100), ("jaccard", 100), ("hd95", 1), ("asd", 1), ("hd95_vox", 1),
                                  ("asd_vox", 1)):
                per_seed = [np.nanmean([s.get(metric, math.nan) for s in r["per_case"].values()]) for r in chosen]
                cells.append(f"{np.mean(per_seed) * scale:.2f} ± {np.std(per_seed) * scale:.2f}")
            label = f"{count} of {chosen[0]['train_cases']}" if method != "supervised_upper" else "all"
            table.append(f"| {label} | {method} | " + " | ".join(cells) + f" | {len(chosen)} |")
        pairs_a, pairs_b = {}, {}
        for run in runs:
            if run["labelled"] == count and run["method"] in ("ss_net", "supervised_lower"):
                target = pairs_a if run["method"] == "ss_net" else pairs_b
                target.update({(run["seed"], case): s["dice"] for case, s in run["per_case"].items()})
        common = sorted(set(pairs_a) & set(pairs_b))
        if common:
            tests[str(count)] = paired_ttest([pairs_a[k] for k in common], [pairs_b[k] for k in common])
    print("\n".join(table))
    for count, test in tests.items():
        print(f"SS-Net vs lower bound, {count} labelled: mean Dice diff {test['mean_diff'] * 100:+.2f} points, "
              f"t = {test['t']:.2f}, p = {test['p']:.3g}, n = {test['n']} (seed, case) pairs")
    write_json(ROOT / "benchmarks" / "results" / f"ssnet_miniature_{args.dataset}.json",
               {"dataset": args.dataset, "setup": {"generator": name, "options": options, "cases": cases},
                "steps": args.steps, "seeds": args.seeds, "table": "\n".join(table), "ttest_ssnet_vs_lower": tests,
                "runs": runs, "environment": environment()})


if __name__ == "__main__":
    main()
