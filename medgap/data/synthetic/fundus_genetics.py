"""``fundus-genetics``: a UK-Biobank-like cohort of colour fundus photographs with genotypes (ContIG's setting).

What it imitates:
    Individuals from two ancestral populations (an msprime coalescent with a population split 2,000 generations
    ago, so linkage disequilibrium, allele frequencies and ancestry structure are realistic) over a few
    "chromosomes". Three latent traits:

    - ``disc`` (optic-disc size): common causal SNPs + two causal genes' rare-variant burden;
    - ``vessel`` (vessel calibre and tortuosity): common causal SNPs + three causal genes' burden;
    - ``pigment`` (fundus pigmentation): ancestry + a few causal SNPs.

    Both eyes of an individual are photographed (10 % have one eye only); each eye shows the traits plus eye-level
    noise, and lesions (dark-red haemorrhage dots, yellow exudates) whose number follows a per-eye lesion load. A
    5-grade disease label (0 = none … 4 = proliferative, imbalanced like APTOS) depends on the ``vessel`` trait
    and on the lesion load. Genetic modalities, each missing for a share of individuals (some have none):
    ``raw_snps`` (every k-th common SNP), ``pgs`` (3 true scores from the known causal weights + 7 decoy scores
    of random SNPs; z-scored), ``burden`` (per-gene count of rare damaging alleles; rare genes dropped).

What it does not imitate:
    Real anatomy at 448 px, camera artefacts, real genes. Sizes are CPU-scale (default 1,500 individuals, 64 px).

Layout:
    ``imagesTr/F0001_L_0000.png`` … ``_0002.png`` (R, G, B: the three colour channels as three channels of the
    nnU-Net layout), ``labelsTr.csv`` (case_id,class = grade), ``individuals.csv`` (case_id,individual_id),
    ``genetics/{raw_snps,pgs,burden}.csv`` keyed by individual (written with the readers of
    :mod:`medgap.data.genetics` from the raw files), ``genetics_source/`` with the raw files the readers take
    (``cohort.bed/.bim/.fam`` of all common SNPs, one ``.sscore`` per PGS, ``burden.h5``) and ``truth.json``
    (causal SNPs/genes/PGS, traits, ancestry), so attribution and GWAS quality can be measured against the truth.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medgap.atomic import write_json, write_text
from medgap.data.dataset_json import write_dataset_json
from medgap.data.genetics import read_bed, read_burden, read_sscore, write_genetics_csv
from medgap.data.io import write_png
from medgap.errors import MedgapError
from medgap.optional import require

VERSION = 3  # 3: fewer causal SNPs, heritability 0.85, 1,500 people, lesion/ancestry weights as options
CHANNELS = ("R", "G", "B")
TRAITS = ("disc", "vessel", "pigment")
MODALITIES = ("raw_snps", "pgs", "burden")
DEFAULT_INDIVIDUALS = 1500  # enough people for the genetics to predict the traits on held-out people (issue 19)


@dataclass
class FundusGeneticsOptions:
    image_size: int = 64
    chromosomes: int = 4
    chromosome_length: float = 2e6  # bp per chromosome
    every_k: int = 8  # raw_snps modality = every k-th common SNP (ContIG: 100 on the real genome)
    # A few strong loci per trait and a high heritability: with ~1,000 training people, 12 causal SNPs at
    # heritability 0.6 left the genetics predicting vessel with test R² 0.05 (raw SNPs) / 0.22 (PGS), so even a
    # perfect image–genetics pairing could not beat chance (issue 19); 4 SNPs at 0.85–0.9 give 0.3 / 0.6.
    causal_snps: tuple[int, int, int] = (4, 4, 3)  # per trait (disc, vessel, pigment)
    heritability: float = 0.85  # share of trait variance from SNPs + burden (before eye-level noise)
    lesion_weight: float = 0.8  # weight of the non-genetic per-eye lesion load in the grade (vessel's is 1)
    pigment_ancestry: float = 0.75  # weight of ancestry in pigmentation (its genetic part has 0.45)
    min_carriers: int = 5  # burden genes carried by fewer individuals are dropped
    missing: tuple[float, float, float] = (0.25, 0.3, 0.4)  # per modality (raw_snps, pgs, burden)
    one_eye: float = 0.1  # share of individuals with one photographed eye


def simulate_genotypes(individuals: int, options: FundusGeneticsOptions, seed: int) -> dict:
    """Two-population coalescent genotypes.

    Returns:
        ``dosages (N, V)`` uint8 diploid counts of the derived allele over biallelic sites, ``chromosome (V,)``,
        ``position (V,)`` bp, ``population (N,)`` 0/1.
    """
    msprime = require("msprime", "synth fundus-genetics (coalescent genotypes)")

    demography = msprime.Demography()
    for name in ("A", "B", "ANC"):
        demography.add_population(name=name, initial_size=10_000)
    demography.add_population_split(time=2_000, derived=["A", "B"], ancestral="ANC")
    sizes = {"A": individuals // 2, "B": individuals - individuals // 2}
    blocks, chromosome, position = [], [], []
    for chrom in range(options.chromosomes):
        seeds = np.random.SeedSequence([seed, 7, chrom]).generate_state(2)
        ts = msprime.sim_ancestry(sizes, demography=demography, sequence_length=options.chromosome_length,
                                  recombination_rate=1e-8, random_seed=int(seeds[0]))
        ts = msprime.sim_mutations(ts, rate=1.25e-8, random_seed=int(seeds[1]))
        haplotypes = ts.genotype_matrix()  # (sites, 2N), allele indices; sample nodes 2i, 2i+1 = individual i
        biallelic = haplotypes.max(1) == 1
        haplotypes = haplotypes[biallelic]
        blocks.append((haplotypes[:, 0::2] + haplotypes[:, 1::2]).T.astype(np.uint8))
        chromosome.append(np.full(biallelic.sum(), chrom + 1))
        position.append(np.round(ts.tables.sites.position[biallelic]).astype(np.int64) + 1)
        population = np.array([ts.individual(i).population for i in range(ts.num_individuals)])
    return {"dosages": np.concatenate(blocks, 1), "chromosome": np.concatenate(chromosome),
            "position": np.concatenate(position), "population": population}


def _standardise(values: np.ndarray) -> np.ndarray:
    return (values - values.mean(0)) / np.maximum(values.std(0), 1e-8)


def build_cohort(individuals: int, options: FundusGeneticsOptions, seed: int) -> dict:
    """Genotypes → common SNPs, genes with rare damaging variants, causal effects, traits (all known)."""
    rng = np.random.default_rng([seed, 11])
    genotypes = simulate_genotypes(individuals, options, seed)
    dosages = genotypes["dosages"]
    frequency = dosages.mean(0) / 2
    maf = np.minimum(frequency, 1 - frequency)
    common = maf >= 0.05
    copies = dosages.sum(0)  # derived alleles; rare = at most 1 % of the 2N chromosomes (a singleton in tiny cohorts)
    rare = (copies > 0) & (copies <= max(1, int(0.01 * 2 * individuals)))
    # Genes: 25 kb windows every 100 kb; ~half of the rare variants in a gene are "damaging".
    gene_start = {c: np.arange(20_000, options.chromosome_length - 30_000, 100_000)
                  for c in range(1, options.chromosomes + 1)}
    gene_names, gene_columns = [], []
    damaging = rng.random(dosages.shape[1]) < 0.5
    for c, starts in gene_start.items():
        for start in starts:
            inside = (genotypes["chromosome"] == c) & (genotypes["position"] >= start) & (genotypes["position"] < start + 25_000)
            members = np.flatnonzero(inside & rare & damaging)
            gene_names.append(f"GENE{c}_{int(start) // 1000:04d}")
            gene_columns.append(dosages[:, members].sum(1))
    burden_all = np.stack(gene_columns, 1).astype(np.float32)
    carriers = (burden_all > 0).sum(0)
    min_carriers = min(options.min_carriers, max(1, individuals // 40))  # tiny test cohorts keep some genes
    kept_genes = np.flatnonzero(carriers >= min_carriers)

    common_index = np.flatnonzero(common)
    raw_index = common_index[:: options.every_k]  # the SNPs the raw_snps modality sees
    # Causal SNPs: drawn among the raw_snps columns so that attribution on that modality can find them.
    chosen = rng.choice(len(raw_index), sum(options.causal_snps), replace=False)
    causal_snps, weights, offset = {}, {}, 0
    for trait, count in zip(TRAITS, options.causal_snps):
        causal_snps[trait] = raw_index[np.sort(chosen[offset:offset + count])]
        weights[trait] = rng.normal(0, 1, count) * rng.choice([-1, 1], count)
        offset += count
    # Causal genes among those the burden modality keeps (tiny cohorts: the most carried genes).
    candidates = kept_genes if len(kept_genes) >= 5 else np.sort(np.argsort(carriers)[-5:])
    causal_genes = dict(zip(TRAITS, [rng.choice(candidates, 2, replace=False), None, None]))
    others = np.setdiff1d(candidates, causal_genes["disc"])
    causal_genes["vessel"] = rng.choice(others, 3, replace=False)
    causal_genes["pigment"] = np.array([], dtype=np.int64)

    ancestry = _standardise(genotypes["population"].astype(np.float64))
    traits = {}
    for trait in TRAITS:
        snp_part = _standardise(dosages[:, causal_snps[trait]].astype(np.float64) @ weights[trait])
        if len(causal_genes[trait]):
            gene_part = _standardise((burden_all[:, causal_genes[trait]] > 0).sum(1).astype(np.float64))
            genetic = _standardise(np.sqrt(0.6) * snp_part + np.sqrt(0.4) * gene_part)
        else:
            genetic = snp_part
        noise = rng.normal(0, 1, individuals)
        if trait == "pigment":  # mostly ancestry: fundus pigmentation differs between populations
            value = options.pigment_ancestry * ancestry + 0.45 * genetic + 0.45 * noise
        else:
            value = np.sqrt(options.heritability) * genetic + np.sqrt(1 - options.heritability) * noise
        traits[trait] = _standardise(value)

    # PGS: the true scores use the known causal weights; decoys are random weights on random common SNPs.
    pgs = {f"pgs_{trait}": (causal_snps[trait], weights[trait]) for trait in TRAITS}
    for decoy in range(7):
        snps = rng.choice(common_index, 30, replace=False)
        pgs[f"pgs_decoy{decoy + 1:02d}"] = (np.sort(snps), rng.normal(0, 1, 30))
    return {**genotypes, "common_index": common_index, "raw_index": raw_index, "causal_snps": causal_snps,
            "weights": weights, "gene_names": np.asarray(gene_names), "burden": burden_all, "kept_genes": kept_genes,
            "causal_genes": causal_genes, "traits": traits, "pgs": pgs, "ancestry": ancestry,
            "min_carriers": min_carriers}


# ------------------------------------------------------------------------------------------------- images
def fundus_image(rng: np.random.Generator, size: int, disc: float, vessel: float, pigment: float,
                 lesions: int, right_eye: bool) -> np.ndarray:
    """A ``(3, size, size)`` RGB fundus-like image in [0, 1].

    Visible properties: pigmentation → background darkness/hue; ``disc`` → optic-disc radius; ``vessel`` →
    vessel width and tortuosity; ``lesions`` dark-red dots and yellow exudates. Right eyes are mirrored.
    """
    axis = np.linspace(-1, 1, size)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    radius = np.hypot(x, y)
    field = radius < 0.95
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), size / 16)
    texture /= texture.std() + 1e-8
    shade = 1.0 - 0.12 * pigment  # darker, browner fundus with more pigment
    base = np.array([0.78, 0.36 - 0.05 * pigment, 0.16 - 0.03 * pigment]) * shade
    vignette = 1.0 - 0.35 * radius ** 2
    image = base[:, None, None] * vignette * (1 + 0.06 * texture)
    side = 1.0 if right_eye else -1.0
    centre = np.array([0.45 * side + rng.normal(0, 0.03), rng.normal(0, 0.04)])
    disc_radius = 0.14 * np.exp(0.22 * disc)
    # Vessels: four arcades leaving the disc towards the macula side, width/tortuosity from the trait.
    # Calibre ≈ 1.5 px × exp(0.4 · trait), so that it stays visible at 64 px (one pixel ± a third was not).
    width = 1.5 * np.exp(0.4 * vessel) * 2.0 / size  # in normalised units
    amplitude = 0.035 * np.exp(0.35 * vessel)
    vessel_map = np.zeros((size, size))
    t = np.linspace(0, 1, 80)
    for bend, spread in ((1, 0.55), (-1, 0.55), (1, 1.1), (-1, 1.1)):
        angle = np.pi * (0.5 + 0.5 * side) + bend * (spread + rng.normal(0, 0.08))
        sweep = -side * bend * 1.2
        heading = angle + sweep * t
        step = 1.0 / len(t)
        path = centre + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * 1.1 * step, 0)
        wiggle = amplitude * np.sin(2 * np.pi * (3 + rng.normal(0, 0.3)) * t + rng.uniform(0, 2 * np.pi))
        normal = np.stack([-np.sin(heading), np.cos(heading)], 1)
        path = path + wiggle[:, None] * normal
        distances = np.hypot(x[..., None] - path[:, 0], y[..., None] - path[:, 1])  # (size, size, points)
        nearest = np.argmin(distances, -1)
        distance = np.take_along_axis(distances, nearest[..., None], -1)[..., 0]
        local = width * (1.2 - 0.5 * t[nearest])  # vessels taper away from the disc
        vessel_map = np.maximum(vessel_map, np.clip(1.2 - distance / local, 0, 1))
    image = image * (1 - 0.45 * vessel_map) + vessel_map * np.array([0.45, 0.08, 0.05])[:, None, None] * 0.45
    disc_mask = np.clip((disc_radius - np.hypot(x - centre[0], y - centre[1])) / (2.0 / size) + 0.5, 0, 1)
    image = image * (1 - disc_mask) + disc_mask * np.array([0.98, 0.86, 0.55])[:, None, None]
    for _ in range(lesions):  # haemorrhages (dark red) and exudates (yellow) away from the disc
        spot = rng.uniform(-0.6, 0.6, 2)
        spot[0] -= 0.15 * side
        exudate = rng.random() < 0.4
        spot_radius = rng.uniform(1.0, 2.0) / size * 2
        spot_mask = np.clip((spot_radius - np.hypot(x - spot[0], y - spot[1])) / (1.5 / size) + 0.5, 0, 1)
        colour = np.array([0.95, 0.85, 0.35]) if exudate else np.array([0.35, 0.03, 0.03])
        image = image * (1 - spot_mask) + spot_mask * colour[:, None, None]
    image = image + rng.normal(0, 0.025, image.shape)
    return np.clip(image * field, 0, 1)


# --------------------------------------------------------------------------------------------- the dataset
class FundusGeneticsGenerator:
    """Registry entry for ``medgap synth fundus-genetics`` (writes its own classification + genetics layout)."""

    name = "fundus-genetics"
    case_prefix = "F"
    channel_names = CHANNELS
    description = "Fundus-like RGB photographs (both eyes) with msprime genotypes, PGS and burden; 5-grade disease"

    def generate(self, out_dir: str | os.PathLike, cases: int | None = None, seed: int = 0,
                 test_cases: int | None = None, exist_ok: bool = False,
                 progress: Callable[[int, int], Any] | None = None, **options: Any) -> Path:
        """Write ``cases`` individuals (default 1,500; ~1.9 images each); ``test_cases`` is ignored (the split
        holds out test individuals)."""
        try:
            resolved = FundusGeneticsOptions(**options)
        except TypeError as error:
            raise MedgapError(f"synth fundus-genetics: bad option ({error})") from None
        individuals = DEFAULT_INDIVIDUALS if cases is None else int(cases)
        if individuals < 20:
            raise MedgapError(f"synth fundus-genetics: need at least 20 individuals, got {individuals}")
        synthetic = {"generator": self.name, "version": VERSION, "cases": individuals, "seed": int(seed),
                     "options": _jsonable(asdict(resolved))}
        out_dir = Path(out_dir)
        if out_dir.exists() and any(out_dir.iterdir()):
            previous = None
            if (out_dir / "dataset.json").is_file():
                previous = json.loads((out_dir / "dataset.json").read_text(encoding="utf-8")).get("synthetic")
            if not exist_ok:
                raise MedgapError(f"{out_dir}: exists; pass --exist-ok to reuse a dataset with the same parameters")
            if previous == synthetic:
                return out_dir
            if previous is not None:
                raise MedgapError(f"{out_dir}: holds a dataset with other parameters; choose another folder")
            for sub in ("imagesTr", "genetics", "genetics_source"):  # an interrupted generation
                shutil.rmtree(out_dir / sub, ignore_errors=True)
        cohort = build_cohort(individuals, resolved, seed)
        ids = [f"{self.case_prefix}{i:04d}" for i in range(individuals)]
        source = out_dir / "genetics_source"
        source.mkdir(parents=True, exist_ok=True)
        self._write_sources(source, cohort, ids)

        # Per-eye lesion load: an individual part (shared by both eyes) + an eye part; grade from vessel + lesions.
        rng = np.random.default_rng([seed, 12])
        person_load = rng.normal(0, 1, individuals)
        rows, mapping, eyes = ["case_id,class"], ["case_id,individual_id"], []
        one_eye = rng.random(individuals) < resolved.one_eye
        for i, identifier in enumerate(ids):
            sides = [rng.choice(["L", "R"])] if one_eye[i] else ["L", "R"]
            for side in sides:
                eyes.append((i, f"{identifier}_{side}", side == "R", 0.7 * person_load[i] + 0.7 * rng.normal()))
        load = np.array([eye[3] for eye in eyes])
        vessel = np.array([cohort["traits"]["vessel"][eye[0]] for eye in eyes])
        liability = 1.0 * vessel + resolved.lesion_weight * load + 0.35 * rng.normal(0, 1, len(eyes))
        cuts = np.quantile(liability, [0.45, 0.65, 0.8, 0.92])
        grades = np.digitize(liability, cuts)
        (out_dir / "imagesTr").mkdir(parents=True, exist_ok=True)
        truth_eyes = {}
        for done, ((i, case_id, right, eye_load), grade) in enumerate(zip(eyes, grades), start=1):
            eye_rng = np.random.default_rng([seed, 13, i, int(right)])
            traits = {t: cohort["traits"][t][i] + 0.25 * eye_rng.normal() for t in TRAITS}
            lesions = int(min(25, eye_rng.poisson(np.exp(0.9 * eye_load + 0.4 * grade - 0.3))))
            image = fundus_image(eye_rng, resolved.image_size, traits["disc"], traits["vessel"], traits["pigment"],
                                 lesions, right)
            for channel in range(3):
                write_png(out_dir / "imagesTr" / f"{case_id}_{channel:04d}.png",
                          np.round(image[channel] * 255).astype(np.uint8))
            rows.append(f"{case_id},{int(grade)}")
            mapping.append(f"{case_id},{ids[i]}")
            truth_eyes[case_id] = {"lesions": lesions, "grade": int(grade)}
            if progress is not None:
                progress(done, len(eyes))
        write_text(out_dir / "labelsTr.csv", "\n".join(rows) + "\n")
        write_text(out_dir / "individuals.csv", "\n".join(mapping) + "\n")

        # genetics/*.csv through the readers (what a user with real files gets), then per-modality missingness.
        present = np.random.default_rng([seed, 14]).random((individuals, len(MODALITIES))) >= np.asarray(resolved.missing)
        tables = {"raw_snps": read_bed(source / "cohort_raw.bed", 1),
                  "pgs": read_sscore(sorted(source.glob("*.sscore"))),
                  "burden": read_burden(source / "burden.h5", cohort["min_carriers"])}
        index = {identifier: i for i, identifier in enumerate(ids)}
        for m, (name, (iids, columns, values)) in enumerate(tables.items()):
            keep = np.array([present[index[iid], m] for iid in iids])
            write_genetics_csv(out_dir / "genetics" / f"{name}.csv", iids[keep], columns, values[keep])
        write_json(source / "truth.json", self._truth(cohort, ids, truth_eyes, present))
        write_dataset_json(out_dir, {
            "name": "SyntheticFundusGenetics", "description": self.description, "task": "classification",
            "classes": [str(g) for g in range(5)], "channel_names": {"0": "R", "1": "G", "2": "B"},
            "file_ending": ".png", "numTraining": len(eyes),
            "genetics": {"individuals": "individuals.csv", "modalities": list(MODALITIES),
                         "source": "genetics_source", "truth": "genetics_source/truth.json"},
            "synthetic": synthetic,
        })
        return out_dir

    @staticmethod
    def _write_sources(source: Path, cohort: dict, ids: list[str]) -> None:
        """The raw files a genetics group would hand over: PLINK bed (all common SNPs, and the every-k-th
        subset), one PLINK 2 ``.sscore`` per PGS, and an h5 burden matrix of all genes."""
        import h5py
        to_bed = require("bed_reader", "synth fundus-genetics (PLINK files)").to_bed

        common = cohort["common_index"]
        snp_ids = np.array([f"rs{c}_{p}" for c, p in zip(cohort["chromosome"], cohort["position"])])
        for name, columns in (("cohort", common), ("cohort_raw", cohort["raw_index"])):
            to_bed(source / f"{name}.bed", cohort["dosages"][:, columns].astype(np.float32),
                   properties={"iid": ids, "fid": ids, "sid": snp_ids[columns].tolist(),
                               "chromosome": [str(c) for c in cohort["chromosome"][columns]],
                               "bp_position": cohort["position"][columns].tolist()})
        for name, (snps, weights) in cohort["pgs"].items():
            total = cohort["dosages"][:, snps].astype(np.float64) @ weights
            lines = ["#FID\tIID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\tSCORE1_AVG"]
            dosage_sum = cohort["dosages"][:, snps].sum(1)
            lines += [f"{i}\t{i}\t{2 * len(snps)}\t{d}\t{s / (2 * len(snps)):.8g}" for i, d, s in zip(ids, dosage_sum, total)]
            write_text(source / f"{name}.sscore", "\n".join(lines) + "\n")
        with h5py.File(source / "burden.h5", "w") as handle:
            handle["burden"] = cohort["burden"]
            handle["individuals"] = np.array(ids, dtype="S")
            handle["genes"] = cohort["gene_names"].astype("S")

    @staticmethod
    def _truth(cohort: dict, ids: list[str], eyes: dict, present: np.ndarray) -> dict:
        snp_name = lambda v: f"rs{cohort['chromosome'][v]}_{cohort['position'][v]}"  # noqa: E731
        return {
            "traits": list(TRAITS),
            "causal_snps": {t: [snp_name(v) for v in cohort["causal_snps"][t]] for t in TRAITS},
            "causal_snp_weights": {t: cohort["weights"][t].tolist() for t in TRAITS},
            "causal_genes": {t: cohort["gene_names"][cohort["causal_genes"][t]].tolist() for t in TRAITS},
            "true_pgs": [f"pgs_{t}" for t in TRAITS],
            "population": dict(zip(ids, cohort["population"].tolist())),
            "trait_values": {t: dict(zip(ids, np.round(cohort["traits"][t], 5).tolist())) for t in TRAITS},
            "modality_present": {m: int(present[:, k].sum()) for k, m in enumerate(MODALITIES)},
            "eyes": eyes,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


GENERATOR = FundusGeneticsGenerator()
