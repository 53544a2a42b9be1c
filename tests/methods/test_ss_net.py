import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_config
from medgap.data.dataset_json import load_dataset_json
from medgap.methods import build_method
from medgap.methods.ss_net import ClassMemory, dice_distance, l2_normalise, vat_perturbation
from medgap.training.checkpoint import load_checkpoint
from medgap.training.loop import train
from medgap.training.ramps import consistency_weight


def ssnet_config(dataset, **overrides):
    return tiny_config(dataset, **{"method.name": "ss_net", "model.norm": "batch", "data.num_workers": 0,
                                   "data.labelled_count": 2, "data.labelled_batch_size": 1,
                                   "data.unlabelled_batch_size": 1, **overrides})


def bn_buffers(module):
    return {name: value.clone() for name, value in module.named_buffers() if "running" in name or "batches" in name}


@pytest.fixture(scope="module")
def method_2d(tiny_dataset):
    torch.manual_seed(0)
    config = ssnet_config(tiny_dataset, **{"data.patch_size": [16, 16], "method.vat_epsilon": 6.0})
    return build_method(config, load_dataset_json(tiny_dataset))


def test_vat_perturbation_has_norm_epsilon_and_beats_a_random_direction(method_2d):
    net = method_2d.net.eval()  # a fixed function of the input for a fair comparison
    torch.manual_seed(1)
    image = torch.randn(3, 2, 16, 16)

    def predict(x):
        return torch.softmax(net(x), 1)

    with torch.no_grad():
        p = predict(image)
    distance = method_2d.distance
    r_adv = vat_perturbation(predict, image, p, xi=10.0, epsilon=6.0, distance=distance)
    torch.testing.assert_close(r_adv.flatten(1).norm(dim=1), torch.full((3,), 6.0))
    with torch.no_grad():
        adversarial = float(distance(predict(image + r_adv), p))
        random = [float(distance(predict(image + 6.0 * l2_normalise(torch.randn_like(image))), p)) for _ in range(5)]
    assert adversarial > max(random)
    assert not any(param.grad is not None for param in net.parameters())  # only d got a gradient
    net.train()


def test_vat_passes_leave_batchnorm_statistics_untouched(method_2d):
    method_2d.train()
    image = torch.randn(2, 2, 16, 16)
    before = bn_buffers(method_2d.net)
    with torch.no_grad():
        p = torch.softmax(method_2d.net(image), 1)
    after_forward = bn_buffers(method_2d.net)
    assert not torch.equal(before["encoder.stages.0.1.running_mean"], after_forward["encoder.stages.0.1.running_mean"])
    loss = method_2d.lds_loss(image, p)
    loss.backward()
    for name, value in bn_buffers(method_2d.net).items():
        assert torch.equal(value, after_forward[name]), name
    assert all(layer.track_running_stats for layer in method_2d.net.modules() if hasattr(layer, "track_running_stats"))
    method_2d.zero_grad()


def test_dice_distances_match_hand_computation():
    p = torch.softmax(torch.randn(2, 3, 4, 5), 1)
    q = torch.softmax(torch.randn(2, 3, 4, 5), 1)
    # all classes pooled: 1 - mean over voxels of sum_c p_c q_c (softmax sums to one per voxel)
    assert float(dice_distance(p, q, per_class=False)) == pytest.approx(float(1 - (p * q).sum(1).mean()), rel=1e-5)
    per_class = [1 - (2 * (p[:, c] * q[:, c]).sum() + 1e-5) / ((p[:, c] ** 2).sum() + (q[:, c] ** 2).sum() + 1e-5)
                 for c in range(3)]
    assert float(dice_distance(p, q, per_class=True)) == pytest.approx(float(sum(per_class) / 3), rel=1e-5)
    one_hot = F.one_hot(p.argmax(1), 3).movedim(-1, 1).float()
    assert float(dice_distance(one_hot, one_hot, per_class=False)) == pytest.approx(0.0, abs=1e-6)


def test_memory_keeps_the_highest_confidence_correct_features_and_never_exceeds_its_size():
    torch.manual_seed(0)
    memory = ClassMemory(num_classes=2, size=32, dim=4)
    features = torch.randn(100, 4)
    truth = torch.tensor([0] * 60 + [1] * 40)
    predicted = truth.clone()
    predicted[:10] = 1  # wrong predictions never enter, whatever their confidence
    confidence = torch.rand(100)
    confidence[:10] = 2.0
    memory.update(features, truth, predicted, confidence)
    assert memory.count.tolist() == [32, 32]
    correct0 = torch.arange(10, 60)
    top = correct0[confidence[correct0].argsort(descending=True)[:32]]
    torch.testing.assert_close(memory.entries(0), features[top])
    torch.testing.assert_close(memory.confidence[0], confidence[top])
    # A later step with 5 candidates: they come first, the oldest fall out; the size stays 32.
    memory.update(features[:5] + 10, torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long),
                  torch.linspace(0.9, 0.5, 5))
    assert memory.count.tolist() == [32, 32] and memory.features.shape == (2, 32, 4)
    torch.testing.assert_close(memory.entries(0)[:5], features[:5] + 10)
    torch.testing.assert_close(memory.entries(0)[5:], features[top[:27]])


def test_memory_holds_foreground_classes_only_by_default(method_2d):
    # The official code stores only correctly predicted FOREGROUND voxels: background gets no prototype, so
    # neither labelled nor unlabelled background voxels are pulled anywhere.
    assert method_2d.config.memory_classes == "foreground"
    foreground_only = ClassMemory(num_classes=3, size=4, dim=2, background=False)
    with_background = ClassMemory(num_classes=3, size=4, dim=2)
    features, classes = torch.randn(9, 2), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    for memory in (foreground_only, with_background):
        memory.update(features, classes, classes, torch.rand(9))
    assert foreground_only.count.tolist() == [0, 3, 3] and with_background.count.tolist() == [3, 3, 3]
    assert method_2d.memory.first_class == 1


def test_prototype_loss_is_selector_weighted_one_minus_cosine(method_2d):
    method_2d.train()
    memory = method_2d.memory
    memory.count.zero_()
    torch.manual_seed(2)
    stored = torch.randn(3, 32)
    memory.update(stored, torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long), torch.ones(3))
    predicted = torch.randn(6, 32)
    classes = torch.tensor([1, 1, 1, 0, 2, 1])  # classes 0 and 2 have no memory: they do not contribute
    loss = method_2d.prototype_loss(predicted, classes)
    with torch.no_grad():  # as the official code: the selector sees (and normalises over) the class's voxels only
        weights = torch.sigmoid(method_2d.selectors[1](predicted[classes == 1])[:, 0])
    weights = weights / weights.mean()
    cosine = F.normalize(predicted[classes == 1], dim=1) @ F.normalize(stored, dim=1).T
    expected = ((1 - cosine) * weights[:, None]).mean() / 3  # summed over classes, divided by K = 3
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    memory.count.zero_()


def official_contrastive_losses(method, features, logits, label, labelled):
    """L_cl_l, L_cl_u written as the official ``train_ss_3d.py`` + ``contrastive_class_to_class_learned_memory``
    compute them (all voxels, the (N_c, M) distance matrix, selector on the class's voxels), with medgap's memory
    (highest confidence, foreground only) and without the official memory selector (see DEVIATIONS)."""
    num_classes = logits.shape[1]
    probabilities = torch.softmax(logits, dim=1)
    losses = []
    for is_labelled, rows in ((True, labelled), (False, ~labelled)):
        voxels = features[rows].movedim(1, -1).reshape(-1, features.shape[1])
        confidence, predicted = probabilities[rows].movedim(1, -1).reshape(-1, num_classes).max(dim=1)
        projected = method.projection(voxels)
        if is_labelled:
            classes = label[rows].reshape(-1)
            method.memory.update(projected.detach(), classes, predicted, confidence)
        else:
            classes = predicted
        prediction = method.prediction(projected)
        loss = 0.0
        for c in range(num_classes):
            features_c, memory_c = prediction[classes == c], method.memory.entries(c)
            if features_c.shape[0] > 1 and memory_c.shape[0] > 0:
                distances = 1 - F.normalize(features_c, dim=1) @ F.normalize(memory_c, dim=1).T  # (N_c, M)
                weights = torch.sigmoid(method.selectors[c](features_c.detach()))
                weights = weights.shape[0] / weights.sum(dim=0) * weights
                loss = loss + (distances * weights).mean()
        losses.append(loss / num_classes)
    return losses


@pytest.mark.parametrize("filled_memory", [False, True])
def test_contrastive_losses_equal_the_official_formulation_in_value_and_gradients(method_2d, filled_memory):
    torch.manual_seed(3)
    ours = copy.deepcopy(method_2d).train()
    ours.memory.count.zero_()
    if filled_memory:  # older entries from earlier steps, for every foreground class
        for c in (1, 2):
            ours.memory.update(torch.randn(40, 32), torch.full((40,), c), torch.full((40,), c), torch.rand(40))
    reference = copy.deepcopy(ours)
    features = torch.randn(4, 8, 16, 16)
    logits, label = torch.randn(4, 3, 16, 16) * 3, torch.randint(0, 3, (4, 16, 16))
    labelled = torch.tensor([True, True, False, False])
    results = {}
    for name, method, losses in (
            ("ours", ours, lambda f: ours.contrastive_losses(f, torch.softmax(logits, 1), label, labelled)),
            ("official", reference, lambda f: official_contrastive_losses(reference, f, logits, label, labelled))):
        leaf = features.clone().requires_grad_(True)
        loss_l, loss_u = losses(leaf)
        (loss_l + 2 * loss_u).backward()
        grads = {k: p.grad for k, p in method.named_parameters() if p.grad is not None}
        results[name] = (float(loss_l.detach()), float(loss_u.detach()), leaf.grad, grads,
                         method.memory.features.clone())
    (l_ours, u_ours, grad_ours, params_ours, memory_ours), (l_ref, u_ref, grad_ref, params_ref, memory_ref) = (
        results["ours"], results["official"])
    assert l_ours > 0 and u_ours > 0
    assert l_ours == pytest.approx(l_ref, rel=1e-5) and u_ours == pytest.approx(u_ref, rel=1e-5)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-4, atol=1e-7)
    assert set(params_ours) == set(params_ref) and any(k.startswith("selectors.2") for k in params_ours)
    for key in params_ref:
        torch.testing.assert_close(params_ours[key], params_ref[key], rtol=1e-4, atol=1e-7, msg=key)
    torch.testing.assert_close(memory_ours, memory_ref)


def test_training_step_combines_the_losses_with_the_ramp(method_2d):
    method_2d.train()
    method_2d.memory.count.zero_()
    batch = {"image": torch.randn(4, 2, 16, 16), "label": torch.randint(0, 3, (4, 16, 16)),
             "labelled": torch.tensor([True, True, False, False])}
    output = method_2d.training_step(batch, step=300)
    logs = output.logs
    assert logs["lambda"] == pytest.approx(consistency_weight(300, 1.0, 40, 150))
    expected = logs["loss_sup"] + logs["lambda"] * (logs["loss_lds"] + 0.1 * (logs["loss_cl_l"] + logs["loss_cl_u"]))
    assert float(output.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert logs["loss_cl_u"] > 0 and int(method_2d.memory.count.sum()) > 0
    output.loss.backward()
    assert method_2d.projection[0].weight.grad is not None
    with_memory = [c for c in range(3) if int(method_2d.memory.count[c]) > 0]
    assert 0 not in with_memory and with_memory  # background has no prototypes (official)
    assert all(method_2d.selectors[c][0].weight.grad is not None for c in with_memory)
    assert method_2d.selectors[0][0].weight.grad is None
    method_2d.zero_grad()
    method_2d.memory.count.zero_()


def test_without_unlabelled_data_and_lambda_zero_it_is_supervised_training(tiny_dataset, tmp_path):
    common = {"data.unlabelled_batch_size": 0, "data.labelled_batch_size": 2, "model.arch": "vnet",
              "model.features": [8, 16], "trainer.max_steps": 3, "trainer.val_every": 3}
    ssnet = train(ssnet_config(tiny_dataset, **{**common, "method.consistency": 0.0}), tmp_path / "ssnet")
    supervised = train(ssnet_config(tiny_dataset, **{**common, "method.name": "supervised"}), tmp_path / "sup")
    a = load_checkpoint(tmp_path / "ssnet" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "sup" / "checkpoints" / "last.pt")["model"]
    assert {k for k in a if k.startswith("net.")} == set(b)
    for key in b:
        assert torch.equal(a[key], b[key]), key
    assert ssnet["best_val_dice"] == supervised["best_val_dice"]


def test_full_run_on_3d_vnet_saves_the_memory(tiny_dataset, tmp_path):
    config = ssnet_config(tiny_dataset, **{"model.arch": "vnet", "model.features": [8, 16], "trainer.max_steps": 2,
                                           "trainer.val_every": 2, "trainer.checkpoint_every": 2,
                                           "method.max_voxels": 512, "inference.stride": [8, 8, 8]})
    summary = train(config, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert state["memory.features"].shape == (3, 32, 32) and 0 < int(state["memory.count"].max()) <= 32
    assert summary["best_val_dice"] >= 0


@pytest.mark.parametrize("dataset, arch, dims", [("atrium3d", "vnet", 3), ("cardiac2d", "unet", 2)])
def test_issue_configs_load_and_share_the_network(dataset, arch, dims):
    from pathlib import Path

    from medgap.config import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    configs = {name: load_config(root / f"{name}_{dataset}.yaml")
               for name in ("supervised_lower", "supervised_upper", "mean_teacher", "ss_net")}
    for name, config in configs.items():
        assert config.model.arch == arch and len(config.data.patch_size) == dims and config.model.norm == "batch", name
    assert configs["supervised_lower"].data.unlabelled_batch_size == 0
    assert configs["supervised_upper"].data.labelled_count is None
    assert configs["ss_net"].data.labelled_count == configs["mean_teacher"].data.labelled_count == 7
    assert configs["ss_net"].method.vat_epsilon == (10.0 if dims == 3 else 6.0)


def test_official_stride_becomes_monai_overlap_with_the_exact_step():
    from monai.inferers.utils import _get_scan_interval

    from medgap.config import load_config
    from medgap.errors import ConfigError
    from medgap.inference.predict import window_overlap

    config = load_config(None, ["data.patch_size=[112, 112, 80]", "inference.stride=[18, 18, 4]"])
    assert _get_scan_interval((200, 200, 100), (112, 112, 80), 3, window_overlap(config)) == (18, 18, 4)
    config.inference.stride = [18, 18]
    with pytest.raises(ConfigError, match="inference.stride"):
        window_overlap(config)
