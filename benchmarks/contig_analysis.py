"""Attributions and GWAS for ContIG on the synthetic fundus-genetics cohort, scored against the known truth.

Needs the pretraining runs of ``benchmarks/contig_table.py --only-pretrain``. Writes
``benchmarks/results/contig_analysis.json`` and plots under ``benchmarks/results/contig_plots/``.

- Attributions (ContIG all-modalities outer run): reference batch = validation individuals, explained people = test
  individuals, one image each; IG (50 steps), IG + noise tunnel, DeepLift; precision@k of causal SNPs/genes/PGS
  versus a random ranking.
- GWAS: encoder features (mean over a person's eyes) of ContIG, SimCLR and a random-init encoder → PCA(10) → INT →
  per-SNP regression on all common SNPs with 4 genotype PCs as covariates; loci at 5e-8 / Bonferroni / 1e-5 and the
  causal SNPs they recover; the true traits as a positive control. Individuals: the held-out (validation + test)
  people by default (``--gwas-individuals all`` adds the pretraining individuals, optimistic for ContIG which saw
  their genotypes).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/contig_analysis.py [--people 40] [--gwas-individuals heldout|all]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medgap.atomic import write_json  # noqa: E402

RUNS = ROOT / "runs" / "contig_table" / "pretrain"
OUT = ROOT / "benchmarks" / "results"


def load(run_dir: Path):
    from medgap.data.genetics import case_groups
    from medgap.data.pipeline import prepare_data
    from medgap.evaluation.evaluate import load_run_config, load_trained_method

    config = load_run_config(run_dir)
    data = prepare_data(config.data, config.trainer.seed, run_dir, write_splits=False)
    method = load_trained_method(run_dir, config, data.spec, "best")  # lowest validation contrastive loss
    groups = case_groups(config.data.dataset_dir, data.spec.genetics, list(data.cases))
    return config, data, method, groups


def one_image_per_person(data, config, split: str, groups: dict):
    from medgap.data.classification import whole_images

    chosen, seen = [], set()
    for case in data.split_cases(split):
        if groups[case.case_id] not in seen:
            seen.add(groups[case.case_id])
            chosen.append(case)
    images, _ = whole_images(chosen, config.data.patch_size)
    return chosen, images


@torch.no_grad()
def person_features(encoder, data, config, groups, splits) -> tuple[list[str], np.ndarray]:
    """Mean encoder feature over each person's images, for people in ``splits``."""
    from medgap.data.classification import whole_images

    encoder.eval()
    by_person: dict[str, list[np.ndarray]] = {}
    for split in splits:
        cases = data.split_cases(split)
        for start in range(0, len(cases), 128):
            chunk = cases[start:start + 128]
            images, _ = whole_images(chunk, config.data.patch_size)
            for case, feature in zip(chunk, encoder(images).numpy()):
                by_person.setdefault(groups[case.case_id], []).append(feature)
    people = sorted(by_person)
    return people, np.stack([np.mean(by_person[p], 0) for p in people])


def attributions(args, truth: dict, plots: Path) -> dict:
    from medgap.evaluation.attributions import (ALGORITHMS, global_importance, manhattan_importance_plot,
                                                precision_at_k, top_features_plot)

    config, data, method, groups = load(Path(args.contig_run))
    reference_cases, reference_images = one_image_per_person(data, config, "val", groups)
    people_cases, people_images = one_image_per_person(data, config, "test", groups)
    causal = {"raw_snps": {s for snps in truth["causal_snps"].values() for s in snps},
              "pgs": set(truth["true_pgs"]),
              "burden": {g for genes in truth["causal_genes"].values() for g in genes}}
    results = {}
    for m, modality in enumerate(method.modalities):
        names = (Path(config.data.dataset_dir) / "genetics" / f"{modality}.csv").open().readline().strip().split(",")[1:]
        ref_genetics, ref_present = method.tables.lookup([c.case_id for c in reference_cases])
        ppl_genetics, ppl_present = method.tables.lookup([c.case_id for c in people_cases])
        ref_rows, ppl_rows = ref_present[:, m], ppl_present[:, m]
        ppl_index = torch.nonzero(ppl_rows).flatten()[: args.people]
        results[modality] = {"features": len(names), "causal": len(causal[modality]),
                             "reference_people": int(ref_rows.sum()), "explained_people": len(ppl_index)}
        for algorithm in ALGORITHMS:
            importance = global_importance(method, modality, reference_images[ref_rows], ref_genetics[m][ref_rows],
                                           people_images[ppl_index], ppl_genetics[m][ppl_index], algorithm)
            ks = sorted({min(10, len(names)), len(causal[modality])})
            results[modality][algorithm] = {f"p@{k}": precision_at_k(importance, names, causal[modality], k) for k in ks}
            print(f"[attr] {modality} {algorithm}: {results[modality][algorithm]}", flush=True)
            if algorithm == "integrated_gradients":
                if modality == "raw_snps":
                    manhattan_importance_plot(names, importance, causal[modality], plots / "attr_snps_manhattan.png",
                                              "ContIG raw-SNP importance (IG, mean |attribution|)")
                else:
                    top_features_plot(names, importance, causal[modality], plots / f"attr_{modality}_top.png",
                                      title=f"ContIG {modality} importance (IG)")
    return results


def gwas(args, truth: dict, plots: Path) -> dict:
    from medgap.data.genetics import read_bed
    from medgap.evaluation.gwas import ancestry_pcs, gwas_summary, inverse_rank_normalise, manhattan_plot, \
        phenotypes_from_features
    from medgap.nets.encoders import ResNetEncoder

    config, data, contig, groups = load(Path(args.contig_run))
    _, _, simclr, _ = load(Path(args.simclr_run))
    torch.manual_seed(0)
    options = config.method
    random = ResNetEncoder(3, tuple(options.backbone_widths), options.backbone_blocks, options.input_scale,
                           options.stem_stride)
    splits = ("val", "test") if args.gwas_individuals == "heldout" else ("train", "val", "test")
    iid, sid, genotypes = read_bed(Path(config.data.dataset_dir) / "genetics_source" / "cohort.bed")
    chromosome = np.array([int(s[2:].split("_")[0]) for s in sid])
    position = np.array([int(s.split("_")[1]) for s in sid])
    causal = [(int(s[2:].split("_")[0]), int(s.split("_")[1])) for snps in truth["causal_snps"].values() for s in snps]
    results = {}
    for label, encoder in (("ContIG all, outer", contig.encoder), ("SimCLR", simclr.encoder), ("random init", random)):
        people, features = person_features(encoder, data, config, groups, splits)
        rows = [iid.tolist().index(p) for p in people]
        covariates = ancestry_pcs(genotypes[rows], 4)
        summary = gwas_summary(phenotypes_from_features(features), genotypes[rows], chromosome, position, causal,
                               covariates)
        manhattan_plot(chromosome, position, summary.pop("p"), plots / f"gwas_{label.split(',')[0].split()[0].lower()}.png",
                       title=f"GWAS on {label} image features (PCA 10, INT), n={len(people)}", causal=causal,
                       bonferroni=summary["bonferroni"])
        results[label] = {"individuals": len(people), **summary}
        print(f"[gwas] {label}: {results[label]}", flush=True)
    traits = np.column_stack([[truth["trait_values"][t][p] for p in people] for t in truth["traits"]])
    control = gwas_summary(inverse_rank_normalise(traits), genotypes[rows], chromosome, position, causal, covariates)
    control.pop("p")
    results["true traits (positive control)"] = {"individuals": len(people), **control}
    print(f"[gwas] true traits: {control}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=40, help="test people explained per modality")
    parser.add_argument("--gwas-individuals", choices=("heldout", "all"), default="heldout")
    parser.add_argument("--skip-attributions", action="store_true")
    parser.add_argument("--contig-run", default=str(RUNS / "contig_all__outer"))
    parser.add_argument("--simclr-run", default=str(RUNS / "simclr__image_only"))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from medgap.evaluation.evaluate import load_run_config

    out = Path(args.out)
    plots = out / "contig_plots"
    plots.mkdir(parents=True, exist_ok=True)
    dataset = Path(load_run_config(Path(args.contig_run)).data.dataset_dir)
    truth = json.loads((dataset / "genetics_source" / "truth.json").read_text())
    path = out / "contig_analysis.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if not args.skip_attributions:
        results["attributions"] = attributions(args, truth, plots)
        write_json(path, results)
    results[f"gwas_{args.gwas_individuals}"] = gwas(args, truth, plots)
    write_json(path, results)


if __name__ == "__main__":
    main()
