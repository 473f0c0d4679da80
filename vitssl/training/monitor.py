"""Online monitor: k-NN accuracy on a held-out split and collapse signals, every few epochs.

A pre-training loss says little about the features; a k-NN probe on a few thousand images says more
and costs one forward pass of the encoder. Collapse shows before accuracy does: the spread of
normalised embeddings (`embed_std`, about 1 when spread over all dimensions, 0 when collapsed) and
their effective rank (`eff_rank`, exp of the entropy of the singular values, RankMe).
"""

from __future__ import annotations

import dataclasses
import math
import sys

import torch
import torch.nn.functional as F

from vitssl.data.augment import Augment
from vitssl.data.dataset import load_dataset
from vitssl.errors import DataError
from vitssl.evaluation.features import default_pool, extract
from vitssl.evaluation.knn import accuracy, knn_predict


def collapse_signals(feats: torch.Tensor) -> dict[str, float]:
    """feats (N, D) -> {'embed_std', 'eff_rank'}."""
    z = F.normalize(feats.float(), dim=1)
    std = z.std(0).mean().item() * math.sqrt(z.shape[1])
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    eff = math.exp(-(p * p.clamp_min(1e-12).log()).sum().item())
    return {"embed_std": std, "eff_rank": eff}


class KNNMonitor:
    def __init__(self, cfg, *, method: str, patch_size: int):
        log = cfg.log
        self.k, self.pool = log.knn_k, default_pool(method)
        data = dataclasses.replace(cfg.data, limit=log.knn_train)
        self.train = load_dataset(data, cfg.data.split, seed=cfg.seed, min_side=patch_size, progress=False)
        self.test = load_dataset(dataclasses.replace(cfg.data, limit=log.knn_test), log.knn_split, seed=cfg.seed,
                                 min_side=patch_size, progress=False)
        if not (self.train.labelled and self.test.labelled):
            raise DataError("the k-NN monitor needs class labels in data.split and log.knn_split; "
                            "set log.knn_every=0 for unlabeled data")
        self.num_classes = len(self.train.classes)
        self.preprocess = Augment(None, image_size=cfg.data.image_size, mean=cfg.data.mean, std=cfg.data.std).plain
        self.batch_size = max(64, cfg.train.batch_size)

    @classmethod
    def maybe(cls, cfg, **kw):
        """The monitor, or None (with a note) when it is off or the data cannot support it."""
        if not cfg.log.knn_every:
            return None
        try:
            return cls(cfg, **kw)
        except DataError as e:
            print(f"note: k-NN monitor off: {e}", file=sys.stderr)
            return None

    @torch.no_grad()
    def __call__(self, encoder, device) -> dict[str, float]:
        was_training = encoder.training
        kw = dict(blocks=[encoder.depth - 1], pool=self.pool, preprocess=self.preprocess, batch_size=self.batch_size,
                  device=device, num_workers=0, progress=False)
        tr = extract(encoder, self.train, **kw)[encoder.depth - 1]
        te = extract(encoder, self.test, **kw)[encoder.depth - 1]
        encoder.train(was_training)
        scores = knn_predict(tr, self.train.labels, te, num_classes=self.num_classes, k=self.k)
        return {"knn_acc": accuracy(scores, self.test.labels), **collapse_signals(tr)}
