"""Frozen features of a dataset: one batched pass of the encoder per split, cached on disk.

Every protocol on frozen features (k-NN, linear probe, few-shot, layer sweep) reads these, so
probing 90 epochs or 12 blocks costs one encoder pass, not one per epoch or per block.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from typing import Iterator

import torch
from tqdm import tqdm

from vitssl.data import cache as disk_cache
from vitssl.data.dataset import ImageDataset, default_cache_dir
from vitssl.models.vit import VisionTransformer

POOLS = ("cls", "avg", "cls+avg")  # how tokens become one feature vector; a method declares cls or avg


def pool_tokens(tokens: torch.Tensor, pool: str) -> torch.Tensor:
    """(B, 1 + N, D) normalised tokens -> (B, D) or (B, 2D); 'cls' also takes the (B, 1, D) CLS alone."""
    if pool == "cls":
        return tokens[:, 0]
    if pool == "avg":
        return tokens[:, 1:].mean(1)
    if pool == "cls+avg":
        return torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=1)
    raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")


def batches(ds: ImageDataset, batch_size: int, num_workers: int) -> Iterator[torch.Tensor]:
    """uint8 (B, 3, S, S) (or (B, 4, C, C) canvases) batches in dataset order."""
    if ds.in_memory:
        for i in range(0, len(ds), batch_size):
            yield ds.images[i:i + batch_size]
        return
    from torch.utils.data import DataLoader

    from vitssl.data.loader import FileImages, bad_images_error

    loader = DataLoader(FileImages(ds.paths, ds.labels, ds.decode), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers)
    for images, _, errors in loader:
        if any(errors):  # a streamed split cannot leave an image out without shifting the labels
            raise bad_images_error([e for e in errors if e], "Remove them, or set data.cache=memory, where "
                                   "data.bad_images=skip leaves them out before the labels are fixed")
        yield images


@torch.no_grad()
def extract(encoder: VisionTransformer, ds: ImageDataset, *, blocks: list[int], pool: str, preprocess,
            batch_size: int = 256, device: torch.device | str = "cpu", num_workers: int = 2,
            progress: bool = True) -> dict[int, torch.Tensor]:
    """Pooled, normalised outputs of `blocks` (0-based) for every image: {block: (N, F) float32 on the CPU}."""
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    out: dict[int, list[torch.Tensor]] = {b: [] for b in blocks}
    dtype = torch.bfloat16 if device.type == "cuda" else None
    bar = tqdm(total=len(ds), unit="img", desc=f"features {ds.name}/{ds.split}", disable=not progress, leave=False)
    for images in batches(ds, batch_size, num_workers):
        x = preprocess(images.to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            tokens = encoder.forward_intermediates(x, blocks, norm=True, cls_only=pool == "cls")
        for b, t in zip(blocks, tokens):
            out[b].append(pool_tokens(t.float(), pool).cpu())
        bar.update(images.shape[0])
    bar.close()
    return {b: torch.cat(v) for b, v in out.items()}


def cached_extract(encoder: VisionTransformer, encoder_id: str, ds: ImageDataset, *, blocks: list[int], pool: str,
                   preprocess, image_size: int, mean, std, cache: bool = True, **kw) -> dict[int, torch.Tensor]:
    """`extract`, reusing features stored for the same encoder weights, the same images (the dataset's
    identity: its place and files, or indices), blocks, pooling and pre-processing."""
    if not ds.identity:
        raise ValueError("a dataset without an identity cannot be cached; build it with load_dataset")
    key = dict(v=2, encoder=encoder_id, images=ds.identity, n=len(ds), skipped=len(ds.skipped),
               labels=hashlib.sha1(ds.labels.numpy().tobytes()).hexdigest()[:16], size=image_size,
               store=ds.store_size, preprocess="centre-square" if ds.decode.aspect == "square" else "centre-crop",
               blocks=blocks, pool=pool, mean=list(mean), std=list(std))
    if ds.decode.crop_bottom:
        key["crop_bottom"] = ds.decode.crop_bottom
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = default_cache_dir() / "features" / f"{ds.name}-{ds.split}-{digest}.pt"
    if cache and path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            disk_cache.touch(path)
            return {int(b): f for b, f in stored.items()}
        except Exception as e:  # a broken cache is rebuilt, never trusted
            warnings.warn(f"ignoring a broken feature cache {path} ({e})")
    feats = extract(encoder, ds, blocks=blocks, pool=pool, preprocess=preprocess, **kw)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                torch.save({str(b): v for b, v in feats.items()}, f)
            os.replace(tmp, path)
            disk_cache.enforce(keep=path, root=default_cache_dir())
        except OSError as e:
            warnings.warn(f"could not cache features in {path.parent} ({e})")
    return feats
