"""GWAS regression against numpy least squares, inverse-rank normalisation, loci counting; the attribution explainer
against the contrastive loss it stands for, and precision@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from medgap.evaluation.attributions import PersonLoss, attribute, precision_at_k
from medgap.evaluation.gwas import clump_loci, inverse_rank_normalise, linear_gwas, recovered_causal
from medgap.losses.contrastive import cross_modal_infonce


def test_linear_gwas_equals_full_ols_with_covariates():
    rng = np.random.default_rng(0)
    n = 60
    covariates = rng.normal(size=(n, 2))
    genotypes = rng.integers(0, 3, (n, 4)).astype(float)
    phenotypes = np.column_stack([0.8 * genotypes[:, 1] + covariates[:, 0] + rng.normal(size=n), rng.normal(size=n)])
    beta, p = linear_gwas(phenotypes, genotypes, covariates)
    for s in range(4):
        design = np.column_stack([np.ones(n), covariates, genotypes[:, s]])
        for k in range(2):
            coef, rss, *_ = np.linalg.lstsq(design, phenotypes[:, k], rcond=None)
            dof = n - design.shape[1]
            se = np.sqrt(rss[0] / dof * np.linalg.inv(design.T @ design)[-1, -1])
            assert beta[s, k] == pytest.approx(coef[-1], rel=1e-8)
            assert p[s, k] == pytest.approx(2 * stats.t.sf(abs(coef[-1] / se), dof), rel=1e-6)
    assert p[1, 0] < 1e-3 and p[0, 0] > 1e-3


def test_inverse_rank_normalise_and_loci():
    values = np.array([[3.0], [1.0], [2.0], [10.0]])
    expected = stats.norm.ppf((np.array([3, 1, 2, 4]) - 0.5) / 4)
    np.testing.assert_allclose(inverse_rank_normalise(values)[:, 0], expected)
    chromosome = np.array([1, 1, 1, 1, 2])
    position = np.array([100, 20_000, 200_000, 230_000, 5_000])
    p = np.array([1e-9, 1e-10, 0.5, 1e-9, 1e-9])
    loci = clump_loci(chromosome, position, p, 5e-8, window=50_000)
    assert [(l["chromosome"], l["start"], l["end"], l["lead_position"]) for l in loci] == [
        (1, 100, 20_000, 20_000), (1, 230_000, 230_000, 230_000), (2, 5_000, 5_000, 5_000)]
    assert recovered_causal(loci, [(1, 60_000), (1, 150_000), (2, 900_000)], window=50_000) == 1


def _tiny_modality(features=6, width=5):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(features, 8), nn.ReLU(), nn.BatchNorm1d(8)).eval()
    head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, width)).eval()
    return encoder, head


def test_person_loss_is_the_contrastive_loss_of_reference_plus_person():
    encoder, head = _tiny_modality()
    z_image = torch.randn(5, 5)  # 4 reference rows + the person
    reference = torch.randn(4, 6)
    explainer = PersonLoss(encoder, head, z_image, reference, temperature=1.0, alpha=0.5)
    candidates = torch.randn(3, 6)
    output = explainer(candidates)
    for k in range(3):
        genetics = torch.cat([reference, candidates[k:k + 1]])
        expected = cross_modal_infonce(z_image, head(encoder(genetics)), temperature=1.0, alpha=0.5)
        assert output[k].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("algorithm", ["integrated_gradients", "ig_noise_tunnel", "deeplift"])
def test_attributions_run_and_ig_is_complete(algorithm):
    encoder, head = _tiny_modality()
    explainer = PersonLoss(encoder, head, torch.randn(5, 5), torch.randn(4, 6))
    person = torch.randn(6)
    result = attribute(explainer, person, algorithm, steps=64)
    assert result.shape == (6,) and torch.isfinite(result).all()
    if algorithm == "integrated_gradients":  # completeness: Σ attributions = f(x) − f(0)
        gap = explainer(person[None]) - explainer(torch.zeros(1, 6))
        assert result.sum().item() == pytest.approx(gap.item(), abs=1e-2 * max(1.0, abs(gap.item())))


def test_precision_at_k_against_random():
    names = ["a", "b", "c", "d", "e"]
    result = precision_at_k(np.array([0.9, 0.1, 0.8, 0.0, 0.3]), names, {"a", "c", "z"}, k=2)
    assert result == {"k": 2, "precision": 1.0, "random": 2 / 5}
