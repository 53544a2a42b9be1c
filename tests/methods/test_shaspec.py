"""ShaSpec: Eq. 4 substitution, residual fusion, batch mixing, masked DCO/DAO, modality dropping, overfitting."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgap.config import load_config
from medgap.data.dataset_json import parse_dataset_json
from medgap.errors import ConfigError
from medgap.methods import build_method
from medgap.methods.modality_dropout import ModalityDropoutOptions, ModalityDropper, fixed_subset, random_subset
from medgap.methods.shaspec import (
    cyclic_pairs,
    distribution_alignment_loss,
    generate_missing,
    modality_classification_loss,
    substitute_missing,
)
from medgap.metrics import dice


def make_spec(channels=("FLAIR", "T1", "T1c", "T2"), regions=True):
    raw = {"channel_names": {str(i): n for i, n in enumerate(channels)}, "file_ending": ".nii.gz",
           "labels": {"background": 0, "necrotic": 1, "edema": 2, "enhancing": 4}}
    if regions:
        raw["regions"] = {"WT": [1, 2, 4], "TC": [1, 4], "ET": [4]}
    return parse_dataset_json(raw, Path("dataset.json"))


def make_method(spec, patch=(16, 16), features=(4, 8), **method):
    overrides = [f"data.patch_size={list(patch)}", f"model.features={list(features)}", "method.name=shaspec",
                 *(f"method.{key}={value}" for key, value in method.items())]
    torch.manual_seed(0)
    return build_method(load_config(None, overrides), spec)


def test_missing_feature_is_the_mean_of_available_shared_features():
    shared = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)  # (B, N, C, S)
    fused = -torch.ones_like(shared)
    availability = torch.tensor([[True, False, True], [False, True, False]])
    out = substitute_missing(fused, shared, availability)
    # sample 0: modality 1 missing → mean of r^(0), r^(2); available rows keep their fused feature
    assert torch.equal(out[0, 0], fused[0, 0]) and torch.equal(out[0, 2], fused[0, 2])
    assert torch.allclose(out[0, 1], (shared[0, 0] + shared[0, 2]) / 2)
    # sample 1: only modality 1 present → both missing modalities get r^(1) exactly
    assert torch.equal(out[1, 0], shared[1, 1]) and torch.equal(out[1, 2], shared[1, 1])
    copy = generate_missing(shared, availability, "copy")  # the official code's behaviour
    assert torch.equal(copy[0, 0], shared[0, 0]) and torch.equal(copy[1, 0], shared[1, 1])


def test_fusion_is_residual_and_missing_modalities_get_the_shared_mean():
    spec = make_spec(("A", "B", "C"))
    method = make_method(spec).eval()
    encoder = method.encoder
    with torch.no_grad():  # g([r, s]) = constant 0.5: f = r + 0.5 where available
        encoder.fusion.weight.zero_()
        encoder.fusion.bias.fill_(0.5)
    image = torch.randn(1, 3, 16, 16)
    availability = torch.tensor([[True, False, True]])
    with torch.no_grad():
        features = encoder(image * availability[..., None, None], availability)
        r = [encoder.shared(image[:, i:i + 1])[-1] for i in range(3)]
    assert torch.allclose(features.fused[:, 0], r[0] + 0.5, atol=1e-6)
    assert torch.allclose(features.fused[:, 2], r[2] + 0.5, atol=1e-6)
    assert torch.allclose(features.fused[:, 1], (r[0] + r[2]) / 2, atol=1e-6)
    assert torch.allclose(features.shared[:, 0], r[0], atol=1e-6)  # one set of shared weights for every modality


@pytest.mark.parametrize("dims", [2, 3])
def test_a_batch_mixing_subsets_equals_per_sample_results(dims):
    spec = make_spec()
    patch = (16,) * dims
    method = make_method(spec, patch=patch).eval()
    image = torch.randn(4, 4, *patch)
    availability = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        batched = method.predict_logits(image, availability)
        single = torch.cat([method.predict_logits(image[i:i + 1], availability[i:i + 1]) for i in range(4)])
        # what a missing modality's voxels hold does not matter: it is zeroed and replaced (Eq. 4)
        noisy = method.predict_logits(image + 5 * (~availability)[..., *[None] * dims], availability)
    assert batched.shape == (4, 3, *patch)
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.allclose(batched, noisy, atol=1e-5)


def count_encoder_calls(encoder):
    """Hooks counting the forward calls of the shared and of each specific encoder: ``[shared, spec_1, ...]``."""
    calls = [0] * (1 + len(encoder.specific))
    for index, module in enumerate([encoder.shared, *encoder.specific]):
        module.register_forward_hook(lambda *_, index=index: calls.__setitem__(index, calls[index] + 1))
    return calls


@pytest.mark.parametrize("dims", [2, 3])
def test_all_subsets_from_one_encoding_equal_one_prediction_per_subset(dims):
    from medgap.evaluation.subsets import all_subsets

    patch = (16,) * dims
    method = make_method(make_spec(), patch=patch).eval()
    image = torch.randn(2, 4, *patch)
    subsets = torch.tensor(all_subsets(4))
    calls = count_encoder_calls(method.encoder)
    with torch.no_grad():
        together = method.predict_subsets_logits(image, subsets)
        assert calls == [1, 1, 1, 1, 1]  # 8 encoder passes for the 15 subsets (the shared one batched)
        assert together.shape == (2, 15, 3, *patch)
        for index, subset in enumerate(subsets):
            alone = method.predict_logits(image, subset.expand(2, -1))
            torch.testing.assert_close(together[:, index], alone, rtol=1e-5, atol=1e-5)


def test_inference_does_not_encode_modalities_that_no_sample_has():
    method = make_method(make_spec()).eval()
    image = torch.randn(3, 4, 16, 16)
    availability = torch.tensor([[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 1, 1]], dtype=torch.bool)  # nobody has T1
    calls = count_encoder_calls(method.encoder)
    with torch.no_grad():
        skipped = method.predict_logits(image, availability)
    assert calls == [1, 1, 0, 1, 1]
    with torch.enable_grad():  # training encodes every modality (every parameter gets its gradient)
        every = method.predict_logits(image, availability)
    assert calls == [2, 2, 1, 2, 2]
    torch.testing.assert_close(skipped, every.detach(), rtol=1e-5, atol=1e-5)


def test_cyclic_pairs_of_available_modalities():
    availability = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    sample, first, second = cyclic_pairs(availability)
    pairs = list(zip(sample.tolist(), first.tolist(), second.tolist()))
    assert pairs == [(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 0),  # (F,T1),(T1,T1c),(T1c,T2),(T2,F): official
                     (1, 0, 2), (1, 2, 3), (1, 3, 0), (2, 1, 3), (2, 3, 1)]  # a single modality: no pair


def test_dao_and_dco_match_hand_computed_values():
    shared = torch.tensor([[[[1.0, 2.0]], [[3.0, 5.0]], [[9.0, 9.0]]]])  # (B=1, N=3, C=1, S=2)
    availability = torch.tensor([[True, True, False]])
    # pairs (0,1), (1,0): L1 mean = (|1-3| + |2-5|) / 2 for both directions, summed over the sample's pairs
    assert distribution_alignment_loss(shared, availability, "l1").item() == pytest.approx(2 * 2.5)
    assert distribution_alignment_loss(shared, availability, "mse").item() == pytest.approx(2 * (4 + 9) / 2)
    two = torch.randn(1, 2, 4, 3)
    p, q = F.log_softmax(two[0, 0], 0), F.log_softmax(two[0, 1], 0)
    kl = (p.exp() * (p - q)).sum(0).mean() + (q.exp() * (q - p)).sum(0).mean()
    assert distribution_alignment_loss(two, torch.ones(1, 2, dtype=torch.bool), "kl").item() == pytest.approx(kl.item(), rel=1e-5)

    classifier = torch.nn.Linear(1, 3)
    specific = torch.randn(2, 3, 1, 2)
    availability = torch.tensor([[True, False, True], [False, True, False]])
    pooled = specific.mean(-1)
    expected = torch.stack([F.cross_entropy(classifier(pooled[b, i])[None], torch.tensor([i]))
                            for b, i in [(0, 0), (0, 2), (1, 1)]]).mean()
    assert modality_classification_loss(specific, availability, classifier).item() == pytest.approx(expected.item())


def test_dao_is_the_per_sample_sum_over_cyclic_pairs_averaged_over_samples():
    # A hand-made 4-modality batch (B=3, N=4, C=2, S=3): per sample, per pair mean |a − b| over the 6 elements,
    # summed over the sample's cyclic pairs; then the mean over the samples that have a pair.
    shared = torch.arange(3 * 4 * 2 * 3, dtype=torch.float32).reshape(3, 4, 2, 3) ** 1.5 / 10
    availability = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)
    l1 = lambda b, i, j: (shared[b, i] - shared[b, j]).abs().mean().item()  # noqa: E731  (nn.L1Loss)
    sample0 = l1(0, 0, 1) + l1(0, 1, 2) + l1(0, 2, 3) + l1(0, 3, 0)  # the official four terms
    sample1 = l1(1, 0, 2) + l1(1, 2, 3) + l1(1, 3, 0)
    # sample 2 has one modality, no pair: it does not enter the mean
    assert distribution_alignment_loss(shared, availability).item() == pytest.approx((sample0 + sample1) / 2,
                                                                                     rel=1e-6)
    # with one sample and every modality it is exactly the official sum (4× the mean over pairs)
    assert distribution_alignment_loss(shared[:1], availability[:1]).item() == pytest.approx(sample0, rel=1e-6)


def test_region_bce_is_summed_over_regions_for_shaspec():
    from medgap.losses import SegmentationLoss

    logits, target = torch.randn(2, 3, 4, 4), (torch.rand(2, 3, 4, 4) > 0.5).float()
    per_region = [F.binary_cross_entropy_with_logits(logits[:, r], target[:, r]).item() for r in range(3)]
    summed = SegmentationLoss("sigmoid", dice_weight=0.0, region_bce="sum")(logits, target).item()
    averaged = SegmentationLoss("sigmoid", dice_weight=0.0)(logits, target).item()
    assert summed == pytest.approx(sum(per_region), rel=1e-6)
    assert averaged == pytest.approx(sum(per_region) / 3, rel=1e-6)
    assert make_method(make_spec()).loss.region_bce == "sum"  # ShaSpec's default: the official weighting


def test_copy_fills_missing_modalities_from_a_random_kept_one_while_dropping_at_random():
    from medgap.methods.shaspec import random_available

    availability = torch.tensor([[1, 0, 1, 1]] * 3000, dtype=torch.bool)
    picks = random_available(availability, np.random.default_rng(0))
    assert np.allclose(np.bincount(picks.numpy(), minlength=4) / 3000, [1 / 3, 0, 1 / 3, 1 / 3], atol=0.03)
    shared = torch.arange(4, dtype=torch.float32).reshape(1, 4, 1)  # r^(i) = i
    one = torch.tensor([[False, True, False, True]])
    assert generate_missing(shared, one, "copy", torch.tensor([3])).item() == 3.0  # the given source
    assert generate_missing(shared, one, "copy").item() == 1.0  # default (inference): the first available

    spec = make_spec()
    random_copy = make_method(spec, missing_feature="copy", modality_dropout="random", full_modality_steps=5)
    full = torch.ones(8, 4, dtype=torch.bool)
    assert random_copy._copy_source(full, 4) is None  # warm-up: nothing is missing, nothing to draw
    first, again = random_copy._copy_source(full, 5), random_copy._copy_source(full, 5)
    assert torch.equal(first, again)  # a function of (seed, step): exact resume
    assert len(set(random_copy._copy_source(full, 6).tolist()) | set(first.tolist())) > 1
    assert make_method(spec, missing_feature="copy", modality_dropout="fixed",
                       keep_modalities="[T1,T2]")._copy_source(full, 5) is None  # dedicated: the first
    assert make_method(spec)._copy_source(full, 5) is None  # the paper's mean needs no source


def test_dco_and_dao_give_zero_gradient_to_dropped_modalities():
    spec = make_spec()
    method = make_method(spec).train()
    image = torch.randn(3, 4, 16, 16, requires_grad=True)
    availability = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0], [1, 0, 1, 0]], dtype=torch.bool)
    features = method.encoder(image, availability)
    auxiliary = (distribution_alignment_loss(features.shared, availability)
                 + modality_classification_loss(features.specific, availability, method.modality_classifier))
    (grad,) = torch.autograd.grad(auxiliary, image)
    assert grad[~availability].abs().max() == 0.0
    assert grad[availability].abs().amax((1, 2)).min() > 0.0  # every used modality receives gradient
    # the whole loss too: T1 (index 1) is dropped in samples 0 and 2 → its specific encoder only learns from sample 1
    method.zero_grad()
    features = method.encoder(image[[0, 2]], availability[[0, 2]])
    logits = method.decode(features, availability[[0, 2]])
    (logits.sum() + modality_classification_loss(features.specific, availability[[0, 2]],
                                                 method.modality_classifier)).backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in method.encoder.specific[1].parameters())
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in method.encoder.specific[0].parameters())


def test_random_modality_dropping_keeps_one_to_all_available():
    availability = torch.ones(4000, 4, dtype=torch.bool)
    availability[::2, 2] = False  # half the cases genuinely lack T1c
    kept = random_subset(availability, torch.Generator().manual_seed(0))
    assert not (kept & ~availability).any() and kept.any(1).all()
    counts_full = np.bincount(kept[1::2].sum(1).numpy(), minlength=5)[1:]
    counts_partial = np.bincount(kept[::2].sum(1).numpy(), minlength=5)[1:]
    assert np.allclose(counts_full / 2000, 0.25, atol=0.03)  # k ~ U{1..4}
    assert np.allclose(counts_partial[:3] / 2000, 1 / 3, atol=0.04) and counts_partial[3] == 0  # k ~ U{1..3}
    per_modality = kept[1::2].float().mean(0)
    assert torch.allclose(per_modality, torch.full((4,), 0.625), atol=0.03)  # E[k]/N: no modality favoured
    again = random_subset(availability, torch.Generator().manual_seed(0))
    assert torch.equal(kept, again)

    keep = torch.tensor([False, True, False, True])
    fixed = fixed_subset(torch.tensor([[1, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool), keep)
    assert fixed.tolist() == [[False, True, False, True], [True, False, True, False]]  # nothing left → as is


def test_dropper_modes_warmup_and_sparse_cases():
    names = ("image", "spectrogram")
    full = torch.ones(6, 2, dtype=torch.bool)
    warm = ModalityDropper(ModalityDropoutOptions("random", full_modality_steps=10), names, seed=0)
    assert torch.equal(warm(full, 9), full)  # warm-up: every modality
    assert not torch.equal(warm(full, 10), full) and warm(full, 10).any(1).all()
    with pytest.raises(ConfigError, match="keep_modalities"):
        ModalityDropper(ModalityDropoutOptions("fixed"), names, seed=0)
    with pytest.raises(ConfigError, match="not in dataset channels"):
        ModalityDropper(ModalityDropoutOptions("fixed", keep_modalities=["audio"]), names, seed=0)
    sparse = ModalityDropper(ModalityDropoutOptions("none", sparse_modalities=["spectrogram"], sparse_keep_ratio=0.2),
                             names, seed=3)
    cases = [f"case_{i}" for i in range(2000)]
    kept = sparse(torch.ones(2000, 2, dtype=torch.bool), 0, cases)
    assert kept[:, 0].all() and abs(kept[:, 1].float().mean().item() - 0.2) < 0.03
    assert torch.equal(kept, sparse(torch.ones(2000, 2, dtype=torch.bool), 99, cases))  # fixed per case


@pytest.mark.parametrize("modalities", [2, 3, 5])
def test_any_number_of_modalities(modalities):
    spec = make_spec(tuple(f"M{i}" for i in range(modalities)), regions=False)
    method = make_method(spec, patch=(8, 8, 8), features=(4, 8))
    batch = {"image": torch.randn(2, modalities, 8, 8, 8), "label": torch.randint(0, 4, (2, 8, 8, 8)),
             "availability": torch.ones(2, modalities, dtype=torch.bool), "labelled": torch.tensor([True, True]),
             "case": ["a", "b"]}
    output = method.training_step(batch, 0)
    output.loss.backward()
    assert torch.isfinite(output.loss) and 1 <= output.logs["modalities_kept"] <= modalities
    assert method.predict_logits(batch["image"], batch["availability"]).shape == (2, 4, 8, 8, 8)
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        make_method(make_spec(("only",), regions=False))


def test_tiny_model_overfits_one_case():
    spec = make_spec()
    method = make_method(spec, patch=(24, 24), features=(8, 16, 32), modality_dropout="none")
    grid = np.stack(np.meshgrid(np.arange(24), np.arange(24), indexing="ij"), -1)
    distance = np.linalg.norm(grid - [11.0, 13.0], axis=-1)
    label = np.zeros((24, 24), np.int64)
    label[distance < 8] = 2
    label[distance < 5] = 1
    label[distance < 3] = 3  # index of value 4 (enhancing) in (0, 1, 2, 4)
    rng = np.random.default_rng(0)
    image = np.stack([(label == 0) * 0.1 + (label == 2) * 1.0, (label == 1) * 1.0, (label == 3) * 1.0,
                      (label > 0) * 0.5]).astype(np.float32) + rng.normal(0, 0.1, (4, 24, 24)).astype(np.float32)
    batch = {"image": torch.from_numpy(image)[None], "label": torch.from_numpy(label)[None],
             "availability": torch.ones(1, 4, dtype=torch.bool), "labelled": torch.tensor([True]), "case": ["x"]}
    optimizer = torch.optim.Adam(method.parameters(), lr=0.01)
    for step in range(60):
        loss = method.training_step(batch, step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.eval()
    with torch.no_grad():
        probabilities = torch.sigmoid(method.predict_logits(batch["image"], batch["availability"]))[0]
    value_map = np.array([0, 1, 2, 4])[label]
    for region, values in zip(range(3), ([1, 2, 4], [1, 4], [4])):
        assert dice(probabilities[region].numpy() > 0.5, np.isin(value_map, values)) > 0.9


def test_instance_norm_erases_the_mean_pooled_vector_but_not_the_flattened_map():
    from medgap.nets.heads import pool_features

    norm = torch.nn.InstanceNorm2d(3, affine=True)
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
        a, b = norm(torch.randn(1, 3, 4, 4)), norm(5 * torch.randn(1, 3, 4, 4) + 3)
    # every channel's spatial mean is its bias, whatever the input: two different images pool to one vector
    assert torch.allclose(pool_features(a), pool_features(b), atol=1e-5)
    assert torch.allclose(pool_features(a), norm.bias[None], atol=1e-5)
    assert not torch.allclose(pool_features(a, "flatten"), pool_features(b, "flatten"), atol=1e-2)
    assert pool_features(a, "flatten").shape == (1, 48) and pool_features(a, "max").shape == (1, 3)


@pytest.fixture(scope="module")
def digits_av(tmp_path_factory):
    from medgap.data.synthetic import generate

    return generate("digits-av", tmp_path_factory.mktemp("digits") / "digits_av", cases=800, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("method_name, config_name, steps", [("shaspec", "shaspec_digits_av.yaml", 100),
                                                             ("zerofill", "zerofill_digits_av.yaml", 250)])
def test_digits_av_classifiers_learn_from_both_modalities(digits_av, tmp_path, method_name, config_name, steps):
    # The shipped configs at 100 % spectrogram: a few hundred Adam steps (ShaSpec learns faster: 100) must give a
    # high test accuracy (a logistic regression on the raw pixels reaches ~97 %); mean pooling after
    # InstanceNorm stayed near chance (zero-filling 22 %, ShaSpec 75 % after 300 steps).
    from medgap.data.classification import whole_images
    from medgap.data.pipeline import prepare_data

    configs = Path(__file__).parents[2] / "configs"
    config = load_config(configs / config_name, [f"data.dataset_dir={digits_av}", "method.sparse_keep_ratio=1.0",
                                                 "data.val_fraction=0.1", "data.test_fraction=0.2"])
    data = prepare_data(config.data, 0, tmp_path / "run")
    torch.manual_seed(0)
    method = build_method(config, data.spec)
    train_cases, test_cases = data.split_cases("train"), data.split_cases("test")
    images, availability = whole_images(train_cases, config.data.patch_size)
    labels = torch.tensor([data.class_labels[case.case_id] for case in train_cases])
    optimizer = torch.optim.Adam(method.parameters(), lr=config.optim.lr)
    order = torch.Generator().manual_seed(0)
    method.train()
    for step in range(steps):
        index = torch.randint(len(train_cases), (32,), generator=order)
        batch = {"image": images[index], "label": labels[index], "availability": availability[index],
                 "labelled": torch.ones(32, dtype=torch.bool), "case": [train_cases[i].case_id for i in index]}
        loss = method.training_step(batch, step).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    method.eval()
    images, availability = whole_images(test_cases, config.data.patch_size)
    truth = torch.tensor([data.class_labels[case.case_id] for case in test_cases])
    accuracy = {}
    with torch.no_grad():
        for name, keep in (("both", [True, True]), ("image", [True, False]), ("spectrogram", [False, True])):
            kept = availability & torch.tensor(keep)
            predicted = method.predict_logits(images * kept[..., None, None], kept).argmax(1)
            accuracy[name] = float((predicted == truth).float().mean())
    assert accuracy["both"] >= 0.85, accuracy
    assert accuracy["image"] >= 0.4, accuracy  # the image alone (never seen alone in training): far above 10 %
