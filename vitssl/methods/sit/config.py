"""Config of SiT and of its ablation, pure GMML (METHODS.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from vitssl.config.schema import require
from vitssl.models.vit import block_indices


@dataclass
class FillConfig:
    """Probabilities of each fill of the corrupted blocks, chosen per image."""

    noise: float = 0.0  # N(0, 1) in normalised space
    zeros: float = 1.0  # the mean colour (SiT's official default)
    image: float = 0.0  # same-location pixels of another image of the batch

    def check(self, p: str) -> None:
        vals = (self.noise, self.zeros, self.image)
        require(all(v >= 0 for v in vals) and sum(vals) > 0, p, "needs non-negative weights with a positive sum")


def _noise_fill() -> FillConfig:
    return FillConfig(noise=1.0, zeros=0.0, image=0.0)


@dataclass
class SiTConfig:
    """Defaults follow the official code (Sara-Ahmed/SiT v3, docs/METHODS.md §1); each departure
    someone might want is an option beside it."""

    name: Literal["sit"] = "sit"
    alpha: float = 5.0  # L = alpha * L_recons + L_contr (about 5 for small datasets, 1 for ImageNet)
    contrastive: bool = True  # false: reconstruction only, no teacher (= pure GMML)
    # sum: L_contr = NCE(1->2) + NCE(2->1), each x 2 tau (official); mean: half of that
    contrastive_reduce: Literal["sum", "mean"] = "sum"
    # GMML corruption
    max_frac: float = 0.5  # corrupted fraction f ~ U(min(0.5, max_frac), max_frac)
    align: int = 1  # block sides and corners in multiples of this many pixels (patch size: patch-aligned)
    max_block: float = 0.3  # largest block side as a fraction of the image side
    fill: FillConfig = field(default_factory=FillConfig)
    swap_prob: float = 0.5  # per image: instead paste blocks of another image ...
    swap_frac: float = 0.3  # ... until this fraction is covered
    # reconstruction head
    recon_depth: int = 3  # Linear + GELU layers before the pixel map
    # blocks whose normalised outputs are averaged (1-based, or -1 = last, -2, ...); null: the method's default
    recon_blocks: Optional[list[int]] = None
    # average: the final norm applied to the average of the blocks (official); each: average of normed blocks
    recon_norm: Literal["average", "each"] = "average"
    recon_loss: Literal["corrupted", "all"] = "corrupted"
    # contrastive head and teacher
    proj_hidden: int = 4096
    proj_dim: int = 256
    proj_layers: int = 3
    proj_act: list[str] = field(default_factory=lambda: ["relu", "gelu"])  # after hidden layers 1, 2 (, 3...)
    proj_bn: Literal["joint", "per_view"] = "joint"  # joint: BatchNorm over both views' 2B images (official)
    temperature: float = 0.2
    momentum: float = 0.996  # teacher EMA momentum, cosine to momentum_end
    momentum_end: float = 1.0

    def check(self, p: str) -> None:
        require(self.alpha > 0, f"{p}.alpha", "must be positive")
        require(0 < self.max_frac < 1, f"{p}.max_frac", "must be in (0, 1)")
        require(self.align >= 1, f"{p}.align", "must be at least 1")
        require(0 < self.max_block <= 1, f"{p}.max_block", "must be in (0, 1]")
        require(0 <= self.swap_prob <= 1, f"{p}.swap_prob", "must be a probability in [0, 1]")
        require(0 < self.swap_frac < 1, f"{p}.swap_frac", "must be in (0, 1)")
        require(self.recon_depth >= 0, f"{p}.recon_depth", "must be 0 or more")
        require(self.recon_blocks is None or (len(self.recon_blocks) >= 1 and 0 not in self.recon_blocks),
                f"{p}.recon_blocks", "must be null or list blocks as 1..depth or -1 (last), -2, ...")
        require(self.proj_hidden >= 1 and self.proj_dim >= 1, f"{p}.proj_hidden", "and proj_dim must be positive")
        require(self.proj_layers >= 1, f"{p}.proj_layers", "must be at least 1")
        require(len(self.proj_act) >= 1 and all(a in ("relu", "gelu") for a in self.proj_act), f"{p}.proj_act",
                "must list activations 'relu' or 'gelu', e.g. [relu, gelu]")
        require(self.temperature > 0, f"{p}.temperature", "must be positive")
        require(0 <= self.momentum <= self.momentum_end <= 1, f"{p}.momentum",
                "must satisfy 0 <= momentum <= momentum_end <= 1")

    def check_with(self, cfg) -> None:
        """Rules that involve other sections."""
        depth = cfg.model.resolved()[1]
        for b in self.recon_blocks or []:
            require(-depth <= b <= depth, "method.recon_blocks", f"has block {b}, but the encoder has {depth} blocks")
        size = cfg.data.image_size
        require(size % self.align == 0, "method.align", f"({self.align}) must divide data.image_size ({size})")

    default_blocks = (-1,)

    def block_indices(self, depth: int) -> list[int]:
        """0-based indices of the blocks the reconstruction head reads."""
        blocks = self.recon_blocks or [b for b in self.default_blocks if -b <= depth]
        return sorted(set(block_indices(blocks, depth, "method.recon_blocks")))


@dataclass
class GMMLConfig(SiTConfig):
    """Pure GMML: reconstruction only, higher corruption, the head reads an average of blocks."""

    name: Literal["gmml"] = "gmml"
    alpha: float = 1.0
    contrastive: bool = False
    max_frac: float = 0.75
    fill: FillConfig = field(default_factory=_noise_fill)  # the GMML repository's default: noise
    default_blocks = (-7, -5, -3, -1)  # blocks 6, 8, 10, 12 of 12 (those that exist in shallower encoders)

    def check(self, p: str) -> None:
        require(not self.contrastive, f"{p}.contrastive",
                "must be false for gmml (reconstruction only); for the contrastive term use method.name=sit")
        super().check(p)
