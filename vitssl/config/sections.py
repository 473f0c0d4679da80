"""The config sections shared by every method. Field types are the schema; `check` the value rules.

Method-specific sections (`method:`) live beside each method and are looked up by `method.name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from vitssl.config.schema import require
from vitssl.models.vit import PRESETS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _prob(value: float) -> bool:
    return 0.0 <= value <= 1.0


@dataclass
class ModelConfig:
    arch: Literal["vit_tiny", "vit_small", "vit_base"] = "vit_tiny"
    patch_size: int = 16
    embed_dim: Optional[int] = None  # None: the preset's
    depth: Optional[int] = None
    num_heads: Optional[int] = None
    mlp_ratio: float = 4.0
    pos_embed: Literal["learned", "sincos"] = "learned"
    drop_path: float = 0.1

    def resolved(self) -> tuple[int, int, int]:
        """(embed_dim, depth, num_heads) after the preset is applied."""
        d, n, h = PRESETS[self.arch]
        return self.embed_dim or d, self.depth or n, self.num_heads or h

    def check(self, p: str) -> None:
        require(self.patch_size >= 1, f"{p}.patch_size", "must be at least 1")
        dim, depth, heads = self.resolved()
        for name, v in (("embed_dim", dim), ("depth", depth), ("num_heads", heads)):
            require(v >= 1, f"{p}.{name}", "must be at least 1")
        require(dim % heads == 0, f"{p}.embed_dim", f"({dim}) must be divisible by num_heads ({heads})")
        require(self.mlp_ratio > 0, f"{p}.mlp_ratio", "must be positive")
        require(0 <= self.drop_path < 1, f"{p}.drop_path", "must be in [0, 1)")


@dataclass
class DataConfig:
    root: str = "synthetic"  # 'synthetic' (built in), an image folder, a CIFAR-10/100 folder, or an official layout
    # how root is read: auto (recognise it), folder (class sub-folders), cifar (python pickles), annotations (a
    # 'path label' file per split), or a dataset as distributed (flowers102, pets, cub200, aircraft, stl10, cars)
    format: Literal["auto", "folder", "cifar", "annotations", "flowers102", "pets", "cub200", "aircraft", "stl10",
                    "cars"] = "auto"
    split: str = "train"  # the split pre-training reads, where the folder has splits
    image_size: int = 32
    store_size: Optional[int] = None  # shorter side of the cached images; None: chosen from image_size
    # image files: 'square' keeps the centre square; 'keep' the whole photo (its longer side cut to at most
    # max_aspect x the shorter), so random resized crops reach all of it; evaluation centre-crops either way
    aspect: Literal["square", "keep"] = "square"
    max_aspect: float = 1.5
    crop_bottom: int = 0  # pixels cut off the bottom of every image file first (FGVC-Aircraft's banner: 20)
    limit: Optional[int] = None  # seeded, class-balanced subset of this many images per split
    cache: Literal["auto", "memory", "stream"] = "auto"
    cache_dir: Optional[str] = None  # where decoded datasets are kept; None: ~/.cache/vitssl
    cache_max_gb: float = 8.0  # 'auto' decodes into memory below this size, streams above it
    num_workers: int = 2  # decoding processes
    bad_images: Literal["error", "skip"] = "error"
    # a labelled folder without split folders: this seeded, class-balanced fraction of it is its 'test'
    # split and 'train' is the rest (so nothing is tested on images it trained on); 0: no test split
    holdout: float = 0.2
    holdout_seed: int = 0
    # fetch it from its authors' host into root if root does not hold it (MD5-checked, resumable)
    download: Optional[Literal["cifar10", "cifar100", "flowers102", "pets", "cub200", "stl10"]] = None
    synthetic_train: int = 10000  # images per split of the built-in dataset
    synthetic_test: int = 2000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def resolved_store_size(self) -> int:
        if self.store_size is not None:
            return self.store_size
        return self.image_size if self.image_size <= 64 else round(self.image_size * 256 / 224)

    def check(self, p: str) -> None:
        require(self.image_size >= 1, f"{p}.image_size", "must be at least 1")
        require(self.store_size is None or self.store_size >= self.image_size, f"{p}.store_size",
                f"must be at least data.image_size ({self.image_size}) or null")
        require(self.limit is None or self.limit >= 1, f"{p}.limit", "must be at least 1 or null")
        require(self.max_aspect >= 1, f"{p}.max_aspect", f"must be at least 1 (longer side / shorter side), got "
                f"{self.max_aspect}")
        require(self.crop_bottom >= 0, f"{p}.crop_bottom", "must be 0 or more pixels")
        require(self.cache_max_gb > 0, f"{p}.cache_max_gb", "must be positive")
        require(0 <= self.holdout < 1, f"{p}.holdout", "must be in [0, 1) (0: no held-out test split)")
        require(self.num_workers >= 0, f"{p}.num_workers", "must be 0 or more")
        require(self.synthetic_train >= 1 and self.synthetic_test >= 1, f"{p}.synthetic_train",
                "and data.synthetic_test must be at least 1")
        require(all(s > 0 for s in self.std), f"{p}.std", "values must be positive")


@dataclass
class AugmentConfig:
    """Batched augmentation of two views; pairs of values are (view 1, view 2)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"  # of the resized crop (bicubic: official SiT, MAE)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)

    def check(self, p: str) -> None:
        lo, hi = self.crop_scale
        require(0 < lo <= hi <= 1, f"{p}.crop_scale", f"must be [min, max] with 0 < min <= max <= 1, got {list(self.crop_scale)}")
        lo, hi = self.crop_ratio
        require(0 < lo <= hi, f"{p}.crop_ratio", f"must be [min, max] with 0 < min <= max, got {list(self.crop_ratio)}")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            require(_prob(getattr(self, name)), f"{p}.{name}", "must be a probability in [0, 1]")
        for name in ("blur_p", "solarize_p"):
            require(all(_prob(v) for v in getattr(self, name)), f"{p}.{name}", "must be two probabilities in [0, 1]")
        for name in ("brightness", "contrast", "saturation"):
            require(0 <= getattr(self, name) <= 1, f"{p}.{name}", "must be in [0, 1]")
        require(0 <= self.hue <= 0.5, f"{p}.hue", "must be in [0, 0.5]")
        lo, hi = self.blur_sigma
        require(0 < lo <= hi, f"{p}.blur_sigma", "must be [min, max] with 0 < min <= max")


@dataclass
class OptimConfig:
    base_lr: float = 5e-4  # learning rate for a global batch of 256; scaled linearly with batch
    min_lr: float = 1e-6
    warmup_epochs: float = 10.0
    weight_decay: float = 0.04
    weight_decay_end: float = 0.1  # cosine from weight_decay to this
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float = 3.0  # max gradient norm; 0 turns clipping off
    # per_param: each parameter tensor's gradient clipped to clip_grad on its own (official SiT / DINO);
    # global: one norm over all gradients (torch.nn.utils.clip_grad_norm_)
    clip_mode: Literal["per_param", "global"] = "per_param"
    # parameters (by last name, e.g. pos_embed) also kept out of weight decay; biases and every other
    # parameter of one dimension never decay. Empty: the official SiT rule (pos_embed, cls_token decay)
    no_decay: list[str] = field(default_factory=list)

    def check(self, p: str) -> None:
        require(self.base_lr > 0, f"{p}.base_lr", "must be positive")
        require(0 <= self.min_lr, f"{p}.min_lr", "must be 0 or more")
        require(self.warmup_epochs >= 0, f"{p}.warmup_epochs", "must be 0 or more")
        require(self.weight_decay >= 0 and self.weight_decay_end >= 0, f"{p}.weight_decay",
                "and optim.weight_decay_end must be 0 or more")
        require(all(0 <= b < 1 for b in self.betas), f"{p}.betas", "must be two numbers in [0, 1)")
        require(self.eps > 0, f"{p}.eps", "must be positive")
        require(self.clip_grad >= 0, f"{p}.clip_grad", "must be 0 (off) or positive")


@dataclass
class TrainConfig:
    epochs: int = 100
    max_steps: Optional[int] = None  # stop after this many optimiser steps (the schedule still spans `epochs`)
    # wall-clock budget: the schedules span the steps that fit (re-timed every 10 steps; warm-up capped at 10 %)
    max_minutes: Optional[float] = None
    batch_size: int = 256  # global: summed over processes and accumulation steps
    accum_steps: int = 1
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False

    def check(self, p: str) -> None:
        require(self.epochs >= 1, f"{p}.epochs", "must be at least 1")
        require(self.max_steps is None or self.max_steps >= 1, f"{p}.max_steps", "must be at least 1 or null")
        require(self.max_minutes is None or self.max_minutes > 0, f"{p}.max_minutes", "must be positive or null")
        require(self.batch_size >= 2, f"{p}.batch_size", "must be at least 2")
        require(self.accum_steps >= 1, f"{p}.accum_steps", "must be at least 1")


@dataclass
class LogConfig:
    every_steps: int = 10  # metrics.jsonl / TensorBoard cadence
    checkpoint_every: int = 50  # keep checkpoints/epoch_N.pt every N epochs (0: only last.pt)
    checkpoint_minutes: float = 30.0  # also refresh last.pt this often within an epoch
    images_every: int = 10  # PNG of what the method sees and predicts, every N epochs (0: never)
    tensorboard: bool = True
    progress: bool = True
    knn_every: int = 0  # k-NN accuracy + collapse signals every N epochs (0: off); needs labels
    # null: it classifies training images held out of the neighbours (never the test split); or a split name
    knn_split: Optional[str] = None
    knn_train: int = 5000  # class-balanced images of data.split used as neighbours
    knn_test: int = 2000  # class-balanced images classified (of data.split, disjoint from the neighbours)
    knn_k: int = 20

    def check(self, p: str) -> None:
        require(self.every_steps >= 1, f"{p}.every_steps", "must be at least 1")
        require(self.checkpoint_every >= 0, f"{p}.checkpoint_every", "must be 0 or more")
        require(self.checkpoint_minutes > 0, f"{p}.checkpoint_minutes", "must be positive")
        require(self.images_every >= 0, f"{p}.images_every", "must be 0 or more")
        require(self.knn_every >= 0, f"{p}.knn_every", "must be 0 (off) or more")
        require(self.knn_train >= 1 and self.knn_test >= 1 and self.knn_k >= 1, f"{p}.knn_train",
                "log.knn_test and log.knn_k must be at least 1")


def check_image_size(size: int, patch: int, patch_from: str = "model.patch_size") -> None:
    """The one image-size rule: whole patches only. `patch_from` says where the patch size came from."""
    require(size % patch == 0, "data.image_size", f"({size}) must be a multiple of {patch_from} ({patch}); "
            f"try data.image_size={max(patch, size // patch * patch)}")


@dataclass
class Config:
    method: Any = None  # the registered dataclass of method.name
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    output_dir: Optional[str] = None  # None: runs/<method>-<date>-<time>
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    def check(self, p: str) -> None:
        check_image_size(self.data.image_size, self.model.patch_size)
        require(self.train.batch_size % self.train.accum_steps == 0, "train.batch_size",
                f"({self.train.batch_size}) must be divisible by train.accum_steps ({self.train.accum_steps})")
