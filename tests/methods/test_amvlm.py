"""AMVLM: the losses against hand computations, PDT pairwise, the text-guided SSMIS pieces."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from medgap.config import load_config
from medgap.methods.amvlm import (
    AMVLMPretraining,
    CrossAttention,
    Embeddings,
    augment_view,
    local_infonce,
    pdt_similarity,
    token_matching_loss,
    w2_distance,
)
from medgap.losses.contrastive import info_nce
from medgap.nets.text import WordTokenizer

TAU = 0.5


def identity_attention(dim: int) -> CrossAttention:
    attention = CrossAttention(dim)
    with torch.no_grad():
        for linear in (attention.query, attention.key, attention.value):
            linear.weight.copy_(torch.eye(dim))
            linear.bias.zero_()
    return attention


def hand_v2t(v, t, tau):
    """L_V2T by the paper's formula with Python loops: t̃^p = Σ_k softmax_k(v^p·t^k/√d) t^k (identity Q/K/V),
    normalised; then −1/(2BP) Σ_i Σ_p [log softmax over k of sim(v^p, t̃^k) + log softmax over k of sim(t̃^p, v^k)]."""
    B, P, d = len(v), len(v[0]), len(v[0][0])
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    total = 0.0
    for i in range(B):
        attended = []
        for p in range(P):
            scores = [dot(v[i][p], word) / math.sqrt(d) for word in t[i]]
            weights = [math.exp(s) / sum(math.exp(s2) for s2 in scores) for s in scores]
            vector = [sum(w * word[c] for w, word in zip(weights, t[i])) for c in range(d)]
            norm = math.sqrt(dot(vector, vector))
            attended.append([x / norm for x in vector])
        for p in range(P):
            first = math.exp(dot(v[i][p], attended[p]) / tau) / sum(math.exp(dot(v[i][p], attended[k]) / tau) for k in range(P))
            second = math.exp(dot(attended[p], v[i][p]) / tau) / sum(math.exp(dot(attended[p], v[i][k]) / tau) for k in range(P))
            total += math.log(first) + math.log(second)
    return -total / (2 * B * P)


def test_v2t_equals_hand_computation():
    """A 2-image toy batch, 3 patches and 2 words each, d = 2."""
    v = F.normalize(torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], [[-1.0, 0.2], [0.3, -0.9], [0.7, 0.7]]]), dim=-1)
    t = F.normalize(torch.tensor([[[1.0, 0.1], [0.1, 1.0]], [[-0.5, 0.5], [0.9, -0.2]]]), dim=-1)
    fake = SimpleNamespace(encoders=SimpleNamespace(pdt=False), config=SimpleNamespace(temperature=TAU))
    mask_v = torch.ones(2, 3, dtype=torch.bool)
    mask_t = torch.ones(2, 2, dtype=torch.bool)
    loss = AMVLMPretraining._css(fake, Embeddings(None, v, mask_v), Embeddings(None, t, mask_t), identity_attention(2)).detach()
    assert float(loss) == pytest.approx(hand_v2t(v.tolist(), t.tolist(), TAU), rel=1e-5)
    assert float(loss) == pytest.approx(0.69418, abs=1e-4)  # the value the loops give, pinned


def test_padding_words_are_ignored():
    """A padded word (mask False) changes nothing: same loss as the report without it."""
    v = F.normalize(torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    t = F.normalize(torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    fake = SimpleNamespace(encoders=SimpleNamespace(pdt=False), config=SimpleNamespace(temperature=TAU))
    attention = identity_attention(3)
    full = AMVLMPretraining._css(fake, Embeddings(None, v, torch.ones(1, 4, dtype=torch.bool)),
                                 Embeddings(None, t[:, :2], torch.ones(1, 2, dtype=torch.bool)), attention)
    padded = AMVLMPretraining._css(fake, Embeddings(None, v, torch.ones(1, 4, dtype=torch.bool)),
                                   Embeddings(None, t, torch.tensor([[True, True, False]])), attention)
    assert float(full.detach()) == pytest.approx(float(padded.detach()), rel=1e-6)


def test_info_nce_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    s = [[0.8, 0.6], [0.6, 0.8]]
    rows = -sum(math.log(math.exp(s[i][i] / TAU) / sum(math.exp(x / TAU) for x in s[i])) for i in range(2)) / 2
    assert float(info_nce(a, b, TAU)) == pytest.approx(rows, rel=1e-6)  # symmetric matrix: both directions equal


def test_token_matching_loss_perfect_match_is_small():
    eye = torch.eye(4)[None] * 2 - 1  # sim 1 on the diagonal, −1 elsewhere
    assert float(token_matching_loss(eye, torch.ones(1, 4, dtype=torch.bool), 0.07)) < 1e-10


def test_w2_is_pairwise():
    """Every pair (not only the diagonal), and permuting b permutes the columns."""
    g = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.randn(3, 5, generator=g), torch.randn(4, 5, generator=g)
    sig_a, sig_b = torch.rand(3, 5, generator=g), torch.rand(4, 5, generator=g)
    distance = w2_distance(mu_a, sig_a, mu_b, sig_b)
    assert distance.shape == (3, 4)
    hand = ((mu_a[2] - mu_b[1]) ** 2).sum() + ((sig_a[2] - sig_b[1]) ** 2).sum()
    assert float(distance[2, 1]) == pytest.approx(float(hand), rel=1e-5)
    permutation = torch.tensor([2, 0, 3, 1])
    permuted = w2_distance(mu_a, sig_a, mu_b[permutation], sig_b[permutation])
    torch.testing.assert_close(permuted, distance[:, permutation])
    similarity = pdt_similarity(mu_a, sig_a, mu_b, sig_b)
    torch.testing.assert_close(pdt_similarity(mu_a, sig_a, mu_b[permutation], sig_b[permutation]),
                               similarity[:, permutation])


def test_w2_zero_for_identical_distributions():
    g = torch.Generator().manual_seed(1)
    mu, sigma = torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g)
    distance = w2_distance(mu, sigma, mu, sigma)
    torch.testing.assert_close(distance.diagonal(), torch.zeros(4), atol=1e-5, rtol=0)
    assert (distance.fill_diagonal_(1.0) > 0).all()
    torch.testing.assert_close(pdt_similarity(mu, sigma, mu, sigma).diagonal(), torch.ones(4), atol=1e-4, rtol=0)


def test_augment_view_stays_in_float_range():
    """The official code cast [0, 1] images to uint8 (near-black views); ours keeps the intensities."""
    image = torch.rand(4, 1, 16, 16)
    view = augment_view(image, torch.Generator().manual_seed(0))
    assert view.shape == image.shape and view.dtype == torch.float32
    assert 0.3 < float(view.mean()) < 0.7


@pytest.fixture(scope="module")
def tiny_chest(tmp_path_factory):
    from medgap.data.synthetic import generate

    return generate("chest-xray-text", tmp_path_factory.mktemp("cxr") / "cxr", cases=12, test_cases=0, seed=0,
                    size=32)


def pretraining_batch(folder, count=4):
    from medgap.data.io import read_image

    ids = [f"CXR_{i:03d}" for i in range(count)]
    image = torch.stack([torch.from_numpy(read_image(folder / "imagesTr" / f"{c}_0000.png")[0]).float()[None] / 255
                         for c in ids])
    texts = [(folder / "textTr" / f"{c}.txt").read_text().strip() for c in ids]
    return {"image": image, "text": texts, "case": ids}


@pytest.mark.parametrize("switches,expected", [
    ({}, {"coarse", "v2t", "t2v", "local", "icl_coarse", "icl_fine"}),
    ({"css": False, "pdt": False, "icl": False, "local": False}, {"coarse"}),
])
def test_pretraining_step_components(tiny_chest, switches, expected):
    overrides = ["method.name=amvlm", f"data.dataset_dir={tiny_chest}", "data.patch_size=[32,32]",
                 "method.vit_width=32", "method.vit_depth=1", "method.text_width=32", "method.text_depth=1",
                 "method.embed_dim=16", "method.projection_hidden=32"]
    config = load_config(None, overrides + [f"method.{k}={str(v).lower()}" for k, v in switches.items()])
    from medgap.data.dataset_json import load_dataset_json
    from medgap.methods import build_method

    torch.manual_seed(0)
    method = build_method(config, load_dataset_json(tiny_chest))
    output = method.training_step(pretraining_batch(tiny_chest), 0)
    output.loss.backward()
    assert {key[5:] for key in output.logs} == expected
    assert torch.isfinite(output.loss)
    assert all(p.grad is not None for p in method.encoders.image.parameters())


def hand_local(tokens, mask, cls, tau):
    """L_local's half by loops: for each valid token (i, p), −½[log softmax_j sim(x_i^p, c_j) + log softmax over
    the valid x_j^p of sim(c_i, x_j^p)] at j = i, averaged over valid tokens."""
    B, N = len(tokens), len(tokens[0])
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    total, count = 0.0, 0
    for i in range(B):
        for p in range(N):
            if not mask[i][p]:
                continue
            forward = dot(tokens[i][p], cls[i]) / tau - math.log(sum(math.exp(dot(tokens[i][p], c) / tau) for c in cls))
            valid = [j for j in range(B) if mask[j][p]]
            backward = dot(cls[i], tokens[i][p]) / tau - math.log(
                sum(math.exp(dot(cls[i], tokens[j][p]) / tau) for j in valid))
            total += -0.5 * (forward + backward)
            count += 1
    return total / count


def test_local_infonce_equals_hand_computation_with_padding():
    """3 samples, 2 tokens, d = 2; the second token of sample 2 is padding (left out as query and as candidate)."""
    tokens = F.normalize(torch.tensor([[[1.0, 0.2], [0.3, 1.0]], [[-1.0, 0.5], [0.8, -0.6]], [[0.1, -1.0], [1.0, 1.0]]]),
                         dim=-1)
    cls = F.normalize(torch.tensor([[1.0, 0.5], [-0.7, 0.7], [0.2, -1.0]]), dim=-1)
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    expected = hand_local(tokens.tolist(), mask.tolist(), cls.tolist(), TAU)
    assert local_infonce(tokens, mask, cls, TAU).item() == pytest.approx(expected, rel=1e-5)
    # a position that is padding everywhere stays finite, gradients included
    mask[:, 1] = False
    tokens.requires_grad_(True)
    loss = local_infonce(tokens, mask, cls, TAU)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(tokens.grad).all() and tokens.grad[:, 1].abs().sum() == 0


def test_tokenizer_cls_first_and_truncation():
    tokenizer = WordTokenizer.from_corpus(["Bilateral pulmonary infection, two infected areas."], max_words=3)
    ids = tokenizer.encode(["bilateral pulmonary infection two", "unknownword"])
    assert ids[0, 0] == 2 and ids.shape == (2, 4)
    assert ids[1, 1] == 1 and ids[1, 2] == 0  # [UNK] then padding


# ------------------------------------------------------------------------------------------ text-guided SSMIS
from medgap.methods.amvlm_ssmis import fuse_pseudo_label  # noqa: E402

SMALL_ENCODER = ("method.encoder={vit_width: 32, vit_depth: 1, text_width: 32, text_depth: 1, embed_dim: 16, "
                 "projection_hidden: 32}")


def build_ssmis(folder, *overrides):
    from medgap.data.dataset_json import load_dataset_json
    from medgap.methods import build_method

    config = load_config(None, ["method.name=amvlm_ssmis", f"data.dataset_dir={folder}", "data.patch_size=[32,32]",
                                "model.features=[8,16]", SMALL_ENCODER, *overrides])
    torch.manual_seed(0)
    return build_method(config, load_dataset_json(folder))


def test_text_mask_follows_the_report_not_the_file_name(tiny_chest):
    method = build_ssmis(tiny_chest).eval()
    batch = pretraining_batch(tiny_chest, 2)
    image = batch["image"][:1].expand(2, -1, -1, -1)
    with torch.no_grad():
        same_text = method.text_mask(image, [batch["text"][0]] * 2)[0]
        other_text = method.text_mask(image, ["Bilateral pulmonary infection, two infected areas, upper left lung "
                                              "and lower right lung.", "No lung infection found."])[0]
    torch.testing.assert_close(same_text[0], same_text[1])   # identical image and report: identical mask
    assert not torch.allclose(other_text[0], other_text[1])  # another report: another mask
    # the case id is not an input at all: a training step with renamed cases gives the same loss
    step = {"image": batch["image"], "text": batch["text"], "labelled": torch.tensor([True, False]),
            "label": torch.zeros(2, 32, 32, dtype=torch.long), "case": ["a", "b"]}
    torch.manual_seed(1)
    first = float(method.train().training_step(step, 0).loss.detach())
    torch.manual_seed(1)
    second = float(method.training_step({**step, "case": ["mask_covid_1", "x"]}, 0).loss.detach())
    assert first == second


def test_teacher_equals_student_after_ema_step_with_decay_zero(tiny_chest):
    method = build_ssmis(tiny_chest, "method.ema_decay=0.0", "method.text_guidance=false",
                         "method.text_guided_loss=false")
    with torch.no_grad():
        for parameter in method.net.parameters():
            parameter.add_(0.1)
    assert not torch.equal(next(method.teacher.parameters()), next(method.net.parameters()))
    method.on_after_optimizer_step(3)
    for (name, teacher), student in zip(method.teacher.state_dict().items(), method.net.state_dict().values()):
        torch.testing.assert_close(teacher, student, msg=name)
    assert not method.train().teacher.training and all(not p.requires_grad for p in method.teacher.parameters())


def test_pseudo_label_empty_lung_is_not_all_foreground(tiny_chest):
    """Teacher and text mask both ≈ 0 → an empty pseudo label (the official sigmoid(p + m) > 0.5 everywhere)."""
    teacher = torch.full((1, 8, 8), 0.02)
    text_mask = torch.full((1, 8, 8), 0.05)
    for fusion, expected in (("mean", 0.035), ("max", 0.05)):
        fused, pseudo = fuse_pseudo_label(teacher, text_mask, 0.5, fusion)
        assert pseudo.sum() == 0 and float(fused.max()) == pytest.approx(expected)
    assert bool((torch.sigmoid(teacher + text_mask) > 0.5).all())  # the bug we do not copy
    # one source confident, the other not: "mean" needs both to lean the same way, "max" keeps either's finding
    confident, unsure = torch.full((1,), 0.6), torch.full((1,), 0.2)
    assert fuse_pseudo_label(confident, unsure, 0.5, "mean")[1].item() == 0
    assert fuse_pseudo_label(torch.full((1,), 0.9), torch.full((1,), 0.3), 0.5, "mean")[1].item() == 1
    assert fuse_pseudo_label(confident, unsure, 0.5, "max")[1].item() == 1  # the text cannot erase the teacher's
    assert fuse_pseudo_label(unsure, confident, 0.5, "max")[1].item() == 1  # ... and can add what it missed
    # through the model: a teacher that predicts background on an empty-lung image gives an empty label
    method = build_ssmis(tiny_chest)
    with torch.no_grad():
        method.teacher.head.bias.copy_(torch.tensor([10.0, -10.0]))
    empty = next(i for i in range(12) if "No " in (tiny_chest / "textTr" / f"CXR_{i:03d}.txt").read_text()
                 or "Normal" in (tiny_chest / "textTr" / f"CXR_{i:03d}.txt").read_text()
                 or "Clear" in (tiny_chest / "textTr" / f"CXR_{i:03d}.txt").read_text())
    from medgap.data.io import read_image

    image = torch.from_numpy(read_image(tiny_chest / "imagesTr" / f"CXR_{empty:03d}_0000.png")[0]).float()[None, None] / 255
    _, pseudo = method.pseudo_label(image, torch.zeros(1, 32, 32))
    assert pseudo.sum() == 0


def test_ssmis_step_runs_and_uses_text(tiny_chest):
    method = build_ssmis(tiny_chest).train()
    batch = pretraining_batch(tiny_chest, 4)
    batch.update(labelled=torch.tensor([True, True, False, False]),
                 label=torch.zeros(4, 32, 32, dtype=torch.long))
    output = method.training_step(batch, 0)
    output.loss.backward()
    assert {"loss_sup", "loss_mask", "loss_tg", "loss_unsup", "lambda"} <= set(output.logs)
    assert all(p.grad is None for p in method.encoders.parameters())  # frozen encoders
    assert method.mask_generator.scale.grad is not None


def test_vision_only_mask_ignores_the_report(tiny_chest):
    """``use_report: false`` (the vision-only row): the mask depends on the image alone, and L_tg is refused."""
    method = build_ssmis(tiny_chest, "method.use_report=false", "method.text_guided_loss=false").eval()
    image = pretraining_batch(tiny_chest, 1)["image"].expand(2, -1, -1, -1)
    with torch.no_grad():
        masks = method.text_mask(image, ["No lung infection found.", "Bilateral pulmonary infection, two infected "
                                         "areas, upper left lung and lower right lung."])[0]
    torch.testing.assert_close(masks[0], masks[1])
    from medgap.errors import ConfigError

    with pytest.raises(ConfigError, match="use_report"):
        build_ssmis(tiny_chest, "method.use_report=false")


def test_extended_infonce_equals_hand_computation():
    """S[b, n] = sim(image b under report n's mask, report n); symmetric CE with positives on the diagonal."""
    from medgap.losses.contrastive import extended_infonce

    values = [[0.9, 0.1, -0.2], [0.3, 0.8, 0.0], [-0.5, 0.4, 0.7]]
    similarity = torch.tensor(values)
    scale = 1 / 0.07
    rows = sum(-values[b][b] * scale + math.log(sum(math.exp(values[b][n] * scale) for n in range(3)))
               for b in range(3)) / 3
    columns = sum(-values[n][n] * scale + math.log(sum(math.exp(values[b][n] * scale) for b in range(3)))
                  for n in range(3)) / 3
    assert extended_infonce(similarity, scale).item() == pytest.approx(0.5 * (rows + columns), rel=1e-5)


def test_extended_text_guided_loss_pools_each_image_with_every_report(tiny_chest):
    """The default (official) L_tg: by loops over (image b, report n) from the dense embeddings and report
    embeddings, on unlabelled images only; the learnable τ gets a gradient; the own-report form differs."""
    method = build_ssmis(tiny_chest).train()
    batch = pretraining_batch(tiny_chest, 4)
    labelled = torch.tensor([True, False, False, False])
    mask_logits, dense, text_cls = method.text_mask(batch["image"], batch["text"])
    loss = method.text_guided_loss(mask_logits, dense, text_cls, labelled)
    generator, rows = method.mask_generator, [1, 2, 3]
    similarity = torch.zeros(3, 3)
    for b_index, b in enumerate(rows):
        for n_index, n in enumerate(rows):
            text = F.normalize(text_cls[n], dim=0)
            mask = torch.sigmoid(generator.scale * torch.einsum("dhw,d->hw", dense[b], text) + generator.bias)
            pooled = (mask[None] * dense[b]).sum((1, 2)) / mask.sum()
            similarity[b_index, n_index] = F.normalize(pooled, dim=0) @ text
    scale = 1 / 0.07
    target = torch.arange(3)
    expected = 0.5 * (F.cross_entropy(similarity * scale, target) + F.cross_entropy(similarity.T * scale, target))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    loss.backward()
    assert method.tg_log_scale.grad is not None and method.tg_log_scale.grad.abs() > 0
    # the labelled image's report plays no part
    other = method.text_mask(batch["image"], ["No lung infection found."] + batch["text"][1:])
    assert method.text_guided_loss(*other, labelled).item() == pytest.approx(loss.item(), rel=1e-5)
    own = build_ssmis(tiny_chest, "method.tg_form=own_report")
    own.load_state_dict(method.state_dict())
    assert own.text_guided_loss(mask_logits, dense, text_cls, labelled).item() != pytest.approx(loss.item(), rel=1e-3)


def test_vit_resizes_other_image_sizes_to_its_own():
    from medgap.nets.vit import ViT

    torch.manual_seed(0)
    vit = ViT(image_size=16, in_channels=1, patch_size=8, width=16, depth=1, heads=2).eval()
    large = torch.rand(2, 1, 40, 40)
    resized = F.interpolate(large, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    cls, patches = vit(large)
    assert patches.shape == (2, 4, 16)
    torch.testing.assert_close(cls, vit(resized)[0])


def qata_like_config(folder, *overrides):
    return load_config(None, ["method.name=amvlm", f"data.dataset_dir={folder}", "method.vit_width=16",
                              "method.vit_depth=1", "method.text_width=16", "method.text_depth=1",
                              "method.embed_dim=8", "method.projection_hidden=16", "data.labelled_batch_size=4",
                              "data.num_workers=0", "data.augmentation.flip_axes=[]", "trainer.max_steps=2",
                              "trainer.val_every=2", "trainer.progress=false", *overrides])


def test_images_larger_than_the_patch_are_refused_up_front_with_the_fix(tiny_chest, tmp_path):
    """A converted QaTa set has 224² images; the shipped config's patch is 64² (here: 32² images, 16² patch)."""
    from medgap.errors import ConfigError
    from medgap.training.loop import train

    with pytest.raises(ConfigError, match=r"CXR_000_0000.png: images are 32x32 but data.patch_size is \[16, 16\]; "
                                          r"AMVLM pairs each whole image with its report: set "
                                          r"data.patch_size=\[32,32\] \(and method.vit_image_size=16 "):
        train(qata_like_config(tiny_chest, "data.patch_size=[16,16]"), tmp_path / "refused")
    assert not (tmp_path / "refused" / "checkpoints").exists()  # before any step

    # the fix as the message gives it: whole 32² images, a ViT of 16² (validation on whole images works too)
    summary = train(qata_like_config(tiny_chest, "data.patch_size=[32,32]", "method.vit_image_size=16"),
                    tmp_path / "fixed")
    assert summary["steps"] == 2 and 0.0 <= summary["best_val_retrieval_top1"] <= 1.0
