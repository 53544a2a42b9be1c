"""ShaSpec classification model (digits-av / AV-MNIST setting): train/test iteration time, peak memory, parameters.

Measured like the paper's computational comparison (CVPR 2023, AV-MNIST, one RTX 3090, batch 4, mean of 30
iterations): 0.0257 s per training iteration, 0.0016 s per test iteration, 1421 MiB, 0.22 M parameters.

- model: ``configs/shaspec_digits_av.yaml`` (2 modalities of 32×32, encoders [16, 32, 48], FC–dropout–FC);
- train iteration: ``training_step`` (forward, Eq. 9 losses) + backward + Adam step, SMIL-style batch in which one
  of the four samples lacks the spectrogram; test iteration: ``predict_logits`` under ``torch.inference_mode``;
- timing: mean of 30 iterations after 5 warm-up iterations (CUDA synchronised around each on a GPU);
- memory: on a GPU ``torch.cuda.max_memory_allocated`` (tensors only; the paper's figure is likely the process
  as nvidia-smi shows it, which adds the CUDA context); on the CPU the growth of the process's peak resident set
  (``ru_maxrss``) over the measurement and the peak itself.

Run: ``python benchmarks/bench_shaspec_cls.py [--device cpu|cuda] [--threads N]``; prints a table and writes
``benchmarks/results/bench_shaspec_cls.json`` (one entry per device, merged with earlier runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

import medgap
from medgap.atomic import write_json
from medgap.config import load_config
from medgap.data.dataset_json import parse_dataset_json
from medgap.methods import build_method
from medgap.training.schedules import build_optimizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_shaspec_cls.json"
PAPER = {"train_s": 0.0257, "test_s": 0.0016, "memory_mib": 1421.0, "parameters_m": 0.22,
         "device": "RTX 3090 (paper, Table 6)"}
BATCH, ITERATIONS, WARMUP = 4, 30, 5


def digits_spec():
    raw = {"task": "classification", "classes": [str(d) for d in range(10)], "file_ending": ".png",
           "channel_names": {"0": "image", "1": "spectrogram"}}
    return parse_dataset_json(raw, Path("dataset.json"))


def synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device) -> list[float]:
    for _ in range(WARMUP):
        function()
    times = []
    for _ in range(ITERATIONS):
        synchronise(device)
        start = time.perf_counter()
        function()
        synchronise(device)
        times.append(time.perf_counter() - start)
    return times


def measure(device: torch.device) -> dict:
    config = load_config(ROOT / "configs" / "shaspec_digits_av.yaml", ["trainer.seed=0"])
    torch.manual_seed(0)
    method = build_method(config, digits_spec()).to(device)
    optimizer = build_optimizer(method.parameters(), config.optim)
    generator = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(BATCH, 2, 32, 32, generator=generator).to(device),
             "label": torch.randint(0, 10, (BATCH,), generator=generator).to(device),
             "availability": torch.tensor([[True, True]] * (BATCH - 1) + [[True, False]]).to(device),
             "labelled": torch.ones(BATCH, dtype=torch.bool, device=device),
             "case": [f"case_{i}" for i in range(BATCH)]}
    step = [0]

    def train_iteration():
        output = method.training_step(batch, step[0])
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        step[0] += 1

    def test_iteration():
        with torch.inference_mode():
            method.predict_logits(batch["image"], batch["availability"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    method.train()
    train_times = timed(train_iteration, device)
    method.eval()
    test_times = timed(test_iteration, device)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = f"CPU ({platform.processor() or platform.machine()})"
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "threads": torch.get_num_threads(),
        "batch": BATCH, "iterations": ITERATIONS, "warmup": WARMUP,
        "train_s": statistics.mean(train_times), "train_s_std": statistics.stdev(train_times),
        "test_s": statistics.mean(test_times), "test_s_std": statistics.stdev(test_times),
        "parameters": sum(p.numel() for p in method.parameters()),
    }
    result["parameters_m"] = result["parameters"] / 1e6
    if device.type == "cuda":
        result["memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        result["memory_mib"] = rss_after
        result["memory_growth_mib"] = rss_after - rss_before
        result["memory_kind"] = "process peak RSS (ru_maxrss), growth over the measurement separately"
    return result


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": {"medgap": medgap.__version__, "torch": torch.__version__}}


def format_table(rows: dict) -> str:
    lines = [f"{'device':<34} {'train s/it':>11} {'test s/it':>10} {'memory MiB':>11} {'params M':>9}",
             "-" * 80]
    for name, row in rows.items():
        lines.append(f"{row['device'][:34]:<34} {row['train_s']:>11.4f} {row['test_s']:>10.4f} "
                     f"{row['memory_mib']:>11.0f} {row['parameters_m']:>9.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result = measure(device)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    rows = {key: value for key, value in previous.get("results", {}).items()}
    rows[device.type] = {**result, "machine": machine_info(),
                         "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(format_table({"paper": PAPER, **rows}))
    write_json(RESULTS, {"benchmark": "bench_shaspec_cls", "paper": PAPER, "results": rows})
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
