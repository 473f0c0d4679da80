"""Config of RandSAC (METHODS.md §2). Every ablation of the paper is a value here, not code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from vitssl.config.schema import require
from vitssl.methods.common.decoder import check_decoder


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass
class RandSACConfig:
    name: Literal["randsac"] = "randsac"
    # segments: squares of square_size x square_size tokens on a fixed grid, or random Gaussian blobs
    segments: Literal["square", "blob"] = "square"
    square_size: int = 2  # M, in tokens; 1 = patch-random
    partition_size: Optional[int] = 4  # squares are grouped into partitions of this side (tokens); null = flat
    blobs: int = 11  # K Gaussians (empty ones are dropped)
    blob_partitions: Optional[int] = 5  # blobs are grouped into this many partitions; null = flat
    blob_mean_range: tuple[float, float] = (0.0, 1.0)  # blob centres, as fractions of the grid side
    blob_scale_range: tuple[float, float] = (0.1, 0.5)  # std along each blob axis, fraction of the side
    order: Literal["random", "raster"] = "random"  # random: fresh per image; raster: row-major baseline
    # decoder
    decoder_dim: int = 256
    decoder_depth: int = 4
    decoder_heads: int = 8
    decoder_mlp_ratio: float = 4.0
    skip: Literal["learned", "last"] = "learned"  # learned mix of all encoder layers, or the last one (vanilla)
    # target
    norm_pix: bool = True  # standardise every target patch by its own mean and variance
    attention: Literal["auto", "sdpa", "flex"] = "auto"  # auto: FlexAttention block masks on CUDA, SDPA elsewhere

    def check(self, p: str) -> None:
        require(self.square_size >= 1, f"{p}.square_size", "must be at least 1")
        require(self.partition_size is None or self.partition_size >= 1, f"{p}.partition_size",
                "must be at least 1 or null")
        require(self.blobs >= 1, f"{p}.blobs", "must be at least 1")
        require(self.blob_partitions is None or 1 <= self.blob_partitions <= self.blobs, f"{p}.blob_partitions",
                f"must be null or between 1 and method.blobs ({self.blobs})")
        lo, hi = self.blob_mean_range
        require(0 <= lo <= hi <= 1, f"{p}.blob_mean_range", "must be [min, max] with 0 <= min <= max <= 1")
        lo, hi = self.blob_scale_range
        require(0 < lo <= hi, f"{p}.blob_scale_range", "must be [min, max] with 0 < min <= max")
        check_decoder(self, p)

    def check_with(self, cfg) -> None:
        """Segment sizes must tile the token grid of the configured image and patch size."""
        if self.segments == "square":
            check_square(cfg.data.image_size // cfg.model.patch_size, self.square_size, self.partition_size)


def check_square(grid: int, m: int, q: Optional[int]) -> None:
    """Raise ConfigError unless M (and the partition side Q) tile a grid of `grid` x `grid` tokens."""
    sizes = ", ".join(map(str, divisors(grid)))
    require(grid % m == 0, "method.square_size",
            f"({m}) must divide the token grid side ({grid} = data.image_size / model.patch_size); "
            f"sizes that work: {sizes}")
    if q is not None:
        ok = [d for d in divisors(grid) if d % m == 0]
        require(q % m == 0 and grid % q == 0, "method.partition_size",
                f"({q}) must be a multiple of method.square_size ({m}) that divides the token grid side ({grid}); "
                f"sizes that work: {', '.join(map(str, ok))}, or null for no partitions")
