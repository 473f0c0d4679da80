"""Fine-tuning the whole encoder with a linear head (MAE / DeiT recipe), on the engine's loop.

Layer-wise lr decay, stochastic depth, random resized crop + flip + RandAugment, Mixup/CutMix with
label smoothing, AdamW with warm-up and cosine. From `--checkpoint random` this is the supervised
from-scratch baseline. The run is a run folder like pre-training's (checkpoints, exact resume with
`--resume`, Ctrl-C save, DDP under torchrun, clipping, accumulation, budgets with
`finetune.max_minutes`, metrics.jsonl); `finetuned.pt` holds the classifier at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from vitssl import distributed as dist
from vitssl.config.schema import to_dict
from vitssl.config.sections import LogConfig, OptimConfig, TrainConfig
from vitssl.data.augment import random_crop
from vitssl.data.mix import mix_batch
from vitssl.data.randaugment import rand_augment
from vitssl.engine import checkpoint as ckpt
from vitssl.engine.features import batches
from vitssl.engine.job import Job
from vitssl.engine.knn import accuracy
from vitssl.engine.loop import Loop, run
from vitssl.errors import ConfigError, VitsslError
from vitssl.models.vit import VisionTransformer


def layer_decay_groups(model: VisionTransformer, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups: lr scale layer_decay ** (depth + 1 - layer) (embeddings = layer 0, head = depth + 1);
    no weight decay on biases, norms and what the encoder exempts (position embedding, CLS token)."""
    depth, exempt = model.depth, model.no_weight_decay()
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
        decay = p.ndim > 1 and name not in exempt
        g = groups.setdefault((layer, decay), {"params": [], "lr_scale": layer_decay ** (depth + 1 - layer),
                                               "decay": decay, "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
    return list(groups.values())


@torch.no_grad()
def test_accuracy(model: nn.Module, ds, preprocess, device, batch_size: int, autocast) -> tuple[float, float]:
    was_training = model.training
    model.eval()
    scores = []
    for images in batches(ds, batch_size, 0):
        with autocast():
            scores.append(model(preprocess(images.to(device))).float().cpu())
    model.train(was_training)
    s = torch.cat(scores)
    return accuracy(s, ds.labels), accuracy(s, ds.labels, 5)


class Classifier(nn.Module):
    """The encoder with its new head, and the fine-tuning augmentation: a task for the loop."""

    def __init__(self, *, encoder: VisionTransformer, num_classes: int, cfg, image_size: int, mean, std):
        super().__init__()
        self.encoder, self.cfg, self.num_classes, self.image_size = encoder, cfg, num_classes, image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def augment(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, 3, S, S) or canvases (B, 4, C, C) -> (normalised, mixed images (B, 3, s, s), soft targets
        (B, K)), in fp32."""
        c = self.cfg
        x = random_crop(images.float().div_(255), self.image_size, c.crop_scale, (3 / 4, 4 / 3), flip_p=0.5)
        if c.randaug_ops:
            x = rand_augment(x, c.randaug_ops, c.randaug_magnitude)
        x = (x - self.mean) / self.std
        return mix_batch(x, labels, self.num_classes, mixup=c.mixup, cutmix=c.cutmix, prob=c.mix_prob,
                         smoothing=c.label_smoothing)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(images.device.type, enabled=False):
            x, target = self.augment(images, labels)
        logits = self.encoder(x)
        loss = torch.sum(-target * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        return {"loss": loss}


class FinetuneJob(Job):
    def __init__(self, ev, *, resume_hint: str):
        c = ev.cfg.finetune
        if ev.pool == "cls+avg":
            raise ConfigError("fine-tuning pools one way: set features.pool=cls or features.pool=avg")
        self.ev, self.c, self.resume_hint = ev, c, resume_hint
        self.kind, self.desc = "finetune", "fine-tuning"
        self.train = TrainConfig(epochs=c.epochs, max_steps=c.max_steps, max_minutes=c.max_minutes,
                                 batch_size=c.batch_size,
                                 accum_steps=c.accum_steps, precision=c.precision)
        self.optim = OptimConfig(base_lr=c.base_lr, min_lr=c.min_lr, warmup_epochs=c.warmup_epochs,
                                 weight_decay=c.weight_decay, weight_decay_end=c.weight_decay, clip_grad=c.clip_grad,
                                 clip_mode="global")
        self.log = LogConfig(every_steps=20, checkpoint_every=0, images_every=0, tensorboard=False,
                             progress=ev.progress)
        self.data, self.seed, self.device = ev.cfg.data, ev.cfg.seed, ev.device.type
        self.min_side, self.output_dir = ev.encoder.patch_size, str(ev.out)

    def resume_command(self, out: Path) -> str:
        return self.resume_hint

    def load_data(self):
        return self.ev.train

    def build(self, dataset) -> Classifier:
        ev, c = self.ev, self.c
        model = ev.encoder
        model.reset_classifier(ev.num_classes, ev.pool)
        nn.init.trunc_normal_(model.head.weight, std=2e-5)
        nn.init.zeros_(model.head.bias)
        model.set_drop_path(c.drop_path)
        d = ev.cfg.data
        return Classifier(encoder=model, num_classes=ev.num_classes, cfg=c, image_size=d.image_size, mean=d.mean,
                          std=d.std)

    def param_groups(self, task: Classifier) -> list[dict]:
        return layer_decay_groups(task.encoder, self.c.weight_decay, self.c.layer_decay)

    def _test(self, loop: Loop) -> dict:
        acc, top5 = test_accuracy(loop.task.encoder, self.ev.test, self.ev.preprocess, loop.device,
                                  self.ev.cfg.features.batch_size, loop.autocast)
        return {"test_accuracy": acc, "test_top5": top5}

    def epoch_end(self, loop: Loop, epoch: int) -> dict:
        last = loop.step >= loop.stop_at
        if not dist.is_main() or not (epoch % self.c.eval_every == 0 or last):
            return {}
        return self._test(loop)

    def finish(self, loop: Loop, summary: dict) -> None:
        rows = [json.loads(line) for line in (loop.out / "metrics.jsonl").read_text().splitlines()]
        curve = [r for r in rows if "test_accuracy" in r]
        if not curve or curve[-1]["step"] != loop.step:  # a budget ends mid-epoch: test the final weights
            values = self._test(loop)
            curve.append({"step": loop.step, "epoch": round(loop.step / loop.steps_per_epoch, 4), **values})
        per_epoch = [{"epoch": round(r["step"] / loop.steps_per_epoch, 3), "step": r["step"],
                      "accuracy": r["test_accuracy"], "top5": r["test_top5"]} for r in curve]
        enc = loop.task.encoder
        ckpt.save_atomic({"model": enc.state_dict(), "arch": dict(enc.arch), "classes": self.ev.train.classes},
                         loop.out / "finetuned.pt")
        summary.update(accuracy=per_epoch[-1]["accuracy"], top5=per_epoch[-1]["top5"], per_epoch=per_epoch)

    def config_dict(self) -> dict:
        return to_dict(self.ev.cfg)

    def save_config(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(to_dict(self.ev.cfg), sort_keys=False))

    def checkpoint_meta(self, task: Classifier) -> dict:
        return {"encoder": dict(task.encoder.arch), "classes": self.ev.train.classes}


def run_finetune(ev, *, resume: bool = False, resume_hint: str = "") -> dict:
    """Fine-tune on the loop; the protocol's result (stops with a message when interrupted)."""
    summary = run(FinetuneJob(ev, resume_hint=resume_hint), resume=resume)
    if dist.launch_rank() != 0:  # under torchrun, the main process reports
        return {"protocol": "finetune", "steps": summary["step"]}
    if "accuracy" not in summary:
        if summary.get("stopped_early"):
            raise VitsslError(f"fine-tuning stopped at step {summary['step']}; continue it with `{resume_hint}`")
        raise VitsslError(summary.get("message", "fine-tuning ended without a result"))
    return {"protocol": "finetune", "accuracy": summary["accuracy"], "top5": summary["top5"],
            "steps": summary["step"], "epochs_run": round(summary["epoch"], 3),
            "minutes": round(summary["seconds"] / 60, 2), "per_epoch": summary["per_epoch"],
            "features": f"fine-tuned, pool {ev.pool}"}
