import pytest
import torch

from conftest import tiny_config, train_interrupted_then_resumed
from medgap.data.dataset_json import load_dataset_json
from medgap.methods import build_method, mean_teacher
from medgap.training.checkpoint import load_checkpoint
from medgap.training.loop import train


def mt_config(dataset, **overrides):
    return tiny_config(dataset, **{"method.name": "mean_teacher", "data.labelled_count": 2,
                                   "data.unlabelled_batch_size": 1, "data.labelled_batch_size": 1,
                                   "model.norm": "batch", "data.num_workers": 0, "method.consistency": 1.0,
                                   "method.consistency_rampup": 2.0, "method.rampup_unit": 1, **overrides})


def test_consistency_is_the_mse_between_student_and_train_mode_teacher_on_the_unlabelled_half(tiny_dataset):
    # SSL4MIS's Mean Teacher: the teacher runs in train mode (BatchNorm with its own batch's statistics, dropout
    # on) on the unlabelled samples only, and the MSE of softmax is averaged over those samples.
    method = build_method(mt_config(tiny_dataset, **{"method.noise_std": 0.0}), load_dataset_json(tiny_dataset))
    method.train()
    assert method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    torch.manual_seed(0)
    image = torch.randn(3, 2, 16, 16, 16)
    batch = {"image": image, "label": torch.randint(0, 3, (3, 16, 16, 16)),
             "labelled": torch.tensor([True, False, False])}
    output = method.training_step(batch, step=5)  # ramp done: λ = 1
    with torch.no_grad():
        student = torch.softmax(method.net(image), 1)[1:]  # the student's pass sees the whole batch
        teacher = torch.softmax(method.teacher(image[1:]), 1)  # the teacher's only the unlabelled half
    assert output.logs["lambda"] == 1.0
    assert output.logs["loss_consistency"] == pytest.approx(float(((student - teacher) ** 2).mean()), rel=1e-5)
    labelled_only = {**batch, "labelled": torch.tensor([True, True, True])}
    assert method.training_step(labelled_only, step=5).logs["loss_consistency"] == 0.0


def test_eval_teacher_on_every_image_stays_available(tiny_dataset):
    config = mt_config(tiny_dataset, **{"method.noise_std": 0.0, "method.teacher_mode": "eval",
                                        "method.consistency_on": "all"})
    method = build_method(config, load_dataset_json(tiny_dataset))
    method.train()
    assert not method.teacher.training
    image = torch.randn(2, 2, 16, 16, 16)
    batch = {"image": image, "label": torch.randint(0, 3, (2, 16, 16, 16)), "labelled": torch.tensor([True, False])}
    output = method.training_step(batch, step=5)
    with torch.no_grad():
        student = torch.softmax(method.net(image), 1)
        teacher = torch.softmax(method.teacher(image), 1)
    assert output.logs["loss_consistency"] == pytest.approx(float(((student - teacher) ** 2).mean()), rel=1e-5)
    assert output.logs["loss_consistency"] > 0  # BN: student uses batch statistics, teacher its running ones


def test_ssl4mis_defaults():
    options = mean_teacher.Config()
    assert (options.consistency, options.teacher_mode, options.consistency_on) == (0.1, "train", "unlabelled")


def test_teacher_is_checkpointed_and_resume_is_bit_identical(tiny_dataset, tmp_path, monkeypatch):
    config = mt_config(tiny_dataset)
    train(config, tmp_path / "straight")
    train_interrupted_then_resumed(config, tmp_path / "interrupted", monkeypatch, mean_teacher.MeanTeacher)
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    resumed = load_checkpoint(tmp_path / "interrupted" / "checkpoints" / "last.pt")["model"]
    assert any(key.startswith("teacher.") for key in straight) and straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # The teacher moved away from its initial copy but is not the student.
    assert not torch.equal(straight["teacher.head.weight"], straight["net.head.weight"])
