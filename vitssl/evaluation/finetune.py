"""Fine-tuning the whole encoder with a linear head (MAE / DeiT recipe), batched on the device.

Layer-wise lr decay, stochastic depth, random resized crop + flip + RandAugment, Mixup/CutMix with
label smoothing, AdamW with warm-up and cosine. From `--checkpoint random` this is the supervised
from-scratch baseline. `finetune.max_minutes` fixes the wall-clock budget instead of the epochs.
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from vitssl.data.augment import crop_params, resized_crop
from vitssl.data.loader import BatchLoader
from vitssl.data.mix import mix_batch
from vitssl.data.randaugment import rand_augment
from vitssl.engine.features import batches
from vitssl.engine.knn import accuracy
from vitssl.engine.optim import fused_ok
from vitssl.engine.schedules import warmup_cosine
from vitssl.errors import ConfigError
from vitssl.models.vit import VisionTransformer


def layer_decay_groups(model: VisionTransformer, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups: lr scale layer_decay ** (depth + 1 - layer) (embeddings = layer 0, head = depth + 1);
    no weight decay on biases, norms, position embedding and CLS token."""
    depth = model.depth
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("cls_token", "pos_embed", "patch_embed")):
            layer = 0
        elif name.startswith("blocks."):
            layer = int(name.split(".")[1]) + 1
        else:
            layer = depth + 1
        decay = p.ndim > 1 and name not in ("cls_token", "pos_embed")
        g = groups.setdefault((layer, decay), {"params": [], "lr_scale": layer_decay ** (depth + 1 - layer),
                                               "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
    return list(groups.values())


def set_drop_path(model: VisionTransformer, rate: float) -> None:
    """Stochastic depth rising linearly from 0 (first block) to `rate` (last)."""
    for i, blk in enumerate(model.blocks):
        blk.drop_path.p = rate * i / max(model.depth - 1, 1)


@torch.no_grad()
def test_accuracy(model: VisionTransformer, ds, preprocess, device, batch_size: int, dtype) -> tuple[float, float]:
    model.eval()
    scores = []
    for images in batches(ds, batch_size, 0):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            scores.append(model(preprocess(images.to(device))).float().cpu())
    s = torch.cat(scores)
    return accuracy(s, ds.labels), accuracy(s, ds.labels, 5)


def run_finetune(ev) -> dict:
    c, seed = ev.cfg.finetune, ev.cfg.seed
    if ev.pool == "cls+avg":
        raise ConfigError("fine-tuning pools one way: set features.pool=cls or features.pool=avg")
    device = ev.device
    torch.manual_seed(seed)
    model = ev.encoder
    model.reset_classifier(ev.num_classes, "token" if ev.pool == "cls" else "avg")
    nn.init.trunc_normal_(model.head.weight, std=2e-5)
    nn.init.zeros_(model.head.bias)
    set_drop_path(model, c.drop_path)
    model.to(device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    opt = torch.optim.AdamW(layer_decay_groups(model, c.weight_decay, c.layer_decay), lr=c.base_lr,
                            fused=fused_ok(device))
    loader = BatchLoader(ev.train, batch_size=c.batch_size, device=device, seed=seed, num_workers=ev.cfg.data.num_workers,
                         min_side=model.patch_size)
    spe = len(loader)
    total, warmup = c.epochs * spe, round(c.warmup_epochs * spe)
    peak = c.base_lr * c.batch_size / 256
    size = ev.cfg.data.image_size
    mean = torch.tensor(ev.cfg.data.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(ev.cfg.data.std, device=device).view(1, 3, 1, 1)
    log = open(ev.out / "metrics.jsonl", "w")
    curve, step, t0, t_first = [], 0, time.perf_counter(), 0.0
    bar = tqdm(total=total, unit="step", desc="fine-tuning", disable=not ev.progress, dynamic_ncols=True)
    epoch, losses = 0, []
    while step < total:
        model.train()
        for images, labels in loader.epoch(epoch):
            if c.max_minutes is not None:  # re-timed every 10 steps: the schedule ends with the budget
                now = time.perf_counter()
                if step == 1:
                    t_first = now  # the first step (allocation, warm-up) is not timed
                elif step >= 5 and step % 10 == 5:
                    per_step = (now - t_first) / (step - 1)
                    left = c.max_minutes * 60 - (now - t0)
                    total = max(step + 1, min(c.epochs * spe, step + int(0.97 * left / per_step)))
                    warmup = min(round(c.warmup_epochs * spe), total // 10)
                    bar.total = total
            for g in opt.param_groups:
                g["lr"] = warmup_cosine(step, total, warmup, peak, c.min_lr) * g["lr_scale"]
            with torch.no_grad():
                x = images.float().div_(255)
                cx, cy, w, h = crop_params(x.shape[0], c.crop_scale, (3 / 4, 4 / 3), device)
                x = resized_crop(x, size, cx, cy, w, h, torch.rand(x.shape[0], device=device) < 0.5)
                if c.randaug_ops:
                    x = rand_augment(x, c.randaug_ops, c.randaug_magnitude)
                x = (x - mean) / std
                x, target = mix_batch(x, labels, ev.num_classes, mixup=c.mixup, cutmix=c.cutmix, prob=c.mix_prob,
                                      smoothing=c.label_smoothing)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x)
            loss = torch.sum(-target * F.log_softmax(logits.float(), dim=1), dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            step += 1
            bar.update(1)
            if step % 20 == 0 or step == total:
                row = {"step": step, "epoch": round(step / spe, 3), "loss": torch.stack(losses).mean().item(),
                       "lr": opt.param_groups[0]["lr"] / opt.param_groups[0]["lr_scale"]}
                log.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                losses = []
            if step >= total:
                break
        epoch += 1
        if epoch % c.eval_every == 0 or step >= total:
            acc, top5 = test_accuracy(model, ev.test, ev.preprocess, device, ev.cfg.features.batch_size, dtype)
            curve.append({"epoch": round(step / spe, 3), "step": step, "accuracy": acc, "top5": top5})
            log.write(json.dumps({"step": step, "epoch": round(step / spe, 3), "test_accuracy": acc}) + "\n")
            log.flush()
    bar.close()
    log.close()
    from vitssl.engine.checkpoint import save_atomic

    save_atomic({"model": model.state_dict(), "arch": dict(model.arch), "classes": ev.train.classes},
                ev.out / "finetuned.pt")
    last = curve[-1]
    return {"protocol": "finetune", "accuracy": last["accuracy"], "top5": last["top5"], "steps": step,
            "epochs_run": round(step / spe, 3), "minutes": round((time.perf_counter() - t0) / 60, 2),
            "per_epoch": curve, "features": f"fine-tuned, pool {ev.pool}"}
