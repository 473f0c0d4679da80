"""Segmenters: which token belongs to which segment, and which segment to which partition.

A segmentation of a batch is two integer maps: `segment` (B, N), the segment id (0..S-1) of every
token of the row-major token grid, and `partition` (B, S), the partition id of every segment id.
Segment ids may be unused (an empty blob); the serialiser skips them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from vitssl.methods.randsac.config import check_square


@dataclass
class Segmentation:
    segment: torch.Tensor  # (B, N) long
    partition: torch.Tensor  # (B, S) long
    equal_size: Optional[int] = None  # tokens per segment when every segment of every image has this size

    @property
    def num_slots(self) -> int:
        return self.partition.shape[1]


class SquareSegmenter:
    """M x M squares on a fixed grid, optionally grouped into Q x Q-token partitions ("16 -> 4").

    The layout is the same for every image (only the order is random), so it is built once per grid.
    """

    def __init__(self, size: int, partition_size: Optional[int] = None):
        self.m, self.q = size, partition_size
        self._cache: dict = {}

    def layout(self, grid: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) segment id of every token and (S,) partition id of every segment."""
        key = (tuple(grid), str(device))
        if key not in self._cache:
            gh, gw = grid
            m, q = self.m, self.q
            for side in (gh, gw):
                check_square(side, m, q)
            rows = torch.arange(gh, device=device)[:, None]
            cols = torch.arange(gw, device=device)[None, :]
            segment = (rows // m) * (gw // m) + cols // m  # (gh, gw)
            seg_rows = torch.arange(gh // m, device=device)[:, None] * m  # top-left token of each segment
            seg_cols = torch.arange(gw // m, device=device)[None, :] * m
            if q is None:
                partition = torch.zeros_like(seg_rows * seg_cols)
            else:
                partition = (seg_rows // q) * (gw // q) + seg_cols // q  # (gh/m, gw/m)
            self._cache[key] = (segment.reshape(-1), partition.reshape(-1))
        return self._cache[key]

    def __call__(self, batch: int, grid: tuple[int, int], device, generator=None) -> Segmentation:
        segment, partition = self.layout(grid, device)
        return Segmentation(segment.expand(batch, -1), partition.expand(batch, -1), equal_size=self.m * self.m)


def _gaussians(batch: int, k: int, mean_range, scale_range, device, generator):
    """K random elliptical 2-D Gaussians per image: means (B, K, 2), axis stds (B, K, 2), angles (B, K)."""
    u = torch.rand(batch, k, 5, device=device, generator=generator)
    lo, hi = mean_range
    means = lo + (hi - lo) * u[..., :2]
    lo, hi = scale_range
    scales = lo + (hi - lo) * u[..., 2:4]
    return means, scales, u[..., 4] * math.pi


def _mahalanobis2(points: torch.Tensor, means, scales, angles) -> torch.Tensor:
    """Squared Mahalanobis distance of points (B or 1, N, 2) to each Gaussian: (B, N, K)."""
    diff = points[:, :, None, :] - means[:, None]  # (B, N, K, 2)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, K)
    along = diff[..., 0] * cos + diff[..., 1] * sin  # coordinates in each Gaussian's own axes
    across = -diff[..., 0] * sin + diff[..., 1] * cos
    return (along / scales[:, None, :, 0]) ** 2 + (across / scales[:, None, :, 1]) ** 2


class BlobSegmenter:
    """Tokens go to the nearest of K random Gaussians (Mahalanobis); blobs can be grouped hierarchically.

    Partitions ("11 -> 5"): P more Gaussians are drawn, and each blob joins the partition nearest to the
    centroid of its tokens, so a partition is a spatially coherent group of whole blobs.
    """

    def __init__(self, blobs: int, partitions: Optional[int] = None, mean_range=(0.0, 1.0), scale_range=(0.1, 0.5)):
        self.k, self.p = blobs, partitions
        self.mean_range, self.scale_range = tuple(mean_range), tuple(scale_range)

    def __call__(self, batch: int, grid: tuple[int, int], device, generator=None) -> Segmentation:
        gh, gw = grid
        ys, xs = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
        points = torch.stack([(ys.reshape(-1) + 0.5) / gh, (xs.reshape(-1) + 0.5) / gw], dim=-1)[None]  # (1, N, 2)
        blobs = _gaussians(batch, self.k, self.mean_range, self.scale_range, device, generator)
        segment = _mahalanobis2(points, *blobs).argmin(-1)  # (B, N)
        if self.p is None:
            return Segmentation(segment, torch.zeros(batch, self.k, dtype=torch.long, device=device))
        onehot = torch.zeros(batch, points.shape[1], self.k, device=device).scatter_(2, segment[..., None], 1.0)
        count = onehot.sum(1)  # (B, K)
        centroid = torch.where(count[..., None] > 0, onehot.transpose(1, 2) @ points / count.clamp_min(1)[..., None],
                               blobs[0])  # (B, K, 2); an empty blob keeps its mean (it has no tokens anyway)
        parts = _gaussians(batch, self.p, self.mean_range, self.scale_range, device, generator)
        partition = _mahalanobis2(centroid, *parts).argmin(-1)  # (B, K)
        return Segmentation(segment, partition)


def build_segmenter(cfg):
    if cfg.segments == "square":
        return SquareSegmenter(cfg.square_size, cfg.partition_size)
    return BlobSegmenter(cfg.blobs, cfg.blob_partitions, cfg.blob_mean_range, cfg.blob_scale_range)
