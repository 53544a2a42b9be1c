"""Exponential moving average (EMA) teachers, shared by Mean Teacher, AMVLM and any method with a teacher.

The teacher is a deep copy of the student whose weights follow ``θ' ← α θ' + (1 − α) θ`` after every optimiser
step (Tarvainen & Valpola 2017, Eq. 1 in their notation). As in the reference implementations, the decay is
``min(1 − 1/(step + 1), α)``: early on the teacher averages uniformly over the steps so far instead of being
stuck near its random initialisation. Buffers (BatchNorm running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student``: same weights, ``requires_grad=False``, eval mode.

    Register the result as a submodule so that it is saved in (and resumed from) the method's state dict; the
    loop's optimiser only takes parameters that require gradients, so the teacher is never optimised.
    """
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval()


def ema_decay(step: int, decay: float) -> float:
    """The effective decay after optimiser step ``step`` (0-based): ``min(1 − 1/(step + 1), decay)``."""
    return min(1.0 - 1.0 / (step + 1), decay)


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, decay: float, step: int) -> float:
    """``teacher ← α·teacher + (1 − α)·student`` for parameters, copy for buffers; returns the α used.

    Parameters and buffers are matched by name, so both modules must have the same architecture.
    """
    alpha = ema_decay(step, decay)
    student_parameters = dict(student.named_parameters())
    for name, parameter in teacher.named_parameters():
        parameter.mul_(alpha).add_(student_parameters[name].detach(), alpha=1.0 - alpha)
    student_buffers = dict(student.named_buffers())
    for name, buffer in teacher.named_buffers():
        buffer.copy_(student_buffers[name])
    return alpha
