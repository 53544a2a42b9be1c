"""GWAS on image features (ContIG Sec. 4.4): features → PCA(10) → inverse-rank normalisation → per-SNP linear
regression with ancestry-PC covariates → significant loci, Manhattan plot, and recovery of known causal loci.

All regressions are one vectorised least-squares pass: phenotypes and genotypes are residualised on the covariates
(Frisch–Waugh–Lovell), so the SNP effect and its t statistic equal those of the full model
``y ~ 1 + covariates + snp`` with ``n − c − 2`` residual degrees of freedom.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import stats

from medgap.phases import timed

GENOME_WIDE = 5e-8


def inverse_rank_normalise(values: np.ndarray) -> np.ndarray:
    """Rank-based inverse normal transform per column of ``(N, P)``: ``Φ⁻¹((rank − 0.5) / N)`` (ties averaged)."""
    ranks = np.apply_along_axis(stats.rankdata, 0, values)
    return stats.norm.ppf((ranks - 0.5) / len(values))


def phenotypes_from_features(features: np.ndarray, components: int = 10, seed: int = 0) -> np.ndarray:
    """``(N, D)`` image features (one row per individual) → ``(N, components)`` inverse-rank-normalised PCs."""
    from sklearn.decomposition import PCA

    components = min(components, features.shape[1], len(features) - 1)
    scores = PCA(components, random_state=seed).fit_transform(features - features.mean(0))
    return inverse_rank_normalise(scores)


def ancestry_pcs(genotypes: np.ndarray, components: int = 4) -> np.ndarray:
    """Top principal components of standardised genotypes ``(N, S)`` → ``(N, components)`` (population structure)."""
    standardised = (genotypes - genotypes.mean(0)) / np.maximum(genotypes.std(0), 1e-8)
    u, s, _ = np.linalg.svd(standardised, full_matrices=False)
    return u[:, :components] * s[:components]


def linear_gwas(phenotypes: np.ndarray, genotypes: np.ndarray, covariates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-SNP, per-phenotype OLS ``y ~ 1 + covariates + snp``.

    Args:
        phenotypes: ``(N, P)``; genotypes: ``(N, S)`` dosages; covariates: ``(N, C)`` or None.

    Returns:
        ``beta (S, P)`` and two-sided ``p (S, P)``.
    """
    n = len(phenotypes)
    design = np.column_stack([np.ones(n), covariates]) if covariates is not None else np.ones((n, 1))
    projector = np.linalg.pinv(design)
    residual = lambda x: x - design @ (projector @ x)  # noqa: E731
    y = residual(phenotypes.astype(np.float64))
    g = residual(genotypes.astype(np.float64))
    gg = np.maximum((g * g).sum(0), 1e-12)  # (S,)
    beta = (g.T @ y) / gg[:, None]  # (S, P)
    dof = n - design.shape[1] - 1
    rss = (y * y).sum(0)[None, :] - beta ** 2 * gg[:, None]
    se = np.sqrt(np.maximum(rss, 1e-12) / dof / gg[:, None])
    p = 2 * stats.t.sf(np.abs(beta / se), dof)
    p[(g * g).sum(0) < 1e-10] = 1.0  # monomorphic after residualising
    return beta, p


def clump_loci(chromosome: np.ndarray, position: np.ndarray, p: np.ndarray, threshold: float,
               window: int = 50_000) -> list[dict]:
    """Significant SNPs (min p over phenotypes < ``threshold``) merged into loci: a new locus starts when the next
    significant SNP on the chromosome is more than ``window`` bp away. Returns ``[{chromosome, start, end,
    lead_position, lead_p}]``."""
    best = p.min(1) if p.ndim == 2 else p
    hits = np.flatnonzero(best < threshold)
    order = hits[np.lexsort((position[hits], chromosome[hits]))]
    loci: list[dict] = []
    for index in order:
        c, x = int(chromosome[index]), int(position[index])
        if loci and loci[-1]["chromosome"] == c and x - loci[-1]["end"] <= window:
            locus = loci[-1]
            locus["end"] = x
            if best[index] < locus["lead_p"]:
                locus["lead_position"], locus["lead_p"] = x, float(best[index])
        else:
            loci.append({"chromosome": c, "start": x, "end": x, "lead_position": x, "lead_p": float(best[index])})
    return loci


def recovered_causal(loci: list[dict], causal: list[tuple[int, int]], window: int = 50_000) -> int:
    """How many causal SNPs ``(chromosome, position)`` lie within ``window`` bp of a significant locus."""
    return sum(any(l["chromosome"] == c and l["start"] - window <= x <= l["end"] + window for l in loci)
               for c, x in causal)


@timed('gwas')
def gwas_summary(phenotypes: np.ndarray, genotypes: np.ndarray, chromosome: np.ndarray, position: np.ndarray,
                 causal: list[tuple[int, int]], covariates: np.ndarray | None = None, window: int = 50_000,
                 suggestive: float = 1e-5) -> dict:
    """Run :func:`linear_gwas` and count loci at 5e-8, at Bonferroni (0.05 / (SNPs × phenotypes)) and at a
    suggestive threshold, with the causal SNPs each recovers. Returns counts, thresholds and ``p (S, P)``."""
    _, p = linear_gwas(phenotypes, genotypes, covariates)
    bonferroni = 0.05 / (p.shape[0] * p.shape[1])
    result = {"snps": int(p.shape[0]), "phenotypes": int(p.shape[1]), "bonferroni": bonferroni,
              "causal_snps": len(causal), "p": p}
    for name, threshold in (("genome_wide", GENOME_WIDE), ("bonferroni", bonferroni), ("suggestive", suggestive)):
        loci = clump_loci(chromosome, position, p, threshold, window)
        result[f"loci_{name}"] = len(loci)
        result[f"causal_recovered_{name}"] = recovered_causal(loci, causal, window)
    result["min_p"] = float(p.min())
    return result


@timed('plots')
def manhattan_plot(chromosome: np.ndarray, position: np.ndarray, p: np.ndarray, path: str | os.PathLike, *,
                   title: str = "", causal: list[tuple[int, int]] = (), bonferroni: float | None = None) -> Path:
    """−log10 p (min over phenotypes) along the genome, chromosomes alternating in colour, causal SNPs marked,
    lines at 5e-8 and at ``bonferroni``."""
    from medgap.evaluation.plots import _save, plt

    best = p.min(1) if p.ndim == 2 else p
    x, offsets, ticks = _genome_axis(chromosome, position)
    figure, axis = plt.subplots(figsize=(10, 3.5))
    for c in np.unique(chromosome):
        chosen = chromosome == c
        axis.scatter(x[chosen], -np.log10(best[chosen]), s=4, color="#1f77b4" if c % 2 else "#7f7f7f")
    for c, pos in causal:
        axis.axvline(offsets[c] + pos, color="#d62728", alpha=0.25, lw=0.8)
    axis.axhline(-np.log10(GENOME_WIDE), color="k", ls="--", lw=0.8, label="5e-8")
    if bonferroni:
        axis.axhline(-np.log10(bonferroni), color="#ff7f0e", ls=":", lw=0.8, label=f"Bonferroni {bonferroni:.1e}")
    axis.set_xticks(list(ticks.values()), [str(c) for c in ticks])
    axis.set_xlabel("chromosome (red: causal SNPs)")
    axis.set_ylabel("−log10 p")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="upper right")
    return _save(figure, path)


def _genome_axis(chromosome: np.ndarray, position: np.ndarray):
    offsets, ticks, start = {}, {}, 0
    for c in np.unique(chromosome):
        length = int(position[chromosome == c].max())
        offsets[int(c)], ticks[int(c)] = start, start + length / 2
        start += length
    return np.array([offsets[int(c)] for c in chromosome]) + position, offsets, ticks
