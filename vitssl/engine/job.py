"""What the loop runs: a Job builds the task and its data, and says what happens around the steps.

Pre-training (vitssl.training.pretrain.PretrainJob) and fine-tuning
(vitssl.evaluation.finetune.FinetuneJob) are the two jobs; a later supervised task is a third.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch.nn as nn

from vitssl.data.dataset import ImageDataset

if TYPE_CHECKING:
    from vitssl.engine.loop import Loop


class Job:
    """What a Loop trains, and what it does around the steps. Subclasses set the attributes below in
    their constructor and override the hooks they need."""

    kind: str  # what the checkpoint says it holds ('method' key): a method's name, 'finetune', ...
    desc: str  # the progress bar's label
    train: object  # TrainConfig: epochs, batch size, accumulation, budgets, precision, compile
    optim: object  # OptimConfig: lr, weight decay, betas, clipping
    log: object  # LogConfig: cadences of logs, checkpoints and pictures
    data: object  # DataConfig: loader workers and bad-image policy
    seed: int = 0
    device: str = "auto"
    min_side: int = 1  # images smaller than this (a patch) are refused
    output_dir: Optional[str] = None

    def default_output_dir(self) -> str:
        raise NotImplementedError

    def resume_command(self, out: Path) -> str:
        """The command that continues the run in `out`."""
        raise NotImplementedError

    def load_data(self) -> ImageDataset:
        raise NotImplementedError

    def build(self, dataset: ImageDataset) -> nn.Module:
        """The task (after the loop seeded the RNG); moved to the device by the loop."""
        raise NotImplementedError

    def param_groups(self, task: nn.Module) -> Optional[list[dict]]:
        """AdamW groups (an 'lr_scale' and a 'decay' flag per group), or None for the weight-decay rule
        with the task's `no_weight_decay()`."""
        return None

    def ready(self, loop: "Loop") -> None:
        """Everything is built (and restored): set up monitors."""

    def epoch_end(self, loop: "Loop", epoch: int) -> dict:
        """Values to log at the end of `epoch` (all processes call it)."""
        return {}

    def finish(self, loop: "Loop", summary: dict) -> None:
        """The run ended normally (main process only): add to the summary, write what the job writes."""

    def config_dict(self) -> dict:
        raise NotImplementedError

    def save_config(self, path: Path) -> None:
        raise NotImplementedError

    def checkpoint_meta(self, task: nn.Module) -> dict:
        return {}
