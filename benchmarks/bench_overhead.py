"""Overhead of medgap's generic training loop over a bare PyTorch loop, and whether data loading keeps up.

Same model (the supervised 3-D U-Net), same optimiser, schedule, gradient clipping and the same batches:
- bare: a plain ``for batch in batches: loss.backward(); optimizer.step()`` over batches held in memory;
- ours: ``medgap.training.loop.train`` (Fabric, two-stream loader, logging every step, checks), its per-step
  times read from ``metrics.jsonl`` (start-up and the final validation excluded). The loader runs in the training
  process (``num_workers=0``), so reading and augmenting each batch counts as overhead: worker processes would
  compete with the training thread for a small machine's cores and measure the machine, not the loop;
- loader: batches per second of the training loader alone (default workers), vs the step time.
Runs alternate (bare, ours, bare, ours ...) and the overhead is the median over repeats of ours / bare within a
pair: on a shared machine the same loop's speed drifts by ±20 % between runs, far more than the 5 % target.

Run: ``python benchmarks/bench_overhead.py [--steps 12] [--repeats 5] [--threads 1]``; writes
``benchmarks/results/bench_overhead.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table  # noqa: E402

from medgap.atomic import write_json  # noqa: E402
from medgap.config import load_config  # noqa: E402
from medgap.data.pipeline import prepare_data, training_loader  # noqa: E402
from medgap.data.synthetic import generate  # noqa: E402
from medgap.methods import build_method  # noqa: E402
from medgap.training.loop import train  # noqa: E402
from medgap.training.run_folder import read_jsonl  # noqa: E402
from medgap.training.schedules import build_optimizer, build_scheduler  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_overhead.json"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "supervised_brain_tumour.yaml"
TARGET_OVERHEAD = 0.05


def bare_loop(config, data, batches) -> float:
    torch.manual_seed(config.trainer.seed)
    method = build_method(config, data.spec).train()
    optimizer = build_optimizer(method.parameters(), config.optim)
    scheduler = build_scheduler(optimizer, config.optim, config.trainer.max_steps)
    times = []
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        loss = method.training_step(batch, step).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def our_loop(config, run_dir: Path, warmup: int) -> float:
    """Median seconds per step after ``warmup`` steps, as the bare loop's (one log row per step)."""
    train(config, run_dir, overwrite=True)
    elapsed = {row["step"]: row["elapsed_s"] for row in read_jsonl(run_dir / "metrics.jsonl") if "elapsed_s" in row}
    return statistics.median(elapsed[step] - elapsed[step - 1] for step in range(warmup + 1, config.trainer.max_steps + 1))


def loader_rate(data, config, batches: int) -> float:
    loader = iter(training_loader(data, config.data, config.trainer.seed))
    for _ in range(3):  # workers start
        next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return (time.perf_counter() - start) / batches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12,
                        help="steps per loop (> 2: both loops are timed from step 3 on)")
    parser.add_argument("--repeats", type=int, default=5, help="bare/ours pairs (the median pair ratio is reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the training process (default 1: loader workers and other tenants "
                             "share the cores; 0 = torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = 2  # as the bare loop: its first two steps are not timed
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = generate("brain-tumour", tmp / "data", cases=12, seed=0, test_cases=1)
        overrides = [f"data.dataset_dir={dataset}", f"trainer.max_steps={args.steps}",
                     f"trainer.val_every={10 * args.steps}", "trainer.log_every=1",
                     f"trainer.checkpoint_every={10 * args.steps}", "trainer.progress=false", "trainer.val_max_cases=1"]
        config = load_config(CONFIG, overrides)
        data = prepare_data(config.data, config.trainer.seed, tmp / "runs" / "prep")
        loader = iter(training_loader(data, config.data, config.trainer.seed))
        batches = [next(loader) for _ in range(args.steps)]
        in_process = load_config(CONFIG, [*overrides, "data.num_workers=0"])
        bare, ours = [], []
        for repeat in range(args.repeats):
            bare.append(bare_loop(config, data, batches))
            ours.append(our_loop(in_process, tmp / "runs" / f"ours{repeat}", warmup))
        loading = loader_rate(data, config, 20)
    bare_s, ours_s = statistics.median(bare), statistics.median(ours)
    pair_ratios = [o / b for b, o in zip(bare, ours)]
    overhead = statistics.median(pair_ratios) - 1
    rows = [["bare PyTorch loop", f"{1e3 * bare_s:.0f}", ""],
            ["medgap loop (Fabric, loading in-process)", f"{1e3 * ours_s:.0f}", f"{100 * overhead:+.1f}%"],
            [f"loader alone ({config.data.num_workers} workers)", f"{1e3 * loading:.0f}",
             f"{loading / bare_s:.2f}x step"]]
    verdict = "met" if overhead <= TARGET_OVERHEAD else "NOT met"
    table = markdown_table(["", "ms / step", "vs bare"], rows) + (
        f"\n\nU-Net {config.model.features}, patch {'x'.join(map(str, config.data.patch_size))}, batch "
        f"{config.data.labelled_batch_size}, {args.steps} steps x {args.repeats} alternating repeats; ms = medians, "
        f"overhead = median of the per-pair ratios ({', '.join(f'{100 * (r - 1):+.0f}%' for r in pair_ratios)}), "
        f"{torch.get_num_threads()} torch thread(s). Overhead {100 * overhead:+.1f}% (target <= "
        f"{100 * TARGET_OVERHEAD:.0f}%: {verdict}); the loader "
        f"{'keeps up' if loading < bare_s else 'is the bottleneck'}.")
    print(table)
    write_json(args.out, {
        "benchmark": "bench_overhead", "machine": machine_info(), "steps": args.steps, "repeats": args.repeats,
        "patch_size": config.data.patch_size, "batch": config.data.labelled_batch_size,
        "bare_ms_per_step": [1e3 * t for t in bare], "ours_ms_per_step": [1e3 * t for t in ours],
        "pair_ratios": pair_ratios,
        "overhead": overhead, "target_overhead": TARGET_OVERHEAD, "target_met": overhead <= TARGET_OVERHEAD,
        "loader_ms_per_batch": 1e3 * loading, "loader_keeps_up": loading < bare_s, "table_markdown": table})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
