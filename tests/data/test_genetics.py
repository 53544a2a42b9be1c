"""Genetic readers (PLINK .bed, .sscore, burden), the image → individual mapping and splits by individual."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medgap.data.cases import discover_cases, load_genetics
from medgap.data.dataset_json import load_dataset_json, write_dataset_json
from medgap.data.genetics import mode_impute, read_bed, read_burden, read_sscore, write_genetics_csv
from medgap.data.io import write_png
from medgap.data.splits import make_splits
from medgap.errors import DatasetError


def test_bed_matches_csv_dosages_with_subsampling_and_mode_imputation(tmp_path):
    from bed_reader import to_bed

    rng = np.random.default_rng(0)
    dosages = rng.integers(0, 3, (7, 9)).astype(np.float32)
    dosages[:, 2] = [0, 2, 2, 1, 2, np.nan, np.nan]  # column mode 2 fills the missing calls
    ids = [f"P{i}" for i in range(7)]
    to_bed(tmp_path / "toy.bed", dosages, properties={"iid": ids, "sid": [f"rs{j}" for j in range(9)]})
    # The same data as the CSV a user would write by hand: every 2nd SNP, NaN → column mode.
    expected = dosages[:, ::2].copy()
    expected[5:, 1] = 2
    write_genetics_csv(tmp_path / "genetics" / "raw_snps.csv", ids, [f"rs{j}" for j in range(0, 9, 2)], expected)
    from_csv = load_genetics(tmp_path / "genetics")["raw_snps"]

    iid, sid, from_bed = read_bed(tmp_path / "toy.bed", every_k=2)
    assert iid.tolist() == ids and sid.tolist() == ["rs0", "rs2", "rs4", "rs6", "rs8"]
    np.testing.assert_array_equal(from_bed, np.stack([from_csv[i] for i in ids]))
    assert not np.isnan(from_bed).any()


def test_mode_impute_ties_and_all_missing():
    values = np.array([[0, np.nan], [1, np.nan], [np.nan, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(mode_impute(values), [[0, 0], [1, 0], [0, 0]])  # tie → smaller dosage


def test_sscore_zscored_per_file_and_burden_min_carriers(tmp_path):
    header = "#FID\tIID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\tSCORE1_AVG\n"
    (tmp_path / "a.sscore").write_text(header + "f\tP0\t10\t3\t0.1\nf\tP1\t10\t3\t0.3\nf\tP2\t10\t3\t0.5\n")
    (tmp_path / "b.sscore").write_text(header + "f\tP1\t10\t3\t4\nf\tP0\t10\t3\t2\nf\tP2\t10\t3\t9\n")
    ids, names, values = read_sscore([tmp_path / "a.sscore", tmp_path / "b.sscore"])
    assert ids.tolist() == ["P0", "P1", "P2"] and names.tolist() == ["a", "b"]
    raw = np.array([[0.1, 2], [0.3, 4], [0.5, 9]])
    np.testing.assert_allclose(values, (raw - raw.mean(0)) / raw.std(0), rtol=1e-5)

    (tmp_path / "burden.csv").write_text("individual_id,G1,G2,G3\nP0,1,0,0\nP1,2,0,1\nP2,0,0,3\n")
    ids, genes, burden = read_burden(tmp_path / "burden.csv", min_carriers=2)
    assert genes.tolist() == ["G1", "G3"] and burden.tolist() == [[1, 0], [2, 1], [0, 3]]  # not normalised
    import h5py

    with h5py.File(tmp_path / "burden.h5", "w") as handle:
        handle["burden"] = np.array([[1, 0, 0], [2, 0, 1], [0, 0, 3]], np.float32)
        handle["individuals"] = np.array([b"P0", b"P1", b"P2"])
        handle["genes"] = np.array([b"G1", b"G2", b"G3"])
    ids_h5, genes_h5, burden_h5 = read_burden(tmp_path / "burden.h5", min_carriers=2)
    assert ids_h5.tolist() == ids.tolist() and genes_h5.tolist() == ["G1", "G3"]
    np.testing.assert_array_equal(burden_h5, burden)
    with pytest.raises(DatasetError, match=r"burden.csv: no gene has >= 4 carriers among 3 individuals"):
        read_burden(tmp_path / "burden.csv", min_carriers=4)  # refused, rather than a burden.csv of ids only
    (tmp_path / "bad.sscore").write_text("#FID\tIID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\nf\tP0\t10\t1\n")
    with pytest.raises(DatasetError, match="bad.sscore: expected columns IID and score columns"):
        read_sscore([tmp_path / "bad.sscore"])


@pytest.mark.parametrize("header, names", [
    # several scores in one run (plink2 --score-col-nums 3-5)
    ("#FID\tIID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\tSCORE1_AVG\tSCORE2_AVG", ["multi:SCORE1", "multi:SCORE2"]),
    # named columns from a PGS Catalog scoring file read with header-read
    ("#IID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\tPGS000018_AVG\tPGS000039_AVG", ["multi:PGS000018", "multi:PGS000039"]),
    # cols=scoresums,-scoreavgs: sums only; PLINK's allele-dosage total is not a score
    ("#FID\tIID\tALLELE_CT\tNAMED_ALLELE_DOSAGE_SUM\tSCORE1_SUM\tSCORE2_SUM", ["multi:SCORE1", "multi:SCORE2"]),
])
def test_sscore_reads_every_score_column(tmp_path, header, names):
    rows = [("P0", 0.1, 7.0), ("P1", 0.3, 1.0), ("P2", 0.8, 4.0)]
    lead = "" if header.startswith("#IID") else "f\t"
    (tmp_path / "multi.sscore").write_text(header + "\n" + "".join(
        f"{lead}{iid}\t20\t5\t{a}\t{b}\n" for iid, a, b in rows))
    (tmp_path / "single.sscore").write_text("#FID\tIID\tSCORE1_AVG\nf\tP2\t3\nf\tP0\t1\nf\tP1\t2\n")
    ids, found, values = read_sscore([tmp_path / "multi.sscore", tmp_path / "single.sscore"])
    assert ids.tolist() == ["P0", "P1", "P2"] and found.tolist() == [*names, "single"]
    raw = np.array([[0.1, 7, 1], [0.3, 1, 2], [0.8, 4, 3]])
    np.testing.assert_allclose(values, (raw - raw.mean(0)) / raw.std(0), rtol=1e-5)


def _eye_dataset(root, individuals=6):
    (root / "imagesTr").mkdir(parents=True)
    rows = ["case_id,individual_id"]
    for i in range(individuals):
        for side in "LR":
            write_png(root / "imagesTr" / f"P{i}_{side}_0000.png", np.full((8, 8), 10 * i, np.uint8))
            rows.append(f"P{i}_{side},P{i}")
    (root / "individuals.csv").write_text("\n".join(rows) + "\n")
    (root / "genetics").mkdir()
    (root / "genetics" / "pgs.csv").write_text("individual_id,s1\nP0,0.5\nP2,1.5\n")
    write_dataset_json(root, {"name": "Eyes", "task": "classification", "classes": ["0", "1"],
                              "channel_names": {"0": "gray"}, "file_ending": ".png",
                              "genetics": {"individuals": "individuals.csv"}})
    return root


def test_both_eyes_share_the_individuals_genetics(tmp_path):
    root = _eye_dataset(tmp_path / "eyes")
    cases = {c.case_id: c for c in discover_cases(root, load_dataset_json(root))}
    assert cases["P0_L"].genetics["pgs"].tolist() == [0.5] == cases["P0_R"].genetics["pgs"].tolist()
    assert cases["P2_R"].genetics["pgs"].tolist() == [1.5]
    assert cases["P1_L"].genetics == {}  # absent individual = missing modality


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_never_puts_one_individuals_images_on_both_sides(seed):
    cases = [f"P{i}_{side}" for i in range(40) for side in "LR"] + ["Q0_L"]  # one individual with one eye
    groups = {c: c.split("_")[0] for c in cases}
    splits = make_splits(cases, set(cases), seed=seed, val_fraction=0.1, test_fraction=0.2, groups=groups,
                         labelled_ratio=0.5)
    side = {}
    for name in ("train", "val", "test"):
        for case in splits[name]:
            assert side.setdefault(groups[case], name) == name
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == sorted(cases)
    assert abs(len(splits["test"]) - 16) <= 1 and abs(len(splits["val"]) - 8) <= 1
    assert len(splits["labelled"]) == int(0.5 * len(splits["train"]) + 0.5)  # round half up, as make_splits
    again = make_splits(cases, set(cases), seed=seed, val_fraction=0.1, test_fraction=0.2, groups=groups,
                        labelled_ratio=0.5)
    assert json.dumps(again) == json.dumps(splits)


def test_prepare_data_splits_by_individual(tmp_path):
    from medgap.config import DataConfig
    from medgap.data.pipeline import prepare_data

    root = _eye_dataset(tmp_path / "eyes", individuals=10)
    (root / "labelsTr.csv").write_text("case_id,class\n" + "".join(f"P{i}_{s},{i % 2}\n" for i in range(10) for s in "LR"))
    data = prepare_data(DataConfig(dataset_dir=str(root), val_fraction=0.2, test_fraction=0.2,
                                   cache_dir=str(tmp_path / "cache")), 0, tmp_path / "run")
    held = {c.split("_")[0] for c in data.splits["val"] + data.splits["test"]}
    assert held.isdisjoint({c.split("_")[0] for c in data.splits["train"]})


def test_convert_genetics_writes_csvs_into_a_dataset_folder(tmp_path):
    from bed_reader import to_bed

    from medgap.data.convert import converter

    root = _eye_dataset(tmp_path / "eyes")
    (root / "genetics" / "pgs.csv").unlink()
    source = tmp_path / "raw"
    source.mkdir()
    to_bed(source / "cohort.bed", np.array([[0, 1, 2, 1], [2, 2, 0, 1]], np.float32), properties={"iid": ["P0", "P1"]})
    converter("genetics").convert(source, root, every_k=2)
    assert (root / "genetics" / "raw_snps.csv").read_text().splitlines()[1:] == ["P0,0,2", "P1,2,0"]
    with pytest.raises(DatasetError, match="raw_snps.csv: exists"):
        converter("genetics").convert(source, root)
