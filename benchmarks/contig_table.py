"""ContIG's downstream table on the synthetic fundus-genetics cohort (CPU scale), resumable.

1. ``medgap synth fundus-genetics data/fundus_genetics`` (600 individuals) and one split by individual, written to
   the dataset folder's ``splits.json`` so pretraining and every downstream run share train/val/test (label
   fractions are re-drawn per seed inside the training part).
2. Pretraining: SimCLR, ContIG (all modalities, outer / inner), ContIG with each single modality.
3. Downstream grading (fine-tune and linear probe) at label fractions for each initialisation and seed; test-split
   quadratic-weighted kappa and accuracy over the whole split from the ``best.pt`` (validation kappa) checkpoint.

Runs already finished (``summary.json`` present) are reused. Usage::

    OMP_NUM_THREADS=1 python benchmarks/contig_table.py [--pretrain-steps 300] [--downstream-steps 150] \
        [--seeds 0 1] [--fractions 0.01 0.1 1.0] [--modes finetune linear] [--only-pretrain]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medgap.atomic import write_json, write_text  # noqa: E402
from medgap.config import load_config  # noqa: E402
from medgap.training.loop import train  # noqa: E402

DATA = ROOT / "data" / "fundus_genetics"
RUNS = ROOT / "runs" / "contig_table"
PRETRAINING = {  # label → (config, overrides)
    "SimCLR (image only)": ("simclr_fundus.yaml", []),
    "ContIG all, outer": ("contig_fundus.yaml", []),
    "ContIG all, inner": ("contig_fundus_inner.yaml", []),
    "ContIG raw SNPs": ("contig_fundus.yaml", ["method.modalities=[raw_snps]"]),
    "ContIG PGS": ("contig_fundus.yaml", ["method.modalities=[pgs]"]),
    "ContIG burden": ("contig_fundus.yaml", ["method.modalities=[burden]"]),
}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def ensure_dataset(individuals: int) -> None:
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.genetics import case_groups
    from medgap.data.cases import discover_cases
    from medgap.data.splits import make_splits
    from medgap.data.synthetic import generate

    generate("fundus-genetics", DATA, cases=individuals, seed=0, exist_ok=True)
    if not (DATA / "splits.json").is_file():
        spec = load_dataset_json(DATA)
        cases = [c.case_id for c in discover_cases(DATA, spec)]
        splits = make_splits(cases, set(cases), seed=0, val_fraction=0.1, test_fraction=0.2,
                             groups=case_groups(DATA, spec.genetics, cases))
        write_json(DATA / "splits.json", splits)


def run(config_name: str, overrides: list[str], run_dir: Path) -> Path:
    if (run_dir / "summary.json").is_file():
        return run_dir
    config = load_config(ROOT / "configs" / config_name,
                         [f"data.dataset_dir={DATA}", "trainer.progress=false", *overrides])
    print(f"[train] {run_dir.name}: {' '.join(overrides)}", flush=True)
    train(config, run_dir, overwrite=True)
    return run_dir


@torch.no_grad()
def test_scores(run_dir: Path) -> dict:
    from medgap.data.pipeline import prepare_data
    from medgap.evaluation.evaluate import load_run_config, load_trained_method

    config = load_run_config(run_dir)
    data = prepare_data(config.data, config.trainer.seed, run_dir, write_splits=False, only_splits=("test",))
    method = load_trained_method(run_dir, config, data.spec, "best")
    return method.validation_scores(data, config, None, split="test")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--individuals", type=int, default=600)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--downstream-steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--modes", nargs="+", default=["finetune", "linear"])
    parser.add_argument("--inits", nargs="+", default=None, help="subset of initialisation labels")
    parser.add_argument("--only-pretrain", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ensure_dataset(args.individuals)
    pretrained = {"Random init": None}
    for label, (config_name, overrides) in PRETRAINING.items():
        if args.inits and label not in args.inits:
            continue
        pretrained[label] = run(config_name, [f"trainer.max_steps={args.pretrain_steps}",
                                              f"trainer.val_every={args.pretrain_steps // 3}",
                                              f"trainer.checkpoint_every={args.pretrain_steps // 3}", *overrides],
                                RUNS / "pretrain" / slug(label))
    if args.only_pretrain:
        return
    results_path = ROOT / "benchmarks" / "results" / "contig_table.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for mode in args.modes:
        for fraction in args.fractions:
            for label, source in pretrained.items():
                if args.inits and label not in args.inits:
                    continue
                for seed in args.seeds:
                    key = f"{mode}|{fraction}|{label}|{seed}"
                    if key in results:
                        continue
                    run_dir = RUNS / "downstream" / f"{mode}_{fraction}_{slug(label)}_s{seed}"
                    # best.pt = lowest validation contrastive loss (ContIG overfits the 420 training people late)
                    overrides = [f"method.pretrained={'null' if source is None else source}",
                                 "method.pretrained_checkpoint=best",
                                 f"method.linear_probe={'true' if mode == 'linear' else 'false'}",
                                 f"data.labelled_ratio={fraction}", f"trainer.seed={seed}",
                                 f"trainer.max_steps={args.downstream_steps}",
                                 f"trainer.val_every={max(args.downstream_steps // 3, 1)}",
                                 f"trainer.checkpoint_every={max(args.downstream_steps // 3, 1)}"]
                    if mode == "linear":
                        overrides.append("optim.lr=0.003")
                    run("contig_fundus_downstream.yaml", overrides, run_dir)
                    results[key] = test_scores(run_dir)
                    # merge with what a concurrent invocation (other inits) wrote meanwhile
                    merged = json.loads(results_path.read_text()) if results_path.is_file() else {}
                    results = {**merged, **results}
                    write_json(results_path, results)
                    print(f"[test] {key}: {results[key]}", flush=True)
    results = {**(json.loads(results_path.read_text()) if results_path.is_file() else {}), **results}
    write_text(ROOT / "benchmarks" / "results" / "contig_table.md", table(results))
    print(table(results))


def table(results: dict) -> str:
    """Rows = initialisation, columns = (mode, fraction): test kappa mean ± std over seeds (accuracy below)."""
    import numpy as np

    rows: dict[str, dict[tuple, list]] = {}
    for key, scores in results.items():
        mode, fraction, label, _ = key.split("|")
        rows.setdefault(label, {}).setdefault((mode, float(fraction)), []).append(scores)
    columns = sorted({c for r in rows.values() for c in r}, key=lambda c: (c[0] != "finetune", c[1]))
    header = "| initialisation | " + " | ".join(f"{m} {f:g}" for m, f in columns) + " |"
    lines = ["Test quadratic-weighted kappa (accuracy), mean ± std over seeds, fundus-genetics grading", "",
             header, "|" + "---|" * (len(columns) + 1)]
    order = ["Random init", *PRETRAINING]
    for label in [l for l in order if l in rows]:
        cells = []
        for column in columns:
            values = rows[label].get(column, [])
            if not values:
                cells.append("–")
                continue
            kappa = np.array([v["kappa"] for v in values])
            accuracy = np.array([v["accuracy"] for v in values])
            cells.append(f"{kappa.mean():.3f} ± {kappa.std():.3f} ({accuracy.mean():.2f}, n={len(values)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
