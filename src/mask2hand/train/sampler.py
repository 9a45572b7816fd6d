"""A deterministic, resumable, rank-aware sampler.

The order of epoch e is a permutation drawn from a generator seeded with (seed, e),
so an interrupted run that resumes at (epoch, position) sees exactly the samples the
uninterrupted run would have seen. With several processes the permutation is padded
to a multiple of the world size and dealt round-robin, like DistributedSampler.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(self, num_items: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; skip the first `start` items of this process's share."""
        self.epoch = epoch
        self.start = start

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=gen).tolist()
        else:
            order = list(range(self.num_items))
        per_rank = -(-self.num_items // self.world_size)
        order += order[: per_rank * self.world_size - len(order)]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start :])

    def __len__(self) -> int:
        return -(-self.num_items // self.world_size) - self.start
