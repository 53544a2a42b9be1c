"""Two-stream batch sampler: each batch = ``labelled_batch`` labelled + ``unlabelled_batch`` unlabelled samples.

Batches are a pure function of (seed, step, rank): every sample is a ``(case index, sample seed)`` pair, the
sample seed drives its random crop and augmentation, so results do not depend on which worker loads it, a
resumed run continues with exactly the batches an uninterrupted run would have seen, and DDP ranks read
disjoint positions of the same streams.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Sample = tuple[int, int]  # (index into the dataset's cases, seed for that sample's crop/augmentation)


class _EpochStream:
    """Infinite stream of indices: a fresh seeded permutation of ``indices`` per pass."""

    def __init__(self, indices: list[int], seed: int, stream: int):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.seed, self.stream = seed, stream
        self._permutations: dict[int, np.ndarray] = {}

    def at(self, position: int) -> Sample:
        epoch, offset = divmod(position, len(self.indices))
        permutation = self._permutations.get(epoch)
        if permutation is None:
            permutation = np.random.default_rng([self.seed, self.stream, epoch]).permutation(len(self.indices))
            self._permutations = {epoch: permutation}  # one pass cached; positions only move forward
        sample_seed = int(np.random.SeedSequence([self.seed, self.stream, position]).generate_state(1)[0])
        return int(self.indices[permutation[offset]]), sample_seed


class TwoStreamBatchSampler:
    """Yields one batch of samples per training step, labelled samples first.

    Args:
        labelled: dataset indices of labelled cases.
        unlabelled: dataset indices of unlabelled cases (may be empty when ``unlabelled_batch`` is 0).
        labelled_batch, unlabelled_batch: samples of each stream per batch *per process*.
        seed: the run's seed.
        rank, world_size: this process's slice of the global batch (DDP); ranks never share a position.
        start_step: first step to yield (resume).
    """

    def __init__(self, labelled: list[int], unlabelled: list[int], labelled_batch: int, unlabelled_batch: int,
                 seed: int, rank: int = 0, world_size: int = 1, start_step: int = 0):
        if labelled_batch > 0 and not labelled:
            raise ValueError("labelled_batch > 0 but there are no labelled cases")
        if unlabelled_batch > 0 and not unlabelled:
            raise ValueError("unlabelled_batch > 0 but there are no unlabelled cases")
        self.labelled_batch, self.unlabelled_batch = labelled_batch, unlabelled_batch
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self._streams = [(_EpochStream(labelled, seed, 0), labelled_batch) if labelled_batch else None,
                         (_EpochStream(unlabelled, seed, 1), unlabelled_batch) if unlabelled_batch else None]

    def batch(self, step: int) -> list[Sample]:
        samples: list[Sample] = []
        for entry in self._streams:
            if entry is None:
                continue
            stream, size = entry
            first = (step * self.world_size + self.rank) * size
            samples.extend(stream.at(position) for position in range(first, first + size))
        return samples

    def __iter__(self) -> Iterator[list[Sample]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1
