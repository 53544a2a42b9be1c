"""HD95 + ASD: medgap vs medpy vs MONAI — do the values agree, and how long does each take?

Random tumour-like blobs (an ellipsoid roughened by smoothed noise; prediction and GT drawn from related
noise) at 128^3 and 240x240x155 (BraTS), with isotropic and anisotropic spacing, plus one "whole array"
case whose foreground spans the array, where cropping cannot help (the worst case for our speed-up).

Timed per case (median of ``--repeats`` runs, the three methods interleaved in each, all in one process):
- ours:  ``surface_distance_metrics(pred, gt, spacing)`` (HD95 medpy definition + ASD in one call);
- medpy: ``medpy.metric.binary.hd95(...)`` + ``medpy.metric.binary.asd(...)``;
- MONAI: ``compute_hausdorff_distance(percentile=95)`` + ``compute_average_surface_distance()``.
Agreement: ours (definition "medpy") vs medpy, and ours (definition "monai") vs MONAI, max |difference| in mm.

Run: ``python benchmarks/bench_metrics.py [--repeats 3]``; prints a table and writes
``benchmarks/results/bench_metrics.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy
import torch
from medpy.metric import binary as medpy_binary
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table  # noqa: E402

from medgap.atomic import write_json
from medgap.metrics import surface_distance_metrics
from medgap.metrics.surface import joint_bounding_box

RESULTS = Path(__file__).resolve().parent / "results" / "bench_metrics.json"
SPEEDUP_TARGET = 3.0

# (name, shape, spacing, blob radius as a fraction of the shape; None = foreground spans the whole array)
CASES = [
    ("128^3 iso", (128, 128, 128), (1.0, 1.0, 1.0), 0.22),
    ("128^3 aniso", (128, 128, 128), (0.9375, 0.9375, 3.0), 0.22),
    ("BraTS iso", (240, 240, 155), (1.0, 1.0, 1.0), 0.15),
    ("BraTS aniso", (240, 240, 155), (0.9375, 0.9375, 3.0), 0.15),
    ("128^3 whole array", (128, 128, 128), (1.0, 1.0, 1.0), None),
]


def blob_pair(shape, radius_fraction, seed=0):
    """Prediction and GT masks: a centred ellipsoid roughened by smoothed noise, the two sharing half the noise."""
    rng = np.random.default_rng(seed)
    smooth = lambda: ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 4.0)  # noqa: E731
    common, own = smooth(), smooth()
    if radius_fraction is None:  # texture everywhere: the joint bounding box is the whole array
        return (common + own) > 0, common > 0
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    inside = 1.0 - sum(((g - s / 2) / (radius_fraction * s)) ** 2 for g, s in zip(grid, shape))
    return (inside + 40 * (common + own)) > 0.3, (inside + 40 * common) > 0.3


def interleaved_medians(methods, repeats):
    """Median wall and CPU seconds per method, timing the methods in turn within each repeat.

    Interleaving keeps a burst of load from other processes (a shared 2-core machine) from landing on one
    method only; CPU time (this process) is recorded too, as it is far less sensitive to such load.
    """
    wall = {name: [] for name in methods}
    cpu = {name: [] for name in methods}
    values = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            values[name] = fn()
            cpu[name].append(time.process_time() - cpu_start)
            wall[name].append(time.perf_counter() - wall_start)
    median = lambda table: {name: statistics.median(times) for name, times in table.items()}  # noqa: E731
    return median(wall), median(cpu), values


def ours(pred, gt, spacing):
    values = surface_distance_metrics(pred, gt, spacing)
    return values["hd95"], values["asd"]


def medpy(pred, gt, spacing):
    return medpy_binary.hd95(pred, gt, voxelspacing=spacing), medpy_binary.asd(pred, gt, voxelspacing=spacing)


def monai(pred, gt, spacing):
    y_pred, y = (torch.from_numpy(mask)[None, None].float() for mask in (pred, gt))
    hd = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
    mean = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=False, spacing=spacing)
    return float(hd), float(mean)


def run_case(name, shape, spacing, radius_fraction, repeats):
    pred, gt = blob_pair(shape, radius_fraction)
    box = joint_bounding_box(pred, gt)
    box_fraction = float(np.prod([s.stop - s.start for s in box]) / np.prod(shape))
    methods = {
        "ours": lambda: ours(pred, gt, spacing),
        "medpy": lambda: medpy(pred, gt, spacing),
        "monai": lambda: monai(pred, gt, spacing),
    }
    wall, cpu, values = interleaved_medians(methods, repeats)
    (hd_ours, asd_ours), (hd_medpy, asd_medpy) = values["ours"], values["medpy"]
    hd_monai, asd_monai = values["monai"]
    ours_monai = surface_distance_metrics(pred, gt, spacing, hd95_definition="monai")
    return {
        "case": name,
        "shape": list(shape),
        "spacing": list(spacing),
        "voxels_pred": int(pred.sum()),
        "voxels_gt": int(gt.sum()),
        "box_fraction": box_fraction,
        "values": {
            "ours": {"hd95": hd_ours, "asd": asd_ours, "hd95_monai_definition": ours_monai["hd95"]},
            "medpy": {"hd95": hd_medpy, "asd": asd_medpy},
            "monai": {"hd95": hd_monai, "asd": asd_monai},
        },
        "max_abs_diff_vs_medpy": max(abs(hd_ours - hd_medpy), abs(asd_ours - asd_medpy)),
        "max_abs_diff_vs_monai": max(abs(ours_monai["hd95"] - hd_monai), abs(ours_monai["asd"] - asd_monai)),
        "seconds": wall,
        "cpu_seconds": cpu,
        "speedup_vs_medpy": wall["medpy"] / wall["ours"],
        "speedup_vs_monai": wall["monai"] / wall["ours"],
        "cpu_speedup_vs_medpy": cpu["medpy"] / cpu["ours"],
    }


def versions():
    import medpy as medpy_package
    import monai as monai_package

    return {"scipy": scipy.__version__, "medpy": getattr(medpy_package, "__version__", "unknown"),
            "monai": monai_package.__version__}


def format_table(rows):
    """The Markdown table the script prints and stores as ``table_markdown``."""
    cells = []
    for r in rows:
        v, s = r["values"], r["seconds"]
        cells.append([
            r["case"], f"{r['box_fraction']:.0%}",
            f"{v['ours']['hd95']:.3f} / {v['medpy']['hd95']:.3f} / {v['monai']['hd95']:.3f}",
            f"{v['ours']['asd']:.3f} / {v['medpy']['asd']:.3f} / {v['monai']['asd']:.3f}",
            f"{r['max_abs_diff_vs_medpy']:.1e}", f"{r['max_abs_diff_vs_monai']:.1e}", f"{1e3 * s['ours']:.1f}",
            f"{1e3 * s['medpy']:.1f}", f"{1e3 * s['monai']:.1f}", f"{r['speedup_vs_medpy']:.1f}x",
            f"{r['speedup_vs_monai']:.1f}x", f"{r['cpu_speedup_vs_medpy']:.1f}x"])
    table = markdown_table(["case", "box", "HD95 ours / medpy / MONAI (mm)", "ASD ours / medpy / MONAI (mm)",
                            "\\|d\\| medpy", "\\|d\\| MONAI", "ours ms", "medpy ms", "MONAI ms", "x medpy",
                            "x MONAI", "x medpy (CPU time)"], cells)
    return table + (
        "\n\nbox = joint bounding box / array volume. |d| = max abs difference of HD95 and ASD between ours (medpy "
        "definition) and medpy, and ours (MONAI definition) and MONAI; MONAI's HD95 is the max of the directed 95th "
        "percentiles. ms = median wall time of HD95 + ASD, methods interleaved per repeat; x = speed-up of ours "
        "(wall time; process CPU time)."
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method and case (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own deprecation notices, once per call
        rows = [run_case(*case, repeats=args.repeats) for case in CASES]
    table = format_table(rows)
    print(table)
    cropped = [r["speedup_vs_medpy"] for r in rows if r["box_fraction"] < 1.0]
    summary = {
        "target_speedup_vs_medpy": SPEEDUP_TARGET,
        "min_speedup_vs_medpy_cropped_cases": min(cropped),
        "target_met_on_cropped_cases": min(cropped) >= SPEEDUP_TARGET,
        "speedup_vs_medpy_whole_array": [r["speedup_vs_medpy"] for r in rows if r["box_fraction"] >= 1.0],
        "max_abs_diff_vs_medpy": max(r["max_abs_diff_vs_medpy"] for r in rows),
        "max_abs_diff_vs_monai": max(r["max_abs_diff_vs_monai"] for r in rows),
        "total_seconds": time.perf_counter() - started,
    }
    print(
        f"speed-up vs medpy: min {summary['min_speedup_vs_medpy_cropped_cases']:.1f}x on blob cases "
        f"(target {SPEEDUP_TARGET:.0f}x: {'met' if summary['target_met_on_cropped_cases'] else 'NOT met'}); "
        f"whole-array case {', '.join(f'{x:.1f}x' for x in summary['speedup_vs_medpy_whole_array'])}; "
        f"total {summary['total_seconds']:.0f} s"
    )
    write_json(
        args.out,
        {"benchmark": "bench_metrics", "repeats": args.repeats, "machine": machine_info(**versions()), "summary": summary,
         "cases": rows, "table_markdown": table},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
