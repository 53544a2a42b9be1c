"""Write ``benchmarks/README.md`` from the latest ``benchmarks/results/bench_*.json``: what each benchmark measures,
its target, the table its script printed (``table_markdown``) and the machine it was measured on.

Run: ``python benchmarks/readme.py`` (``make bench`` runs it after the benchmarks); nothing is measured here.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# script → (title, what it measures, target); the order of the README
BENCHMARKS = {
    "bench_metrics": (
        "Surface metrics: HD95 + ASD vs medpy and MONAI",
        "Values and wall time of HD95 + ASD from `medgap.metrics.surface_distance_metrics`, medpy "
        "(`hd95` + `asd`) and MONAI on tumour-like blobs at 128³ and BraTS size (240×240×155), isotropic and "
        "anisotropic spacing, plus a worst case whose foreground spans the array (no cropping possible). The "
        "three are interleaved per repeat; medians.",
        "≥ 3× faster than medpy on the blob cases, values equal to medpy's (and MONAI's with its HD95 definition)."),
    "bench_overhead": (
        "Generic training loop vs bare PyTorch",
        "The supervised 3-D U-Net of `configs/supervised_brain_tumour.yaml`, same batches, optimiser, schedule "
        "and clipping: a bare `for batch in batches` loop vs `medgap.training.loop.train` (Fabric, two-stream "
        "loader in the training process so reading counts as overhead, logging every step, checks); runs "
        "alternate and the overhead is the median of the ratios within each pair (the machine drifts by ±20 % "
        "between runs). Also the loader alone with its default workers, per batch.",
        "loop overhead ≤ 5 %; loader time per batch < step time."),
    "bench_inference": (
        "Sliding-window inference of one case (BraTS-sized unless the title names a shape)",
        "`medgap.inference.sliding_window.predict_probabilities` on one 4×240×240×155 case (ROI 128³, overlap "
        "0.5, Gaussian blending) with the U-Net (supervised) and ShaSpec, against "
        "`monai.inferers.sliding_window_inference` with the same windows; seconds per case and peak resident "
        "memory, each run in its own process. ShaSpec (minutes per case on a CPU) is not re-run by `make bench`: "
        "`--models supervised shaspec` or `--full` runs it; its last result is kept, with its date. Engines "
        "alternate; the throughput ratio is the geometric mean of the ratios within each repeat. ShaSpec against "
        "the U-Net: models interleaved per repeat, per case (CPU seconds of the single-threaded process; "
        "`--shape 4x160x160x128` is one batch of four 128³ windows, minutes instead of an hour) and per window "
        "(`--windows SIZE`: one subset, and the 15 subsets of Table 1 as before — eight encoders per subset — and "
        "now, each window encoded once).",
        "throughput vs MONAI ≥ 1.0×; memory bounded as the window batch grows; ShaSpec ≤ 4× the U-Net per case."),
    "bench_train_step": (
        "Training step per method",
        "ms per step (forward with every loss term, backward, optimiser step, EMA update), peak memory and "
        "parameters of every method, built from its `configs/*.yaml` exactly as `medgap train` builds it, on "
        "random batches shaped like the loader's, at our CPU defaults and at the papers' shapes. Official rows "
        "that take minutes per step on a CPU are skipped by default (`--full` runs them; their last measurement "
        "is kept). Also: Mean Teacher and SS-Net over the supervised step at the same shapes (on the CPU in process "
        "CPU time per step, which the machine's other tenants do not inflate; `--repeats N` runs the rows in "
        "rotation), SS-Net's prototype loss on a voxel sample (`max_voxels`) against all voxels, and ShaSpec "
        "classification at batch 4 against the paper's computational table.",
        "SS-Net ≤ 3× the supervised step with as many images (L+U); ShaSpec cls compared with the paper's "
        "0.0257 s train / 0.0016 s test / 1421 MiB / 0.22 M on an RTX 3090."),
    "bench_vs_nnunet": (
        "Supervised segmentation vs nnU-Net v2 at equal wall-clock budgets",
        "`medgap synth brain-tumour --cases 36 --seed 0`, medgap's train/validation/test split (nnU-Net gets the "
        "same train/validation split as its fold 0 in `splits_final.json`; the test cases are held out of both). "
        "nnU-Net v2 plans and preprocesses the dataset itself (3d_fullres) and trains on the CPU through a "
        "time-limited trainer (its loop stopped at the budget, its poly learning rate over the budget's time); "
        "medgap trains its demo config, with nnU-Net's augmentation (`data.augmentation.nnunet`) and with deep "
        "supervision (`method.deep_supervision`), its poly schedule over as many steps as a calibration run says fit "
        "the budget and its loop stopped on the clock like nnU-Net's (`trainer.max_minutes`). Both "
        "predict the test cases (nnU-Net with its mirroring unless `--no-tta`) and `medgap score` scores both: "
        "Dice (%) and HD95 (mm) per BraTS region. Not part of `make bench`: it installs nnU-Net into its own "
        "virtual environment and runs for hours (`python benchmarks/bench_vs_nnunet.py --budgets 5 20 60`); "
        "budgets measured in separate sittings are merged, each row keeping its start and end times and load "
        "average in the JSON (the machine line below is the latest sitting's). `× budget`: the training command's "
        "wall time (start-up included) over the budget, which both training loops keep. Compare rows of one sitting "
        "(`finished`): the shared machine's speed changes between sittings, as the steps of one pipeline show.",
        "medgap ahead of nnU-Net at every budget up to an hour on the CPU (issue 22)."),
    "bench_reproduce": (
        "Where a reproduction's minutes go",
        "`medgap reproduce PAPER --jobs 2` split by phase (worker start-up, data generation, preprocessing, setup, "
        "training steps, validation, checkpoints, test evaluation, metrics, plots, GWAS, attributions), from the "
        "seconds each run records in its `reproduce.json`, summed over a paper's runs (worker-minutes). The quick "
        "default trains every run at `--budget tiny`; the `small` profile (`--budget small --runs representative "
        "--steps-fraction 0.2`, not part of `make bench`) trains one run of each kind for a fifth of its steps and "
        "extrapolates by the step and plan counts. `spawn` rows start a fresh interpreter per run (medgap before "
        "issue 22), `fork` rows fork the workers after the imports; measured in turn, outputs compared. The second "
        "table puts each paper's `small` cost before and after issue 22 side by side, with the share of the training "
        "steps and the speed-up they bound. Each entry keeps its date and load until re-measured.",
        "≥ 2× less wall time for the same runs at `small`, outputs identical; where training steps dominate, "
        "the table shows the bound."),
}

HEADER = """# Benchmarks

Speed and memory of medgap's hot paths, each measured by one script that prints Markdown tables and writes
`results/<script>.json` (with the machine, the load average and the table). This file is generated by
`python benchmarks/readme.py` from those JSON files: edit the scripts or `readme.py`, not the tables.

## How to run

```bash
make bench                                       # every CPU benchmark in its default (quick) mode, then this README
python benchmarks/bench_train_step.py            # one script; --help lists its options
python benchmarks/bench_train_step.py --full     # + the official-shape rows that take minutes per step on a CPU
python benchmarks/bench_train_step.py --rows la/ss_net/official la/supervised_2/official   # a selection
python benchmarks/bench_train_step.py --device cuda --precision bf16-mixed --compile       # on a GPU
make bench-gpu                                   # on a GPU: the papers' shapes in fp32 / bf16 / bf16 + compile, inference ± bf16
python benchmarks/bench_inference.py --models supervised shaspec   # + ShaSpec (minutes per case on a CPU)
python benchmarks/bench_vs_nnunet.py --budgets 5 20 60   # vs nnU-Net v2 (not in make bench: installs it, hours)
python benchmarks/readme.py                      # rebuild this file from results/*.json
```

`make bench` must stay under 15 minutes on 2 CPU cores, so it skips what takes minutes per step or per case
(the official-shape training rows, ShaSpec inference); those keep their last measurement, shown with its date.
The numbers below come from a shared machine whose other tenants load the cores (the load average is recorded
with each table): compare ratios measured within one run (medgap vs medpy, SS-Net vs supervised), not absolute
times across runs. `bench_train_step.py` and `bench_overhead.py` use one torch thread by default (with more
threads than idle cores, small steps become many times slower); `bench_metrics.py` and `bench_inference.py` use
torch's default. On a GPU (`--device cuda`; `bench_train_step.py --precision bf16-mixed --compile`,
`bench_inference.py --amp`) each setting writes its own `results/<script>_<setting>.json` and gets its own section
below, with the device recorded; none is shown until one has been measured.
"""


def machine_line(result: dict) -> str:
    machine = result.get("machine", {})
    cpus = machine.get("cpus_usable") or machine.get("cpu_count")
    parts = [machine.get("gpu") or f"CPU {machine.get('processor', '?')}, {cpus} cores usable",
             machine.get("platform", ""), f"torch {machine.get('versions', {}).get('torch', '?')}"]
    threads = result.get("threads") or machine.get("torch_threads")
    if threads:
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''}")
    load = machine.get("load_average")
    if load:
        parts.append("load average " + " / ".join(f"{value:.1f}" for value in load) + " (1 / 5 / 15 min)")
    if machine.get("measured_at"):
        parts.append(f"measured {machine['measured_at']}")
    return textwrap.fill("Machine: " + "; ".join(part for part in parts if part) + ".", 115)


def describe(name: str) -> tuple[str, str, str, str]:
    """(script, title, what, target) of a results file: ``bench_x`` or a setting of it, ``bench_x_<setting>``
    (e.g. ``bench_train_step_cuda_bf16-mixed_compiled``)."""
    if name in BENCHMARKS:
        return (name, *BENCHMARKS[name])
    script = next((base for base in BENCHMARKS if name.startswith(base + "_")), None)
    if script is None:
        return name, name, "", ""
    title, what, target = BENCHMARKS[script]
    return script, f"{title} ({name[len(script) + 1:]})", what, target


def section(name: str, result: dict | None) -> str:
    script, title, what, target = describe(name)
    lines = [f"## {title} — `{script}.py`", "", textwrap.fill(what, 115), "",
             textwrap.fill(f"**Target:** {target}", 115), ""]
    if result is None:
        lines.append(f"_Not measured yet: run `python benchmarks/{name}.py`._")
    else:
        lines += [result.get("table_markdown", "_(no table stored)_"), "", machine_line(result)]
    return "\n".join(lines)


def build() -> str:
    found = {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("bench_*.json"))}
    names = list(BENCHMARKS) + [name for name in found if name not in BENCHMARKS]
    return "\n\n".join([HEADER.strip(), *(section(name, found.get(name)) for name in names)]) + "\n"


def main() -> None:
    (HERE / "README.md").write_text(build(), encoding="utf-8")
    print(f"wrote {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
