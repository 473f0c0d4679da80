"""The method-agnostic pre-training loop.

It owns everything a method should not care about: devices and processes, data order, the
optimiser and its schedules, mixed precision, accumulation, clipping, checkpoints, logs, pictures
and progress. A method only turns a uint8 batch into losses (vitssl.methods.base.Method).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch
import torch.distributed
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from vitssl import __version__
from vitssl import distributed as dist
from vitssl.config import Config, config_to_dict, save_config
from vitssl.data.dataset import ImageDataset, load_dataset
from vitssl.data.loader import BatchLoader, single_batch
from vitssl.errors import CheckpointError, ConfigError, VitsslError
from vitssl.hostmem import keep_freed_memory
from vitssl.methods import registry
from vitssl.training import checkpoint as ckpt
from vitssl.training.images import save_grid
from vitssl.training.logger import RunLogger
from vitssl.training.monitor import KNNMonitor
from vitssl.training.optim import build_optimizer, clip_gradients, set_hyperparams
from vitssl.training.plots import plot_metrics
from vitssl.training.schedules import cosine, warmup_cosine

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device_type: str) -> str:
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    if precision == "fp16" and device_type != "cuda":
        raise ConfigError("config key 'train.precision' is fp16, which needs CUDA; use bf16 or fp32 on CPU")
    return precision


class StopRequest:
    """First Ctrl-C / SIGTERM: finish the step, save, exit. A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (a checkpoint will be saved); press Ctrl-C again to abort",
              file=sys.stderr)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: Config, *, resume: bool = False):
        self.cfg = cfg
        self.resume = resume
        device_type = dist.resolve_device(cfg.device)
        self.device = dist.init(device_type)
        self.host_memory = "kept" if keep_freed_memory(self.device) else "default"
        self.rank, self.world = dist.rank(), dist.world_size()
        self.precision = resolve_precision(cfg.train.precision, self.device.type)
        self.out = self._output_dir()
        torch.manual_seed(cfg.seed * 1000 + self.rank)

        tc = cfg.train
        if tc.batch_size % (self.world * tc.accum_steps):
            raise ConfigError(f"config key 'train.batch_size' ({tc.batch_size}) must be divisible by the number of "
                              f"processes x train.accum_steps ({self.world} x {tc.accum_steps})")
        self.dataset = self._load_data()
        skip_bad = cfg.data.bad_images == "skip"
        self.loader = BatchLoader(self.dataset, batch_size=tc.batch_size // self.world, device=self.device,
                                  seed=cfg.seed, rank=self.rank, world=self.world, num_workers=cfg.data.num_workers,
                                  min_side=cfg.model.patch_size, skip_bad=skip_bad)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = tc.epochs * self.steps_per_epoch
        self.stop_at = min(self.total_steps, tc.max_steps or self.total_steps)

        self.method = registry.get(cfg.method.name).build(cfg).to(self.device)
        if tc.compile:
            for m in self.method.modules():  # block by block: small graphs, masks stay inputs
                if getattr(m, "compile_unit", False):
                    m.compile()
        self.model = self.method
        if self.world > 1:
            self.model = DDP(self.method, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                             broadcast_buffers=False)
        self.optimizer = build_optimizer(self.method, cfg.optim, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.trainable = [p for p in self.method.parameters() if p.requires_grad]
        self.peak_lr = cfg.optim.base_lr * tc.batch_size / 256
        self.warmup_steps = round(cfg.optim.warmup_epochs * self.steps_per_epoch)
        self.epoch_total, self.step_cap, self.cfg_warmup = self.total_steps, self.stop_at, self.warmup_steps
        self.budget_set = tc.max_minutes is None  # else: total_steps is re-timed every 10 steps
        self.monitor = KNNMonitor.maybe(cfg, method=cfg.method.name, patch_size=cfg.model.patch_size) \
            if dist.is_main() else None
        self.step = 0
        if resume:
            self._restore(self.out / "checkpoints" / "last.pt")

    # --- set-up ----------------------------------------------------------------------------------
    def _output_dir(self) -> Path:
        out = self.cfg.output_dir
        if out is None:
            out = f"runs/{self.cfg.method.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            out = dist.broadcast_object(out)
            self.cfg.output_dir = out
        path = Path(out)
        last = path / "checkpoints" / "last.pt"
        if not self.resume and last.exists():
            raise VitsslError(f"output_dir '{path}' already holds a run; continue it with "
                              f"`vitssl pretrain --resume {path}` or choose another output_dir=...")
        if dist.is_main():
            (path / "checkpoints").mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, path / "config.yaml")
        dist.barrier()
        return path

    def _load_data(self) -> ImageDataset:
        """Rank 0 decodes (and caches) first; the others then read the cache."""
        cfg = self.cfg
        kw = dict(seed=cfg.seed, min_side=cfg.model.patch_size, progress=dist.is_main())
        ds = load_dataset(cfg.data, cfg.data.split, **kw) if dist.is_main() else None
        dist.barrier()
        return ds if ds is not None else load_dataset(cfg.data, cfg.data.split, **kw)

    # --- checkpoints -----------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, name: str = "last.pt") -> None:
        rng = [self._rng_state()]
        if dist.is_dist():
            rng = [None] * self.world
            torch.distributed.all_gather_object(rng, self._rng_state())
        if not dist.is_main():
            return
        ckpt.save_atomic({
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "total_steps": self.total_steps,
            "budget": self.cfg.train.max_minutes is not None,  # total_steps came from a wall-clock budget
            "world_size": self.world,
            "rng": rng,
            "method": self.cfg.method.name,
            "encoder": dict(self.method.encoder.arch),
            "config": config_to_dict(self.cfg),
            "vitssl_version": __version__,
        }, self.out / "checkpoints" / name)

    def _restore(self, path: Path) -> None:
        state = ckpt.load(path, map_location=self.device)
        if state.get("method") != self.cfg.method.name:
            raise CheckpointError(f"checkpoint '{path}' is from method {state.get('method')!r}, the config says "
                                  f"{self.cfg.method.name!r}")
        try:
            self.method.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint '{path}' does not fit this model: {str(e).splitlines()[0]}") from None
        self.scaler.load_state_dict(state["scaler"])
        if self.cfg.train.max_minutes is not None and state.get("budget"):  # a resumed budget run keeps its end
            self._fix_schedule(int(state["total_steps"]), final=True)
        elif state.get("total_steps") != self.total_steps:
            print(f"note: the schedule now spans {self.total_steps} steps (was {state.get('total_steps')})",
                  file=sys.stderr)
        self.step = int(state["step"])
        rng = state.get("rng") or []
        if len(rng) == self.world:
            torch.set_rng_state(rng[self.rank]["cpu"].cpu())
            if "cuda" in rng[self.rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng[self.rank]["cuda"].cpu(), self.device)
        else:
            print(f"note: the run had {len(rng)} processes, now {self.world}: random streams start afresh",
                  file=sys.stderr)

    # --- one step --------------------------------------------------------------------------------
    def _autocast(self):
        dtype = DTYPES[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        accum = self.cfg.train.accum_steps
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, torch.Tensor] = {}
        for i, (x, y) in enumerate(zip(images.chunk(accum), labels.chunk(accum))):
            sync = contextlib.nullcontext() if (i == accum - 1 or self.world == 1) else self.model.no_sync()
            with sync:
                with self._autocast():
                    out = self.model(x, y)
                self.scaler.scale(out["loss"] / accum).backward()
            for k, v in out.items():
                logs[k] = logs.get(k, 0.0) + v.detach().float() / accum
        if self.cfg.optim.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            logs["grad_norm"] = clip_gradients(self.trainable, self.cfg.optim.clip_grad, self.cfg.optim.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return logs

    def _fix_schedule(self, total: int, final: bool) -> None:
        """Make the schedules span `total` steps (a wall-clock budget's worth); `final` freezes them."""
        self.total_steps = min(self.epoch_total, max(total, self.step + 1))
        self.stop_at = min(self.step_cap, self.total_steps)
        self.warmup_steps = min(self.cfg_warmup, self.total_steps // 10)
        self.budget_set = final

    def _budget_steps(self, started: float, timed_from: float, timed_steps: int) -> int:
        """Steps that fit train.max_minutes at the mean time per step so far, hooks included (agreed by all
        ranks). Re-timed through the run, so the schedule's end moves with the machine's real speed."""
        per_step = (time.perf_counter() - timed_from) / timed_steps
        left = self.cfg.train.max_minutes * 60 - (time.perf_counter() - started)
        fit = self.step + int(0.98 * left / per_step)  # 2 %: epoch-end checkpoints and pictures
        return int(dist.broadcast_object(fit))

    # --- the loop --------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg, main = self.cfg, dist.is_main()
        if self.step >= self.stop_at:
            msg = (f"the run in '{self.out}' already reached step {self.step} of {self.stop_at}; "
                   "pass train.max_steps=N or train.epochs=N to train further")
            if main:
                print(msg, file=sys.stderr)
            return {"step": self.step, "output_dir": str(self.out), "message": msg}
        logger = RunLogger(self.out, tensorboard=cfg.log.tensorboard,
                           resume_step=self.step if self.resume else None) if main else None
        picture_batch = single_batch(self.dataset, 8, self.device, seed=cfg.seed) if main and cfg.log.images_every else None
        bar = tqdm(total=self.stop_at, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr,
                   disable=not (main and cfg.log.progress), desc=f"{cfg.method.name} pre-training")
        sums: dict[str, torch.Tensor] = {}
        n_logged, t_log, t_ckpt, t0 = 0, time.perf_counter(), time.perf_counter(), time.perf_counter()
        start_step = self.step
        batch_images = cfg.train.batch_size
        stopped = False
        with StopRequest() as stop:
            while self.step < self.stop_at and not stopped:
                epoch = self.step // self.steps_per_epoch
                self.method.train()
                for images, labels in self.loader.epoch(epoch, start=self.step % self.steps_per_epoch):
                    lr = warmup_cosine(self.step, self.total_steps, self.warmup_steps, self.peak_lr, cfg.optim.min_lr)
                    wd = cosine(self.step, self.total_steps, cfg.optim.weight_decay, cfg.optim.weight_decay_end)
                    set_hyperparams(self.optimizer, lr, wd)
                    logs = self.train_step(images, labels)
                    self.step += 1
                    timed = self.step - start_step - 1  # steps since the first (warm-up, allocation), untimed
                    if not self.budget_set and timed == 0:
                        t_timed = time.perf_counter()
                    elif not self.budget_set and timed >= 5 and timed % 10 == 5:
                        self._fix_schedule(self._budget_steps(t0, t_timed, timed), final=False)
                        bar.total = self.stop_at
                        bar.refresh()
                    extra = self.method.after_step(self.step, self.total_steps)
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n_logged += 1
                    bar.update(1)
                    if self.step % cfg.log.every_steps == 0 or self.step == self.stop_at:
                        means = {k: dist.all_reduce_mean(v / n_logged).item() for k, v in sums.items()}
                        now = time.perf_counter()
                        rate = n_logged * batch_images / (now - t_log)
                        if not all(map(lambda v: v == v and abs(v) != float("inf"), means.values())):
                            raise VitsslError(f"the loss became {means.get('loss')} at step {self.step}; lower "
                                              "optim.base_lr or use train.precision=fp32, then resume from the "
                                              f"last checkpoint in '{self.out / 'checkpoints'}'")
                        if main:
                            logger.log(self.step, {"epoch": round(self.step / self.steps_per_epoch, 4), **means,
                                                   "lr": lr, "weight_decay": wd, **extra, "images_per_s": rate})
                            bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
                        sums, n_logged, t_log = {}, 0, now
                    end_of_epoch = self.step % self.steps_per_epoch == 0
                    if end_of_epoch:
                        self._end_of_epoch(self.step // self.steps_per_epoch, logger, picture_batch)
                        t_ckpt = time.perf_counter()
                    elif time.perf_counter() - t_ckpt > cfg.log.checkpoint_minutes * 60:
                        self.save()
                        t_ckpt = time.perf_counter()
                    stopped = dist.any_process(stop.requested, self.device)
                    if self.step >= self.stop_at or stopped:
                        break
        bar.close()
        if self.step % self.steps_per_epoch:  # the epoch hook saved already otherwise
            self.save()
        elapsed = time.perf_counter() - t0
        summary = {"method": cfg.method.name, "output_dir": str(self.out), "step": self.step,
                   "total_steps": self.total_steps, "epoch": self.step / self.steps_per_epoch,
                   "stopped_early": stopped, "seconds": round(elapsed, 2),
                   "images_per_s": round((self.step - start_step) * batch_images / max(elapsed, 1e-9), 2),
                   "processes": self.world, "device": str(self.device), "precision": self.precision,
                   "host_memory": self.host_memory,
                   "dataset": {"name": self.dataset.name, "images": len(self.dataset)}}
        if main:
            if picture_batch is not None:
                self._pictures(picture_batch, logger, final=True)
            logger.close()
            plot_metrics(self.out / "metrics.jsonl", self.out / "loss.png")
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if stopped:
                print(f"stopped at step {self.step}; continue with: vitssl pretrain --resume {self.out}",
                      file=sys.stderr)
        dist.barrier()
        return summary

    def _end_of_epoch(self, epoch: int, logger: Optional[RunLogger], picture_batch) -> None:
        log = self.cfg.log
        self.save()
        if log.checkpoint_every and epoch % log.checkpoint_every == 0 and dist.is_main():
            import shutil

            shutil.copyfile(self.out / "checkpoints" / "last.pt", self.out / "checkpoints" / f"epoch_{epoch:04d}.pt")
        if picture_batch is not None and log.images_every and epoch % log.images_every == 0:
            self._pictures(picture_batch, logger, epoch=epoch)
        if log.knn_every and epoch % log.knn_every == 0:
            if self.monitor is not None:
                with self._autocast():
                    values = self.monitor(self.method.encoder, self.device)
                logger.log(self.step, {"epoch": epoch, **values})
            dist.barrier()

    @torch.no_grad()
    def _pictures(self, images: torch.Tensor, logger: Optional[RunLogger], epoch: int = 0, final: bool = False):
        """Same images and same corruption every time (a forked RNG), so pictures compare across epochs."""
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.method.training
        self.method.eval()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed)
            with self._autocast():
                rows = self.method.pictures(images)
        self.method.train(was_training)
        name = "final.png" if final else f"epoch_{epoch:04d}.png"
        path = self.out / "images" / name
        save_grid(rows, path)
        if logger is not None:
            logger.image("pictures", path, self.step)


def pretrain(cfg: Config, *, resume: bool = False) -> dict:
    """Run (or resume) pre-training; returns the run summary."""
    trainer = Trainer(cfg, resume=resume)
    try:
        return trainer.fit()
    finally:
        dist.shutdown()
