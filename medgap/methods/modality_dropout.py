"""Random or fixed modality dropping during training, shared by ShaSpec and the zero-filling baseline.

Missing-modality methods are trained by hiding modalities the case actually has, so that one model learns every
subset ("non-dedicated" training, ShaSpec Sec. 3.3) or one fixed subset ("dedicated" training). Genuinely
absent files are already ``False`` in ``batch["availability"]``; dropping only ever removes modalities from that
mask, so a dataset where 30 % of cases lack T1c trains without a preprocessing step.

The draw depends only on ``(seed, step)`` through its own generator: it does not consume the global RNG (so
exact resume holds) and is the same whatever device the batch is on.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from medgap.errors import ConfigError
from medgap.methods.options import ModalityDropoutOptions


def random_subset(availability: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per sample, keep k ~ U{1..m} of its m available modalities, chosen uniformly; never none.

    Args:
        availability: ``(B, N)`` bool, modalities present in the data.
        generator: a CPU generator (the draw is made on the CPU, the result moved to ``availability``'s device).

    Returns:
        ``(B, N)`` bool, a subset of ``availability`` with at least one ``True`` per row (rows with no available
        modality stay all ``False``).
    """
    present = availability.cpu()
    batch, modalities = present.shape
    count = present.sum(1)
    # k ~ U{1..m}: floor(u * m) + 1 with u ~ U[0, 1)
    keep_count = (torch.rand(batch, generator=generator) * count).floor().long() + 1
    # A random order of the available modalities: random scores, absent ones pushed to the end.
    scores = torch.rand(batch, modalities, generator=generator).masked_fill(~present, 2.0)
    rank = scores.argsort(1).argsort(1)  # rank of each modality in the random order
    return ((rank < keep_count[:, None]) & present).to(availability.device)


def fixed_subset(availability: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Dedicated training: ``availability & keep``; a sample left with nothing keeps what it had.

    Args:
        availability: ``(B, N)`` bool; keep: ``(N,)`` bool, the evaluated subset.
    """
    kept = availability & keep.to(availability.device)
    empty = ~kept.any(1, keepdim=True)
    return torch.where(empty, availability, kept)


class ModalityDropper:
    """Turns the data's availability mask into the training mask of one step.

    Args:
        options: the method's :class:`ModalityDropoutOptions`.
        channel_names: dataset modality names, in channel order.
        seed: the run's seed (``trainer.seed``); the draw of step ``t`` is a function of ``(seed, t)``.
    """

    def __init__(self, options: ModalityDropoutOptions, channel_names: tuple[str, ...], seed: int):
        self.mode, self.warmup, self.seed = options.modality_dropout, options.full_modality_steps, seed
        for key in ("keep_modalities", "sparse_modalities"):
            unknown = [name for name in getattr(options, key) if name not in channel_names]
            if unknown:
                raise ConfigError(f"method.{key}: {unknown} not in dataset channels {list(channel_names)}")
        if not 0.0 <= options.sparse_keep_ratio <= 1.0:
            raise ConfigError(f"method.sparse_keep_ratio must be in [0, 1], got {options.sparse_keep_ratio}")
        self.sparse = torch.tensor([name in options.sparse_modalities for name in channel_names])
        self.sparse_keep_ratio = options.sparse_keep_ratio
        if self.mode == "fixed" and not options.keep_modalities:
            raise ConfigError("method.modality_dropout=fixed needs method.keep_modalities (channel names)")
        self.keep = torch.tensor([name in options.keep_modalities for name in channel_names])

    def keeps_sparse(self, case_id: str) -> bool:
        """Whether training case ``case_id`` keeps the sparse modalities (a Bernoulli(ratio) draw per case)."""
        return bool(np.random.default_rng([self.seed, zlib.crc32(case_id.encode())]).random() < self.sparse_keep_ratio)

    def __call__(self, availability: torch.Tensor, step: int, cases: list[str] | None = None) -> torch.Tensor:
        """``(B, N)`` data availability (+ the batch's case ids) → ``(B, N)`` modalities used at ``step``."""
        if cases is not None and self.sparse.any() and self.sparse_keep_ratio < 1.0:
            lose = torch.tensor([not self.keeps_sparse(case) for case in cases])[:, None] & self.sparse
            remaining = availability & ~lose.to(availability.device)
            availability = torch.where(remaining.any(1, keepdim=True), remaining, availability)
        if self.mode == "none" or step < self.warmup:
            return availability
        if self.mode == "fixed":
            return fixed_subset(availability, self.keep)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return random_subset(availability, generator)


def apply_availability(image: torch.Tensor, availability: torch.Tensor) -> torch.Tensor:
    """Zero the channels of ``image (B, N, *S)`` that ``availability (B, N)`` marks missing (zero-filling)."""
    shape = (*availability.shape, *[1] * (image.ndim - 2))
    return image * availability.reshape(shape).to(image.dtype)
