"""MAE: the encoder sees a random 25 % of the patches; a light decoder rebuilds the rest (pixels).

The baseline of both papers' tables, on the same encoder, data pipeline and training loop as SiT and
RandSAC. Masking is one batched argsort of noise per image; the encoder runs on visible tokens only.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vitssl.data.augment import Augment
from vitssl.methods.base import Method
from vitssl.methods.common.recipes import MAE_RECIPE, encoder_no_decay, named_no_decay
from vitssl.methods.mae.config import MAEConfig
from vitssl.models.patches import gather_tokens, patch_targets, patchify, unpatchify
from vitssl.models.pos_embed import sincos_2d
from vitssl.models.vit import Block, VisionTransformer


class MAEDecoder(nn.Module):
    def __init__(self, *, enc_dim: int, patch_size: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 channels: int = 3):
        super().__init__()
        self.dim = dim
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, True, 0.0) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, patch_size * patch_size * channels)
        self._pos: dict = {}
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def pos_embed(self, grid: tuple[int, int], device) -> torch.Tensor:
        key = (tuple(grid), str(device))
        if key not in self._pos:
            self._pos[key] = torch.cat([torch.zeros(1, self.dim), sincos_2d(*grid, self.dim)]).to(device)
        return self._pos[key]  # (1 + N, dim), CLS position first

    def forward(self, latent: torch.Tensor, restore: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """latent (B, 1 + K, D_enc) of CLS + visible tokens; restore (B, N) puts shuffled tokens back in
        grid order. Returns (B, N, P*P*C) predictions for every patch."""
        x = self.embed(latent)
        b, n = restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.to(x.dtype).expand(b, n - x.shape[1] + 1, -1)], dim=1)
        tokens = gather_tokens(tokens, restore)  # (B, N, dim) in grid order
        x = torch.cat([x[:, :1], tokens], dim=1) + self.pos_embed(grid, x.device)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))[:, 1:]


class MAE(Method):
    name = "mae"
    summary = "MAE baseline: masked-autoencoder pixel reconstruction"
    Config = MAEConfig
    recipe = MAE_RECIPE

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        self.decoder = MAEDecoder(enc_dim=encoder.embed_dim, patch_size=encoder.patch_size, dim=cfg.decoder_dim,
                                  depth=cfg.decoder_depth, num_heads=cfg.decoder_heads, mlp_ratio=cfg.decoder_mlp_ratio)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predictions (B, N, P*P*C), mask (B, N) with 1 = removed) for normalised images (B, C, H, W)."""
        enc = self.encoder
        grid = enc.grid_for(*x.shape[-2:])
        tokens = enc.embed_patches(x)  # (B, N, D)
        b, n, _ = tokens.shape
        keep = max(1, round(n * (1 - self.cfg.mask_ratio)))
        shuffle = torch.rand(b, n, device=x.device).argsort(1)  # a random order per image
        restore = shuffle.argsort(1)
        visible = gather_tokens(tokens, shuffle[:, :keep])  # (B, K, D)
        last, _ = enc.forward_blocks(torch.cat([enc.cls_tokens(b), visible], dim=1))
        pred = self.decoder(enc.norm(last), restore, grid)
        mask = (restore >= keep).float()  # grid position i was removed if its shuffled rank is >= keep
        return pred, mask

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        with torch.autocast(images.device.type, enabled=False):
            x = self.augment(images, 0)
        pred, mask = self.reconstruct(x)
        err = (pred.float() - patch_targets(x, self.encoder.patch_size, self.cfg.norm_pix)).pow(2).mean(-1)  # (B, N)
        return {"loss": (err * mask).sum() / mask.sum()}

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.augment.plain(images)
        p = self.encoder.patch_size
        grid = self.encoder.grid_for(*x.shape[-2:])
        pred, mask = self.reconstruct(x)
        patches = patchify(x.float(), p)
        pred = pred.float()
        if self.cfg.norm_pix:  # back to image space with each true patch's statistics, as MAE shows it
            pred = pred * (patches.var(-1, keepdim=True) + 1e-6).sqrt() + patches.mean(-1, keepdim=True)
        m = mask[..., None]
        show = lambda t: self.augment.denormalize(unpatchify(t, p, grid, x.shape[1])).clamp(0, 1)  # noqa: E731
        return {"image": show(patches), "visible": show(patches * (1 - m)), "reconstructed": show(pred),
                "pasted": show(patches * (1 - m) + pred * m)}

    def no_weight_decay(self) -> set[str]:
        """The MAE recipe: the encoder's position embedding and CLS token, and the decoder's mask token."""
        return encoder_no_decay(self) | named_no_decay(self, {"mask_token"})
