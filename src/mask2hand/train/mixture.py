"""Training on several datasets at once: each batch is drawn from one of them, by their shares.

A batch never mixes sources, so a batch from another hand model (other vertex count, no
vertex supervision) stays a plain HandBatch, and the losses see one kind of ground truth
at a time. The order is deterministic and resumable like EpochSampler's: epoch e's batches
follow from (seed, e) alone, and every process of a distributed run takes every
world_size-th batch of the same sequence.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from mask2hand.errors import Mask2HandError


class MixedDataset:
    """Datasets (MaskDataset-like: load_batch, set_epoch, __len__) behind one index space:
    item i of part k is global index offsets[k] + i. `__getitems__` takes the indices of one
    batch, which must all lie in one part (MixedBatchSampler's batches do)."""

    def __init__(self, parts: Sequence, names: Sequence[str]):
        if not parts:
            raise Mask2HandError("a mixture needs at least one dataset")
        self.parts = list(parts)
        self.names = list(names)
        self.sizes = [len(part) for part in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        for part in self.parts:
            part.set_epoch(epoch)

    def part_of(self, item: int) -> int:
        """The part that global index `item` lies in."""
        if not 0 <= item < len(self):
            raise IndexError(item)
        return int(np.searchsorted(self.offsets, item, side="right") - 1)

    def __getitem__(self, item: int):
        return self.__getitems__([item]).sample(0)

    def __getitems__(self, items: list[int]):
        part = self.part_of(int(items[0]))
        local = [int(i) - int(self.offsets[part]) for i in items]
        if not all(0 <= i < self.sizes[part] for i in local):
            raise Mask2HandError(f"a batch mixes the training sets {self.names}: each batch must come from one")
        return self.parts[part].load_batch(local)


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of global indices of a MixedDataset with part sizes `sizes`: each batch's part is
    drawn with probability proportional to `shares`, its items are the next ones of that part's
    own shuffled order (reshuffled whenever a part runs out within an epoch).

    An epoch has sum(sizes) // (batch_size * world_size) batches per process, as many samples
    as one pass over all parts would give. set_epoch(e, start) selects epoch e and skips the
    first `start` batches of this process (a resumed run).
    """

    def __init__(self, sizes: Sequence[int], shares: Sequence[float], batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        if len(sizes) != len(shares) or not sizes:
            raise Mask2HandError("a mixture needs one share per dataset")
        shares = np.asarray(shares, dtype=np.float64)
        if not (np.isfinite(shares).all() and (shares > 0).all()):
            raise Mask2HandError(f"mixture shares must be positive numbers, got {shares.tolist()}")
        too_small = [k for k, n in enumerate(sizes) if n < batch_size]
        if too_small:
            raise Mask2HandError(f"training set {too_small[0] + 1} of the mixture has {sizes[too_small[0]]} samples, "
                                 f"fewer than one batch of {batch_size}; lower train.batch_size")
        self.sizes = [int(n) for n in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.probabilities = shares / shares.sum()
        self.batch_size = int(batch_size)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.batches_per_process = sum(self.sizes) // (self.batch_size * self.world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch, of every process, in order."""
        rng = np.random.default_rng((self.seed, self.epoch))
        count = self.batches_per_process * self.world_size
        parts = rng.choice(len(self.sizes), size=count, p=self.probabilities)
        orders = [np.empty(0, np.int64) for _ in self.sizes]
        used = [0] * len(self.sizes)
        batches = []
        for part in parts:
            if used[part] + self.batch_size > len(orders[part]):
                # the rest of this part's order, then a fresh shuffle of it (its own stream)
                fresh = np.random.default_rng((self.seed, self.epoch, int(part), len(orders[part]))).permutation(
                    self.sizes[part])
                orders[part] = np.concatenate([orders[part][used[part]:], fresh])
                used[part] = 0
            chosen = orders[part][used[part]:used[part] + self.batch_size]
            used[part] += self.batch_size
            batches.append((chosen + self.offsets[part]).tolist())
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.epoch_batches()[self.rank::self.world_size]
        return iter(mine[self.start:])

    def __len__(self) -> int:
        return max(0, self.batches_per_process - self.start)
