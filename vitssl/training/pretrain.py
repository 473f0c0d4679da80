"""Pre-training: a method, the data it learns from and the k-NN monitor, run on the engine's loop."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import torch

from vitssl import distributed as dist
from vitssl.config import Config, config_to_dict, save_config
from vitssl.data.dataset import ImageDataset, load_dataset
from vitssl.engine.job import Job
from vitssl.engine.loop import Loop, run
from vitssl.methods import registry
from vitssl.models.vit import encoder_from_config
from vitssl.training.monitor import KNNMonitor


class PretrainJob(Job):
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.kind, self.desc = cfg.method.name, f"{cfg.method.name} pre-training"
        self.train, self.optim, self.log, self.data = cfg.train, cfg.optim, cfg.log, cfg.data
        self.seed, self.device, self.min_side = cfg.seed, cfg.device, cfg.model.patch_size
        self.output_dir = cfg.output_dir
        self.monitor = None

    def default_output_dir(self) -> str:
        out = f"runs/{self.cfg.method.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        self.cfg.output_dir = out
        return out

    def resume_command(self, out: Path) -> str:
        return f"vitssl pretrain --resume {out}"

    def load_data(self) -> ImageDataset:
        cfg = self.cfg
        return load_dataset(cfg.data, cfg.data.split, seed=cfg.seed, min_side=cfg.model.patch_size,
                            progress=dist.is_main())

    def build(self, dataset: ImageDataset):
        return registry.get(self.cfg.method.name).build(self.cfg)

    def ready(self, loop: Loop) -> None:
        if dist.is_main():
            self.monitor = KNNMonitor.maybe(self.cfg, pool=registry.pool_of(self.cfg.method.name),
                                            patch_size=self.cfg.model.patch_size)

    def epoch_end(self, loop: Loop, epoch: int) -> dict:
        log = self.cfg.log
        if self.monitor is None or not log.knn_every or epoch % log.knn_every:
            return {}
        with loop.autocast():
            return self.monitor(loop.task.encoder, loop.device)

    def finish(self, loop: Loop, summary: dict) -> None:
        if self.monitor is not None:
            summary["versus_random_init"] = self._versus_random_init(loop)

    def _versus_random_init(self, loop: Loop) -> dict:
        """Did it learn? k-NN and a linear probe of the encoder against a random-init encoder of the same
        shape, on the monitor's held-out training images; one line, also in summary.json."""
        devices = [loop.device] if loop.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed)
            baseline = encoder_from_config(self.cfg.model, self.cfg.data.image_size).to(loop.device)
            mine = self.monitor.probe(loop.task.encoder, loop.device)
            base = self.monitor.probe(baseline, loop.device)
        n = len(self.monitor.test)
        print(f"learned? k-NN on {n} held-out training images: {mine['knn']:.1f} % vs {base['knn']:.1f} % for a "
              f"random-init encoder of the same shape ({mine['knn'] - base['knn']:+.1f} points); linear probe: "
              f"{mine['linear']:.1f} % vs {base['linear']:.1f} % ({mine['linear'] - base['linear']:+.1f})",
              file=sys.stderr)
        return {"images": n, "knn": mine["knn"], "knn_random_init": base["knn"], "linear": mine["linear"],
                "linear_random_init": base["linear"]}

    def config_dict(self) -> dict:
        return config_to_dict(self.cfg)

    def save_config(self, path: Path) -> None:
        save_config(self.cfg, path)

    def checkpoint_meta(self, task) -> dict:
        return {"encoder": dict(task.encoder.arch)}


def trainer(cfg: Config, *, resume: bool = False) -> Loop:
    """The loop, built and ready to `fit()` (for tests and notebooks that step it themselves)."""
    return Loop(PretrainJob(cfg), resume=resume)


def pretrain(cfg: Config, *, resume: bool = False) -> dict:
    """Run (or resume) pre-training; returns the run summary."""
    return run(PretrainJob(cfg), resume=resume)
