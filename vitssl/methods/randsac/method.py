"""RandSAC: predict each segment's pixels from the segments before it, in a random order (METHODS.md §2).

Per image, tokens are grouped into segments, the segments are put in a random (hierarchical) order,
and the encoder reads them in that order under a block-causal mask. A position-query decoder then
predicts the normalised pixels of segment k+1 from the encoder's view of segments 1..k; tokens inside
a segment are predicted together. The kept encoder runs with full attention at evaluation.
"""

from __future__ import annotations

import torch

from vitssl.data.augment import Augment
from vitssl.engine.pictures import colormap
from vitssl.errors import ConfigError
from vitssl.methods.base import Method
from vitssl.methods.common.recipes import MAE_RECIPE, encoder_no_decay, named_no_decay
from vitssl.methods.randsac.config import RandSACConfig
from vitssl.methods.randsac.decoder import Decoder
from vitssl.methods.randsac.masks import MaskBuilder
from vitssl.methods.randsac.segments import build_segmenter
from vitssl.methods.randsac.serialise import Serial, serialise
from vitssl.models.attention import flex_attention, flex_available
from vitssl.models.patches import gather_tokens, patch_targets, patchify, unpatchify
from vitssl.models.vit import VisionTransformer


class RandSAC(Method):
    name = "randsac"
    summary = "RandSAC: autoregressive prediction of randomly ordered, hierarchical segments"
    Config = RandSACConfig
    recipe = MAE_RECIPE

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        self.decoder = Decoder(enc_dim=encoder.embed_dim, enc_depth=encoder.depth, patch_size=encoder.patch_size,
                               dim=cfg.decoder_dim, depth=cfg.decoder_depth, num_heads=cfg.decoder_heads,
                               mlp_ratio=cfg.decoder_mlp_ratio, skip=cfg.skip)
        self.segmenter = build_segmenter(cfg)
        self._masks = {flex: MaskBuilder(flex) for flex in (False, True)}
        if cfg.attention == "flex" and flex_attention is None:
            raise ConfigError("config key 'method.attention' is 'flex', but this PyTorch has no FlexAttention "
                              "(needs torch >= 2.5); use method.attention=sdpa")

    def use_flex(self, device: torch.device) -> bool:
        return self.cfg.attention == "flex" or (self.cfg.attention == "auto" and flex_available(device))

    def order(self, batch: int, grid: tuple[int, int], device, generator=None) -> Serial:
        """A fresh segmentation and serial order for every image of a batch."""
        return serialise(self.segmenter(batch, grid, device, generator), self.cfg.order, generator)

    def target_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, P*P*C) regression targets, each patch standardised if norm_pix."""
        return patch_targets(x, self.encoder.patch_size, self.cfg.norm_pix)

    def predict(self, x: torch.Tensor, serial: Serial | None = None):
        """Predictions (B, Nd, P*P*C) for the target tokens (B, Nd) of a serial order; also the plan."""
        enc = self.encoder
        b = x.shape[0]
        grid = enc.grid_for(*x.shape[-2:])
        serial = serial if serial is not None else self.order(b, grid, x.device)
        plan = self._masks[self.use_flex(x.device)](serial)
        tokens = gather_tokens(enc.embed_patches(x), serial.perm[:, :plan.enc_len])  # (B, Ne, D) in serial order
        seq = torch.cat([enc.cls_tokens(b), tokens], dim=1)  # (B, 1 + Ne, D)
        every = range(enc.depth) if self.decoder.reads_all_layers else ()
        last, hs = enc.forward_blocks(seq, plan.enc_mask, collect=every)
        hs = [enc.norm(h) for h in hs] if hs else [enc.norm(last)]
        targets = serial.perm[:, plan.dec_start:]  # (B, Nd) token index of every query
        pred = self.decoder(targets, grid, hs, plan.dec_mask, plan.cross_mask)
        return pred, targets, plan, serial

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.cfg.attention == "flex" and images.device.type != "cuda" and torch.is_grad_enabled():
            raise ConfigError("config key 'method.attention' is 'flex', but FlexAttention trains only on CUDA "
                              f"(this run is on {images.device.type}); use method.attention=auto or sdpa")
        with torch.autocast(images.device.type, enabled=False):
            x = self.augment(images, 0)  # (B, C, H, W), one view
        pred, targets, plan, serial = self.predict(x)
        target = gather_tokens(self.target_pixels(x), targets)  # (B, Nd, P*P*C)
        err = (pred.float() - target).pow(2).mean(-1)  # (B, Nd)
        if plan.loss_weight is None:
            loss = err.mean()
        else:
            loss = (err * plan.loss_weight).sum() / plan.loss_weight.sum().clamp_min(1.0)
        return {"loss": loss, "segments": serial.num_segments.float().mean()}

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The image, its segments coloured by serial order (dark = early), and the predicted pixels."""
        x = self.augment.plain(images)
        p = self.encoder.patch_size
        grid = self.encoder.grid_for(*x.shape[-2:])
        pred, targets, plan, serial = self.predict(x)
        patches = patchify(x.float(), p)  # (B, N, P*P*C)
        pred = pred.float()
        if self.cfg.norm_pix:  # back to image space with each true patch's own statistics, as MAE shows it
            true = gather_tokens(patches, targets)
            pred = pred * (true.var(-1, keepdim=True) + 1e-6).sqrt() + true.mean(-1, keepdim=True)
        if plan.loss_weight is not None:  # per-image plans also query the first segment: not a prediction
            pred = pred * plan.loss_weight[..., None]
        shown = torch.zeros_like(patches).scatter_(1, targets[..., None].expand_as(pred), pred)  # first segment: mean colour
        rank = serial.rank.gather(1, serial.inverse()).float()  # (B, N) serial rank of every token
        rank = rank / (serial.num_segments[:, None] - 1).clamp_min(1)
        order = colormap(rank).reshape(x.shape[0], *grid, 3).permute(0, 3, 1, 2)  # (B, 3, gh, gw)
        order = order.repeat_interleave(p, 2).repeat_interleave(p, 3)
        show = lambda t: self.augment.denormalize(t).clamp(0, 1)  # noqa: E731
        return {"image": show(x.float()), "order": order,
                "predicted": show(unpatchify(shown, p, grid, x.shape[1]))}

    def no_weight_decay(self) -> set[str]:
        """The MAE recipe: the encoder's position embedding and CLS token, the decoder's query token and its
        layer-mixing skip weights."""
        return encoder_no_decay(self) | named_no_decay(self, {"query_token", "skip_weights"})
