"""Online monitor: k-NN accuracy on held-out training images and collapse signals, every few epochs.

The queries are training images kept out of the neighbour bank (class-balanced, seeded), so the
monitor never reads the test split that final numbers are measured on (`log.knn_split` may name
another split explicitly).

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
from vitssl.data.dataset import ImageDataset, balanced_subset, load_dataset
from vitssl.engine.features import extract
from vitssl.engine.knn import accuracy, knn_predict
from vitssl.engine.linear import train_probes
from vitssl.errors import DataError


def collapse_signals(feats: torch.Tensor) -> dict[str, float]:
    """feats (N, D) -> {'embed_std', 'eff_rank'}."""
    z = F.normalize(feats.float(), dim=1)
    std = z.std(0).mean().item() * math.sqrt(z.shape[1])
    s = torch.linalg.svdvals(z - z.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    eff = math.exp(-(p * p.clamp_min(1e-12).log()).sum().item())
    return {"embed_std": std, "eff_rank": eff}


def _part(ds: ImageDataset, rows: torch.Tensor, what: str) -> ImageDataset:
    """The images of `ds` where `rows` (bool) is set, in memory or as files."""
    idx = rows.nonzero()[:, 0]
    return ImageDataset(ds.name, f"{ds.split} ({what})", ds.labels[idx], ds.classes, ds.store_size,
                        images=ds.images[idx] if ds.in_memory else None,
                        paths=None if ds.in_memory else [ds.paths[i] for i in idx.tolist()],
                        decode=ds.decode, formed=f"{what} of {ds.formed}", identity=f"{ds.identity}-{what}")


class KNNMonitor:
    def __init__(self, cfg, *, pool: str, patch_size: int):
        log = cfg.log
        self.k, self.pool = log.knn_k, pool
        kw = dict(seed=cfg.seed, min_side=patch_size, progress=False)
        if log.knn_split is None:  # neighbours and queries: two disjoint, class-balanced parts of data.split
            both = load_dataset(dataclasses.replace(cfg.data, limit=log.knn_train + log.knn_test), cfg.data.split,
                                **kw)
            if not both.labelled:
                raise DataError("the k-NN monitor needs class labels in data.split; set log.knn_every=0 for "
                                "unlabeled data")
            query = torch.zeros(len(both), dtype=torch.bool)
            query[torch.from_numpy(balanced_subset(both.labels.numpy(), min(log.knn_test, len(both) // 2),
                                                   cfg.seed + 1))] = True
            self.train, self.test = _part(both, ~query, "neighbours"), _part(both, query, "held-out queries")
        else:
            self.train = load_dataset(dataclasses.replace(cfg.data, limit=log.knn_train), cfg.data.split, **kw)
            self.test = load_dataset(dataclasses.replace(cfg.data, limit=log.knn_test), log.knn_split,
                                     key="log.knn_split", **kw)
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
    def _features(self, encoder, device) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = encoder.training
        kw = dict(blocks=[encoder.depth - 1], pool=self.pool, preprocess=self.preprocess, batch_size=self.batch_size,
                  device=device, num_workers=0, progress=False)
        tr = extract(encoder, self.train, **kw)[encoder.depth - 1]
        te = extract(encoder, self.test, **kw)[encoder.depth - 1]
        encoder.train(was_training)
        return tr, te

    def __call__(self, encoder, device) -> dict[str, float]:
        tr, te = self._features(encoder, device)
        scores = knn_predict(tr, self.train.labels, te, num_classes=self.num_classes, k=self.k)
        return {"knn_acc": accuracy(scores, self.test.labels), **collapse_signals(tr)}

    def probe(self, encoder, device, linear_epochs: int = 30) -> dict[str, float]:
        """k-NN and a linear probe (BatchNorm + linear, lr 0.1) on the same held-out images: what the
        end-of-run comparison with a random-init encoder reports."""
        tr, te = self._features(encoder, device)
        knn = accuracy(knn_predict(tr, self.train.labels, te, num_classes=self.num_classes, k=self.k),
                       self.test.labels)
        with torch.enable_grad():
            probes = train_probes(tr[None], self.train.labels, num_classes=self.num_classes, lrs=[0.1],
                                  epochs=linear_epochs, batch_size=256, seed=0)
        linear = accuracy(probes.scores(te[None])[0, 0], self.test.labels)
        return {"knn": knn, "linear": linear}
