"""Ramp-up schedules for the weight of unsupervised losses (Mean Teacher, SS-Net, AMVLM).

The "sigmoid" ramp-up of Laine & Aila (2017) / Tarvainen & Valpola (2017): ``exp(-5 (1 - t)^2)`` for progress
``t`` in [0, 1], which starts near 0 (``e^-5 ≈ 0.0067``) and reaches 1 smoothly at ``t = 1``.
"""

from __future__ import annotations

import math


def sigmoid_rampup(current: float, length: float) -> float:
    """``exp(-5 (1 - clip(current / length, 0, 1))^2)``; 1.0 when ``length`` is 0 (no ramp-up).

    Args:
        current: progress in any unit (steps, epochs).
        length: ramp-up length in the same unit.
    """
    if length <= 0:
        return 1.0
    phase = 1.0 - min(max(current, 0.0), length) / length
    return math.exp(-5.0 * phase * phase)


def consistency_weight(step: int, weight: float, rampup_length: float, steps_per_unit: int = 1) -> float:
    """λ(t) = c · exp(-5 (1 - min(⌊t / u⌋, R) / R)^2): SS-Net's and Mean Teacher's ramped loss weight.

    SS-Net (Wu et al. 2022) and the SSL4MIS Mean Teacher count the ramp in "epochs" of ``u = 150`` iterations:
    the official code evaluates the ramp at ``iter_num // 150`` (integer division), so λ is a staircase that
    changes every 150 steps. We follow that exactly; ``steps_per_unit=1`` gives a smooth per-step ramp.

    Args:
        step: the training iteration ``t`` (0-based, as the loop passes it).
        weight: the final weight ``c`` (SS-Net: 1.0 for LA, 0.1 for ACDC).
        rampup_length: ``R`` in units (SS-Net: 40 for LA, 200 for ACDC).
        steps_per_unit: ``u``, iterations per unit (official: 150).
    """
    return weight * sigmoid_rampup(step // max(steps_per_unit, 1), rampup_length)
