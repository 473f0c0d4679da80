"""RandSAC's decoder: position queries that cross-attend to (a learned mix of) encoder layers.

Queries carry no content: a learned query token plus the fixed sin-cos position of the target
token. Decoder layer l reads its own memory Z_l = sum_k W[l, k] H_k over the encoder layers H_k
(`skip='learned'`, W initialised to pick the last layer), or the last layer only (`'last'`, vanilla).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vitssl.models.attention import attend
from vitssl.models.pos_embed import sincos_2d
from vitssl.models.vit import Attention, Mlp


class CrossAttention(nn.Module):
    def __init__(self, dim: int, mem_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(mem_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mask=None) -> torch.Tensor:
        b, n, d = x.shape
        h = self.num_heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)  # (B, h, Nq, d/h)
        k, v = self.kv(mem).reshape(b, mem.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, Nk, d/h)
        return self.proj(attend(q, k, v, mask).transpose(1, 2).reshape(b, n, d))


class DecoderBlock(nn.Module):
    compile_unit = True  # the loop compiles these one by one under train.compile

    def __init__(self, dim: int, mem_dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm_q = nn.LayerNorm(dim, eps=1e-6)
        self.norm_mem = nn.LayerNorm(mem_dim, eps=1e-6)
        self.cross = CrossAttention(dim, mem_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mem: torch.Tensor, self_mask=None, cross_mask=None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), self_mask)
        x = x + self.cross(self.norm_q(x), self.norm_mem(mem), cross_mask)
        return x + self.mlp(self.norm2(x))


class SkipMix(nn.Module):
    """Z_l = sum_k W[l, k] H_k: one learned weight per (decoder layer, encoder layer) pair."""

    def __init__(self, dec_layers: int, enc_layers: int):
        super().__init__()
        w = torch.zeros(dec_layers, enc_layers)
        w[:, -1] = 1.0  # start as the vanilla decoder: every layer reads the last encoder layer
        self.skip_weights = nn.Parameter(w)

    def forward(self, hs: list[torch.Tensor]) -> torch.Tensor:
        h = torch.stack(hs)  # (L_enc, B, N, D)
        return torch.einsum("lk,kbnd->lbnd", self.skip_weights.to(h.dtype), h)  # (L_dec, B, N, D)


class Decoder(nn.Module):
    def __init__(self, *, enc_dim: int, enc_depth: int, patch_size: int, dim: int = 256, depth: int = 4,
                 num_heads: int = 8, mlp_ratio: float = 4.0, skip: str = "learned", channels: int = 3):
        super().__init__()
        self.dim = dim
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(DecoderBlock(dim, enc_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.mix = SkipMix(depth, enc_depth) if skip == "learned" else None
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, patch_size * patch_size * channels)
        self._pos: dict = {}
        nn.init.normal_(self.query_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos_embed(self, grid: tuple[int, int], device) -> torch.Tensor:
        """(N, dim) fixed sin-cos positions of the token grid."""
        key = (tuple(grid), str(device))
        if key not in self._pos:
            self._pos[key] = sincos_2d(*grid, self.dim).to(device)
        return self._pos[key]

    @property
    def reads_all_layers(self) -> bool:
        return self.mix is not None

    def forward(self, targets: torch.Tensor, grid: tuple[int, int], hs: list[torch.Tensor], self_mask=None,
                cross_mask=None) -> torch.Tensor:
        """targets (B, Nd) token indices to predict; hs: every encoder layer (learned skip) or the last one,
        each (B, 1 + Ne, D_enc), normalised. Returns (B, Nd, P*P*C) predicted pixels."""
        pos = self.pos_embed(grid, targets.device)[targets]  # (B, Nd, dim)
        x = self.query_token.to(pos.dtype) + pos
        mems = self.mix(hs) if self.mix is not None else [hs[-1]] * len(self.blocks)
        for blk, mem in zip(self.blocks, mems):
            x = blk(x, mem, self_mask, cross_mask)
        return self.head(self.norm(x))
