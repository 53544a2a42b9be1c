"""Evaluation over all 2^N − 1 modality subsets, side-by-side comparison with paired t-tests, missing-file predict."""

import json

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import tiny_config, write_tiny_dataset
from medgap.cli import main
from medgap.evaluation.subsets import all_subsets, compare_runs, subset_symbol
from medgap.training.loop import train

MISSING = {0: (1,), 3: (1,), 4: (0,)}  # 3 of 10 cases lack a channel file: no preprocessing step needed


def test_all_subsets_in_paper_order():
    assert [subset_symbol(s) for s in all_subsets(3)] == ["●○○", "○●○", "○○●", "●●○", "●○●", "○●●", "●●●"]
    assert len(all_subsets(4)) == 15 and len(set(all_subsets(5))) == 31


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("subsets")
    dataset = write_tiny_dataset(root / "Dataset003_Missing", regions=True, missing=MISSING)
    runs = {}
    for name in ("shaspec", "zero_filling"):
        for seed in (0, 1):
            config = tiny_config(dataset, **{"method.name": name, "name": name, "trainer.seed": seed,
                                             "trainer.max_steps": 4, "trainer.val_every": 4,
                                             "evaluation.split": "val"})
            train(config, root / f"{name}_{seed}")
            runs[name, seed] = root / f"{name}_{seed}"
    return root, dataset, runs


def test_evaluate_all_subsets_writes_table_one(runs):
    root, _, run_dirs = runs
    run = run_dirs["shaspec", 0]
    assert main(["evaluate", str(run), "--modality-subsets", "all"]) == 0
    table = (run / "subsets.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| A | B | Dice whole | Dice core | Dice mean | HD95 whole")
    assert [row.split(" | ")[:2] for row in rows[1:4]] == [["| ●", "○"], ["| ○", "●"], ["| ●", "●"]]
    assert rows[4].startswith("| **Average**")
    saved = json.loads((run / "subsets.json").read_text())
    splits = json.loads((run / "splits.json").read_text())
    # a case whose only present modality is dropped cannot be predicted: it is left out of that subset's rows
    lacks_b = {f"case_{i:03d}" for i, channels in MISSING.items() if 1 in channels}
    in_b_only = {r["case"] for r in saved["per_case"] if r["subset"] == "○●"}
    assert in_b_only == set(splits["val"]) - lacks_b
    assert saved["skipped_cases"] == {"●○": 0, "○●": 0, "●●": 0}  # the val cases have both files
    means = {(r["subset"], r["structure"]): r["dice"] for r in saved["aggregated"]}
    for symbol in ("●○", "○●", "●●"):  # the table's numbers are the mean of the per-case records
        values = [r["dice"] for r in saved["per_case"] if r["subset"] == symbol and r["structure"] == "whole"]
        assert means[symbol, "whole"] == pytest.approx(np.mean(values))
    assert (run / "plots" / "features_tsne.png").stat().st_size > 1000
    silhouettes = json.loads((run / "plots" / "features_tsne.json").read_text())
    assert -1 <= silhouettes["silhouette_shared"] <= 1 and -1 <= silhouettes["silhouette_specific"] <= 1


def test_evaluate_named_subsets_matches_the_all_subsets_row(runs):
    """A dedicated model is scored on its one subset: the same per-case numbers as that row of the full table."""
    from medgap.evaluation.subsets import evaluate_subsets

    _, _, run_dirs = runs
    run = run_dirs["zero_filling", 0]
    full = evaluate_subsets(run, subsets="all", feature_plot=False)["records"]
    named = evaluate_subsets(run, subsets=[["B"]], feature_plot=False)
    assert {r["subset"] for r in named["records"]} == {"○●"}
    expected = {(r["case"], r["structure"]): r["dice"] for r in full if r["subset"] == "○●"}
    assert {(r["case"], r["structure"]): r["dice"] for r in named["records"]} == pytest.approx(expected)
    with pytest.raises(Exception, match="non-empty lists"):
        evaluate_subsets(run, subsets=[["C"]])


def test_compare_pools_seeds_and_pairs_cases_by_seed(runs, capsys):
    root, _, run_dirs = runs
    order = [run_dirs[key] for key in (("shaspec", 0), ("shaspec", 1), ("zero_filling", 0), ("zero_filling", 1))]
    assert main(["compare", *map(str, order), "--out", str(root / "cmp")]) == 0
    table = (root / "cmp" / "compare.md").read_text()
    assert "shaspec (seeds [0, 1])" in table and "p (zero_filling vs shaspec)" in table
    result = json.loads((root / "cmp" / "compare.json").read_text())
    # independent reference: per-case mean Dice over structures, paired by (seed, case), scipy's ttest_rel
    def per_case(name, symbol):
        scores = {}
        for seed in (0, 1):
            for record in json.loads((run_dirs[name, seed] / "subsets.json").read_text())["per_case"]:
                if record["subset"] == symbol:
                    scores.setdefault((seed, record["case"]), []).append(record["dice"])
        return {key: np.mean(values) for key, values in scores.items()}
    for row in result["rows"]:
        a, b = per_case("zero_filling", row["subset"]), per_case("shaspec", row["subset"])
        keys = sorted(set(a) & set(b))
        expected = stats.ttest_rel([a[k] for k in keys], [b[k] for k in keys]).pvalue
        assert row["p:zero_filling"] == pytest.approx(expected, nan_ok=True)
        assert len(keys) > len({k[1] for k in keys})  # two seeds → more pairs than distinct cases
    with pytest.raises(Exception, match="same name"):
        compare_runs([run_dirs["shaspec", 0], run_dirs["shaspec", 1]], root / "cmp2")


def test_predict_uses_the_missing_modality_path(runs, tmp_path, monkeypatch):
    from medgap.methods.shaspec import ShaSpecSegmentation

    root, dataset, run_dirs = runs
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "case_000_0000.nii.gz").write_bytes((dataset / "imagesTr" / "case_000_0000.nii.gz").read_bytes())
    seen = []
    original = ShaSpecSegmentation.predict_logits
    monkeypatch.setattr(ShaSpecSegmentation, "predict_logits",
                        lambda self, image, availability: seen.append(availability.clone()) or original(self, image, availability))
    assert main(["predict", str(run_dirs["shaspec", 0]), str(inputs), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "case_000.nii.gz").is_file()
    assert seen and all(a[:, 0].all() and not a[:, 1].any() for a in seen)


def test_a_case_is_scored_only_under_subsets_it_has(runs):
    # The train split holds the cases with an absent file: a case lacking B is not filed under ●● (it would
    # have been predicted from A alone); it is skipped and counted, and the page says so.
    from medgap.evaluation.subsets import evaluate_subsets

    _, _, run_dirs = runs
    run = run_dirs["zero_filling", 0]
    result = evaluate_subsets(run, split="train", feature_plot=False)
    train_cases = set(json.loads((run / "splits.json").read_text())["train"])
    lacks = {symbol: {f"case_{i:03d}" for i, channels in MISSING.items() if set(channels) & needs} & train_cases
             for symbol, needs in (("●○", {0}), ("○●", {1}), ("●●", {0, 1}))}
    assert lacks["●●"]  # not vacuous
    saved = json.loads((run / "subsets.json").read_text())
    for symbol, missing in lacks.items():
        assert {r["case"] for r in result["records"] if r["subset"] == symbol} == train_cases - missing
        assert saved["skipped_cases"][symbol] == len(missing)
    page = (run / "subsets.md").read_text()
    assert "Not scored (the case lacks a modality of the subset)" in page and f"●● {len(lacks['●●'])}" in page


@pytest.mark.parametrize("modalities", [2, 4])
def test_feature_plot_of_a_one_case_split_notes_the_undefined_silhouette(tmp_path, monkeypatch, modalities):
    # One case gives one point per modality: every point its own cluster, where scikit-learn's silhouette raises.
    from types import SimpleNamespace

    from medgap.evaluation import features

    rng = np.random.default_rng(0)
    monkeypatch.setattr(features, "pooled_features", lambda *args: (
        rng.normal(size=(modalities, 8)), rng.normal(size=(modalities, 8)), np.arange(modalities)))
    method = SimpleNamespace(spec=SimpleNamespace(channel_names=tuple(f"M{i}" for i in range(modalities))))
    path = features.plot_shared_specific(method, [], None, tmp_path / "tsne.png")
    saved = json.loads(path.with_suffix(".json").read_text())
    assert path.stat().st_size > 1000 and saved["points"] == modalities
    assert np.isnan(saved["silhouette_shared"]) and "silhouette undefined" in saved["note"]


@pytest.mark.parametrize("name", ["shaspec", "zero_filling"])
def test_one_pass_over_all_subsets_predicts_what_one_pass_per_subset_does(runs, name):
    # ShaSpec encodes each modality once for every subset (its features of a modality come from that channel only,
    # and Eq. 4 replaces a missing row whole); other methods go subset by subset. Both must give exactly the label
    # maps of predict_case with the subset, cases lacking a channel included.
    from medgap.evaluation.evaluate import load_run
    from medgap.inference.predict import predict_case, predict_case_subsets
    from medgap.inference.sliding_window import predict_probabilities

    _, _, run_dirs = runs
    config, data, method = load_run(run_dirs[name, 0], "train")
    subsets = [np.asarray(subset) for subset in all_subsets(2)]
    modes = ("mean", "copy") if name == "shaspec" else ("none",)
    for mode in modes:
        differ = False
        if name == "shaspec":
            method.options.missing_feature = method.encoder.missing_feature = mode
        for case in data.split_cases("train"):
            wanted = [subset for subset in subsets if (case.availability & subset).any()]
            together = predict_case_subsets(method, case, config, wanted)
            one_by_one = [predict_case(method, case, config, availability=subset) for subset in wanted]
            assert len(together) == len(one_by_one) and len(wanted) >= 2
            for subset, a, b in zip(wanted, together, one_by_one):
                assert np.array_equal(a, b), (mode, case.case_id, subset)
            # and the probabilities behind them, bit for bit (label maps of a 4-step model may all be background)
            if name != "shaspec":  # only a method with predict_subsets_logits takes (M, C) availabilities
                continue
            image = np.array(case.image(), dtype=np.float32)
            present = np.stack([case.availability & subset for subset in wanted])
            window = dict(overlap=0.5, sw_batch_size=2)
            joint = predict_probabilities(method, image, present, config.data.patch_size, **window)
            for row, probabilities in zip(present, joint):
                zeroed = np.where(row.reshape(-1, *[1] * (image.ndim - 1)), image, 0.0).astype(np.float32)
                alone = predict_probabilities(method, zeroed, row, config.data.patch_size, **window)
                assert torch.equal(probabilities, alone), (mode, case.case_id, row)
            differ = differ or not torch.equal(joint[0], joint[-1])
        assert differ or name != "shaspec"  # the subsets do predict differently (not a vacuous equality)
