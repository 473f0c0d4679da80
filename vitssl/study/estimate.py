"""How long each stage will take, from step rates measured on this machine: a few training steps of
each pre-training's method, a few forward (and forward + backward) passes of each encoder shape, on
random batches of the configured sizes. Data decoding (once, cached) is not counted."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable

import numpy as np
import torch

from vitssl.config.load import build_config
from vitssl.data.images import Decode, to_canvas
from vitssl.methods import registry
from vitssl.models.vit import encoder_from_config
from vitssl.study.plan import Stage

TIMED_BATCH = 32  # a slow step is timed on batches of at most this many images, per image after that
QUICK_S = 5.0  # a step that would take at most this long at the configured batch (scaled from the small batch, an
# upper bound) is timed at that batch


def _seconds_per_call(fn: Callable[[], None], calls: int = 2) -> float:
    fn()  # warm-up: allocation, first-call costs
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def pretrain_step(cfg, batch: int, device: torch.device) -> Callable[[], None]:
    """One full method step (forward, backward, AdamW) on a fixed uint8 batch shaped as the loader gives
    it (photos kept whole: canvases as wide as allowed)."""
    task = registry.get(cfg.method.name).build(cfg).to(device)
    task.train()
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-6)
    d = cfg.data
    size = d.resolved_store_size
    if d.aspect == "keep":
        side = Decode(size, aspect="keep", max_aspect=d.max_aspect).canvas
        canvas = torch.from_numpy(to_canvas(np.full((size, side, 3), 128, np.uint8), side))
        images = canvas.permute(2, 0, 1).expand(batch, -1, -1, -1).contiguous().to(device)
    else:
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)  # (B, 3, H, W)
    labels = torch.zeros(batch, dtype=torch.long, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        task(images, labels)["loss"].backward()
        opt.step()

    return step


def busy_note() -> str | None:
    """A line when other work was running as the rates were about to be measured (they are then slower than
    on an idle machine, and so is every estimate made from them); None on a quiet machine."""
    try:
        load = os.getloadavg()[0]  # processes running or waiting, mean of the last minute
    except (AttributeError, OSError):  # not on every platform
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load < 0.5 * cores:
        return None
    return (f"the machine was busy as step rates were measured (load average {load:.1f} on {cores} cores): "
            "the estimates are longer than an idle machine needs")


class Rates:
    """Measured seconds per image, memoised per configuration. The plan's estimates time 2 steps on at most
    TIMED_BATCH images, then, where a step at the configured batch would take at most QUICK_S, 2 steps at
    that batch: a small model's step has fixed costs (optimiser, augmentation, launches) that a smaller batch
    would spread over fewer images, overstating its time per image (MoCo v3 on the width-128 ViT at 32 px of
    repro_claim.yaml: 1.5 times at 32 images against its batch of 64). A measurement that is itself a result
    (CPU time per method) asks for more steps at the configured batch (`calls`, `max_batch=None`)."""

    def __init__(self, device: str = "cpu", *, calls: int = 2, max_batch: int | None = TIMED_BATCH):
        self.device = torch.device(device)
        self.calls, self.max_batch = calls, max_batch
        self.memo: dict[str, float] = {}

    def _memo(self, key: str, measure: Callable[[], float]) -> float:
        if key not in self.memo:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self.memo[key] = measure()
        return self.memo[key]

    def _per_image(self, make: Callable[[int], Callable[[], None]], batch: int) -> float:
        """Seconds per image of the step `make(b)` builds for b images, run at `batch` images."""
        small = min(batch, self.max_batch or batch)
        per_image = _seconds_per_call(make(small), self.calls) / small
        if small < batch and per_image * batch <= QUICK_S:
            per_image = _seconds_per_call(make(batch), self.calls) / batch
        return per_image

    def pretrain(self, config: dict) -> float:
        """Seconds per pre-training image (one method step, forward + backward + AdamW)."""
        cfg = build_config(config)
        batch = cfg.train.batch_size // cfg.train.accum_steps  # images per forward pass (one process)
        key = repr(("pretrain", config["method"], config["model"], cfg.data.image_size, batch))
        return self._memo(key, lambda: self._per_image(lambda b: pretrain_step(cfg, b, self.device), batch))

    def encoder(self, model: dict, image_size: int, backward: bool, batch: int) -> float:
        """Seconds per image through the encoder, `batch` images a pass: inference (features) or training
        (fine-tuning)."""
        key = repr(("encoder", model, image_size, backward, batch))

        def measure() -> float:
            from vitssl.config.schema import from_dict
            from vitssl.config.sections import ModelConfig

            enc = encoder_from_config(from_dict(ModelConfig, model, "model"), image_size).to(self.device)

            def make(b: int) -> Callable[[], None]:
                x = torch.randn(b, 3, image_size, image_size, device=self.device)  # (B, 3, H, W)

                def fwd() -> None:
                    with torch.no_grad():
                        enc.forward_features(x)

                def fwd_bwd() -> None:
                    enc.forward_features(x).float().mean().backward()

                return fwd_bwd if backward else fwd

            return self._per_image(make, batch)

        return self._memo(key, measure)


def _done_steps(stage: Stage) -> int:
    """Steps an interrupted run already made (its last metrics row), 0 for a new one."""
    try:
        lines = (stage.folder / "metrics.jsonl").read_text().splitlines()
        return max(json.loads(line).get("step", 0) for line in lines) if lines else 0
    except (OSError, ValueError):
        return 0


def estimate(stage: Stage, rates: Rates, resume: bool = False) -> float:
    """Estimated seconds for one stage (`resume`: for what an interrupted pre-training has left)."""
    c = stage.config
    if stage.kind == "pretrain":
        b = stage.budget
        if b is not None and b.kind == "minutes":
            return b.minutes * 60
        steps_per_epoch = max(1, math.ceil(stage.images / c["train"]["batch_size"]))
        steps = c["train"]["epochs"] * steps_per_epoch
        if c["train"].get("max_steps"):
            steps = min(steps, c["train"]["max_steps"])
        if resume:
            steps = max(0, steps - _done_steps(stage))
        return steps * c["train"]["batch_size"] * rates.pretrain(c)
    model, size = stage.source.config["model"] if stage.source else c["model"], c["data"]["image_size"]
    infer = rates.encoder(model, size, backward=False, batch=c["features"]["batch_size"])
    if stage.kind == "finetune":
        f = c["finetune"]
        chunk = max(1, f["batch_size"] // f.get("accum_steps", 1))  # images per forward pass
        train = f["epochs"] * stage.images * rates.encoder(model, size, backward=True, batch=chunk)
        if f.get("max_minutes"):
            train = min(train, f["max_minutes"] * 60)
        tests = max(1, f["epochs"] // max(1, f.get("eval_every") or 1))
        return train + tests * stage.test_images * infer
    return (stage.images + stage.test_images) * infer  # features of both splits (an upper bound: they are cached)
