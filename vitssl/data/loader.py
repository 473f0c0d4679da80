"""Batches of uint8 images on the training device, in a seeded per-epoch order, resumable mid-epoch.

The order of epoch e is a permutation drawn from (seed, e) alone, cut into global batches and then
into one slice per process; so a run resumed at step k of an epoch sees exactly the batches an
uninterrupted run would, whatever the number of workers.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vitssl.data.dataset import ImageDataset
from vitssl.data.images import Decode, to_canvas
from vitssl.errors import DataError


class FileImages(Dataset):
    """Decode-on-read dataset for streaming large folders through DataLoader workers.

    A file that cannot be used never raises in a worker (that would end in a worker traceback): its
    item is a blank image with the reason as a string, and the process that reads the batch decides
    (leave it out, or stop with one line naming every bad file of the batch)."""

    def __init__(self, paths: list[str], labels: torch.Tensor, decode: Decode):
        self.paths, self.labels, self.decode = paths, labels, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        d = self.decode
        channels = 3 if d.aspect == "square" else 4  # photos kept whole: a canvas of the longest side allowed
        try:
            arr = d(self.paths[i])  # (S, S, 3) or (h, w, 3), read-only (PIL's buffer)
        except DataError as e:
            return torch.zeros(channels, d.canvas, d.canvas, dtype=torch.uint8), self.labels[i], str(e)
        if channels == 4:
            arr = to_canvas(arr, d.canvas)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))), self.labels[i], ""  # (C, S, S) copy


def bad_images_error(errors: list[str], hint: str) -> DataError:
    """One line naming the bad files (the first few and the count)."""
    shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
    return DataError(f"{len(errors)} image(s) cannot be used: {shown}. {hint}")


class BatchLoader:
    """Per-process (images uint8 (B, 3, S, S) or canvases (B, 4, C, C), labels (B,)) batches, an epoch at
    a time."""

    def __init__(self, dataset: ImageDataset, *, batch_size: int, device: torch.device, seed: int = 0,
                 rank: int = 0, world: int = 1, shuffle: bool = True, drop_last: bool = True,
                 num_workers: int = 2, min_side: int = 1, skip_bad: bool = False):
        self.ds, self.batch_size, self.device = dataset, batch_size, device
        self.seed, self.rank, self.world, self.shuffle, self.drop_last = seed, rank, world, shuffle, drop_last
        self.num_workers = num_workers
        global_batch = batch_size * world
        if drop_last and len(dataset) < global_batch:
            raise DataError(f"the dataset has {len(dataset)} images, fewer than one batch of {global_batch}; "
                            f"lower train.batch_size or use more images (data.limit)")
        self.images = None
        self.files = None
        self.skip_bad = skip_bad
        self.bad: dict[str, str] = {}  # streamed files left out (data.bad_images=skip): reason by file
        if dataset.in_memory:
            self.images = dataset.images.to(device) if device.type == "cuda" else dataset.images  # resident uint8
            self.labels = dataset.labels.to(device)
        else:
            self.files = FileImages(dataset.paths, dataset.labels, replace(dataset.decode, min_side=min_side))

    def __len__(self) -> int:
        """Steps per epoch."""
        n, g = len(self.ds), self.batch_size * self.world
        return n // g if self.drop_last else -(-n // g)

    def order(self, epoch: int) -> torch.Tensor:
        """(steps, B) indices of this process's batches in `epoch` (the last one may be short)."""
        n = len(self.ds)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(n, generator=g)
        else:
            perm = torch.arange(n)
        steps, b = len(self), self.batch_size
        if self.drop_last:
            return perm[: steps * b * self.world].view(steps, self.world, b)[:, self.rank]
        # evaluation order: every image once; process r takes items r, r + world, ...
        mine = perm[self.rank::self.world]
        return [mine[i:i + b] for i in range(0, len(mine), b)]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = self.order(epoch)[start:]
        if self.images is not None:
            for idx in batches:
                idx = idx.to(self.images.device, non_blocking=True)
                yield (self.images.index_select(0, idx).to(self.device, non_blocking=True),
                       self.labels.index_select(0, idx.to(self.labels.device)))
            return
        flat = [int(i) for idx in batches for i in idx]
        loader = DataLoader(self.files, batch_size=self.batch_size, sampler=flat, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", drop_last=False,
                            persistent_workers=False, prefetch_factor=4 if self.num_workers else None)
        for images, labels, errors in loader:
            if any(errors):
                images, labels = self._leave_out_bad(images, labels, errors)
                if not len(labels):
                    continue
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def _leave_out_bad(self, images: torch.Tensor, labels: torch.Tensor, errors: list[str]):
        """Drop the batch's unusable files (skip), warning once for the first; or stop naming all of them."""
        bad = [e for e in errors if e]
        if not self.skip_bad:
            raise bad_images_error(bad, "Fix or remove them, or set data.bad_images=skip to leave them out")
        if not self.bad:
            warnings.warn(f"leaving out images that cannot be used (data.bad_images=skip), first: {bad[0]}; "
                          "the count goes to summary.json", stacklevel=2)
        for e in bad:
            self.bad.setdefault(e.split("'")[1] if "'" in e else e, e)
        keep = torch.tensor([not e for e in errors])
        return images[keep], labels[keep]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


def single_batch(dataset: ImageDataset, n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded batch of `n` images (uint8) for pictures and monitors."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))]
    if dataset.in_memory:
        return dataset.images[idx].to(device)
    files = FileImages(dataset.paths, dataset.labels, dataset.decode)
    return torch.stack([files[int(i)][0] for i in idx]).to(device)  # an unusable file shows as a blank image
