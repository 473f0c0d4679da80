"""Config of `vitssl eval`: which encoder, which data, which features, and each protocol's settings.

Unset `model` and `data` keys default to those the checkpoint was pre-trained with, so evaluating a
run needs no config at all; `data.root=OTHER` evaluates it on another dataset (transfer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from vitssl.config.schema import require
from vitssl.config.sections import DataConfig, ModelConfig, check_image_size


@dataclass
class FeatureConfig:
    blocks: list[int] = field(default_factory=lambda: [-1])  # 1..depth or -1 (last), -2...; several: concatenated
    pool: Literal["auto", "cls", "avg", "cls+avg"] = "auto"  # auto: CLS for SiT/GMML, patch-token mean otherwise
    sweep: bool = False  # probe every block; the best is chosen on a held-out part of the training split
    val_frac: float = 0.1  # that held-out part (also used to choose among several linear.lrs)
    batch_size: int = 256
    cache: bool = True  # keep extracted features on disk for the next evaluation

    def check(self, p: str) -> None:
        require(len(self.blocks) >= 1 and 0 not in self.blocks, f"{p}.blocks",
                "must list blocks as 1..depth or -1 (last), -2, ...")
        require(0 < self.val_frac < 1, f"{p}.val_frac", "must be in (0, 1)")
        require(self.batch_size >= 1, f"{p}.batch_size", "must be at least 1")


@dataclass
class KNNConfig:
    k: int = 20
    temperature: float = 0.07

    def check(self, p: str) -> None:
        require(self.k >= 1, f"{p}.k", "must be at least 1")
        require(self.temperature > 0, f"{p}.temperature", "must be positive")


@dataclass
class LinearConfig:
    epochs: int = 90
    batch_size: int = 256
    lrs: list[float] = field(default_factory=lambda: [0.1])  # SGD learning rates per 256 images; several: chosen on val
    weight_decay: float = 0.0
    momentum: float = 0.9

    def check(self, p: str) -> None:
        require(self.epochs >= 1 and self.batch_size >= 1, f"{p}.epochs", "and linear.batch_size must be at least 1")
        require(len(self.lrs) >= 1 and all(lr > 0 for lr in self.lrs), f"{p}.lrs", "must be positive learning rates")
        require(self.weight_decay >= 0, f"{p}.weight_decay", "must be 0 or more")
        require(0 <= self.momentum < 1, f"{p}.momentum", "must be in [0, 1)")


@dataclass
class FewShotConfig:
    shots: list[int] = field(default_factory=lambda: [1, 5, 10, 25])  # labelled images per class
    draws: int = 5  # random draws of the labelled images per shot count
    steps: int = 300  # full-batch probe steps
    lr: float = 0.1
    weight_decay: float = 5e-4

    def check(self, p: str) -> None:
        require(len(self.shots) >= 1 and all(s >= 1 for s in self.shots), f"{p}.shots", "must be positive counts")
        require(self.draws >= 1 and self.steps >= 1, f"{p}.draws", "and fewshot.steps must be at least 1")
        require(self.lr > 0 and self.weight_decay >= 0, f"{p}.lr", "must be positive (weight_decay 0 or more)")


@dataclass
class FinetuneConfig:
    """Whole-network fine-tuning (MAE/DeiT practice); `max_minutes` gives runs of equal wall-clock budget."""

    epochs: int = 100
    max_minutes: Optional[float] = None  # the schedule spans the steps that fit (measured after a few steps)
    max_steps: Optional[int] = None  # stop after this many steps (the schedule still spans `epochs`)
    batch_size: int = 128
    base_lr: float = 1e-3  # for a batch of 256
    min_lr: float = 1e-6
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    layer_decay: float = 0.75  # block i's lr is base * layer_decay ** (depth + 1 - i)
    drop_path: float = 0.1
    crop_scale: tuple[float, float] = (0.2, 1.0)
    randaug_ops: int = 2  # RandAugment: ops per image ...
    randaug_magnitude: float = 9.0  # ... and their magnitude (0-10); ops 0 turns it off
    mixup: float = 0.8  # Beta alpha; 0: off
    cutmix: float = 1.0
    mix_prob: float = 1.0
    label_smoothing: float = 0.1
    eval_every: int = 10  # test accuracy every N epochs (and at the end)
    clip_grad: float = 0.0  # max gradient norm (one global norm); 0: off, as in the MAE / DeiT recipe
    accum_steps: int = 1  # gradient accumulation: batch_size is split into this many chunks
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU

    def check(self, p: str) -> None:
        require(self.epochs >= 1 and self.batch_size >= 2, f"{p}.epochs", "must be >= 1 (batch_size >= 2)")
        require(self.max_minutes is None or self.max_minutes > 0, f"{p}.max_minutes", "must be positive or null")
        require(self.max_steps is None or self.max_steps >= 1, f"{p}.max_steps", "must be at least 1 or null")
        require(self.base_lr > 0 and self.min_lr >= 0, f"{p}.base_lr", "must be positive (min_lr 0 or more)")
        require(0 < self.layer_decay <= 1, f"{p}.layer_decay", "must be in (0, 1]")
        require(0 <= self.drop_path < 1, f"{p}.drop_path", "must be in [0, 1)")
        lo, hi = self.crop_scale
        require(0 < lo <= hi <= 1, f"{p}.crop_scale", "must be [min, max] with 0 < min <= max <= 1")
        require(self.randaug_ops >= 0 and 0 <= self.randaug_magnitude <= 10, f"{p}.randaug_magnitude",
                "must be in [0, 10] (randaug_ops 0 or more)")
        require(self.mixup >= 0 and self.cutmix >= 0 and 0 <= self.mix_prob <= 1, f"{p}.mixup",
                "and finetune.cutmix must be 0 (off) or positive, mix_prob in [0, 1]")
        require(0 <= self.label_smoothing < 1, f"{p}.label_smoothing", "must be in [0, 1)")
        require(self.eval_every >= 1, f"{p}.eval_every", "must be at least 1")
        require(self.clip_grad >= 0, f"{p}.clip_grad", "must be 0 (off) or positive")
        require(self.accum_steps >= 1 and self.batch_size % self.accum_steps == 0, f"{p}.accum_steps",
                f"must be at least 1 and divide finetune.batch_size ({self.batch_size})")


@dataclass
class EvalConfig:
    checkpoint: str = "random"  # run folder, .pt, .safetensors, timm state dict, or 'random'
    like: Optional[str] = None  # with checkpoint 'random': shape, data and pooling of this run (a fair baseline)
    model: ModelConfig = field(default_factory=ModelConfig)  # shapes a random encoder; timm files: num_heads
    data: DataConfig = field(default_factory=DataConfig)  # data.split: the split probes train on (data.limit: its size)
    test_split: str = "test"  # any split folder (test, val, valid, ...); a folder without splits: its held-out part
    test_limit: Optional[int] = None  # class-balanced subset of the test split; null: all of it
    features: FeatureConfig = field(default_factory=FeatureConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    output_dir: Optional[str] = None  # None: RUN/eval/<protocol>-<dataset> for a run, else evals/<...>
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    def check(self, p: str) -> None:
        require(self.test_limit is None or self.test_limit >= 1, "test_limit", "must be at least 1 or null")
        if self.checkpoint == "random":
            check_image_size(self.data.image_size, self.model.patch_size)

