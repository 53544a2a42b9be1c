"""Sliding-window prediction of one BraTS-sized case (4 × 240×240×155): seconds, peak memory, and throughput
relative to calling ``monai.inferers.sliding_window_inference`` directly with the same windows.

Each measurement runs in its own subprocess so its peak resident memory (``ru_maxrss``) is its own. Ours
(``medgap.inference.sliding_window.predict_probabilities``) stitches on the CPU under ``inference_mode``; the
reference is MONAI's inferer under ``no_grad`` with the same ROI, overlap, Gaussian blending and window batch.
Memory should stay bounded as the window batch grows: the stitching buffer is one volume × outputs.

Run: ``python benchmarks/bench_inference.py [--roi 128] [--repeats 1]``; writes
``benchmarks/results/bench_inference.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
SHAPE = (4, 240, 240, 155)


def build_model(name: str):
    """A method object as inference sees it, for a 4-channel BraTS-like dataset with WT/TC/ET regions."""
    from pathlib import Path as _Path

    from medgap.config import load_config
    from medgap.data.dataset_json import parse_dataset_json
    from medgap.methods import build_method

    spec = parse_dataset_json({
        "channel_names": {"0": "FLAIR", "1": "T1", "2": "T1c", "3": "T2"}, "file_ending": ".nii.gz",
        "labels": {"background": 0, "necrotic": 1, "edema": 2, "enhancing": 4},
        "regions": {"WT": [1, 2, 4], "TC": [1, 4], "ET": [4]}}, _Path("dataset.json"))
    torch.manual_seed(0)
    config = load_config(None, [f"method.name={name}", "data.patch_size=[128,128,128]"])
    return build_method(config, spec).eval()


def worker(model_name: str, engine: str, roi: int, overlap: float, sw_batch: int) -> dict:
    from monai.inferers import sliding_window_inference

    from medgap.inference.sliding_window import predict_probabilities

    method = build_model(model_name)
    image = torch.from_numpy(np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32))
    availability = torch.ones(SHAPE[0], dtype=torch.bool)
    start = time.perf_counter()
    if engine == "medgap":
        output = predict_probabilities(method, image, availability, [roi] * 3, overlap=overlap, mode="gaussian",
                                       sw_batch_size=sw_batch)
    else:
        with torch.no_grad():
            output = sliding_window_inference(
                image[None], [roi] * 3, sw_batch, lambda x: torch.sigmoid(method.predict_logits(
                    x, availability.expand(x.shape[0], -1))), overlap=overlap, mode="gaussian")[0]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "output_shape": list(output.shape), "output_mib": output.numel() * 4 / 2**20}


def measure(model, engine, roi, overlap, sw_batch) -> dict:
    command = [sys.executable, __file__, "--worker", model, engine, str(roi), str(overlap), str(sw_batch)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roi", type=int, default=128)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--models", nargs="+", default=["supervised"])
    parser.add_argument("--sw-batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, engine, roi, overlap, sw_batch = args.worker
        print(json.dumps(worker(model, engine, int(roi), float(overlap), int(sw_batch))))
        return
    from medgap.atomic import write_json

    rows, results = [], []
    for model in args.models:
        for sw_batch in args.sw_batches:
            ours = measure(model, "medgap", args.roi, args.overlap, sw_batch)
            reference = measure(model, "monai", args.roi, args.overlap, sw_batch)
            ratio = reference["seconds"] / ours["seconds"]
            results.append({"model": model, "sw_batch_size": sw_batch, "medgap": ours, "monai": reference,
                            "throughput_vs_monai": ratio})
            rows.append([model, sw_batch, f"{ours['seconds']:.1f}", f"{reference['seconds']:.1f}", f"{ratio:.2f}x",
                         f"{ours['peak_rss_mib']:.0f}", f"{reference['peak_rss_mib']:.0f}"])
    table = format_table(["model", "windows/batch", "medgap s", "MONAI s", "throughput", "medgap peak MiB",
                          "MONAI peak MiB"], rows)
    print(f"one case {SHAPE}, ROI {args.roi}^3, overlap {args.overlap}, Gaussian blending, CPU")
    print(table)
    write_json(args.out, {"benchmark": "bench_inference", "machine": machine_info(), "shape": SHAPE,
                          "roi": args.roi, "overlap": args.overlap, "results": results, "table": table})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
