"""Config of DINO (Caron et al. 2021), self-distillation with no labels (docs/METHODS.md §3).

Schedules that DINO counts in epochs (teacher temperature warm-up, the frozen last layer) are
fractions of the training steps here: a method sees steps, not epochs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from vitssl.config.schema import require


@dataclass
class DINOConfig:
    name: Literal["dino"] = "dino"
    # multi-crop: 2 global views (augment.crop_scale, data.image_size) and `local_crops` small ones
    local_crops: int = 6
    local_scale: tuple[float, float] = (0.05, 0.4)
    local_size: Optional[int] = None  # null: 3/7 of data.image_size in whole patches (96 at 224, 16 at 32 / 4 px)
    # head: MLP in -> hidden -> hidden -> bottleneck, L2-normalised, then a weight-normalised map to out_dim
    out_dim: int = 65536  # 65,536 at ImageNet; a few thousand for small datasets
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    head_layers: int = 3
    norm_last_layer: bool = True  # the last layer's gain fixed at 1 (more stable)
    freeze_last_layer: float = 0.01  # fraction of the steps the last layer stays fixed (DINO: its first epoch)
    # temperatures: the teacher's warms up linearly from teacher_temp to teacher_temp_end
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    teacher_temp_end: float = 0.07
    teacher_temp_warmup: float = 0.3  # fraction of the steps (DINO: 30 of 100 epochs)
    center_momentum: float = 0.9
    momentum: float = 0.996  # teacher EMA, cosine to momentum_end
    momentum_end: float = 1.0

    def check(self, p: str) -> None:
        require(self.local_crops >= 0, f"{p}.local_crops", "must be 0 or more")
        lo, hi = self.local_scale
        require(0 < lo <= hi <= 1, f"{p}.local_scale", "must be [min, max] with 0 < min <= max <= 1")
        require(min(self.out_dim, self.hidden_dim, self.bottleneck_dim) >= 1, f"{p}.out_dim",
                f"{p}.hidden_dim and {p}.bottleneck_dim must be at least 1")
        require(self.head_layers >= 1, f"{p}.head_layers", "must be at least 1")
        for key in ("freeze_last_layer", "teacher_temp_warmup", "center_momentum"):
            require(0 <= getattr(self, key) <= 1, f"{p}.{key}", "must be in [0, 1]")
        require(min(self.student_temp, self.teacher_temp, self.teacher_temp_end) > 0, f"{p}.student_temp",
                f"{p}.teacher_temp and {p}.teacher_temp_end must be positive")
        require(0 <= self.momentum <= self.momentum_end <= 1, f"{p}.momentum",
                f"must satisfy 0 <= momentum <= {p}.momentum_end <= 1")

    def check_with(self, cfg) -> None:
        if self.local_size is not None:
            patch = cfg.model.patch_size
            require(self.local_size % patch == 0 and self.local_size <= cfg.data.image_size, "method.local_size",
                    f"({self.local_size}) must be a multiple of model.patch_size ({patch}) and at most "
                    f"data.image_size ({cfg.data.image_size})")

    def resolved_local_size(self, image_size: int, patch: int) -> int:
        if self.local_size is not None:
            return self.local_size
        return max(patch, -(-image_size * 3 // (7 * patch)) * patch)
