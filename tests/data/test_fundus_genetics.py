"""The fundus-genetics generator: layout, shared genetics of both eyes, missingness, and a truth the files agree with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medgap.data.cases import discover_cases
from medgap.data.dataset_json import load_dataset_json
from medgap.data.genetics import read_bed, read_sscore
from medgap.data.synthetic import generate
from medgap.errors import MedgapError

OPTIONS = {"chromosomes": 2, "chromosome_length": 4e5, "image_size": 32, "every_k": 2, "causal_snps": (4, 4, 2)}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate("fundus-genetics", tmp_path_factory.mktemp("fg") / "fg", cases=40, seed=3, **OPTIONS)


def test_layout_individuals_and_grades(cohort):
    spec = load_dataset_json(cohort)
    assert spec.task == "classification" and spec.channel_names == ("R", "G", "B") and len(spec.classes) == 5
    cases = {c.case_id: c for c in discover_cases(cohort, spec)}
    assert all(c.availability.all() for c in cases.values())  # three colour channels per image
    individuals = {case_id.rsplit("_", 1)[0] for case_id in cases}
    assert len(individuals) == 40 and 40 < len(cases) <= 80
    for case_id, case in cases.items():  # both eyes carry the individual's genetics
        other = case_id[:-1] + ("R" if case_id.endswith("L") else "L")
        if other in cases:
            assert case.genetics.keys() == cases[other].genetics.keys()
            for name in case.genetics:
                np.testing.assert_array_equal(case.genetics[name], cases[other].genetics[name])
    grades = [int(line.split(",")[1]) for line in (cohort / "labelsTr.csv").read_text().splitlines()[1:]]
    assert set(grades) <= set(range(5)) and len(set(grades)) >= 3


def test_genetics_files_agree_with_sources_and_truth(cohort):
    truth = json.loads((cohort / "genetics_source" / "truth.json").read_text())
    header = (cohort / "genetics" / "raw_snps.csv").read_text().splitlines()[0].split(",")[1:]
    causal = [snp for snps in truth["causal_snps"].values() for snp in snps]
    assert len(causal) == 10 and set(causal) <= set(header)  # causal SNPs are visible to the raw_snps modality
    iid, sid, full = read_bed(cohort / "genetics_source" / "cohort.bed")
    assert set(header) <= set(sid.tolist())
    rows = {line.split(",")[0]: np.array(line.split(",")[1:], float)
            for line in (cohort / "genetics" / "raw_snps.csv").read_text().splitlines()[1:]}
    columns = [sid.tolist().index(name) for name in header]
    for individual, values in list(rows.items())[:5]:
        np.testing.assert_array_equal(values, full[iid.tolist().index(individual), columns])
    burden_header = (cohort / "genetics" / "burden.csv").read_text().splitlines()[0].split(",")[1:]
    assert set(g for genes in truth["causal_genes"].values() for g in genes) <= set(burden_header)
    ids, names, pgs = read_sscore(sorted((cohort / "genetics_source").glob("*.sscore")))
    assert set(truth["true_pgs"]) <= set(names.tolist()) and len(names) == 10
    np.testing.assert_allclose(pgs.mean(0), 0, atol=1e-5)
    # Missingness: each modality misses some individuals, and rows are keyed by individual id.
    for name in ("raw_snps", "pgs", "burden"):
        present = len((cohort / "genetics" / f"{name}.csv").read_text().splitlines()) - 1
        assert 10 <= present < 40


def test_same_parameters_reuse_and_other_parameters_refuse(cohort):
    assert generate("fundus-genetics", cohort, cases=40, seed=3, exist_ok=True, **OPTIONS) == cohort
    with pytest.raises(MedgapError, match="other parameters"):
        generate("fundus-genetics", cohort, cases=40, seed=4, exist_ok=True, **OPTIONS)


def test_every_genetic_trait_is_visible_at_64_px():
    """A linear probe on raw pixels recovers each trait from single images (held-out folds), so an image encoder
    can learn what genetics predicts; the vessel calibre, which drives the grade, included."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    from medgap.data.synthetic.fundus_genetics import TRAITS, fundus_image

    traits = np.random.default_rng(0).normal(0, 1, (240, 3))
    pixels = []
    for i, (disc, vessel, pigment) in enumerate(traits):
        rng = np.random.default_rng([1, i])
        image = fundus_image(rng, 64, disc, vessel, pigment, int(rng.poisson(2)), right_eye=bool(i % 2))
        pixels.append((image[:, :, ::-1] if i % 2 else image).ravel())  # mirror right eyes back
    probe = RidgeCV(alphas=np.logspace(-1, 4, 12))
    r2 = {t: cross_val_score(probe, np.array(pixels), traits[:, k], cv=3, scoring="r2").mean()
          for k, t in enumerate(TRAITS)}
    assert r2["disc"] > 0.8 and r2["pigment"] > 0.9 and r2["vessel"] > 0.25, r2
