"""SS-Net vs plain supervised training: seconds per training step and peak memory at the official LA shapes.

V-Net (16 filters, BatchNorm, 9.45 M parameters), patches 112×112×80, batch 2 labelled + 2 unlabelled, SGD,
on the CPU (or ``--device cuda``). Each variant runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is its own; the table shows the peak and the increase over the process after model creation.

Variants:
- ``supervised_2``: the lower bound as trained: Dice + CE on the 2 labelled patches only;
- ``supervised_4``: supervised on 4 patches (the same number of images per step as SS-Net);
- ``ss_net``: SS-Net's full step (main pass, 2 VAT passes with one backward to the perturbation, the
  prototype heads on every voxel, backward) on 2 + 2 patches;
- ``ss_net_capped``: the same with ``method.max_voxels`` voxels per stream for the prototype loss.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_ssnet_step.py [--steps 3 --threads 1]``; prints a table and
writes ``benchmarks/results/bench_ssnet_step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "bench_ssnet_step.json"
PATCH = [112, 112, 80]
VARIANTS = {
    "supervised_2": {"method.name": "supervised", "data.unlabelled_batch_size": 0},
    "supervised_4": {"method.name": "supervised", "data.labelled_batch_size": 4, "data.unlabelled_batch_size": 0},
    "ss_net": {"method.name": "ss_net"},
    "ss_net_capped": {"method.name": "ss_net", "method.max_voxels": 65536},
}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(variant: str, steps: int, threads: int, device: str) -> dict:
    from medgap.config import load_config
    from medgap.data.dataset_json import parse_dataset_json
    from medgap.methods import build_method

    torch.set_num_threads(threads)
    overrides = {"data.patch_size": PATCH, "data.labelled_batch_size": 2, "data.unlabelled_batch_size": 2,
                 "model.arch": "vnet", "model.features": [16, 32, 64, 128, 256], "model.norm": "batch",
                 **VARIANTS[variant]}
    config = load_config(None, [f"{key}={json.dumps(value)}" for key, value in overrides.items()])
    spec = parse_dataset_json({"name": "bench", "channel_names": {"0": "MRI"},
                               "labels": {"background": 0, "left_atrium": 1}, "file_ending": ".nii.gz",
                               "numTraining": 1}, Path("<bench>"))
    torch.manual_seed(0)
    method = build_method(config, spec).to(device).train()
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    labelled, unlabelled = config.data.labelled_batch_size, config.data.unlabelled_batch_size
    size = labelled + unlabelled
    image = torch.randn(size, 1, *PATCH, device=device)
    label = torch.zeros(size, *PATCH, dtype=torch.long, device=device)
    label[:, 30:80, 30:80, 20:60] = 1  # an atrium-sized blob
    batch = {"image": image, "label": label, "labelled": torch.arange(size, device=device) < labelled}
    before = rss_mib()
    times = []
    for step in range(steps + 1):  # the first step warms up allocators and kernels; not timed
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        output = method.training_step(batch, 6000 + step)  # λ = 1: every SS-Net term is computed
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        method.on_after_optimizer_step(step)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - started)
    result = {"variant": variant, "batch": f"{labelled}+{unlabelled}", "patch": PATCH, "steps_timed": steps,
              "step_s_median": statistics.median(times), "step_s_all": times,
              "peak_rss_mib": rss_mib(), "rss_after_build_mib": before,
              "parameters": sum(p.numel() for p in method.parameters())}
    if device == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per variant")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.threads, args.device)))
        return

    rows = []
    for variant in args.variants:
        try:
            process = subprocess.run([sys.executable, __file__, "--worker", variant, "--steps", str(args.steps),
                                      "--threads", str(args.threads), "--device", args.device],
                                     capture_output=True, text=True, timeout=args.timeout)
            if process.returncode != 0:
                rows.append({"variant": variant, "error": (process.stderr.strip().splitlines() or ["killed"])[-1]})
            else:
                rows.append(json.loads(process.stdout.strip().splitlines()[-1]))
        except subprocess.TimeoutExpired:
            rows.append({"variant": variant, "error": f"no result within {args.timeout} s"})
        print(f"done {variant}", file=sys.stderr, flush=True)
        save(rows, args)  # after every variant: a later one that runs out of memory or time loses nothing
    reference = {row["variant"]: row for row in rows if "error" not in row}
    print(f"| variant | batch | s/step (median of {args.steps}) | × supervised_2 | × supervised_4 | peak RSS MiB "
          "| RSS increase MiB |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['variant']} | – | failed: {row['error'][:80]} | | | | |")
            continue
        ratios = [f"{row['step_s_median'] / reference[r]['step_s_median']:.2f}" if r in reference else "–"
                  for r in ("supervised_2", "supervised_4")]
        row["ratio_vs_supervised_2"], row["ratio_vs_supervised_4"] = ratios
        print(f"| {row['variant']} | {row['batch']} | {row['step_s_median']:.2f} | {ratios[0]} | {ratios[1]} "
              f"| {row['peak_rss_mib']:.0f} | {row['peak_rss_mib'] - row['rss_after_build_mib']:.0f} |")
    save(rows, args)
    print(f"wrote {RESULTS}")


def save(rows: list[dict], args) -> None:
    from medgap.atomic import write_json
    from medgap.training.run_folder import environment

    # Variants measured by an earlier invocation (``--variants`` a subset) are kept, each with its own load.
    earlier = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    measured = {row["variant"] for row in rows}
    for row in rows:
        row.setdefault("load_average_1min", os.getloadavg()[0])
    rows_all = [row for row in earlier if row["variant"] not in measured] + rows
    write_json(RESULTS, {"benchmark": "ss_net train step vs supervised, V-Net 112x112x80", "device": args.device,
                         "threads": args.threads, "steps": args.steps, "rows": rows_all,
                         "load_average_1_5_15": os.getloadavg(), "environment": environment()})


if __name__ == "__main__":
    main()
