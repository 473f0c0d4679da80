"""SiT: GMML reconstruction of corrupted views plus momentum-contrastive learning (METHODS.md §1).

The student sees GMML-corrupted views and must (a) rebuild the clean pixels with a light head and
(b) match, by InfoNCE on its CLS token, the embedding a momentum teacher computes from the other
clean view. With `contrastive: false` there is no teacher: that is pure GMML.
"""

from __future__ import annotations

import torch

from vitssl.data.augment import Augment
from vitssl.methods.base import Method
from vitssl.methods.common.momentum import MomentumTeacher, info_nce
from vitssl.methods.sit.config import GMMLConfig, SiTConfig
from vitssl.methods.sit.corruption import gmml_corrupt
from vitssl.models.heads import PixelHead, ProjectionHead
from vitssl.models.vit import VisionTransformer


class SiT(MomentumTeacher, Method):
    name = "sit"
    summary = "SiT: GMML reconstruction + momentum contrastive learning"
    Config = SiTConfig
    pool = "cls"  # the contrastive loss trains the CLS token

    def __init__(self, *, encoder: VisionTransformer, cfg, augment: Augment):
        super().__init__(encoder=encoder, cfg=cfg, augment=augment)
        self.recon_blocks = cfg.block_indices(encoder.depth)
        self.recon_head = PixelHead(dim=encoder.embed_dim, patch_size=encoder.patch_size, depth=cfg.recon_depth)
        self.contrastive = cfg.contrastive
        if self.contrastive:
            self.proj_head = ProjectionHead(in_dim=encoder.embed_dim, hidden_dim=cfg.proj_hidden, out_dim=cfg.proj_dim,
                                            num_layers=cfg.proj_layers, activations=cfg.proj_act)
            self.add_teacher("proj_head")

    def corrupt(self, views: torch.Tensor):
        c = self.cfg
        f = c.fill
        return gmml_corrupt(views, max_frac=c.max_frac, align=c.align, max_block=c.max_block,
                            fill_probs=(f.noise, f.zeros, f.image), swap_prob=c.swap_prob, swap_frac=c.swap_frac)

    def student(self, corrupted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (B, C, H, W), normalised CLS token (B, D)) of corrupted images."""
        enc = self.encoder
        grid = enc.grid_for(*corrupted.shape[-2:])
        last, feats = enc.forward_blocks(enc.embed(corrupted), collect=self.recon_blocks)
        cls = enc.norm(last[:, :1])[:, 0]  # (B, D): the final norm of the last block's CLS token
        if len(feats) == 1:
            tokens = enc.norm(feats[0][:, 1:])  # (B, N, D)
        elif self.cfg.recon_norm == "average":  # official GMML: normalise the average of the blocks
            tokens = enc.norm(torch.stack([f[:, 1:] for f in feats]).mean(0))
        else:  # average of separately normalised blocks
            tokens = torch.stack([enc.norm(f[:, 1:]) for f in feats]).mean(0)
        return self.recon_head(tokens, grid), cls

    def recon_loss(self, recon: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        err = (recon.float() - clean.float()).abs()  # (B, C, H, W)
        if self.cfg.recon_loss == "all":
            return err.mean()
        m = mask.to(err.dtype)  # (B, 1, H, W)
        return (err * m).sum() / (m.sum() * err.shape[1]).clamp_min(1.0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        n_views = 2 if self.contrastive else 1
        with torch.autocast(images.device.type, enabled=False):  # augmentation and corruption in fp32
            unit = self.augment.unit(images)  # (B, C, H, W) float in [0, 1], once for all views
            clean = [self.augment(unit, v) for v in range(n_views)]  # each (B, C, h, w)
            corrupted = [self.corrupt(v) for v in clean]
        return self.losses(clean, [c.images for c in corrupted], [c.mask for c in corrupted])

    def losses(self, clean: list[torch.Tensor], corrupted: list[torch.Tensor],
               masks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses of prepared views, one list entry per view: clean and corrupted (B, C, H, W), masks
        (B, 1, H, W). `forward` prepares them on the device; a caller may bring its own."""
        b = clean[0].shape[0]
        recon, cls = self.student(torch.cat(corrupted))  # both views in one pass
        clean_all = torch.cat(clean)
        mask_all = torch.cat(masks)
        l_rec = self.recon_loss(recon, clean_all, mask_all)
        out = {"loss_recons": l_rec.detach(), "corrupted_frac": mask_all.float().mean()}
        if not self.contrastive:
            out["loss"] = self.cfg.alpha * l_rec
            return out
        with torch.no_grad():
            t_cls = self.teacher_encoder.forward_features(clean_all, cls_only=True)[:, 0]  # (2B, D)
        if self.cfg.proj_bn == "joint":  # BatchNorm statistics over both views (2B images), as the official code
            s1, s2 = self.proj_head(cls).split(b)
            with torch.no_grad():
                t1, t2 = self.teacher_head(t_cls).split(b)
        else:  # per view (B images each)
            s1, s2 = (self.proj_head(z) for z in cls.split(b))
            with torch.no_grad():
                t1, t2 = (self.teacher_head(z) for z in t_cls.split(b))
        l_con = info_nce(s1, t2, self.cfg.temperature) + info_nce(s2, t1, self.cfg.temperature)
        if self.cfg.contrastive_reduce == "mean":
            l_con = l_con / 2
        out.update(loss=self.cfg.alpha * l_rec + l_con, loss_contr=l_con.detach())
        return out

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        return super().after_step(step, total_steps) if self.contrastive else {}  # pure GMML has no teacher

    @torch.no_grad()
    def pictures(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        clean = self.augment.plain(images)
        cor = self.corrupt(clean)
        recon, _ = self.student(cor.images)
        show = lambda x: self.augment.denormalize(x.float()).clamp(0, 1)  # noqa: E731
        pasted = torch.where(cor.mask, recon, clean)  # reconstruction inside the corrupted region only
        return {"clean": show(clean), "corrupted": show(cor.images), "reconstructed": show(recon),
                "pasted": show(pasted)}


class GMML(SiT):
    """Pure GMML, SiT's ablation: group-masked reconstruction only, no teacher."""

    name = "gmml"
    summary = "pure GMML: group-masked reconstruction only"
    Config = GMMLConfig
    pool = "avg"  # no loss trains its CLS token (measured, 5 epochs on 5,000 CIFAR images: k-NN 20.5 % by CLS,
    # 23.2 % by mean pooling; benchmarks/results/repro_trials)
    recipe = {"optim": {"weight_decay_end": 0.4}}  # the GMML repository's recipe
