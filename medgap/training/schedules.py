"""Optimisers and learning-rate schedules from :class:`OptimConfig`."""

from __future__ import annotations

import math

import torch

from medgap.config import OptimConfig


def build_optimizer(parameters, config: OptimConfig) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def lr_factor(step: int, max_steps: int, config: OptimConfig) -> float:
    """Multiplier of the base LR at ``step``: linear warm-up, then poly (nnU-Net), cosine, step or constant."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "poly":
        return (1 - min(step, max_steps - 1) / max_steps) ** config.poly_power
    if config.schedule == "cosine":
        progress = min(step, max_steps) / max(max_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.gamma ** (step // config.step_size)
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, max_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, max_steps, config))
