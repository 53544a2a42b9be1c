"""ContIG's Table 1 (downstream grading at label fractions), its attribution and GWAS analyses in miniature on the
synthetic ``fundus-genetics`` cohort, where the causal SNPs, genes and PGS are known.

1. One split by individual (70/10/20, seed 0) written to the dataset folder's ``splits.json``, so every pretraining
   and downstream run shares train/val/test and no test person is seen in pretraining (label fractions are re-drawn
   per downstream seed inside train).
2. Pretraining: SimCLR (image only), ContIG with all modalities (outer and inner aggregation) and with each single
   modality; ``best.pt`` = lowest validation contrastive loss.
3. Downstream: fine-tuning of each initialisation (and of a random init) at 1 / 10 / 100 % of the training labels;
   ordinal head; ``best.pt`` by validation kappa; test quadratic-weighted kappa. Paired t-tests pair test images by
   (seed, image) on the squared grade error, the per-image quantity quadratic kappa penalises.
4. Per pretraining run: a ridge probe of the frozen features for the hidden traits (what the encoder learnt), a GWAS
   on its image features (PCA 10 → INT → per-SNP regression with 4 genotype PCs) against the causal loci, and for
   ContIG (all, outer) attributions (IG, IG + noise tunnel, DeepLift) scored by precision@k of causal features.
"""

from __future__ import annotations

import json
import math
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import torch

from medgap.data.synthetic import generate
from medgap.evaluation.references import Reference, SanityCheck, classical_reference
from medgap.evaluation.reports import markdown_table, p_value_cell
from medgap.metrics.stats import Comparison, case_scores, compare
from medgap.reproduce.runner import Claim, Context, Report, Run

# initialisation key: (label, pretraining config, overrides); None = random init (no pretraining)
INITS = {
    "random": ("random init", None, {}),
    "simclr": ("SimCLR (image only)", "simclr_fundus.yaml", {}),
    "contig_outer": ("ContIG all, outer", "contig_fundus.yaml", {}),
    "contig_inner": ("ContIG all, inner", "contig_fundus_inner.yaml", {}),
    "contig_raw_snps": ("ContIG raw SNPs only", "contig_fundus.yaml", {"method.modalities": ["raw_snps"]}),
    "contig_pgs": ("ContIG PGS only", "contig_fundus.yaml", {"method.modalities": ["pgs"]}),
    "contig_burden": ("ContIG burden only", "contig_fundus.yaml", {"method.modalities": ["burden"]}),
    # Positive control: the "genetics" is each person's true vessel value, the trait the grade depends on; what the
    # mechanism gives on this data when the other modality determines the image property exactly.
    "contig_oracle": ("ContIG oracle: true vessel (positive control)", "contig_fundus.yaml",
                      {"method.modalities": ["oracle_vessel"], "method.genetic_dropout": 0.0,  # one exact value:
                       "method.genetic_weight_decay": 0.0}),  # nothing to memorise, dropout would erase it
}
SINGLE = ("contig_raw_snps", "contig_pgs", "contig_burden")
PROBED = ("random", "simclr", "contig_outer", "contig_inner", "contig_oracle")  # the linear-probe table's rows
GRADE_TRAIT = "vessel"  # the genetic trait the grade depends on: the per-modality genetic R² is reported for it
PROBE_LR = 0.01  # a linear head on frozen features needs a larger step than fine-tuning's 3e-4
FRACTIONS = (0.01, 0.1, 1.0)
# The encoder after the whole pretraining schedule, as the paper (a fixed ~100 epochs), for fine-tuning, probes and
# the analyses. The lowest validation contrastive loss (best.pt) came at step 100 of 300 for ContIG on 600 people
# (it overfits their genetics) and fine-tuned from there to validation kappa 0.25 vs 0.56 from the last step
# (seed 0, 100 % labels); SimCLR's best is its last step.
PRETRAINED_CHECKPOINT = "last"
TRAITS = ("disc", "vessel", "pigment")  # probe targets: the genetic traits, then the non-genetic eye-level ones
PROBES = (*TRAITS, "lesions", "grade")

BUDGETS = {
    "tiny": {"seeds": 1, "pretrain_seeds": 1, "individuals": 40, "pretrain_steps": 3, "downstream_steps": 3,
             "batch": 16, "downstream_batch": 8, "widths": [4, 8, 16, 32], "attribution_people": 2,
             "attribution_steps": 4,
             "options": {"image_size": 32, "chromosomes": 2, "chromosome_length": 4e5, "every_k": 2,
                         "causal_snps": (4, 4, 2)}},
    # 3 downstream seeds on the whole test split; one pretraining per pretraining seed (issue 17)
    "small": {"seeds": 3, "pretrain_seeds": 1, "individuals": 1500, "pretrain_steps": 300, "downstream_steps": 100,
              "batch": 64, "downstream_batch": 32, "widths": [16, 32, 64, 128], "attribution_people": 30,
              "attribution_steps": 50, "options": {}},
    "medium": {"seeds": 3, "pretrain_seeds": 3, "individuals": 2000, "pretrain_steps": 3000, "downstream_steps": 600,
               "batch": 64, "downstream_batch": 32, "widths": [32, 64, 128, 256], "attribution_people": 100,
               "attribution_steps": 50, "options": {"image_size": 128, "chromosome_length": 5e6}},
}

PAPER_NUMBERS = """\
Taleb et al., *ContIG*, CVPR 2022, on UK Biobank fundus images (pretraining) and APTOS / RFMiD / PALM (downstream).
We do not copy numbers we cannot check; what the paper's tables report:

- **Table 1** (downstream, fine-tuning, several fractions of the training labels): APTOS diabetic-retinopathy
  grading (quadratic-weighted Cohen's kappa), RFMiD multi-disease classification (micro AUROC) and PALM optic-disc /
  atrophy segmentation (Dice). Rows: random init, ImageNet, image-only SSL (SimCLR, NNCLR, Simsiam, Barlow Twins,
  BYOL) and ContIG with each single genetic modality and with all of them (inner and outer aggregation). The paper
  reports ContIG (all modalities) as the best or on par with the best pretraining in every column, with the largest
  margins at the smallest label fractions, and the multi-modal variants above the single-modality ones.
- **GWAS on image features** (Sec. 4.4): features of the ContIG encoder yield more genome-wide significant loci than
  those of the image-only SSL baselines (paper's GWAS table).
- **Attributions** (Sec. 4.5): IG / DeepLift attributions of the genetic encoders highlight SNPs, PGS and genes with
  known links to eye/cardiovascular traits (the paper's attribution figures).

On the real data the genetic signal is weak but the cohort is large (tens of thousands of individuals, ResNet-50 at
448 px, ~100 epochs); none of these numbers is comparable in absolute terms with ours.
"""


# ------------------------------------------------------------------------------------------------- experiments
def datasets(budget: dict, root: Path, create: bool = True) -> dict[str, Path]:
    if not create:
        return {"fundus_genetics": root / "fundus_genetics"}
    from medgap.atomic import write_json
    from medgap.data.cases import discover_cases
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.genetics import case_groups
    from medgap.data.splits import make_splits

    dataset = generate("fundus-genetics", root / "fundus_genetics", cases=budget["individuals"], seed=0,
                       exist_ok=True, **budget["options"])
    if not (dataset / "splits.json").is_file():  # one split by individual shared by pretraining and downstream
        spec = load_dataset_json(dataset)
        cases = [case.case_id for case in discover_cases(dataset, spec)]
        write_json(dataset / "splits.json", make_splits(cases, set(cases), seed=0, val_fraction=0.1, test_fraction=0.2,
                                                   groups=case_groups(dataset, spec.genetics, cases)))
    return {"fundus_genetics": dataset}


def _common(budget: dict, data_dir: Path, steps: int, seed: int) -> dict:
    size = budget["options"].get("image_size", 64)
    every = max(steps // 3, 1)
    return {"data.dataset_dir": str(data_dir), "data.patch_size": [size, size], "data.num_workers": 0,
            "trainer.max_steps": steps, "trainer.val_every": every, "trainer.checkpoint_every": every,
            "trainer.log_every": max(steps // 10, 1), "trainer.seed": seed, "trainer.progress": False,
            "method.backbone_widths": budget["widths"]}


def runs(budget: dict, seeds: list[int], data: dict[str, Path], root: Path) -> list[Run]:
    dataset = data["fundus_genetics"]
    pretrain_seeds = seeds[:budget["pretrain_seeds"]]
    planned, pretrained = [], {}
    for init, (label, config, extra) in INITS.items():
        if config is None:
            continue
        for seed in pretrain_seeds:
            overrides = {**_common(budget, dataset, budget["pretrain_steps"], seed),
                         "data.labelled_batch_size": budget["batch"], **extra}
            run_dir = root / f"pretrain_{init}_seed{seed}"
            evaluate = partial(_evaluate_pretraining, attribute=init == "contig_outer", budget=budget)
            planned.append(Run(run_dir, config, overrides, evaluate, {"stage": "pretrain", "init": init, "seed": seed}))
            pretrained[(init, seed)] = run_dir
    for seed in seeds:
        source_seed = pretrain_seeds[seed % len(pretrain_seeds)]
        for mode in ("finetune", "probe"):
            for fraction in FRACTIONS:
                for init in INITS if mode == "finetune" else PROBED:
                    source = None if init == "random" else str(pretrained[(init, source_seed)])
                    overrides = {**_common(budget, dataset, budget["downstream_steps"], seed),
                                 "data.labelled_batch_size": budget["downstream_batch"],
                                 "data.labelled_ratio": fraction, "method.pretrained": source,
                                 "method.pretrained_checkpoint": PRETRAINED_CHECKPOINT,
                                 "method.linear_probe": mode == "probe",
                                 **({"optim.lr": PROBE_LR} if mode == "probe" else {})}
                    name = f"{mode}_{init}_{round(fraction * 100)}pct_seed{seed}"
                    planned.append(Run(root / name, "contig_fundus_downstream.yaml", overrides, _evaluate_grading,
                                       {"stage": "downstream", "mode": mode, "init": init, "fraction": fraction,
                                        "seed": seed}))
    return planned


# ------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def _evaluate_grading(run_dir: Path) -> dict:
    """Test images: (true grade, predicted grade) each, and the split-level kappa/accuracy."""
    from medgap.data.classification import whole_image_batches
    from medgap.evaluation.evaluate import load_run
    from medgap.methods.classifier import grading_scores

    config, data, method = load_run(run_dir, "test")
    cases = [case for case in data.split_cases("test") if case.case_id in data.class_labels]
    per_case = {}
    for chunk, image, availability in whole_image_batches(cases, config.data.patch_size, 128):
        for case, grade in zip(chunk, method.predict_logits(image, availability).argmax(1).tolist()):
            per_case[case.case_id] = [data.class_labels[case.case_id], grade]
    # the split's scores from these predictions (validation_scores on "test" would predict every image again)
    scores = (grading_scores(*np.array(list(per_case.values())).T) if per_case
              else {"kappa": float("nan"), "accuracy": float("nan")})
    return {"per_case": per_case, **scores, "labelled": len(data.splits["labelled"]),
            "train": len(data.splits["train"])}


@torch.no_grad()
def _image_features(encoder, data, config, split: str) -> tuple[list, np.ndarray]:
    from medgap.data.classification import whole_image_batches

    encoder.eval()
    cases = data.split_cases(split)
    features = [encoder(image).numpy() for _, image, _ in whole_image_batches(cases, config.data.patch_size, 128)]
    return cases, np.concatenate(features) if features else np.zeros((0, encoder.out_features))


def _genome(dataset: Path):
    """All common SNPs of the cohort: ``iid (N,)``, ``genotypes (N, S)``, ``chromosome (S,)``, ``position (S,)``
    and the causal SNPs as ``[(chromosome, position)]`` (names are ``rs<chromosome>_<position>``)."""
    from medgap.data.genetics import read_bed

    truth = json.loads((dataset / "genetics_source" / "truth.json").read_text())
    iid, sid, genotypes = read_bed(dataset / "genetics_source" / "cohort.bed")
    locate = lambda name: (int(name[2:].split("_")[0]), int(name.split("_")[1]))  # noqa: E731
    chromosome, position = (np.array(values) for values in zip(*map(locate, sid)))
    return iid, genotypes, chromosome, position, [locate(s) for snps in truth["causal_snps"].values() for s in snps]


def _analyse_encoder(encoder, config, data, plot_path: Path, title: str) -> dict:
    """Ridge probe of frozen per-image features (train → test R²) for the traits, lesions and grade; GWAS of
    per-person features (held-out = val + test people, and all people) with its Manhattan plot."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    from medgap.data.genetics import case_groups
    from medgap.evaluation.gwas import ancestry_pcs, gwas_summary, manhattan_plot, phenotypes_from_features

    dataset = Path(config.data.dataset_dir)
    truth = json.loads((dataset / "genetics_source" / "truth.json").read_text())
    groups = case_groups(dataset, data.spec.genetics, list(data.cases))
    target = lambda case: [truth["trait_values"][t][groups[case.case_id]] for t in TRAITS] + [  # noqa: E731
        truth["eyes"][case.case_id]["lesions"], truth["eyes"][case.case_id]["grade"]]
    by_split = {split: _image_features(encoder, data, config, split) for split in ("train", "val", "test")}
    (train_cases, train_x), (test_cases, test_x) = by_split["train"], by_split["test"]
    scaler = StandardScaler().fit(train_x)
    probe = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(scaler.transform(train_x),
                                                      np.array([target(c) for c in train_cases]))
    predicted = probe.predict(scaler.transform(test_x))
    truth_test = np.array([target(c) for c in test_cases])
    result = {"probe_r2": {name: float(r2_score(truth_test[:, k], predicted[:, k])) for k, name in enumerate(PROBES)}}

    iid, genotypes, chromosome, position, causal = _genome(dataset)
    row_of = {identifier: row for row, identifier in enumerate(iid.tolist())}
    for scope, splits in (("heldout", ("val", "test")), ("all", ("train", "val", "test"))):
        by_person: dict[str, list] = {}
        for split in splits:
            for case, feature in zip(*by_split[split]):
                by_person.setdefault(groups[case.case_id], []).append(feature)
        people = sorted(by_person)
        rows = [row_of[p] for p in people]
        covariates = ancestry_pcs(genotypes[rows], 4)
        summary = gwas_summary(phenotypes_from_features(np.stack([np.mean(by_person[p], 0) for p in people])),
                               genotypes[rows], chromosome, position, causal, covariates)
        p = summary.pop("p")
        if scope == "heldout":
            manhattan_plot(chromosome, position, p, plot_path, title=f"{title}, n={len(people)}", causal=causal,
                           bonferroni=summary["bonferroni"])
        result[f"gwas_{scope}"] = {"individuals": len(people), **summary}
    return result


def _evaluate_pretraining(run_dir: Path, attribute: bool, budget: dict) -> dict:
    from medgap.evaluation.evaluate import load_run

    config, data, method = load_run(run_dir, ("train", "val", "test"), PRETRAINED_CHECKPOINT)
    result = _analyse_encoder(method.encoder, config, data, run_dir / "analysis" / "gwas_manhattan.png",
                              f"GWAS on {run_dir.name} image features (PCA 10, INT)")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result["validation"] = {str(row["step"]): {k[4:]: v for k, v in row.items() if k.startswith("val_")}
                            for row in rows if any(k.startswith("val_") for k in row)}
    result["best_step"] = json.loads((run_dir / "summary.json").read_text())["best_step"]
    if attribute:
        result["attributions"] = _attributions(method, config, data, budget, run_dir / "analysis")
    return result


def _one_image_per_person(data, config, split: str, groups: dict):
    from medgap.data.classification import whole_images

    chosen, seen = [], set()
    for case in data.split_cases(split):
        if groups[case.case_id] not in seen:
            seen.add(groups[case.case_id])
            chosen.append(case)
    return chosen, whole_images(chosen, config.data.patch_size)[0]


def _attributions(method, config, data, budget: dict, plots: Path) -> dict:
    """Reference batch = one image per validation person; explained = test people (one image each)."""
    from medgap.data.genetics import case_groups
    from medgap.evaluation.attributions import (ALGORITHMS, global_importance, manhattan_importance_plot,
                                                precision_at_k, top_features_plot)

    dataset = Path(config.data.dataset_dir)
    truth = json.loads((dataset / "genetics_source" / "truth.json").read_text())
    groups = case_groups(dataset, data.spec.genetics, list(data.cases))
    causal = {"raw_snps": {s for snps in truth["causal_snps"].values() for s in snps}, "pgs": set(truth["true_pgs"]),
              "burden": {g for genes in truth["causal_genes"].values() for g in genes}}
    reference_cases, reference_images = _one_image_per_person(data, config, "val", groups)
    people_cases, people_images = _one_image_per_person(data, config, "test", groups)
    reference_genetics, reference_present = method.tables.lookup([c.case_id for c in reference_cases])
    people_genetics, people_present = method.tables.lookup([c.case_id for c in people_cases])
    results = {}
    for m, modality in enumerate(method.modalities):
        names = (dataset / "genetics" / f"{modality}.csv").open().readline().strip().split(",")[1:]
        reference_rows = reference_present[:, m]
        explained = torch.nonzero(people_present[:, m]).flatten()[:budget["attribution_people"]]
        ks = sorted({min(10, len(names)), len(causal[modality])})
        results[modality] = {"features": len(names), "causal": len(causal[modality]),
                             "reference_people": int(reference_rows.sum()), "explained_people": len(explained)}
        for algorithm in ALGORITHMS:
            importance = global_importance(method, modality, reference_images[reference_rows],
                                           reference_genetics[m][reference_rows], people_images[explained],
                                           people_genetics[m][explained], algorithm, budget["attribution_steps"])
            results[modality][algorithm] = {str(k): precision_at_k(importance, names, causal[modality], k)
                                            for k in ks}
            if algorithm != "integrated_gradients":
                continue
            if modality == "raw_snps":
                manhattan_importance_plot(names, importance, causal[modality], plots / "attr_raw_snps.png",
                                          "ContIG raw-SNP importance (IG, mean |attribution|; red: causal)")
            else:
                top_features_plot(names, importance, causal[modality], plots / f"attr_{modality}.png",
                                  title=f"ContIG {modality} importance (IG)")
    return results


# ------------------------------------------------------------------------------------------------- report
def _random_init_analysis(context: Context) -> dict:
    """The same probe and GWAS on an untrained encoder (seed 0), data and split of the SimCLR run."""
    from medgap.data.pipeline import prepare_data
    from medgap.evaluation.evaluate import load_run_config
    from medgap.nets.encoders import ResNetEncoder

    run_dir = context.select(stage="pretrain", init="simclr")[0].run_dir
    config = load_run_config(run_dir)
    data = prepare_data(config.data, config.trainer.seed, run_dir, write_splits=False)
    torch.manual_seed(0)
    options = config.method
    encoder = ResNetEncoder(data.spec.num_channels, tuple(options.backbone_widths), options.backbone_blocks,
                            options.input_scale, options.stem_stride)
    return _analyse_encoder(encoder, config, data, context.plots_dir / "gwas_random.png",
                            "GWAS on random-init image features (PCA 10, INT)")


def _true_trait_gwas(context: Context) -> dict:
    """Positive control: the GWAS of the hidden traits themselves on the held-out people."""
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.genetics import case_groups
    from medgap.evaluation.gwas import ancestry_pcs, gwas_summary, inverse_rank_normalise

    dataset = context.data["fundus_genetics"]
    truth = json.loads((dataset / "genetics_source" / "truth.json").read_text())
    splits = json.loads((dataset / "splits.json").read_text())
    spec = load_dataset_json(dataset)
    cases = splits["val"] + splits["test"]
    people = sorted(set(case_groups(dataset, spec.genetics, cases).values()))
    iid, genotypes, chromosome, position, causal = _genome(dataset)
    rows = [iid.tolist().index(p) for p in people]
    traits = np.column_stack([[truth["trait_values"][t][p] for p in people] for t in TRAITS])
    summary = gwas_summary(inverse_rank_normalise(traits), genotypes[rows], chromosome, position, causal,
                           ancestry_pcs(genotypes[rows], 4))
    summary.pop("p")
    return {"individuals": len(people), **summary}


def _genetic_signal(context: Context) -> dict:
    """Per-modality held-out R² of the grade's genetic trait (training people → test people of the shared split)."""
    from medgap.data.dataset_json import load_dataset_json
    from medgap.data.genetics import case_groups
    from medgap.evaluation.genetic_signal import genetic_r2

    dataset = context.data["fundus_genetics"]
    splits = json.loads((dataset / "splits.json").read_text())
    spec = load_dataset_json(dataset)
    people = {name: sorted(set(case_groups(dataset, spec.genetics, splits[name]).values())) for name in ("train", "test")}
    return genetic_r2(dataset, GRADE_TRAIT, people["train"], people["test"])


def _squared_errors(context: Context, init: str, fraction: float) -> dict[tuple, float]:
    """(seed, test image) → squared grade error of one initialisation at one label fraction."""
    return {(run.tags["seed"], case): float((truth - predicted) ** 2)
            for run in context.select(stage="downstream", mode="finetune", init=init, fraction=fraction)
            for case, (truth, predicted) in context.results[run.run_dir]["per_case"].items()}


def _test(context: Context, fraction: float, init: str, reference: str) -> Comparison:
    """``init`` − ``reference`` in per-image squared grade error (test images shared by every seed; a claim that
    ``init`` is better is a negative difference)."""
    return compare(_squared_errors(context, init, fraction), _squared_errors(context, reference, fraction),
                   direction=-1)


def _p(test: Comparison) -> str:
    if test.cases < 2:
        return "–"
    return f"{test.effect:+.3f} [{test.ci_low:+.3f}, {test.ci_high:+.3f}] (p={p_value_cell(test.as_ttest(), digits=2)})"


SANITY_PIXELS = 8  # the ridge reference reads the photographs block-averaged to 8 × 8 px


def _sanity(context: Context, kappa: dict) -> list[SanityCheck]:
    """Per label fraction: ridge regression on 8-px pixels of the same labelled and test images as each seed's
    fine-tuning (kappa averaged over seeds), against the fine-tuned rows."""
    checks = []
    for fraction in FRACTIONS:
        scores = []
        for run in context.select(stage="downstream", mode="finetune", init="random", fraction=fraction):
            splits = json.loads((run.run_dir / "splits.json").read_text())
            if len(splits["labelled"]) >= 5:
                scores.append(classical_reference(context.data["fundus_genetics"], splits["labelled"], splits["test"],
                                                  model="ridge", size=SANITY_PIXELS).score)
        if not scores:
            continue
        reference = Reference(f"ridge regression on {SANITY_PIXELS}-px pixels, {round(fraction * 100)} % labels",
                              "classical", "quadratic kappa", float(np.mean(scores)))
        checks.append(SanityCheck(reference, {f"{INITS[init][0]}, fine-tuned": float(np.mean(kappa[(init, fraction)]))
                                              for init in ("random", "simclr", "contig_outer", "contig_oracle")
                                              if (init, fraction) in kappa}))
    return checks


def _cell(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def _precision(result: dict, algorithm: str) -> dict:
    """precision@k at k = number of causal features, with the hypergeometric tail p of a random top k."""
    from scipy.stats import hypergeom

    k = result["causal"]
    scores = result[algorithm][str(k)]
    hits = round(scores["precision"] * k)
    return {**scores, "p": float(hypergeom.sf(hits - 1, result["features"], k, k))}


def _kappa_plot(kappa: dict, path: Path) -> None:
    from medgap.evaluation.plots import _save, plt

    figure, axis = plt.subplots(figsize=(6, 3.8))
    for init, (label, _, _) in INITS.items():
        means = [np.mean(kappa[(init, f)]) for f in FRACTIONS]
        axis.plot([f * 100 for f in FRACTIONS], means, marker="o", label=label,
                  ls="--" if init in SINGLE else "-")
    axis.set_xscale("log")
    axis.set_xlabel("training labels used (%)")
    axis.set_ylabel("test quadratic-weighted kappa")
    axis.set_title("Downstream grading after pretraining (mean over seeds)", fontsize=10)
    axis.legend(fontsize=7)
    _save(figure, path)


TABLE_TITLES = ("### Downstream grading (Table 1 layout)", "### Paired t-tests", "### Attributions",
                "### GWAS on image features", "### What the frozen features encode", "### What the genetics predict")


def report(context: Context) -> Report:
    plots = context.plots_dir
    plots.mkdir(parents=True, exist_ok=True)
    pretraining = {run.tags["init"]: context.results[run.run_dir] for run in context.select(stage="pretrain")
                   if run.tags["seed"] == context.seeds[0]}
    for run in context.select(stage="pretrain"):
        if run.tags["seed"] != context.seeds[0]:
            continue
        if run.tags["init"] in ("simclr", "contig_outer"):  # the feature sets the GWAS table shows
            for source in (run.run_dir / "analysis").glob("*.png"):
                target = f"gwas_{run.tags['init']}.png" if source.name == "gwas_manhattan.png" else source.name
                shutil.copyfile(source, plots / target)
    pretraining["random"] = _random_init_analysis(context)
    control = _true_trait_gwas(context)
    sections = []

    # (1) Table 1: kappa per initialisation × label fraction, fine-tuned and linear probe
    kappa, labelled = {}, {}
    for run in context.select(stage="downstream"):
        key = (run.tags["mode"], run.tags["init"], run.tags["fraction"])
        kappa.setdefault(key, []).append(context.results[run.run_dir]["kappa"])
        labelled[run.tags["fraction"]] = (f"{context.results[run.run_dir]['labelled']} of "
                                          f"{context.results[run.run_dir]['train']}")
    header = ["initialisation", *[f"{round(f * 100)} % ({labelled[f]} images)" for f in FRACTIONS]]

    def kappa_table(mode: str, inits) -> str:
        rows = [[INITS[init][0], *[_cell(kappa[(mode, init, f)]) for f in FRACTIONS]] for init in inits]
        return markdown_table(header, rows).rstrip("\n")

    finetuned = {(init, f): kappa[("finetune", init, f)] for init in INITS for f in FRACTIONS}
    _kappa_plot(finetuned, plots / "kappa_vs_labels.png")
    sections.append("### Downstream grading (Table 1 layout)\n\nFine-tuning on the 5-grade synthetic grading task; "
                    "test quadratic-weighted kappa, mean ± std over seeds (one pretraining per pretraining seed, "
                    "downstream seeds re-draw the labelled images and the head's initialisation).\n\n"
                    + kappa_table("finetune", INITS) + "\n\n![kappa against label fraction](contig/kappa_vs_labels.png)"
                    f"\n\nLinear probe (frozen encoder and BatchNorm statistics, features standardised by a "
                    f"parameter-free BatchNorm as in MAE's probe, linear ordinal head, Adam {PROBE_LR}, same steps): "
                    "what the pretrained features hold without adapting them.\n\n"
                    + kappa_table("probe", PROBED) + "\n")

    # paired t-tests
    comparisons = [("contig_outer", "simclr"), ("contig_outer", "random"), ("simclr", "random"),
                   ("contig_outer", "contig_inner"), *[("contig_outer", s) for s in SINGLE],
                   ("contig_oracle", "random"), ("contig_oracle", "simclr")]
    rows, tests = [], {}
    for a, b in comparisons:
        for fraction in FRACTIONS:
            tests[(a, b, fraction)] = _test(context, fraction, a, b)
        rows.append([f"{INITS[a][0]} − {INITS[b][0]}", *[_p(tests[(a, b, f)]) for f in FRACTIONS]])
    sections.append("### Paired t-tests\n\nMean difference in per-image squared grade error (negative = the first "
                    "initialisation errs less) with its 95 % bootstrap CI (test images resampled, the same draw in "
                    "every seed); p: paired t-test on the per-image differences averaged over seeds; * p < 0.05.\n\n"
                    + markdown_table(["comparison", *[f"{round(f * 100)} %" for f in FRACTIONS]], rows))

    # (2) attributions
    attributions = pretraining["contig_outer"]["attributions"]
    rows = []
    for modality, result in attributions.items():
        for algorithm in ("integrated_gradients", "ig_noise_tunnel", "deeplift"):
            exact, ten = _precision(result, algorithm), result[algorithm].get("10")
            ten = "–" if ten is None else f"{ten['precision']:.2f}"
            rows.append([modality, f"{result['features']} ({result['causal']})", result["explained_people"], algorithm,
                         f"{exact['precision']:.2f}", f"{exact['p']:.2g}", ten, f"{exact['random']:.3f}"])
    images = [f"![{m} importance](contig/attr_{m}.png)" for m in attributions if (plots / f"attr_{m}.png").is_file()]
    sections.append("### Attributions\n\nContIG (all modalities, outer): mean |attribution| per genetic feature over "
                    "test people, each explained against a reference batch of validation people (τ 1, α 0.5, zero "
                    "baseline); precision@k = share of truly causal SNPs / genes / PGS among the top k (k = number "
                    "of causal features, and 10), beside the expectation of a random ranking; hypergeometric p = "
                    "chance of at least as many causal features in a random top k.\n\n"
                    + markdown_table(["modality", "features (causal)", "people explained", "algorithm",
                                      "precision@k, k = causal", "hypergeometric p", "precision@10",
                                      "random ranking"], rows) + "\n"
                    + "\n".join(images) + "\n")

    # (3) GWAS
    feature_sets = [("contig_outer", INITS["contig_outer"][0]), ("simclr", INITS["simclr"][0]),
                    ("random", "random init (untrained)")]
    header = ["image features", "individuals", "loci p<5e-8 (causal SNPs in them)",
              "loci Bonferroni (causal)", "loci p<1e-5 (causal)", "min p", "all people: loci p<5e-8 (causal)"]
    rows = []

    def gwas_row(label: str, g: dict, everyone: dict | None) -> list:
        cells = [f"{g[f'loci_{t}']} ({g[f'causal_recovered_{t}']})" for t in ("genome_wide", "bonferroni", "suggestive")]
        tail = f"{everyone['loci_genome_wide']} ({everyone['causal_recovered_genome_wide']}), n={everyone['individuals']}" \
            if everyone else "–"
        return [label, g["individuals"], *cells, f"{g['min_p']:.1e}", tail]

    for init, label in feature_sets:
        rows.append(gwas_row(label, pretraining[init]["gwas_heldout"], pretraining[init]["gwas_all"]))
    rows.append(gwas_row("true traits (positive control)", control, None))
    sections.append(
        "### GWAS on image features\n\nPer-person image features (mean over a person's eyes) → PCA 10 → inverse-rank "
        f"normalisation → per-SNP linear regression on all {control['snps']} common SNPs with 4 genotype PCs as "
        f"covariates; loci = significant SNPs merged within 50 kb; in brackets the causal SNPs (of "
        f"{control['causal_snps']}) within 50 kb of a locus. Main columns: held-out (validation + test) people, whom "
        "no pretraining saw; last column: all people (optimistic for ContIG, which saw the training people's "
        "genotypes).\n\n" + markdown_table(header, rows) + "\n"
        + "\n".join(f"![GWAS Manhattan, {label}](contig/gwas_{init}.png)" for init, label in feature_sets) + "\n")

    # diagnostic: linear probe of the frozen features
    rows = []
    for init, (label, _, _) in INITS.items():
        probe = pretraining[init]["probe_r2"]
        validation = pretraining[init].get("validation") or {}
        last = str(max(map(int, validation))) if validation else None
        retrieval = validation.get(last, {}).get("retrieval_top1")
        rows.append([label, *[f"{probe[p]:.2f}" for p in PROBES], "–" if retrieval is None else f"{retrieval:.3f}"])
    sections.append("### What the frozen features encode\n\nRidge regression from the frozen per-image features "
                    "(train images) to the hidden quantities, R² on the test images: the three genetic traits "
                    "(`disc`, `vessel`, `pigment`), the non-genetic per-eye lesion count, and the grade (which "
                    "depends on `vessel` and on the lesion load). ContIG can only learn what genetics predicts; "
                    "image-only SSL learns whatever varies between images.\n\n"
                    + markdown_table(["encoder", *[f"R² {p}" for p in PROBES],
                                      "validation retrieval top-1 (last step)"], rows))

    signal = _genetic_signal(context)
    rows = [[modality, r["train"], r["test"], f"{r['r2']:.2f}"] for modality, r in signal.items()]
    sections.append(f"### What the genetics predict\n\nRidge regression (α by cross-validation) from each genetic "
                    f"modality of a training person to their true `{GRADE_TRAIT}` value (the genetic trait the "
                    "grade depends on), R² on the test people: the ceiling of what ContIG can align the images "
                    "with. The oracle row of the tables above is the same mechanism with R² 1.\n\n"
                    + markdown_table(["genetic modality", "training people", "test people",
                                      f"held-out R² of {GRADE_TRAIT}"], rows))

    claims = _claims(context, finetuned, tests, attributions, pretraining, control, signal)
    sizes = BUDGETS[context.budget]
    options = {"image_size": 64, **sizes["options"]}
    setup = (f"`medgap synth fundus-genetics` with {sizes['individuals']} individuals (~1.9 eye images each, "
             f"{options['image_size']} px; options {sizes['options'] or 'default'}), split by individual 70/10/20. "
             f"Pretraining: {sizes['pretrain_steps']} steps of batch {sizes['batch']} (Adam 1e-3), ResNet widths "
             f"{sizes['widths']} with a stride-2 stem, {len(context.seeds[:sizes['pretrain_seeds']])} pretraining "
             f"seed(s); downstream fine-tuning {sizes['downstream_steps']} steps of batch {sizes['downstream_batch']} "
             "(Adam 3e-4, cosine) from the encoder after the last pretraining step, ordinal head, checkpoint by "
             "validation kappa. Attributions: "
             f"{sizes['attribution_people']} test people, IG with {sizes['attribution_steps']} steps. Everything "
             "else as in `configs/contig_fundus*.yaml`, `configs/simclr_fundus.yaml`.")
    return Report(sections=sections, paper_numbers=PAPER_NUMBERS, claims=claims, setup=setup,
                  sanity=_sanity(context, finetuned) + [SanityCheck(
                      Reference("GWAS of the true traits (positive control: the power of the test)", "positive control",
                                "genome-wide loci, held-out people", float(control["loci_genome_wide"])),
                      {f"GWAS of {label} features": float(pretraining[init]["gwas_heldout"]["loci_genome_wide"])
                       for init, label in feature_sets})],
                  deviations=("contig", "simclr", "classifier", "medgap.reproduce.contig"))


def _claims(context: Context, kappa: dict, tests: dict, attributions: dict, pretraining: dict,
            control: dict, signal: dict) -> list[Claim]:
    mean = {key: float(np.mean(values)) for key, values in kappa.items()}
    tiny = context.budget == "tiny"
    probe = {init: pretraining[init]["probe_r2"] for init in ("contig_outer", "simclr", "random", "contig_oracle")}
    contig = pretraining["contig_outer"]
    steps = BUDGETS[context.budget]["pretrain_steps"]
    overfits = contig.get("best_step") is not None and contig["best_step"] < 0.7 * steps
    why_ssl = ("" if tiny else
               "what the frozen features encode (ridge R² on test images): `vessel`, the genetic part of the grade, "
               f"ContIG {probe['contig_outer']['vessel']:.2f} / SimCLR {probe['simclr']['vessel']:.2f} / random "
               f"{probe['random']['vessel']:.2f}; the non-genetic lesions ContIG {probe['contig_outer']['lesions']:.2f}"
               f" / SimCLR {probe['simclr']['lesions']:.2f} / random {probe['random']['lesions']:.2f}; the positive "
               f"control (ContIG with the true vessel value as its modality) reaches vessel R² "
               f"{probe['contig_oracle']['vessel']:.2f} and oracle kappa at 1 % "
               f"{mean[('contig_oracle', FRACTIONS[0])]:.3f}; the genetics predict {GRADE_TRAIT} on test people with "
               "R² " + ", ".join(f"{m} {r['r2']:.2f}" for m, r in signal.items()) + "; ContIG's best "
               f"validation contrastive loss at step {contig.get('best_step')} of {steps}"
               + (f" (it overfits {BUDGETS[context.budget]['individuals']} individuals)" if overfits else ""))
    claims = []
    f = FRACTIONS[0]
    outer, simclr, random = mean[("contig_outer", f)], mean[("simclr", f)], mean[("random", f)]
    claim = Claim(
        "ContIG (all modalities, outer) > image-only SSL > random init when labels are scarce (1 %)", None,
        f"kappa at 1 %: ContIG outer {outer:.3f}, SimCLR {simclr:.3f}, random {random:.3f}; effects in per-image "
        "squared grade error (negative = fewer errors)", "",
        [("ContIG − SimCLR", tests[("contig_outer", "simclr", f)]), ("SimCLR − random", tests[("simclr", "random", f)])],
        scale=1.0, unit="squared grade error")
    claim.explanation = "" if claim.verdict == "reproduced" else \
        ("tiny budget: a few steps only, for tests" if tiny else why_ssl)
    claims.append(claim)
    overall = {init: float(np.mean([mean[(init, fr)] for fr in FRACTIONS])) for init in INITS}
    best_single = max(SINGLE, key=overall.get)
    errors = {init: case_scores({(seed, case, fr): value for fr in FRACTIONS
                                 for (seed, case), value in _squared_errors(context, init, fr).items()})
              for init in ("contig_outer", *SINGLE)}
    claim = Claim(
        "Using all genetic modalities beats any single modality", None,
        "kappa averaged over the label fractions: all (outer) " + f"{overall['contig_outer']:.3f}, all (inner) "
        f"{overall['contig_inner']:.3f}, " + ", ".join(f"{INITS[s][0]} {overall[s]:.3f}" for s in SINGLE)
        + "; effects in per-image squared grade error averaged over the fractions", "",
        [(f"all − {INITS[s][0]}", compare(errors["contig_outer"], errors[s], direction=-1)) for s in SINGLE],
        scale=1.0, unit="squared grade error")
    claim.explanation = "" if claim.verdict == "reproduced" else (
        "tiny budget: a few steps only, for tests" if tiny else
        f"best single modality: {INITS[best_single][0]} {overall[best_single]:.3f}; every modality carries the same "
        "three traits here (the true PGS are built from the causal SNPs, the causal genes act on the same traits), "
        "so combining them adds little new signal, and none carries the non-heritable lesion part of the grade")
    claims.append(claim)
    exact = {m: _precision(r, "integrated_gradients") for m, r in attributions.items()}
    above = all(v["precision"] > v["random"] for v in exact.values())
    holds = above and all(v["p"] < 0.05 for v in exact.values())  # above chance, and not by luck
    claims.append(Claim(
        "Attributions recover the causal SNPs / genes / PGS better than a random ranking", holds,
        "IG precision@k, k = number of causal features: " + ", ".join(
            f"{m} {v['precision']:.2f} vs random {v['random']:.3f} (hypergeometric p={v['p']:.2g})"
            for m, v in exact.items()),
        "" if holds else ("tiny budget: a few steps only, for tests" if tiny else
                          (f"above chance in every modality, but not significantly for "
                           f"{', '.join(m for m, v in exact.items() if v['p'] >= 0.05)}: " if above else "") +
                          f"{attributions['raw_snps']['explained_people'] if 'raw_snps' in attributions else 0} "
                          "explained people; the alignment can only use what the image shows of each trait "
                          f"(ContIG probe R²: disc {probe['contig_outer']['disc']:.2f}, vessel "
                          f"{probe['contig_outer']['vessel']:.2f}, pigment {probe['contig_outer']['pigment']:.2f}), "
                          "so the causal features of a poorly encoded trait have no reason to rank high")))
    hits = {init: pretraining[init]["gwas_heldout"] for init in ("contig_outer", "simclr", "random")}
    loci = {init: (g["loci_genome_wide"], g["loci_suggestive"]) for init, g in hits.items()}
    everyone = {init: pretraining[init]["gwas_all"]["loci_genome_wide"] for init in hits}
    holds = loci["contig_outer"][0] > max(loci["simclr"][0], loci["random"][0])  # the paper counts loci at 5e-8
    claims.append(Claim(
        "ContIG features give more GWAS hits than image-only SSL and random features", holds,
        "loci at 5e-8 (at 1e-5) on the held-out people: " + ", ".join(
            f"{label} {loci[i][0]} ({loci[i][1]})" for i, label in
            (("contig_outer", "ContIG"), ("simclr", "SimCLR"), ("random", "random"))) +
        f"; all people at 5e-8: ContIG {everyone['contig_outer']}, SimCLR {everyone['simclr']}, random "
        f"{everyone['random']}; true traits (positive control) {control['loci_genome_wide']} ({control['loci_suggestive']})",
        "" if holds else ("tiny budget: a few steps only, for tests" if tiny else
                          f"only {control['individuals']} held-out people: even the true traits reach "
                          f"{control['loci_genome_wide']} genome-wide loci, so the test has little power; the "
                          "strongest image-visible genetic signal (pigmentation, i.e. ancestry + a few SNPs) is "
                          "in every feature set, random features included")))
    return claims


# ------------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (the page's table: medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("data", "synthetic `fundus-genetics` cohort (600 people, 64 px, msprime genotypes, known causal "
              "SNPs / genes / PGS)", "paper: UK Biobank (pretraining), APTOS / RFMiD / PALM (downstream)",
              "no downloads; the causal truth makes attributions and GWAS checkable", None, "paper"),
    Deviation("schedule", "300 pretraining steps (~24 epochs), 100 downstream steps", "paper: ~100 epochs",
              "CPU budget", None, "paper; official code (HealthML/ContIG)"),
    Deviation("downstream tasks", "the 5-grade synthetic grading only (quadratic kappa)", "paper: APTOS grading, "
              "RFMiD multi-disease (AUROC), PALM segmentation (Dice)", "one task per synthetic cohort", None,
              "paper; official code (HealthML/ContIG)"),
    Deviation("GWAS covariates", "4 genotype PCs computed on the analysed people", "paper: the UK Biobank "
              "covariates", "the synthetic cohort has no age, sex or batch", None, "paper; official code (HealthML/ContIG)"),
]
