"""A plain pre-norm Vision Transformer whose state-dict keys match timm's `VisionTransformer`.

Every method wraps this encoder; what a method keeps after pre-training is this module alone, so
its weights load into timm (`timm.create_model('vit_tiny_patch16_224', num_classes=0)`) unchanged.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from vitssl.errors import CheckpointError, ConfigError
from vitssl.models.attention import attend
from vitssl.models.pos_embed import resample_grid, sincos_2d

PRESETS = {  # name: (embed_dim, depth, num_heads)
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
}


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch for whole samples (`Block` applies it)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    @property
    def active(self) -> bool:
        return self.p > 0.0 and self.training

    def sample(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (B, 1, ...) keep mask of 0 and 1, drawn as timm draws it (same random numbers)."""
        return x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.sample(x) / (1 - self.p)) if self.active else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, D)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask=None, queries: Optional[int] = None) -> torch.Tensor:
        """attn_mask: None, a boolean tensor (True = may attend) or a FlexAttention BlockMask.
        queries: output only the first `queries` tokens (B, q, D), which still attend to all of x:
        a reader of the CLS token alone needs no queries, projections or MLP for the other tokens."""
        b, n, d = x.shape
        h = self.num_heads
        if queries is None:
            qkv = self.qkv(x).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)  # (B, h, N, d/h) each
        else:
            if attn_mask is not None and not isinstance(attn_mask, torch.Tensor):
                raise ValueError("queries= takes a boolean attention mask or none, not a BlockMask")
            w, bias = self.qkv.weight, self.qkv.bias  # rows: q, k, v
            q = F.linear(x[:, :queries], w[:d], None if bias is None else bias[:d])
            q = q.reshape(b, queries, h, d // h).transpose(1, 2)  # (B, h, q, d/h)
            kv = F.linear(x, w[d:], None if bias is None else bias[d:]).reshape(b, n, 2, h, d // h)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, d/h) each
            attn_mask = None if attn_mask is None else attn_mask[..., :queries, :]
            n = queries
        x = attend(q, k, v, attn_mask)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _batched_like(mask, x: torch.Tensor) -> bool:
    """The attention mask can follow a subset of the batch: none, shared, or a per-sample tensor."""
    return mask is None or (isinstance(mask, torch.Tensor) and (mask.ndim < 4 or mask.shape[0] in (1, x.shape[0])))


class Block(nn.Module):
    compile_unit = True  # the loop compiles these one by one under train.compile

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.skip_dropped: Optional[bool] = None  # None: where it pays (CPU, eager); True / False to force

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                queries: Optional[int] = None) -> torch.Tensor:
        """(B, N, D) -> (B, N, D), or (B, queries, D): the first tokens only (see `Attention`)."""
        x = self._residual(x, lambda h, m: self.attn(self.norm1(h), m, queries), attn_mask, queries)
        return self._residual(x, lambda h, m: self.mlp(self.norm2(h)), None, None)

    def _residual(self, x: torch.Tensor, branch, mask, queries: Optional[int]) -> torch.Tensor:
        """x[:, :queries] + drop_path(branch(x, mask)). Where stochastic depth is on, the scaled keep
        mask is applied in one fused op; on a CPU (eager) the branch runs only for the kept samples,
        as nothing computed for a dropped one is used (a GPU would wait on the count instead)."""
        dp = self.drop_path
        if not dp.active:
            return x[:, :queries] + branch(x, mask)
        keep = dp.sample(x)  # (B, 1, 1)
        skip = self.skip_dropped
        if skip is None:
            skip = x.device.type == "cpu" and not torch.compiler.is_compiling()
        if not skip or not _batched_like(mask, x):
            return torch.addcmul(x[:, :queries], branch(x, mask), keep / (1 - dp.p))
        idx = keep.view(-1).nonzero().squeeze(1)  # (B',) the samples that keep the branch
        if isinstance(mask, torch.Tensor) and mask.ndim == 4 and mask.shape[0] > 1:
            mask = mask.index_select(0, idx)
        out = branch(x.index_select(0, idx), mask)  # (B', q, D)
        return x[:, :queries].index_add(0, idx, out.to(x.dtype), alpha=1 / (1 - dp.p))


class VisionTransformer(nn.Module):
    """ViT encoder with one CLS token. Tokens are (B, 1 + N, D), CLS first; N = (H/P)(W/P).

    Any input size that the patch size divides works: the position embedding is resampled (learned)
    or regenerated (sin-cos) for other grids.
    """

    def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 0,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0, pos_embed: str = "learned",
                 global_pool: str = "token"):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}")
        self.arch = dict(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         pos_embed=pos_embed)
        self.patch_size = patch_size
        self.embed_dim = self.num_features = embed_dim
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_prefix_tokens = 1
        self.pos_embed_type = pos_embed
        self.global_pool = global_pool

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        n = self.grid_size[0] * self.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, embed_dim), requires_grad=pos_embed == "learned")
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, 0.0) for _ in range(depth))
        self.set_drop_path(drop_path_rate)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed_type == "sincos":
            with torch.no_grad():
                self.pos_embed[0, 1:] = sincos_2d(*self.grid_size, self.embed_dim)
        else:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly from 0 (first block) to `rate` (last)."""
        for i, blk in enumerate(self.blocks):
            blk.drop_path.p = rate * i / max(self.depth - 1, 1)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    @property
    def depth(self) -> int:
        return len(self.blocks)

    # --- embedding -------------------------------------------------------------------------------
    def grid_for(self, h: int, w: int) -> tuple[int, int]:
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return h // self.patch_size, w // self.patch_size

    def patch_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, N, D) position embedding of the patch tokens for a grid of `grid` patches."""
        pos = self.pos_embed[:, 1:]
        if tuple(grid) == self.grid_size:
            return pos
        if self.pos_embed_type == "sincos":
            return sincos_2d(*grid, self.embed_dim).to(pos)[None]
        return resample_grid(pos, self.grid_size, grid)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their position embedding, no CLS: (B, C, H, W) -> (B, N, D)."""
        grid = self.grid_for(*x.shape[-2:])
        return self.patch_embed(x) + self.patch_pos_embed(grid)

    def cls_tokens(self, batch: int) -> torch.Tensor:
        return (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)  # (B, 1, D)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, D) tokens, CLS first, ready for the blocks."""
        patches = self.embed_patches(x)
        return torch.cat([self.cls_tokens(patches.shape[0]), patches], dim=1)

    # --- transformer -----------------------------------------------------------------------------
    def forward_blocks(self, tokens: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                       collect: Iterable[int] = (), cls_only: bool = False, upto: Optional[int] = None
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run blocks 0..upto (default all) on ready tokens; also return the outputs of blocks `collect`
        (0-based, un-normed). cls_only: every output is (B, 1, D), the CLS token alone, and the last
        block run computes nothing else."""
        want = set(collect)
        last = self.depth - 1 if upto is None else upto
        out = []
        for i, blk in enumerate(self.blocks[:last + 1]):
            tokens = blk(tokens, attn_mask, 1 if cls_only and i == last else None)
            if i in want:
                out.append(tokens[:, :1] if cls_only else tokens)
        return (tokens[:, :1] if cls_only else tokens), out

    def forward_features(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                         cls_only: bool = False) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, D) normalised tokens of the last block; (B, 1, D) with cls_only."""
        tokens, _ = self.forward_blocks(self.embed(x), attn_mask, cls_only=cls_only)
        return self.norm(tokens)

    def forward_intermediates(self, x: torch.Tensor, indices: Iterable[int] | int = 1, norm: bool = True,
                              attn_mask: Optional[torch.Tensor] = None, cls_only: bool = False) -> list[torch.Tensor]:
        """Outputs of chosen blocks (B, 1 + N, D), or (B, 1, D) with cls_only. An int n means the last n
        blocks; negatives count from the end."""
        idx = list(range(self.depth - indices, self.depth)) if isinstance(indices, int) else \
            [i % self.depth for i in indices]
        _, outs = self.forward_blocks(self.embed(x), attn_mask, collect=idx, cls_only=cls_only, upto=max(idx))
        by_index = dict(zip(sorted(set(idx)), outs))
        return [self.norm(by_index[i]) if norm else by_index[i] for i in idx]

    @torch.no_grad()
    def cls_attention(self, x: torch.Tensor, block: int = -1) -> torch.Tensor:
        """Attention of the CLS token to every patch in `block` (default the last), per head: (B, heads, N)."""
        block = block % self.depth
        tokens = self.embed(x)
        for earlier in self.blocks[:block]:
            tokens = earlier(tokens)
        blk = self.blocks[block]
        b, n, d = tokens.shape
        h = blk.attn.num_heads
        q, k, _ = blk.attn.qkv(blk.norm1(tokens)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q[:, :, :1] @ k.transpose(-2, -1) * (d // h) ** -0.5).softmax(-1)  # (B, h, 1, 1 + N)
        return attn[:, :, 0, 1:]

    def pool(self, tokens: torch.Tensor, how: Optional[str] = None) -> torch.Tensor:
        """(B, 1 + N, D) -> (B, D): CLS token ('cls'; timm calls it 'token') or mean of patch tokens ('avg')."""
        how = how or self.global_pool
        return tokens[:, 0] if how in ("cls", "token") else tokens[:, self.num_prefix_tokens:].mean(1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.pool(tokens)
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, classes); CLS pooling skips the last block's work on the other tokens."""
        return self.forward_head(self.forward_features(x, cls_only=self.global_pool == "token"))

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new head for `num_classes` (0: none), read from `global_pool`: 'cls' (or timm's 'token') or 'avg'."""
        if global_pool is not None:
            self.global_pool = "token" if global_pool == "cls" else global_pool  # stored under timm's name
        ref = self.cls_token
        self.head = nn.Linear(self.embed_dim, num_classes).to(ref) if num_classes > 0 else nn.Identity()

    # --- weights ---------------------------------------------------------------------------------
    def load_encoder_state(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load our or timm's ViT weights, resampling the position grid if the image size differs."""
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        own = self.state_dict()
        missing = sorted(k for k in own if k not in state and not k.startswith("head."))
        unexpected = sorted(k for k in state if k not in own)
        if strict and (missing or unexpected):
            raise CheckpointError(
                f"encoder weights do not fit this ViT: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; "
                "check model.arch / depth / patch_size against the checkpoint")
        for k, v in state.items():
            if k in own and k != "pos_embed" and own[k].shape != v.shape:
                raise CheckpointError(f"checkpoint tensor '{k}' has shape {tuple(v.shape)}, this model needs "
                                      f"{tuple(own[k].shape)}; check model.arch / embed_dim / patch_size")
        pos = state.get("pos_embed")
        if pos is not None and pos.shape != self.pos_embed.shape and self.pos_embed_type == "sincos":
            state = dict(state, pos_embed=torch.cat([pos[:, :1], self.pos_embed[:, 1:].detach().to(pos)], dim=1))
        elif pos is not None and pos.shape != self.pos_embed.shape:
            n_old = pos.shape[1] - 1
            side = math.isqrt(n_old)
            if side * side != n_old or pos.shape[2] != self.embed_dim:
                raise CheckpointError(f"checkpoint pos_embed has shape {tuple(pos.shape)}, which cannot be resampled "
                                      f"to this model's {tuple(self.pos_embed.shape)}; check model.arch / embed_dim")
            state = dict(state, pos_embed=torch.cat([pos[:, :1], resample_grid(pos[:, 1:], (side, side),
                                                                               self.grid_size)], dim=1))
        self.load_state_dict(state, strict=False)


def build_vit(*, arch: str = "vit_tiny", img_size: int = 224, patch_size: int = 16, **overrides) -> VisionTransformer:
    """A preset (vit_tiny / vit_small / vit_base) with optional overrides of any constructor argument."""
    if arch not in PRESETS:
        raise ValueError(f"unknown ViT preset {arch!r}; choose one of {', '.join(PRESETS)}")
    dim, depth, heads = PRESETS[arch]
    kw = dict(embed_dim=dim, depth=depth, num_heads=heads)
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return VisionTransformer(img_size=img_size, patch_size=patch_size, **kw)


def encoder_from_config(model_cfg, image_size: int) -> VisionTransformer:
    dim, depth, heads = model_cfg.resolved()
    return VisionTransformer(img_size=image_size, patch_size=model_cfg.patch_size, embed_dim=dim, depth=depth,
                             num_heads=heads, mlp_ratio=model_cfg.mlp_ratio, drop_path_rate=model_cfg.drop_path,
                             pos_embed=model_cfg.pos_embed)


def block_indices(blocks: Iterable[int], depth: int, key: str) -> list[int]:
    """The config's block numbers (1..depth, or -1 = last, -2, ...) as 0-based indices, in order; a number
    the encoder does not have is a ConfigError naming `key`. The one place the two conventions meet."""
    out = []
    for b in blocks:
        if b == 0 or not -depth <= b <= depth:
            raise ConfigError(f"config key '{key}' has block {b}, but the encoder has {depth} blocks "
                              f"(1..{depth}, or -1 for the last)")
        out.append(b - 1 if b > 0 else depth + b)
    return out
