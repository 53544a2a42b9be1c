"""Sliding-window prediction of one BraTS-sized case (4 × 240×240×155): seconds, peak memory, and throughput
relative to calling ``monai.inferers.sliding_window_inference`` directly with the same windows.

Each measurement runs in its own subprocess so its peak resident memory (``ru_maxrss``) is its own. Ours
(``medgap.inference.sliding_window.predict_probabilities``) stitches on the CPU under ``inference_mode``; the
reference is MONAI's inferer under ``no_grad`` with the same ROI, overlap, Gaussian blending and window batch.
Memory should stay bounded as the window batch grows: the stitching buffer is one volume × outputs. Ours drives
MONAI's inferer (windows on the model's device, stitching on the CPU), so the ratio measures what our wrapper
costs or saves around the same network: about 1.0x is the expectation, the network's forward passes dominate.
Engines run interleaved, ``--repeats`` times each; the throughput ratio is the geometric mean of the ratios within
each repeat (adjacent runs share the machine's load; single runs on a shared machine drift by 20 %), and the
seconds shown are the median run's.

By default (``make bench``) the U-Net (supervised) runs through both engines at 4 windows per batch; ShaSpec
(several minutes per case on 2 CPU cores) runs with ``--models supervised shaspec`` (ours only; add
``--monai-models supervised shaspec`` for MONAI too) or ``--full`` (every model, both engines, 1 and 4 windows).
Pairs not measured in a run keep their last result in the JSON and the table, marked with its date.

ShaSpec against the U-Net: the models are interleaved within each repeat; with one thread the per-case ratio is
taken on the worker's CPU seconds (what other tenants of a shared machine do not inflate). ``--shape 4x160x160x128``
times a smaller case (one batch of four 128³ windows: minutes, not an hour; its own JSON). ``--windows SIZE`` also
times single windows in CPU seconds: U-Net and ShaSpec with every modality, and ShaSpec's 15 subsets as before
(eight encoders per subset) and now (each window encoded once); ``--no-cases`` times only those.

Run: ``python benchmarks/bench_inference.py [--models supervised shaspec] [--sw-batches 1 4] [--full]
[--threads N] [--repeats N] [--shape CxHxWxD] [--windows SIZE [--no-cases]]``; writes
``benchmarks/results/bench_inference[_<shape>].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, utc_now  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
SHAPE = (4, 240, 240, 155)
TARGET_THROUGHPUT = 1.0
MODEL_NAMES = {"supervised": "U-Net (supervised)", "shaspec": "ShaSpec"}


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


def worker(model_name: str, engine: str, roi: int, overlap: float, sw_batch: int, threads: int,
           device_name: str = "cpu", amp: bool = False, shape: tuple[int, ...] = SHAPE) -> dict:
    """One case through one engine. On a GPU the windows run there: ours stitches on the CPU (the input stays
    there); MONAI gets the input on the GPU, as its users call it, so it stitches there too."""
    from monai.inferers import sliding_window_inference

    from medgap.inference.sliding_window import predict_probabilities

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    method = build_model(model_name).to(device)
    image = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    availability = torch.ones(shape[0], dtype=torch.bool)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    with autocast:
        if engine == "medgap":
            output = predict_probabilities(method, image, availability, [roi] * 3, overlap=overlap, mode="gaussian",
                                           sw_batch_size=sw_batch, device=device)
        else:
            with torch.no_grad():
                present = availability.to(device)
                output = sliding_window_inference(
                    image[None].to(device), [roi] * 3, sw_batch, lambda x: torch.sigmoid(method.predict_logits(
                        x, present.expand(x.shape[0], -1))), overlap=overlap, mode="gaussian")[0]
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "output_shape": list(output.shape), "output_mib": output.numel() * 4 / 2**20}
    if cuda:
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def window_timings(size: int, repeats: int, threads: int) -> dict:
    """CPU seconds per window ``(1, 4, size³)`` in this process, tasks interleaved per repeat (medians): the U-Net and
    ShaSpec with every modality, and ShaSpec's 15 modality subsets (Table 1) computed as before (each subset from
    its zero-filled input through all eight encoders) and as now (each modality encoded once, then Eq. 4 and the
    decoder per subset: :meth:`ShaSpecSegmentation.predict_subsets_logits`)."""
    from medgap.evaluation.subsets import all_subsets

    if threads:
        torch.set_num_threads(threads)
    unet, shaspec = build_model("supervised"), build_model("shaspec")
    image = torch.randn(1, 4, size, size, size, generator=torch.Generator().manual_seed(0))
    every = torch.ones(1, 4, dtype=torch.bool)
    subsets = torch.tensor(all_subsets(4))
    encoder = shaspec.encoder

    def subsets_before():
        for subset in subsets:
            availability = subset[None]
            features = encoder.encode(image * availability[..., None, None, None])
            shaspec.decode(encoder.substitute(features, availability), availability)

    tasks = {"unet": lambda: unet.predict_logits(image, every),
             "shaspec": lambda: shaspec.predict_logits(image, every),
             "shaspec_15_subsets_before": subsets_before,
             "shaspec_15_subsets": lambda: shaspec.predict_subsets_logits(image, subsets)}
    times = {name: [] for name in tasks}
    with torch.inference_mode():
        for task in tasks.values():  # warm-up
            task()
        for _ in range(repeats):
            for name, task in tasks.items():
                start = time.process_time()  # CPU seconds: the work done, whatever else runs on the machine
                task()
                times[name].append(time.process_time() - start)
    seconds = {name: float(np.median(values)) for name, values in times.items()}
    return {"size": size, "repeats": repeats, "threads": torch.get_num_threads(), "seconds": seconds,
            "load_average_1min": os.getloadavg()[0],
            "seconds_per_repeat": times, "measured_at": utc_now()}


def window_table(windows: dict) -> str:
    seconds = windows["seconds"]
    unet = seconds["unet"]
    rows = [["U-Net (supervised), all modalities", f"{unet:.2f}", "1.00x", ""],
            ["ShaSpec, all modalities", f"{seconds['shaspec']:.2f}", f"{seconds['shaspec'] / unet:.2f}x",
             "8 encoder passes + decoder"],
            ["ShaSpec, 15 subsets as before", f"{seconds['shaspec_15_subsets_before']:.2f}",
             f"{seconds['shaspec_15_subsets_before'] / unet:.2f}x", "8 encoders + decoder per subset"],
            ["ShaSpec, 15 subsets now", f"{seconds['shaspec_15_subsets']:.2f}",
             f"{seconds['shaspec_15_subsets'] / unet:.2f}x",
             f"8 encoders once + 15 decoders: "
             f"{seconds['shaspec_15_subsets_before'] / seconds['shaspec_15_subsets']:.2f}x faster than before"]]
    load = f", load average {windows['load_average_1min']:.1f}" if "load_average_1min" in windows else ""
    return (f"Per window (1 x 4 x {windows['size']}^3, {windows['threads']} torch thread(s), median of "
            f"{windows['repeats']} interleaved repeats, measured {windows['measured_at'][:10]}{load}):\n\n"
            + markdown_table(["what", "CPU s/window", "vs U-Net", "note"], rows))


def measure(model, engine, roi, overlap, sw_batch, args) -> dict:
    command = [sys.executable, __file__, "--worker", model, engine, str(roi), str(overlap), str(sw_batch),
               str(args.threads), args.device, str(int(args.amp)), "x".join(map(str, args.shape))]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roi", type=int, default=128)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--models", nargs="+", default=["supervised"], choices=list(MODEL_NAMES))
    parser.add_argument("--monai-models", nargs="*", default=None,
                        help="models also run through MONAI's inferer (default: the U-Net; the engines differ, "
                             "not the networks)")
    parser.add_argument("--sw-batches", nargs="+", type=int, default=[4])
    parser.add_argument("--full", action="store_true", help="every model through both engines, 1 and 4 windows")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default 0 = torch's: every core)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements per engine, interleaved (ratio: geometric mean of the per-repeat ratios)")
    parser.add_argument("--device", default="cpu", help="where the windows run: cpu | cuda")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast around both engines")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON (default results/bench_inference.json; on a GPU bench_inference_<device>[_bf16].json)")
    parser.add_argument("--windows", type=int, default=None, metavar="SIZE",
                        help="also time single windows of SIZE^3 (U-Net vs ShaSpec, ShaSpec's 15 subsets before/now)")
    parser.add_argument("--cases", action=argparse.BooleanOptionalAction, default=True,
                        help="measure whole cases (default); --no-cases with --windows times windows only")
    parser.add_argument("--shape", type=lambda text: tuple(int(v) for v in text.split("x")), default=SHAPE,
                        help="the case, CxHxWxD (default 4x240x240x155, BraTS; e.g. 4x160x160x128: one batch of 4 "
                             "windows of 128^3, for a per-case ratio within minutes)")
    parser.add_argument("--worker", nargs=9, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, engine, roi, overlap, sw_batch, threads, device, amp, shape = args.worker
        print(json.dumps(worker(model, engine, int(roi), float(overlap), int(sw_batch), int(threads), device,
                                bool(int(amp)), tuple(int(v) for v in shape.split("x")))))
        return
    if args.out is None:
        setting = ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}{'_bf16' if args.amp else ''}") + (
            "" if args.shape == SHAPE else f"_{'x'.join(map(str, args.shape))}")
        args.out = RESULTS.with_name(f"bench_inference{setting}.json")
    from medgap.atomic import write_json

    if args.full:
        args.models, args.monai_models, args.sw_batches = list(MODEL_NAMES), list(MODEL_NAMES), [1, 4]
    monai_models = ["supervised"] if args.monai_models is None else args.monai_models
    measured_at = utc_now()
    results = {}
    engines = {model: ["medgap", "monai"] if model in monai_models else ["medgap"] for model in args.models}
    runs = {(model, sw_batch, engine): [] for model in args.models for sw_batch in args.sw_batches
            for engine in engines[model]}
    # Models and engines interleaved per repeat: load drifts hit all alike.
    for _ in range(args.repeats if args.cases else 0):
        for sw_batch in args.sw_batches:
            for model in args.models:
                for engine in engines[model]:
                    runs[model, sw_batch, engine].append(measure(model, engine, args.roi, args.overlap, sw_batch,
                                                                 args))
    for model in args.models if args.cases else []:
        for sw_batch in args.sw_batches:
            ours = runs[model, sw_batch, "medgap"]
            result = {"model": model, "sw_batch_size": sw_batch, "medgap": median_run(ours),
                      "measured_at": measured_at, "repeats": args.repeats}
            if "monai" in engines[model]:
                reference = runs[model, sw_batch, "monai"]
                ratios = [m["seconds"] / o["seconds"] for o, m in zip(ours, reference)]
                result.update(monai=median_run(reference), throughput_vs_monai=float(np.exp(np.mean(np.log(ratios)))),
                              throughput_vs_monai_per_repeat=ratios)
            if model != "supervised" and "supervised" in args.models:
                # Per case over the U-Net's: CPU seconds of the process when single-threaded (the work done, which
                # other tenants of the machine do not inflate), else wall seconds.
                timing = "cpu_seconds" if args.threads == 1 and args.device == "cpu" else "seconds"
                ratios = [o[timing] / u[timing] for o, u in zip(ours, runs["supervised", sw_batch, "medgap"])]
                result.update(vs_unet=float(np.exp(np.mean(np.log(ratios)))), vs_unet_per_repeat=ratios,
                              vs_unet_timing=timing)
            results[model, sw_batch] = result
    # Model × window-batch pairs not measured now (ShaSpec by default: minutes per case) keep their last result.
    for earlier in earlier_results(args.out, args.roi, args.overlap, args.shape):
        results.setdefault((earlier["model"], earlier["sw_batch_size"]), {**earlier, "earlier": True})
    results = [results[key] for key in sorted(results, key=lambda key: (list(MODEL_NAMES).index(key[0]), key[1]))]
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    windows = window_timings(args.windows, args.repeats, args.threads) if args.windows else previous.get("windows")
    # --no-cases: the case table stays as measured (its note describes that run's settings).
    cases_table = format_table(results, args) if args.cases else previous.get(
        "cases_table_markdown", previous.get("table_markdown", ""))
    table = cases_table + (f"\n\n{window_table(windows)}" if windows else "")
    print(table)
    write_json(args.out, {"benchmark": "bench_inference", "machine": machine_info(), "shape": args.shape,
                          "device": args.device, "amp": args.amp,
                          "roi": args.roi, "overlap": args.overlap, "threads": args.threads or torch.get_num_threads(),
                          "results": results, "windows": windows, "cases_table_markdown": cases_table,
                          "table_markdown": table})
    print(f"wrote {args.out}")


def median_run(runs: list[dict]) -> dict:
    """The run with the median time (the lower middle one for an even count), with every time kept."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "seconds_per_repeat": [run["seconds"] for run in runs]}


def earlier_results(path: Path, roi: int, overlap: float, shape: tuple[int, ...]) -> list[dict]:
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    if previous.get("roi") != roi or previous.get("overlap") != overlap or previous.get("shape") != list(shape):
        return []
    return [result for result in previous.get("results", []) if "measured_at" in result]


def _ratio_cell(result: dict) -> str:
    per_repeat = result.get("throughput_vs_monai_per_repeat", [])
    spread = f" ({', '.join(f'{r:.2f}' for r in per_repeat)})" if len(per_repeat) > 1 else ""
    return f"{result['throughput_vs_monai']:.2f}x{spread}"


def format_table(results: list[dict], args) -> str:
    cuda = getattr(args, "device", "cpu") != "cpu"
    rows = []
    for result in results:
        ours, reference = result["medgap"], result.get("monai")
        note = f"earlier run, {result['measured_at'][:10]}" if result.get("earlier") else ""
        gpu = [f"{ours['peak_gpu_mib']:.0f}", f"{reference['peak_gpu_mib']:.0f}" if reference else "–"] if cuda else []
        vs_unet = result.get("vs_unet")
        spread = result.get("vs_unet_per_repeat", [])
        rows.append([MODEL_NAMES[result["model"]], result["sw_batch_size"], f"{ours['seconds']:.1f}",
                     f"{vs_unet:.2f}x" + (f" ({', '.join(f'{r:.2f}' for r in spread)})" if len(spread) > 1 else "")
                     + (" CPU time" if result.get("vs_unet_timing") == "cpu_seconds" else "") if vs_unet else "–",
                     f"{reference['seconds']:.1f}" if reference else "–",
                     _ratio_cell(result) if reference else "–", *gpu, f"{ours['peak_rss_mib']:.0f}",
                     f"{reference['peak_rss_mib']:.0f}" if reference else "–", note])
    ratios = [result["throughput_vs_monai"] for result in results
              if "throughput_vs_monai" in result and not result.get("earlier")]
    verdict = (f" Throughput vs MONAI (this run) min {min(ratios):.2f}x (target >= {TARGET_THROUGHPUT:.1f}x: "
               f"{'met' if min(ratios) >= TARGET_THROUGHPUT else 'NOT met'}).") if ratios else ""
    repeats = [r for result in results if not result.get("earlier")
               for r in result.get("throughput_vs_monai_per_repeat", [])]
    if repeats and min(repeats) < TARGET_THROUGHPUT < max(repeats):
        verdict += (f" Single repeats range {min(repeats):.2f}-{max(repeats):.2f}x: the engines are equal within this "
                    f"machine's noise (ours drives MONAI's inferer; the network's forward passes dominate).")
    gpu_columns = ["medgap GPU peak MiB", "MONAI GPU peak MiB"] if cuda else []
    where = (f"windows on {args.device}{' under bf16 autocast' if args.amp else ''} (ours stitches on the CPU, MONAI "
             f"on the GPU); GPU peak = torch.cuda.max_memory_allocated, " if cuda else "CPU, ")
    return markdown_table(["model", "windows/batch", "medgap s/case", "s/case vs U-Net", "MONAI s/case",
                           "throughput vs MONAI",
                           *gpu_columns, "medgap peak MiB", "MONAI peak MiB", "note"], rows) + (
        f"\n\n{args.repeats} interleaved run(s) per model and engine: seconds of the median run; throughput and "
        f"the ratio to the U-Net = geometric mean of the per-repeat ratios (in brackets). "
        f"One case {'x'.join(map(str, args.shape))}, "
        f"ROI {args.roi}^3, overlap {args.overlap}, Gaussian blending, "
        f"{where}{args.threads or torch.get_num_threads()} torch thread(s); peak = resident memory of the process; "
        f"MONAI runs the same network through `sliding_window_inference`. ShaSpec (minutes per case on a CPU) runs "
        f"with `--models supervised shaspec` or `--full`.{verdict}")


if __name__ == "__main__":
    main()
