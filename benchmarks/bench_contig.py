"""ContIG pretraining throughput (images/s) on the CPU at batch 64: one full training step (forward, loss, backward,
Adam step) as the generic loop runs it, for ContIG (outer/inner, all modalities or PGS only) and the SimCLR
baseline, on 64×64 RGB fundus images of a small generated fundus-genetics cohort.

Backbones: ``cpu`` = the experiments' ResNet (widths 16–128, stride-2 stem), ``wide`` = widths 32–256, stride-1 stem.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_contig.py [--steps 5 --threads 1]``; prints a table and writes
``benchmarks/results/bench_contig.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import format_table, machine_info  # noqa: E402
from medgap.atomic import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_contig.json"
BACKBONES = {"cpu": {"method.backbone_widths": "[16, 32, 64, 128]", "method.stem_stride": 2},
             "wide": {"method.backbone_widths": "[32, 64, 128, 256]", "method.stem_stride": 1}}
VARIANTS = {
    "contig_outer_all": {"method.name": "contig"},
    "contig_inner_all": {"method.name": "contig", "method.aggregation": "inner"},
    "contig_outer_pgs": {"method.name": "contig", "method.modalities": "[pgs]"},
    "simclr": {"method.name": "simclr"},
}


def bench(dataset: Path, variant: str, backbone: str, steps: int, batch: int) -> dict:
    from medgap.config import load_config
    from medgap.data.cases import discover_cases
    from medgap.data.dataset_json import load_dataset_json
    from medgap.methods import build_method

    overrides = {"data.dataset_dir": str(dataset), "data.patch_size": "[64, 64]", **BACKBONES[backbone],
                 **VARIANTS[variant]}
    config = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
    spec = load_dataset_json(dataset)
    torch.manual_seed(0)
    method = build_method(config, spec).train()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3, weight_decay=1e-6)
    cases = [c.case_id for c in discover_cases(dataset, spec)]
    times = []
    for step in range(steps + 1):  # step 0 = warm-up
        chosen = [cases[(step * batch + i) % len(cases)] for i in range(batch)]
        batch_dict = {"image": torch.rand(batch, 3, 64, 64) * 255, "case": chosen,
                      "availability": torch.ones(batch, 3, dtype=torch.bool), "labelled": torch.ones(batch, dtype=torch.bool)}
        start = time.perf_counter()
        output = method.training_step(batch_dict, step)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"variant": variant, "backbone": backbone, "batch": batch, "step_s_median": round(seconds, 4),
            "images_per_s": round(batch / seconds, 1), "steps": steps,
            "parameters": sum(p.numel() for p in method.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from medgap.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        dataset = generate("fundus-genetics", Path(tmp) / "fg", cases=48, seed=0)
        rows = [bench(dataset, variant, backbone, args.steps, args.batch)
                for backbone in args.backbones for variant in VARIANTS]
    header = ["variant", "backbone", "batch", "step s (median)", "images/s", "parameters"]
    print(format_table(header, [[r["variant"], r["backbone"], r["batch"], r["step_s_median"], r["images_per_s"],
                                 r["parameters"]] for r in rows]))
    from importlib.metadata import version

    write_json(RESULTS, {"benchmark": "contig pretraining step, CPU", "threads": args.threads, "results": rows,
                         "machine": machine_info(**{name: version(name) for name in ("msprime", "captum", "bed-reader")})})


if __name__ == "__main__":
    main()
