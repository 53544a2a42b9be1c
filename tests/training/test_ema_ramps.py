import math

import pytest
import torch
from torch import nn

from medgap.training.ema import ema_decay, make_teacher, update_teacher
from medgap.training.ramps import consistency_weight, sigmoid_rampup


@pytest.mark.parametrize("current, length, expected", [
    (0, 40, math.exp(-5.0)), (20, 40, math.exp(-5 * 0.25)), (40, 40, 1.0), (90, 40, 1.0), (-3, 40, math.exp(-5.0)),
    (7, 0, 1.0),
])
def test_sigmoid_rampup_is_exp_minus_5_one_minus_t_squared(current, length, expected):
    assert sigmoid_rampup(current, length) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, c, rampup, expected", [
    (0, 1.0, 40, math.exp(-5.0)),                                 # LA at the start
    (149, 1.0, 40, math.exp(-5.0)),                               # still unit 0: ⌊149/150⌋ = 0
    (150, 1.0, 40, math.exp(-5 * (1 - 1 / 40) ** 2)),
    (3000, 1.0, 40, math.exp(-5 * (1 - 20 / 40) ** 2)),           # halfway: exp(-1.25)
    (6000, 1.0, 40, 1.0), (15000, 1.0, 40, 1.0),                  # ramp done at 40 × 150 iterations
    (15000, 0.1, 200, 0.1 * math.exp(-5 * (1 - 100 / 200) ** 2)),  # ACDC: c = 0.1, R = 200
])
def test_ss_net_lambda_matches_the_formula(step, c, rampup, expected):
    assert consistency_weight(step, c, rampup, steps_per_unit=150) == pytest.approx(expected, rel=1e-12)


def test_ema_update_follows_the_formula_and_copies_buffers():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    teacher = make_teacher(student)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.add_(1.0)
    student(torch.randn(8, 3))  # changes the student's BN running statistics
    assert update_teacher(teacher, student, 0.99, step=0) == 0.0  # min(1 - 1/1, 0.99): teacher := student
    for name, value in teacher.named_parameters():
        assert torch.equal(value, dict(student.named_parameters())[name])
    teacher.load_state_dict(before)
    alpha = update_teacher(teacher, student, 0.99, step=999)
    assert alpha == 0.99 and ema_decay(9, 0.99) == pytest.approx(0.9)
    for name, value in teacher.named_parameters():
        expected = 0.99 * before[name] + 0.01 * dict(student.named_parameters())[name]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-7)
    assert torch.equal(teacher[1].running_mean, student[1].running_mean)
    assert torch.equal(teacher[1].num_batches_tracked, student[1].num_batches_tracked)
