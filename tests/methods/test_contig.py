"""ContIG: the weighted cross-modal InfoNCE, per-modality missingness, inner/outer aggregation, pretraining through
the generic loop, and the downstream classifier loading the pretrained encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgap.data.dataset_json import load_dataset_json, write_dataset_json
from medgap.data.io import write_png
from medgap.losses.contrastive import cross_modal_infonce, info_nce, nt_xent


def test_cross_modal_infonce_matches_hand_computation_on_3x2_toy_batch():
    z_v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])  # normalised: (1,0), (0,1), (0.6,0.8)
    z_g = torch.tensor([[1.0, 1.0], [0.0, -1.0], [4.0, 3.0]])  # (.7071,.7071), (0,-1), (0.8,0.6)
    tau, alpha = 0.1, 0.75
    v = [(1, 0), (0, 1), (0.6, 0.8)]
    s = 1 / math.sqrt(2)
    g = [(s, s), (0, -1), (0.8, 0.6)]
    sim = [[(a[0] * b[0] + a[1] * b[1]) / tau for b in g] for a in v]
    v_to_g = sum(-sim[i][i] + math.log(sum(math.exp(x) for x in sim[i])) for i in range(3)) / 3
    g_to_v = sum(-sim[j][j] + math.log(sum(math.exp(sim[i][j]) for i in range(3))) for j in range(3)) / 3
    expected = alpha * v_to_g + (1 - alpha) * g_to_v
    assert cross_modal_infonce(z_v, z_g, tau, alpha).item() == pytest.approx(expected, rel=1e-5)
    # By hand: v→g row CEs ≈ 1.247, 17.36, 0.853 (mean 6.487); g→v column CEs ≈ 2.93, 10.00, 0.20 (mean 4.378);
    # 0.75 · 6.487 + 0.25 · 4.378 ≈ 5.96.
    assert expected == pytest.approx(5.966, abs=5e-3)


def test_info_nce_weights_the_two_directions_by_alpha():
    """α·CE(rows) + (1 − α)·CE(columns) on a non-symmetric 3×3 similarity, against a hand-written softmax."""
    similarity = torch.tensor([[0.9, 0.1, -0.3], [0.4, 0.2, 0.0], [-0.5, 0.7, 0.6]])
    tau = 0.5

    def cross_entropy(matrix):
        return sum(-math.log(math.exp(matrix[i][i] / tau) / sum(math.exp(x / tau) for x in matrix[i]))
                   for i in range(3)) / 3

    rows, columns = cross_entropy(similarity.tolist()), cross_entropy(similarity.T.tolist())
    unused = torch.zeros(3, 2)
    symmetric = info_nce(unused, unused, tau, similarity=similarity).item()
    assert symmetric == pytest.approx(0.5 * (rows + columns), rel=1e-6)
    assert info_nce(unused, unused, tau, alpha=1.0, similarity=similarity).item() == pytest.approx(rows, rel=1e-6)
    assert info_nce(unused, unused, tau, alpha=0.75, similarity=similarity).item() == pytest.approx(
        0.75 * rows + 0.25 * columns, rel=1e-6)
    a, b = torch.randn(4, 5), torch.randn(4, 5)  # ContIG's loss is InfoNCE of the L2-normalised projections
    normalised = F.normalize(a, dim=1), F.normalize(b, dim=1)
    assert torch.equal(cross_modal_infonce(a, b, 0.1, 0.75), info_nce(*normalised, 0.1, 0.75))


def test_nt_xent_matches_definition():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=1)
    sim = (z @ z.T / 0.5).numpy()
    total = 0.0
    for i in range(8):
        j = (i + 4) % 8
        others = [k for k in range(8) if k != i]
        total += -sim[i, j] + np.log(np.exp(sim[i, others]).sum())
    assert nt_xent(a, b, 0.5).item() == pytest.approx(total / 8, rel=1e-5)


def write_eye_cohort(root, individuals: int = 8, size: int = 16):
    """RGB eyes (3 channels), two genetic modalities keyed by individual; P0/P1 lack ``b``, P2 lacks ``a``, P3 none."""
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "genetics").mkdir()
    mapping, labels = ["case_id,individual_id"], ["case_id,class"]
    for i in range(individuals):
        for side in "LR":
            case = f"P{i}_{side}"
            for channel in range(3):
                write_png(root / "imagesTr" / f"{case}_{channel:04d}.png", rng.integers(0, 255, (size, size), dtype=np.uint8))
            mapping.append(f"{case},P{i}")
            labels.append(f"{case},{i % 3}")
    (root / "individuals.csv").write_text("\n".join(mapping) + "\n")
    (root / "labelsTr.csv").write_text("\n".join(labels) + "\n")
    a_rows = [f"P{i}," + ",".join(str(int(v)) for v in rng.integers(0, 3, 5)) for i in range(individuals) if i not in (2, 3)]
    b_rows = [f"P{i}," + ",".join(f"{v:.3f}" for v in rng.normal(size=3)) for i in range(individuals) if i not in (0, 1, 3)]
    (root / "genetics" / "a.csv").write_text("individual_id,s1,s2,s3,s4,s5\n" + "\n".join(a_rows) + "\n")
    (root / "genetics" / "b.csv").write_text("individual_id,p1,p2,p3\n" + "\n".join(b_rows) + "\n")
    write_dataset_json(root, {"name": "Eyes", "task": "classification", "classes": ["0", "1", "2"],
                              "channel_names": {"0": "R", "1": "G", "2": "B"}, "file_ending": ".png",
                              "genetics": {"individuals": "individuals.csv"}})
    return root


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_eye_cohort(tmp_path_factory.mktemp("contig") / "eyes")


def contig_config(dataset, **overrides):
    from medgap.config import load_config

    base = {"method.name": "contig", "method.backbone_widths": [4, 8], "method.projection_hidden": 8,
            "method.projection_dim": 4, "method.genetic_hidden": [6], "data.dataset_dir": str(dataset),
            "data.patch_size": [16, 16], "data.labelled_batch_size": 6, "data.num_workers": 0,
            "data.normalisation": "none", "data.val_fraction": 0.2, "data.test_fraction": 0.2,
            "trainer.max_steps": 2, "trainer.val_every": 2, "trainer.checkpoint_every": 2, "trainer.log_every": 1,
            "trainer.progress": False, "optim.name": "adam"}
    base.update(overrides)
    return load_config(None, [f"{k}={v}" for k, v in base.items()])


def batch_inputs(method, cases):
    torch.manual_seed(1)
    image = torch.rand(len(cases), 3, 16, 16) * 255
    genetics, present = method.tables.lookup(cases)
    return image, [g.clone().requires_grad_(True) for g in genetics], present


def test_missing_modality_contributes_nothing_to_its_term(cohort):
    from medgap.methods import build_method

    torch.manual_seed(0)
    method = build_method(contig_config(cohort), load_dataset_json(cohort))
    cases = ["P0_L", "P2_L", "P4_L", "P5_R", "P6_L", "P3_R"]  # P0 lacks b, P2 lacks a, P3 has nothing
    image, genetics, present = batch_inputs(method, cases)
    assert present.tolist() == [[True, False], [False, True], [True, True], [True, True], [True, True], [False, False]]
    loss, logs = method.contrastive_loss(image, genetics, present)
    loss.backward()
    assert genetics[1].grad[0].abs().sum() == 0 and genetics[0].grad[1].abs().sum() == 0
    assert genetics[0].grad[5].abs().sum() == 0 and genetics[1].grad[5].abs().sum() == 0
    assert genetics[0].grad[0].abs().sum() > 0 and genetics[1].grad[1].abs().sum() > 0
    # Changing the (zero-filled) missing row changes nothing, not even through BatchNorm.
    method.eval()
    before, _ = method.contrastive_loss(image, [g.detach() for g in genetics], present)
    changed = [g.detach().clone() for g in genetics]
    changed[1][0] += 100.0
    changed[0][1] -= 50.0
    after, _ = method.contrastive_loss(image, changed, present)
    assert after.item() == pytest.approx(before.item(), rel=1e-6)


def test_inner_keeps_only_complete_individuals(cohort):
    from medgap.methods import build_method

    torch.manual_seed(0)
    outer = build_method(contig_config(cohort), load_dataset_json(cohort)).eval()
    torch.manual_seed(0)
    inner = build_method(contig_config(cohort, **{"method.aggregation": "inner"}), load_dataset_json(cohort)).eval()
    cases = ["P0_L", "P2_L", "P4_L", "P5_R", "P6_L", "P7_R"]
    image, genetics, present = batch_inputs(inner, cases)
    loss, logs = inner.contrastive_loss(image, genetics, present)
    loss.backward()
    for m in range(2):  # incomplete individuals (P0, P2) take part in no term
        assert genetics[m].grad[:2].abs().sum() == 0 and genetics[m].grad[2:].abs().sum() > 0
    complete = slice(2, 6)  # eval mode: BatchNorm uses running statistics, so sub-batching is exact
    reference, _ = outer.contrastive_loss(image[complete], [g.detach()[complete] for g in genetics], present[complete])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    assert logs["complete_rows"] == 4


def test_pretrain_through_loop_then_finetune_loads_encoder(cohort, tmp_path):
    from medgap.errors import CheckpointError
    from medgap.methods import build_method
    from medgap.training.loop import train

    summary = train(contig_config(cohort), tmp_path / "pre")
    assert summary["steps"] == 2
    rows = [line for line in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines() if "val_" in line]
    assert "val_neg_contrastive_loss" in rows[-1]
    splits = __import__("json").loads((tmp_path / "pre" / "splits.json").read_text())
    assert {c.split("_")[0] for c in splits["test"]}.isdisjoint({c.split("_")[0] for c in splits["train"]})

    from medgap.config import load_config

    config = load_config(None, [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]", "data.labelled_batch_size=4",
                                "data.num_workers=0", "data.normalisation=none", "data.labelled_ratio=0.5",
                                "method.name=image_classifier", f"method.pretrained={tmp_path / 'pre'}",
                                "method.linear_probe=true", "method.backbone_widths=[4, 8]", "trainer.max_steps=2",
                                "trainer.val_every=2", "trainer.progress=false"])
    torch.manual_seed(0)
    classifier = build_method(config, load_dataset_json(cohort))
    pretrained = torch.load(tmp_path / "pre" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in classifier.encoder.state_dict().items():
        assert torch.equal(value, pretrained[f"encoder.{key}"])
    trainable = [name for name, p in classifier.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]  # linear probe
    summary = train(config, tmp_path / "down")
    scores = [line for line in (tmp_path / "down" / "metrics.jsonl").read_text().splitlines() if "val_kappa" in line]
    assert scores and "val_accuracy" in scores[-1]
    after = torch.load(tmp_path / "down" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert torch.equal(after["encoder.stem.0.weight"], pretrained["encoder.stem.0.weight"])  # frozen

    wrong = load_config(None, [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]", "method.name=image_classifier",
                               f"method.pretrained={tmp_path / 'pre'}", "method.backbone_widths=[4, 16]"])
    with pytest.raises(CheckpointError, match="shape mismatch"):
        build_method(wrong, load_dataset_json(cohort))


def test_ordinal_head_probabilities_sum_to_one(cohort):
    from medgap.config import load_config
    from medgap.methods import build_method

    config = load_config(None, [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]",
                                "method.name=image_classifier", "method.backbone_widths=[4, 8]"])
    method = build_method(config, load_dataset_json(cohort)).eval()
    logits = method.predict_logits(torch.rand(5, 3, 16, 16), torch.ones(5, 3, dtype=torch.bool))
    assert logits.shape == (5, 3)
    assert torch.allclose(logits.exp().sum(1), torch.ones(5), atol=1e-4)


def test_ordinal_head_starts_with_every_grade_equally_likely(cohort):
    """Ordered threshold biases: with zero head weights p(y = k) = 1/K (equal biases would give only 0 and K−1)."""
    from medgap.config import load_config
    from medgap.methods import build_method

    config = load_config(None, [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]",
                                "method.name=image_classifier", "method.backbone_widths=[4, 8]"])
    method = build_method(config, load_dataset_json(cohort)).eval()
    torch.nn.init.zeros_(method.head.weight)
    logits = method.predict_logits(torch.rand(2, 3, 16, 16), torch.ones(2, 3, dtype=torch.bool))
    assert torch.allclose(logits.exp(), torch.full((2, 3), 1 / 3), atol=1e-5)


def test_random_views_without_any_transform_is_the_identity_and_rotation_moves_only_what_is_not_round():
    from medgap.data.views import random_views

    image = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    same = random_views(image, torch.Generator().manual_seed(1), 0.0, min_scale=1.0, jitter=0.0, flip=False, noise=0.0)
    torch.testing.assert_close(same, image, atol=1e-5, rtol=0)
    rotate = lambda x: random_views(x, torch.Generator().manual_seed(1), 20.0, min_scale=1.0, jitter=0.0,  # noqa: E731
                                    flip=False, noise=0.0)
    assert (rotate(image) - image).abs().mean() > 0.1
    axis = torch.linspace(-1, 1, 32)
    disc = (axis[:, None] ** 2 + axis[None] ** 2 < 0.5).float().expand(3, 3, 32, 32)  # round: only its rim changes
    bar = (axis[:, None].abs() < 0.3).float().expand(3, 3, 32, 32)
    assert (rotate(disc) - disc).abs().mean() < 0.5 * (rotate(bar) - bar).abs().mean()


def test_fellow_eyes_are_not_negatives_in_the_pair_loss():
    """Rows 0 and 1 are one person (same genetics): with ``group`` their cross logits leave both softmaxes; the
    loss equals the hand computation over the remaining columns/rows, and a perfect model reaches ~0."""
    z_v = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    z_g = torch.tensor([[1.0, 0.05], [1.0, 0.05], [0.0, 1.0]])
    group = torch.tensor([7, 7, 3])
    tau, alpha = 0.5, 0.75
    v = torch.nn.functional.normalize(z_v, dim=1).double().numpy()
    g = torch.nn.functional.normalize(z_g, dim=1).double().numpy()
    sim = v @ g.T / tau
    allowed = [[0, 2], [1, 2], [0, 1, 2]]  # columns of row i (fellow eye dropped); the same sets for columns
    v_to_g = np.mean([-sim[i, i] + np.log(np.exp(sim[i, allowed[i]]).sum()) for i in range(3)])
    g_to_v = np.mean([-sim[j, j] + np.log(np.exp(sim[allowed[j], j]).sum()) for j in range(3)])
    expected = alpha * v_to_g + (1 - alpha) * g_to_v
    assert cross_modal_infonce(z_v, z_g, tau, alpha, group).item() == pytest.approx(expected, rel=1e-5)
    assert cross_modal_infonce(z_v, z_g, tau, alpha).item() > expected + 0.3  # unmasked: the fellow eye competes
    perfect = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert cross_modal_infonce(perfect, perfect, 0.01, alpha, group).item() < 1e-6


def test_validation_of_a_perfect_pairing_is_not_capped_by_fellow_eyes(cohort, tmp_path, monkeypatch):
    """Both projections replaced by the person's own genetics (a perfect pairing): validation retrieval is 1.0
    with fellow eyes masked, and about half without (the fellow eye, with identical genetics, ties)."""
    from medgap.data.pipeline import prepare_data
    from medgap.methods import build_method

    config = contig_config(cohort, **{"method.modalities": ["a"], "data.val_fraction": 0.0,
                                      "data.test_fraction": 0.0})
    data = prepare_data(config.data, 0, tmp_path / "run")
    scores = {}
    for mask in (True, False):
        config.method.mask_same_person = mask
        torch.manual_seed(0)
        method = build_method(config, data.spec)
        monkeypatch.setattr(method, "embed", lambda name, features, genetics: (genetics + 1.0, genetics + 1.0))
        scores[mask] = method.validation_scores(data, config, split="train")
    assert scores[True]["retrieval_top1"] == 1.0
    assert 0.3 < scores[False]["retrieval_top1"] < 0.7
    assert scores[True]["neg_contrastive_loss"] > scores[False]["neg_contrastive_loss"] + 0.15


def test_inner_aggregation_filters_the_training_cases(cohort, tmp_path):
    """``data.train_requires_genetics`` (the inner config): every sampled image belongs to a complete individual
    (P4–P7), so batches are full rather than filtered inside the batch."""
    from medgap.data.pipeline import prepare_data, training_loader

    config = contig_config(cohort, **{"data.train_requires_genetics": "[a, b]", "data.val_fraction": 0.0,
                                      "data.test_fraction": 0.0})
    data = prepare_data(config.data, 0, tmp_path / "run")
    batch = next(iter(training_loader(data, config.data, 0)))
    assert len(batch["case"]) == 6
    assert {case.split("_")[0] for case in batch["case"]} <= {"P4", "P5", "P6", "P7"}
    from medgap.errors import DatasetError

    config = contig_config(cohort, **{"data.train_requires_genetics": "[a, c]"})
    with pytest.raises(DatasetError, match="train_requires_genetics"):
        training_loader(prepare_data(config.data, 0, tmp_path / "run2"), config.data, 0)


def test_genetic_weight_decay_adds_its_penalty_and_dropout_acts_only_in_training(cohort):
    from medgap.methods import build_method

    torch.manual_seed(0)
    plain = build_method(contig_config(cohort), load_dataset_json(cohort))
    torch.manual_seed(0)
    decayed = build_method(contig_config(cohort, **{"method.genetic_weight_decay": 0.5}), load_dataset_json(cohort))
    batch = {"case": ["P4_L", "P5_R", "P6_L", "P7_R"], "image": torch.rand(4, 3, 16, 16) * 255}
    squares = sum(float((p.detach() ** 2).sum()) for name, p in decayed.named_parameters()
                  if name.startswith(("genetic_encoders", "genetic_heads")) and p.ndim > 1)
    plain.eval(), decayed.eval()  # same BatchNorm behaviour in both
    difference = decayed.training_step(batch, 0).loss.item() - plain.training_step(batch, 0).loss.item()
    assert difference == pytest.approx(0.5 * squares, rel=1e-4)
    torch.manual_seed(0)
    dropped = build_method(contig_config(cohort, **{"method.genetic_dropout": 0.9}), load_dataset_json(cohort))
    genetics = torch.ones(4, 5)
    features = torch.rand(4, dropped.encoder.out_features)
    dropped.eval()
    first = dropped.embed("a", features, genetics)[1]
    torch.testing.assert_close(first, dropped.embed("a", features, genetics)[1])  # eval: no dropout
    dropped.train()
    assert not torch.allclose(first, dropped.embed("a", features, genetics)[1])


def test_oracle_modality_holds_the_true_trait(cohort, tmp_path):
    import json
    import shutil

    from medgap.methods import build_method

    copy = tmp_path / "eyes"
    shutil.copytree(cohort, copy)
    spec = json.loads((copy / "dataset.json").read_text())
    spec["genetics"]["truth"] = "truth.json"
    (copy / "dataset.json").write_text(json.dumps(spec))
    (copy / "truth.json").write_text(json.dumps({"trait_values": {"vessel": {f"P{i}": i / 10 for i in range(8)}}}))
    method = build_method(contig_config(copy, **{"method.modalities": ["oracle_vessel"]}), load_dataset_json(copy))
    values, present = method.tables.lookup(["P3_L", "P3_R", "P6_L"])
    assert present.all() and values[0][:, 0].tolist() == pytest.approx([0.3, 0.3, 0.6])
    assert build_method(contig_config(copy), load_dataset_json(copy)).modalities == ["a", "b"]  # not by default
    from medgap.errors import ConfigError

    with pytest.raises(ConfigError, match="no trait 'disc'"):
        build_method(contig_config(copy, **{"method.modalities": ["oracle_disc"]}), load_dataset_json(copy))
    with pytest.raises(ConfigError, match="truth file"):
        build_method(contig_config(cohort, **{"method.modalities": ["oracle_vessel"]}), load_dataset_json(cohort))


def test_random_init_probe_calibrates_batchnorm_then_freezes_it(cohort):
    """A random-init linear probe: the first training batches set the encoder's BatchNorm statistics (cumulative
    average of batch statistics, no gradient), later batches change nothing; eval features then vary between
    images like train-mode ones instead of ~100x less (never-trained statistics: brightness only)."""
    from medgap.config import load_config
    from medgap.methods import build_method

    overrides = [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]", "method.name=image_classifier",
                 "method.linear_probe=true", "method.backbone_widths=[4, 8]", "method.calibration_steps=2"]
    torch.manual_seed(0)
    probe = build_method(load_config(None, overrides), load_dataset_json(cohort)).train()
    torch.manual_seed(0)
    plain = build_method(load_config(None, overrides + ["method.calibrate_random_batchnorm=false"]),
                         load_dataset_json(cohort)).eval()
    generator = torch.Generator().manual_seed(0)
    batches = [torch.rand(6, 3, 16, 16, generator=generator) * 255 * (1 + k) for k in range(3)]
    for step, image in enumerate(batches):
        batch = {"image": image, "labelled": torch.ones(6, dtype=torch.bool), "label": torch.arange(6) % 3}
        probe.training_step(batch, step)
        if step == 1:
            calibrated = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    stem = probe.encoder.stem[:1]  # the first convolution; its BatchNorm saw the mean of two batches' statistics
    expected = torch.stack([stem(b * probe.encoder.input_scale).mean((0, 2, 3)) for b in batches[:2]]).mean(0)
    torch.testing.assert_close(probe.encoder.stem[1].running_mean, expected, rtol=1e-4, atol=1e-6)
    for key, value in probe.encoder.state_dict().items():  # the third batch (after calibration) changed nothing
        torch.testing.assert_close(value, calibrated[key], msg=key)
    assert not probe.encoder.training and all(not p.requires_grad for p in probe.encoder.parameters())
    probe.eval()
    with torch.no_grad():
        spread = probe.encoder(batches[0]).std(0).mean() / plain.encoder(batches[0]).std(0).mean()
    assert spread > 10


def test_grading_scores_match_a_hand_computed_quadratic_kappa():
    from medgap.methods.classifier import grading_scores

    # O·w / N = (1/4 + 1/4) / 4 = 0.125; E·w = 22 / 64 (grade counts [1, 1, 2] both): κ = 1 − 0.125 / 0.34375 = 7/11
    scores = grading_scores(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]))
    assert scores == pytest.approx({"kappa": 7 / 11, "accuracy": 0.5})
    assert grading_scores(np.array([1, 1]), np.array([1, 1])) == {"kappa": 0.0, "accuracy": 1.0}  # undefined: 0


def test_reproduce_grading_scores_the_test_split_as_validation_scores_do(cohort, tmp_path):
    """The reproduction scores the test split from its per-image predictions (no second pass): same numbers."""
    from medgap.config import load_config
    from medgap.evaluation.evaluate import load_run
    from medgap.reproduce.contig import _evaluate_grading
    from medgap.training.loop import train

    config = load_config(None, [f"data.dataset_dir={cohort}", "data.patch_size=[16, 16]", "data.labelled_batch_size=4",
                                "data.num_workers=0", "data.normalisation=none", "method.name=image_classifier",
                                "method.backbone_widths=[4, 8]", "trainer.max_steps=3", "trainer.val_every=3",
                                "trainer.progress=false"])
    train(config, tmp_path / "down")
    result = _evaluate_grading(tmp_path / "down")
    loaded = load_run(tmp_path / "down", "test")
    reference = loaded.method.validation_scores(loaded.data, loaded.config, None, split="test")
    assert {key: result[key] for key in reference} == reference
    truth, predicted = np.array(list(result["per_case"].values())).T
    assert result["accuracy"] == float((truth == predicted).mean()) and len(truth) > 1
