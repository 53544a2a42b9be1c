"""medgap's supervised U-Net against nnU-Net v2 at equal wall-clock training budgets, on the same cases.

Not part of ``make bench``: it installs nnU-Net v2 into its own virtual environment and trains for minutes to
hours. What it does, in order:

1. the venv (``--venv``, outside the repository by default): ``pip install torch==2.13.0`` first, then
   ``nnunetv2`` (whose dependency dynamic-network-architectures pulls timm → torchvision 0.29.1 → torch 2.14.1;
   pip takes both from the machine's wheel cache, so that venv ends with torch 2.14.1; the versions are recorded);
2. the data: ``medgap synth brain-tumour --cases N --seed S`` (nnU-Net v2's region-based layout already), and
   medgap's train/validation/test split of it (``configs/supervised_brain_tumour.yaml``, seed ``--seed``);
3. nnU-Net's raw dataset = medgap's train + validation cases (links; the test cases are held out of it, as they
   are of medgap's training), planned and preprocessed by nnU-Net itself (3d_fullres, ``--verify_dataset_integrity``),
   and ``splits_final.json`` with medgap's train/validation split as fold 0;
4. per budget: nnU-Net (``nnUNetv2_train ... 3d_fullres 0 -device cpu``) through a time-limited trainer this
   script registers in the venv (``nnUNetTrainer_medgapBudget<seconds>s``: nnU-Net's loop, stopped when the budget
   is spent, its poly learning rate taken over the budget's time instead of 1,000 epochs, no final validation
   pass), and medgap's rows (the demo config; + ``data.augmentation.nnunet``; + ``method.deep_supervision``), each
   with its poly schedule over as many steps as a short calibration run says fit in the budget and stopped on the
   clock like nnU-Net (``trainer.max_minutes`` = the budget, counted from the first step; validations count);
5. both predict the held-out test cases (each tool's defaults: nnU-Net ``checkpoint_final`` with mirroring,
   medgap ``best.pt`` picked on the validation cases) and ``medgap.metrics`` scores both (``medgap score``: WT/TC/ET
   Dice and HD95);
6. a table on stdout, ``benchmarks/results/bench_vs_nnunet.json`` (machine, load, versions, per-row wall times,
   start and end times), and its README section via ``python benchmarks/readme.py``. The JSON keeps an earlier run's
   rows of other (budget, pipeline) pairs on the same cases and test split (``--replace`` starts afresh), so the
   budgets can be measured in separate sittings, e.g. ``--budgets 20 --pipelines nnU-Net medgap``.

Run (a quiet machine; ~4.5 h for 5 + 20 + 60 min):
    python benchmarks/bench_vs_nnunet.py --budgets 5 20 60
Smoke test (minutes; marks the JSON ``"smoke": true``):
    python benchmarks/bench_vs_nnunet.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, utc_now  # noqa: E402

from medgap.atomic import write_json  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bench_vs_nnunet.json"
CONFIG = REPO / "configs" / "supervised_brain_tumour.yaml"
CACHE = Path.home() / ".cache" / "medgap"
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_MedgapBrainTumour"
# medgap rows: name → overrides on top of the demo config
MEDGAP_ROWS = {
    "medgap": [],
    "medgap + nnU-Net augmentation": ["data.augmentation.nnunet=true"],
    "medgap + deep supervision": ["method.deep_supervision=true"],
}
TRAINER_FILE = "nnunetv2/training/nnUNetTrainer/variants/medgap_budget.py"

# The time-limited trainer this script writes into the venv (one class per budget: nnU-Net finds trainers by name).
TRAINER_SOURCE = '''"""Written by medgap's benchmarks/bench_vs_nnunet.py: nnU-Net's training loop stopped after a wall-clock budget."""
from time import perf_counter

import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class _MedgapBudget(nnUNetTrainer):
    budget_s = 0.0

    def on_train_start(self):
        super().on_train_start()
        self._started = perf_counter()

    def _spent(self):
        return (perf_counter() - self._started) / self.budget_s

    def train_step(self, batch):
        self.medgap_iterations = getattr(self, "medgap_iterations", 0) + 1
        # nnU-Net's poly schedule (exponent 0.9), over the budget's time instead of num_epochs
        for group in self.optimizer.param_groups:
            group["lr"] = self.initial_lr * max(1.0 - self._spent(), 0.0) ** 0.9
        return super().train_step(batch)

    def run_training(self):
        self.on_train_start()
        for epoch in range(self.current_epoch, self.num_epochs):
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = []
            for _ in range(self.num_iterations_per_epoch):
                outputs.append(self.train_step(next(self.dataloader_train)))
                if self._spent() >= 1:
                    break
            self.on_train_epoch_end(outputs)
            if self._spent() >= 1:  # the budget ends mid-epoch: no validation pass after it
                break
            with torch.no_grad():
                self.on_validation_epoch_start()
                val_outputs = [self.validation_step(next(self.dataloader_val))
                               for _ in range(self.num_val_iterations_per_epoch)]
                self.on_validation_epoch_end(val_outputs)
            self.on_epoch_end()
            if self._spent() >= 1:
                break
        self.print_to_log_file(f"medgap budget: {self.budget_s:.0f} s spent after "
                               f"{getattr(self, 'medgap_iterations', 0)} iterations")
        self.on_train_end()

    def perform_actual_validation(self, save_probabilities=False):
        pass  # the benchmark scores the held-out test cases itself
'''


def run(command: list[str], log: Path, env: dict | None = None) -> float:
    """Run ``command`` with its output appended to ``log``; raise with the log's tail if it fails. Seconds."""
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(map(str, command))}\n")
        out.flush()
        code = subprocess.call([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})})
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"{command[0]} failed ({code}); {log}:\n{tail}")
    return time.perf_counter() - start


def ensure_venv(venv: Path, log: Path) -> dict:
    """nnU-Net's venv: torch 2.13.0 first, then nnunetv2; returns the installed versions."""
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", venv], log)
    probe = [python, "-c", "import nnunetv2"]
    if subprocess.call([str(c) for c in probe], stderr=subprocess.DEVNULL) != 0:
        run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"], log)
        run([python, "-m", "pip", "install", "--quiet", "nnunetv2"], log)
    versions = subprocess.check_output([str(python), "-c", (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('nnunetv2', 'torch', 'torchvision', 'batchgeneratorsv2', 'dynamic_network_architectures')}))")], text=True)
    return json.loads(versions)


def install_trainers(venv: Path, budgets_s: list[int]) -> None:
    site = next((venv / "lib").glob("python3*/site-packages"))
    classes = "".join(f"\n\nclass nnUNetTrainer_medgapBudget{b}s(_MedgapBudget):\n    budget_s = {b}.0\n"
                      for b in budgets_s)
    (site / TRAINER_FILE).write_text(TRAINER_SOURCE + classes)


def medgap_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medgap.cli", *args]


def prepare_cases(work: Path, cases: int, seed: int, log: Path) -> tuple[Path, dict]:
    """The synthetic dataset and medgap's split of it (the demo config's fractions and ``seed``)."""
    from medgap.config import load_config
    from medgap.data.pipeline import prepare_data

    data = work / f"brain_tumour_{cases}cases_seed{seed}"  # one folder per dataset: --exist-ok reuses it
    run(medgap_cli("synth", "brain-tumour", str(data), "--cases", str(cases), "--seed", str(seed), "--exist-ok"),
        log)
    config = load_config(CONFIG, [f"data.dataset_dir={data}", f"trainer.seed={seed}"])
    split_run = work / f"split_{data.name}"  # prepare_data reuses a run folder's splits.json
    split_run.mkdir(exist_ok=True)
    splits = prepare_data(config.data, seed, split_run, only_splits=("test",)).splits
    return data, splits


def link_cases(source: Path, target: Path, case_ids: list[str], pattern: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for case_id in case_ids:
        for path in sorted(source.glob(pattern.format(case=case_id))):
            (target / path.name).symlink_to(path.resolve())


def nnunet_dataset(work: Path, data: Path, splits: dict) -> dict[str, Path]:
    """nnU-Net's raw/preprocessed/results folders: train + validation cases in imagesTr, the test cases apart."""
    roots = {name: work / f"nnUNet_{name}" for name in ("raw", "preprocessed", "results")}
    raw = roots["raw"] / DATASET_NAME
    for folder in (raw, work / "test"):  # links to an earlier run's dataset
        if folder.exists():
            shutil.rmtree(folder)
    development = splits["train"] + splits["val"]
    link_cases(data / "imagesTr", raw / "imagesTr", development, "{case}_[0-9][0-9][0-9][0-9].nii.gz")
    link_cases(data / "labelsTr", raw / "labelsTr", development, "{case}.nii.gz")
    spec = json.loads((data / "dataset.json").read_text())
    spec["numTraining"] = len(development)
    (raw / "dataset.json").write_text(json.dumps(spec, indent=2))
    for name in ("images", "labels"):
        link_cases(data / f"{name}Tr", work / "test" / name, splits["test"],
                   "{case}_[0-9][0-9][0-9][0-9].nii.gz" if name == "images" else "{case}.nii.gz")
    for folder in roots.values():
        folder.mkdir(parents=True, exist_ok=True)
    return roots


def nnunet_env(roots: dict[str, Path], threads: int) -> dict:
    return {"nnUNet_raw": str(roots["raw"]), "nnUNet_preprocessed": str(roots["preprocessed"]),
            "nnUNet_results": str(roots["results"]), "nnUNet_n_proc_DA": str(threads),
            "nnUNet_compile": "false", "OMP_NUM_THREADS": str(threads)}


def nnunet_plan(venv: Path, roots: dict[str, Path], splits: dict, threads: int, log: Path) -> dict:
    """nnU-Net's own planning and preprocessing; then medgap's split as fold 0. Returns the 3d_fullres plan."""
    env = nnunet_env(roots, threads)
    preprocessed = roots["preprocessed"] / DATASET_NAME
    if preprocessed.exists():  # nnU-Net would reuse another dataset's fingerprint
        shutil.rmtree(preprocessed)
    seconds = run([venv / "bin" / "nnUNetv2_plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres",
                   "--verify_dataset_integrity", "-npfp", threads, "-np", threads], log, env)
    write_json(preprocessed / "splits_final.json", [{"train": splits["train"], "val": splits["val"]}])
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    full = plans["configurations"]["3d_fullres"]
    return {"patch_size": full["patch_size"], "batch_size": full["batch_size"],
            "features": full["architecture"]["arch_kwargs"]["features_per_stage"],
            "spacing": full["spacing"], "plan_and_preprocess_s": round(seconds, 1)}


def nnunet_row(venv: Path, roots: dict[str, Path], work: Path, budget_s: int, threads: int, tta: bool,
               log: Path) -> dict:
    env = nnunet_env(roots, threads)
    trainer = f"nnUNetTrainer_medgapBudget{budget_s}s"
    output = roots["results"] / DATASET_NAME / f"{trainer}__nnUNetPlans__3d_fullres"
    if output.exists():
        shutil.rmtree(output)
    train_s = run([venv / "bin" / "nnUNetv2_train", DATASET_ID, "3d_fullres", "0", "-tr", trainer, "-device", "cpu"],
                  log, env)
    iterations = _nnunet_iterations(output / "fold_0")
    predictions = work / "predictions" / f"nnunet_{budget_s}s"
    if predictions.exists():
        shutil.rmtree(predictions)
    predict_s = run([venv / "bin" / "nnUNetv2_predict", "-i", work / "test" / "images", "-o", predictions,
                     "-d", DATASET_ID, "-c", "3d_fullres", "-f", "0", "-tr", trainer, "-chk", "checkpoint_final.pth",
                     "-device", "cpu", "-npp", 1, "-nps", 1, *([] if tta else ["--disable_tta"])], log, env)
    return {"train_wall_s": round(train_s, 1), "steps": iterations, "predict_wall_s": round(predict_s, 1),
            "predictions": predictions}


def _nnunet_iterations(fold: Path) -> int | None:
    """Training iterations done, from the line the budget trainer writes into nnU-Net's log."""
    logs = sorted(fold.glob("training_log_*.txt"))
    text = logs[-1].read_text(errors="replace") if logs else ""
    line = next((line for line in text.splitlines() if "medgap budget:" in line), "")
    return int(line.split("after")[1].split()[0]) if line else None


def medgap_row(name: str, overrides: list[str], data: Path, work: Path, budget_s: int, seed: int, threads: int,
               calibration_steps: int, log: Path) -> dict:
    """Calibrate the step time, then train as many steps as fit in the budget (validating 3 times, as the demo),
    stopped by ``trainer.max_minutes`` if the calibration was optimistic."""
    slug = name.replace(" + ", "_").replace(" ", "_").replace("-", "").lower()
    base = [f"data.dataset_dir={data}", f"trainer.seed={seed}", "trainer.progress=false",
            f"data.num_workers={threads}", *overrides]
    calibration = work / "runs" / f"{slug}_calibration"
    wall = run(medgap_cli("train", str(CONFIG), *base, f"trainer.max_steps={calibration_steps}",
                          f"trainer.val_every={calibration_steps}", "trainer.log_every=1",
                          "--run-dir", str(calibration), "--overwrite"), log, {"OMP_NUM_THREADS": str(threads)})
    rows = [json.loads(line) for line in (calibration / "metrics.jsonl").read_text().splitlines() if line.strip()]
    elapsed = {row["step"]: row["elapsed_s"] for row in rows if "elapsed_s" in row and "loss" in row}
    steps = sorted(elapsed)
    step_s = statistics.median(elapsed[b] - elapsed[a] for a, b in zip(steps[2:], steps[3:]))
    fixed_s = max(wall - step_s * calibration_steps, 0.0)  # start-up + one validation (+ the first steps' extra)
    max_steps = max(int((budget_s - 3 * fixed_s) / step_s), calibration_steps)
    run_dir = work / "runs" / f"{slug}_{budget_s}s"
    train_s = run(medgap_cli("train", str(CONFIG), *base, f"trainer.max_steps={max_steps}",
                             f"trainer.val_every={max(max_steps // 3, 1)}",
                             f"trainer.checkpoint_every={max(max_steps // 3, 1)}",
                             f"trainer.max_minutes={budget_s / 60}",
                             "--run-dir", str(run_dir), "--overwrite"), log, {"OMP_NUM_THREADS": str(threads)})
    predictions = work / "predictions" / f"{slug}_{budget_s}s"
    predict_s = run(medgap_cli("predict", str(run_dir), str(work / "test" / "images"), str(predictions),
                               "--overwrite"), log, {"OMP_NUM_THREADS": str(threads)})
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"train_wall_s": round(train_s, 1), "steps": summary["steps"], "max_steps": max_steps,
            "stopped_by": summary["stopped_by"], "calibrated_step_s": round(step_s, 3),
            "predict_wall_s": round(predict_s, 1), "predictions": predictions,
            "split": json.loads((run_dir / "splits.json").read_text())}


def score(predictions: Path, work: Path, data: Path) -> dict:
    """WT/TC/ET Dice and HD95 (mm) over the test cases, from ``medgap.evaluation.score.score_folder``."""
    from medgap.evaluation.score import score_folder

    result = score_folder(predictions, work / "test" / "labels", data, out_dir=predictions / "score")
    aggregated = json.loads(Path(result["paths"]["json"]).read_text())["aggregated"]
    return {"cases": result["cases"], "aggregated": aggregated}


def table(rows: list[dict]) -> str:
    """One line per (budget, pipeline): wall time of the whole training command, start-up included (and its ratio
    to the budget, which both tools' training loops keep), steps, Dice (%) and HD95 (mm) per region (WT, TC, ET),
    and when the row finished (rows of separate sittings ran at the shared machine's speed of their day)."""
    structures = [entry["structure"] for entry in rows[0]["scores"]["aggregated"]] if rows else []
    header = ["budget (min)", "pipeline", "train wall (s)", "× budget", "steps", *(f"{s} Dice" for s in structures),
              *(f"{s} HD95" for s in structures), "finished (UTC)"]
    cells = []
    for row in rows:
        by_structure = {entry["structure"]: entry for entry in row["scores"]["aggregated"]}
        dice = [by_structure.get(s, {}).get("dice") for s in structures]
        hd95 = [by_structure.get(s, {}).get("hd95") for s in structures]
        cells.append([f"{row['budget_s'] / 60:g}", row["pipeline"], f"{row['train_wall_s']:.0f}",
                      f"{row['train_wall_s'] / row['budget_s']:.2f}",
                      "–" if row.get("steps") is None else str(row["steps"]),
                      *("–" if v is None or v != v else f"{100 * v:.1f}" for v in dice),
                      *("–" if v is None or v != v else f"{v:.1f}" for v in hd95),
                      row.get("finished_at", "")[:16].replace("T", " ")])
    return markdown_table(header, cells)


def merged_rows(path: Path, dataset: dict, new_rows: list[dict]) -> list[dict]:
    """``new_rows`` plus the rows of an earlier (non-smoke) run on the same cases and test split whose (budget,
    pipeline) this run did not redo, ordered by budget then pipeline: a 20-minute run keeps the 5-minute rows."""
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    if earlier.get("smoke") or earlier.get("dataset") != dataset:
        return new_rows
    redone = {(row["budget_s"], row["pipeline"]) for row in new_rows}
    kept = [row for row in earlier.get("rows", []) if (row["budget_s"], row["pipeline"]) not in redone]
    order = ["nnU-Net", *MEDGAP_ROWS]
    return sorted(kept + new_rows, key=lambda row: (row["budget_s"], order.index(row["pipeline"])
                                                    if row["pipeline"] in order else len(order)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[5, 20, 60], help="training minutes per row")
    parser.add_argument("--cases", type=int, default=36, help="medgap synth brain-tumour --cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--venv", type=Path, default=CACHE / "nnunet-venv", help="nnU-Net's virtual environment")
    parser.add_argument("--work", type=Path, default=CACHE / "bench_vs_nnunet", help="data, runs and predictions")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and loader workers of both tools")
    parser.add_argument("--pipelines", nargs="+", default=["nnU-Net", *MEDGAP_ROWS],
                        choices=["nnU-Net", *MEDGAP_ROWS])
    parser.add_argument("--no-tta", action="store_true", help="nnU-Net predicts without mirroring (faster)")
    parser.add_argument("--calibration-steps", type=int, default=12)
    parser.add_argument("--smoke", action="store_true",
                        help="prove the path end to end: 12 cases, 1-minute budgets, no mirroring, 6 calibration "
                             "steps; the JSON is marked as a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--replace", action="store_true",
                        help="start the JSON afresh instead of keeping its rows of other (budget, pipeline) pairs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.cases, args.budgets, args.no_tta, args.calibration_steps = 12, [1], True, 6
    budgets_s = [int(round(60 * minutes)) for minutes in args.budgets]
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "bench.log"
    print(f"log: {log}", flush=True)
    load_before = os.getloadavg()

    versions = ensure_venv(args.venv, log)
    install_trainers(args.venv, budgets_s)
    data, splits = prepare_cases(args.work, args.cases, args.seed, log)
    roots = nnunet_dataset(args.work, data, splits)
    plan = nnunet_plan(args.venv, roots, splits, args.threads, log) if "nnU-Net" in args.pipelines else None
    rows = []
    for budget_s in budgets_s:
        for pipeline in args.pipelines:
            print(f"{budget_s / 60:g} min: {pipeline} ...", flush=True)
            load, started = os.getloadavg(), utc_now()
            if pipeline == "nnU-Net":
                row = nnunet_row(args.venv, roots, args.work, budget_s, args.threads, not args.no_tta, log)
            else:
                row = medgap_row(pipeline, MEDGAP_ROWS[pipeline], data, args.work, budget_s, args.seed,
                                 args.threads, args.calibration_steps, log)
                if {k: sorted(v) for k, v in row.pop("split").items() if k in ("train", "val", "test")} != \
                        {k: sorted(splits[k]) for k in ("train", "val", "test")}:
                    raise SystemExit(f"{pipeline}: medgap's run used another split than nnU-Net's")
            row.update(pipeline=pipeline, budget_s=budget_s, load_average_at_start=load, started_at=started,
                       finished_at=utc_now(),
                       scores=score(row["predictions"], args.work, data))
            row["predictions"] = str(row["predictions"].relative_to(args.work))  # under --work
            rows.append(row)
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    dataset = {"generator": "brain-tumour", "cases": args.cases, "seed": args.seed,
               "split_sizes": {k: len(splits[k]) for k in ("train", "val", "test")}, "test": splits["test"]}
    if not (args.replace or args.smoke):
        rows = merged_rows(args.out, dataset, rows)
    markdown = table(rows)
    title = "SMOKE RUN (tiny budget and data: proves the path, not a comparison)" if args.smoke else ""
    result = {
        "smoke": args.smoke,
        "machine": machine_info(**{f"nnunet_venv_{k}": v for k, v in versions.items()}),
        "load_average_before": load_before,
        "threads": args.threads,
        "dataset": dataset,
        "nnunet_plan": plan, "nnunet_tta": not args.no_tta, "budgets_s": sorted({row["budget_s"] for row in rows}),
        "rows": rows,
        "table_markdown": (f"**{title}**\n\n" if title else "") + markdown,
    }
    write_json(args.out, result)
    print(("\n" + title if title else "") + "\n" + markdown)
    print(textwrap.fill(f"nnU-Net plan: {plan}", 115) if plan else "")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
