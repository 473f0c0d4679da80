"""The three RandSAC attention masks, from the serial segment rank of every query and key.

- encoder self-attention: a token sees its own segment and every earlier one (rank_k <= rank_q);
- decoder self-attention: the same over target tokens;
- decoder cross-attention: a target of segment j sees encoder outputs of segments < j only.

The encoder gets a content-free CLS token first, with rank -1: every token may see it and it sees
only itself, so it carries no pixel information, and evaluation (full attention) sees the same
token set as training. With equal-size segments the ranks are the same for every image, so the
masks are built once and shared by the batch; otherwise they are per image, (B, 1, Nq, Nk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from vitssl.methods.randsac.serialise import Serial
from vitssl.models.attention import create_block_mask


@dataclass
class AttentionPlan:
    enc_len: int  # serial positions fed to the encoder: [0, enc_len)
    dec_start: int  # serial positions predicted by the decoder: [dec_start, N)
    enc_mask: Any  # (Ne+1, Ne+1) | (B, 1, Ne+1, Ne+1) bool, or a BlockMask
    dec_mask: Any  # (Nd, Nd) | (B, 1, Nd, Nd)
    cross_mask: Any  # (Nd, Ne+1) | (B, 1, Nd, Ne+1)
    loss_weight: Optional[torch.Tensor]  # (B, Nd) 1 where a query is a real target; None: all are


def rank_mask(rank_q: torch.Tensor, rank_k: torch.Tensor, strict: bool, flex: bool):
    """Boolean mask (True = may attend) or BlockMask for queries/keys with these segment ranks."""
    if flex:
        if rank_q.ndim == 1:
            fn = (lambda b, h, q, k: rank_q[q] > rank_k[k]) if strict else (lambda b, h, q, k: rank_q[q] >= rank_k[k])
            return create_block_mask(fn, None, None, rank_q.shape[0], rank_k.shape[0], device=rank_q.device)
        fn = (lambda b, h, q, k: rank_q[b, q] > rank_k[b, k]) if strict else \
            (lambda b, h, q, k: rank_q[b, q] >= rank_k[b, k])
        return create_block_mask(fn, rank_q.shape[0], None, rank_q.shape[1], rank_k.shape[1], device=rank_q.device)
    q, k = rank_q[..., :, None], rank_k[..., None, :]
    m = q > k if strict else q >= k
    return m if m.ndim == 2 else m[:, None]  # per image: broadcast over heads


class MaskBuilder:
    """Makes the plan for a serial order; static plans are cached per (length, segment size, device)."""

    def __init__(self, flex: bool = False):
        self.flex = flex
        self._static: dict = {}

    def __call__(self, serial: Serial) -> AttentionPlan:
        b, n = serial.perm.shape
        size = serial.equal_size
        if size is not None:  # the first segment is never predicted, the last never needs to be seen
            key = (n, size, str(serial.perm.device))
            if key not in self._static:
                self._static[key] = self._plan(serial.rank[0], n - size, size, None)
            return self._static[key]
        weight = (serial.rank > 0).float()  # per image: the first segment's length varies, so mask it in the loss
        return self._plan(serial.rank, n, 0, weight)

    def _plan(self, rank: torch.Tensor, enc_len: int, dec_start: int, weight) -> AttentionPlan:
        cls = torch.full(rank.shape[:-1] + (1,), -1, dtype=rank.dtype, device=rank.device)
        enc_rank = torch.cat([cls, rank[..., :enc_len]], dim=-1)  # (..., 1 + Ne)
        dec_rank = rank[..., dec_start:]  # (..., Nd)
        return AttentionPlan(enc_len, dec_start,
                             enc_mask=rank_mask(enc_rank, enc_rank, strict=False, flex=self.flex),
                             dec_mask=rank_mask(dec_rank, dec_rank, strict=False, flex=self.flex),
                             cross_mask=rank_mask(dec_rank, enc_rank, strict=True, flex=self.flex),
                             loss_weight=weight)
