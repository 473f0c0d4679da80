"""The one training loop. Pre-training and fine-tuning run on it; a `Job` says what is trained.

The loop owns everything a task should not care about: devices and processes, the run folder and
its lock, data order, the optimiser and its schedules, mixed precision, accumulation, clipping, a
wall-clock budget, checkpoints and exact resume, Ctrl-C / SIGTERM saves, divergence checks, logs,
pictures and progress. A task is an nn.Module whose `forward(images, labels)` returns
{'loss': scalar, other logged scalars}; it may have `after_step(step, total)` and `pictures(images)`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import torch
import torch.distributed
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from vitssl import __version__
from vitssl import distributed as dist
from vitssl.data.dataset import ImageDataset
from vitssl.data.loader import BatchLoader, single_batch
from vitssl.engine import checkpoint as ckpt
from vitssl.engine import runlock
from vitssl.engine.job import Job
from vitssl.engine.logger import RunLogger
from vitssl.engine.optim import (
    build_optimizer,
    clip_gradients,
    fused_ok,
    set_hyperparams,
)
from vitssl.engine.pictures import save_grid
from vitssl.engine.plots import plot_metrics
from vitssl.engine.schedules import cosine, warmup_cosine
from vitssl.errors import CheckpointError, ConfigError, VitsslError, first_line
from vitssl.hostmem import keep_freed_memory

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LOG_SECONDS = 30.0  # a metric row (and the bar's figures) at least this often, however slow the steps


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


class Diverged(Exception):
    """The loss, a gradient or a weight stopped being finite at `step`."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


class Loop:
    def __init__(self, job: Job, *, resume: bool = False):
        self.job, self.resume = job, resume
        self.device = dist.init(dist.resolve_device(job.device))
        self.host_memory = "kept" if keep_freed_memory(self.device) else "default"
        self.rank, self.world = dist.rank(), dist.world_size()
        self.precision = resolve_precision(job.train.precision, self.device.type)
        self.lock: Optional[Path] = None
        # training seconds before this run (a resumed run adds its own); None: its checkpoint did not say
        self.seconds_before: Optional[float] = 0.0
        self.t_run: Optional[float] = None  # when this run's fit began
        self.out, created = self._output_dir()
        try:
            self._build(resume)
        except BaseException:  # nothing half-made is left behind: the lock goes, a folder this run made goes
            self.close(remove_if_empty=created)
            raise
        if dist.is_main():  # only now: a failed start or resume leaves the run's config.yaml as it was
            job.save_config(self.out / "config.yaml")
        dist.barrier()

    def _build(self, resume: bool) -> None:
        job, tc = self.job, self.job.train
        torch.manual_seed(job.seed * 1000 + self.rank)
        if tc.batch_size % (self.world * tc.accum_steps):
            raise ConfigError(f"config key 'train.batch_size' ({tc.batch_size}) must be divisible by the number of "
                              f"processes x train.accum_steps ({self.world} x {tc.accum_steps})")
        self.dataset = self._load_data()
        self.loader = BatchLoader(self.dataset, batch_size=tc.batch_size // self.world, device=self.device,
                                  seed=job.seed, rank=self.rank, world=self.world, num_workers=job.data.num_workers,
                                  min_side=job.min_side, skip_bad=job.data.bad_images == "skip")
        self.steps_per_epoch = len(self.loader)
        self.total_steps = tc.epochs * self.steps_per_epoch
        self.stop_at = min(self.total_steps, tc.max_steps or self.total_steps)

        self.task = job.build(self.dataset).to(self.device)
        if tc.compile:
            for m in self.task.modules():  # block by block: small graphs, masks stay inputs
                if getattr(m, "compile_unit", False):
                    m.compile()
        self.model = self.task
        if self.world > 1:
            self.model = DDP(self.task, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                             broadcast_buffers=False)
        o = job.optim
        groups = job.param_groups(self.task)
        if groups is None:
            exempt = self.task.no_weight_decay() if hasattr(self.task, "no_weight_decay") else ()
            self.optimizer = build_optimizer(self.task, o, self.device, exempt=exempt)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=o.base_lr, betas=tuple(o.betas), eps=o.eps,
                                               weight_decay=o.weight_decay, fused=fused_ok(self.device))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.trainable = [p for p in self.task.parameters() if p.requires_grad]
        self.peak_lr = o.base_lr * tc.batch_size / 256
        self.warmup_steps = round(o.warmup_epochs * self.steps_per_epoch)
        self.epoch_total, self.step_cap, self.cfg_warmup = self.total_steps, self.stop_at, self.warmup_steps
        self.budget_fixed = tc.max_minutes is None  # else: total_steps is re-timed every 10 steps
        self.step = 0
        self.bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.saved_step: Optional[int] = None  # the step of the last checkpoint written (or resumed from)
        if resume:
            self._restore(self.out / "checkpoints" / "last.pt")
        job.ready(self)

    # --- set-up ----------------------------------------------------------------------------------
    def _output_dir(self) -> tuple[Path, bool]:
        """The run folder, created and locked by rank 0; returns (path, whether this run created it)."""
        out = self.job.output_dir
        if out is None:
            out = dist.broadcast_object(self.job.default_output_dir())
            self.job.output_dir = out
        path = Path(out)
        created = not path.exists()
        if dist.is_main():
            try:
                (path / "checkpoints").mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise VitsslError(f"cannot create output_dir '{path}': {e.strerror or first_line(e)}; choose "
                                  "another output_dir=...") from None
            try:
                self.lock = runlock.acquire(path)
            except PermissionError as e:
                raise VitsslError(f"cannot write in output_dir '{path}': {e.strerror}; choose another "
                                  "output_dir=...") from None
            if not self.resume and (path / "checkpoints" / "last.pt").exists():
                runlock.release(self.lock)
                raise VitsslError(f"output_dir '{path}' already holds a run; continue it with "
                                  f"`{self.job.resume_command(path)}` or choose another output_dir=...")
        dist.barrier()
        return path, created

    def close(self, remove_if_empty: bool = False) -> None:
        """Release the run folder (and remove it when this run made it and left nothing in it)."""
        runlock.release(self.lock)
        self.lock = None
        if remove_if_empty and dist.is_main():
            for sub in (self.out / "checkpoints", self.out):
                try:
                    sub.rmdir()  # only empty folders go
                except OSError:
                    pass

    def _load_data(self) -> ImageDataset:
        """Rank 0 decodes (and caches) first; the others then read the cache."""
        ds = self.job.load_data() if dist.is_main() else None
        dist.barrier()
        return ds if ds is not None else self.job.load_data()

    # --- checkpoints -----------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, name: str = "last.pt") -> None:
        """Write a checkpoint atomically; never one whose weights are not finite (Diverged instead)."""
        self._check_finite(weights=True)
        rng = [self._rng_state()]
        if dist.is_dist():
            rng = [None] * self.world
            torch.distributed.all_gather_object(rng, self._rng_state())
        self.saved_step = self.step
        if not dist.is_main():
            return
        ckpt.save_atomic({
            "model": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "train_seconds": self._train_seconds(),
            "total_steps": self.total_steps,
            "budget": self.job.train.max_minutes is not None,  # total_steps came from a wall-clock budget
            "world_size": self.world,
            "rng": rng,
            "method": self.job.kind,
            **self.job.checkpoint_meta(self.task),
            "config": self.job.config_dict(),
            "vitssl_version": __version__,
        }, self.out / "checkpoints" / name)

    def _restore(self, path: Path) -> None:
        state = ckpt.load(path, map_location=self.device)
        if state.get("method") != self.job.kind:
            raise CheckpointError(f"checkpoint '{path}' is from {state.get('method')!r}, this run is "
                                  f"{self.job.kind!r}")
        try:
            self.task.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint '{path}' does not fit this model: {first_line(e)}") from None
        self.scaler.load_state_dict(state["scaler"])
        if self.job.train.max_minutes is not None and state.get("budget"):  # a resumed budget run keeps its end
            self._fix_schedule(int(state["total_steps"]), final=True)
        elif state.get("total_steps") != self.total_steps:
            print(f"note: the schedule now spans {self.total_steps} steps (was {state.get('total_steps')})",
                  file=sys.stderr)
        self.step = self.saved_step = int(state["step"])
        self.seconds_before = state.get("train_seconds")
        rng = state.get("rng") or []
        if len(rng) == self.world:
            torch.set_rng_state(rng[self.rank]["cpu"].cpu())
            if "cuda" in rng[self.rank] and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng[self.rank]["cuda"].cpu(), self.device)
        else:
            print(f"note: the run had {len(rng)} processes, now {self.world}: random streams start afresh",
                  file=sys.stderr)

    # --- one step --------------------------------------------------------------------------------
    def autocast(self):
        dtype = DTYPES[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        accum = self.job.train.accum_steps
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, torch.Tensor] = {}
        for i, (x, y) in enumerate(zip(images.chunk(accum), labels.chunk(accum))):
            sync = contextlib.nullcontext() if (i == accum - 1 or self.world == 1) else self.model.no_sync()
            with sync:
                with self.autocast():
                    out = self.model(x, y)
                self.scaler.scale(out["loss"] / accum).backward()
            for k, v in out.items():
                logs[k] = logs.get(k, 0.0) + v.detach().float() / accum
        o = self.job.optim
        if o.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            logs["grad_norm"] = clip_gradients(self.trainable, o.clip_grad, o.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        bad = ~torch.isfinite(logs["loss"])
        if "grad_norm" in logs and self.precision != "fp16":  # fp16: the scaler skips overflowing steps itself
            bad = bad | ~torch.isfinite(logs["grad_norm"])
        # the first step whose loss or gradient was not finite, kept on the device (no host sync per step)
        self.bad_step = torch.where(bad & (self.bad_step < 0), self.step + 1, self.bad_step)
        return logs

    def _check_finite(self, weights: bool = False) -> None:
        """Raise Diverged if a step's loss or gradient was not finite (or, with `weights`, if a weight is not)."""
        step = int(self.bad_step.item())
        if step < 0 and weights:
            norms = torch._foreach_norm([p.detach() for p in self.trainable])
            if not bool(torch.stack(norms).isfinite().all()):
                step = self.step
        if step >= 0:
            raise Diverged(step)

    def _fix_schedule(self, total: int, final: bool) -> None:
        """Make the schedules span `total` steps (a wall-clock budget's worth); `final` freezes them."""
        self.total_steps = min(self.epoch_total, max(total, self.step + 1))
        self.stop_at = min(self.step_cap, self.total_steps)
        self.warmup_steps = min(self.cfg_warmup, self.total_steps // 10)
        self.budget_fixed = final

    def _budget_steps(self, started: float, timed_from: float, timed_steps: int) -> int:
        """Steps that fit train.max_minutes at the mean time per step so far, hooks included (agreed by all
        ranks). Re-timed through the run, so the schedule's end moves with the machine's real speed."""
        per_step = (time.perf_counter() - timed_from) / timed_steps
        left = self.job.train.max_minutes * 60 - (time.perf_counter() - started)
        fit = self.step + int(0.98 * left / per_step)  # 2 %: epoch-end checkpoints, evaluations and pictures
        return int(dist.broadcast_object(fit))

    def _retime(self, timed: int, started: float, timed_from: Optional[float], bar) -> Optional[float]:
        """Under a wall-clock budget: start the clock after the first step (allocation, warm-up), then fit
        the schedule to the budget every 10 steps from the sixth. `timed`: steps since the first. From
        the first step on, the bar shows the end the budget allows at the pace so far (the first step is
        the slowest: a safe first guess), so the bar and its ETA are about the budget from the start.
        Returns the clock's start."""
        if timed == 0:
            now = time.perf_counter()
            bar.total = min(self.stop_at, self._budget_steps(started, started, 1))  # shown only
            bar.refresh()
            return now
        if timed >= 5 and timed % 10 == 5:
            self._fix_schedule(self._budget_steps(started, timed_from, timed), final=False)
            bar.total = self.stop_at
            bar.refresh()
        elif timed < 5:  # the schedule waits for 5 timed steps; the bar shows the pace so far
            bar.total = min(self.stop_at, self._budget_steps(started, timed_from, timed))
            bar.refresh()
        return timed_from

    def _log_every(self, steps: int, seconds: float) -> int:
        """Steps between metric rows: log.every_steps, or fewer where that many would take over 30 s
        (agreed by all ranks: logging is a collective)."""
        fit = max(1, int(LOG_SECONDS * steps / max(seconds, 1e-9)))
        return int(dist.broadcast_object(min(self.job.log.every_steps, fit)))

    def hyperparams(self) -> tuple[float, float]:
        """(lr, weight decay) of the coming step: warm-up + cosine, and cosine."""
        o = self.job.optim
        lr = warmup_cosine(self.step, self.total_steps, self.warmup_steps, self.peak_lr, o.min_lr)
        return lr, cosine(self.step, self.total_steps, o.weight_decay, o.weight_decay_end)

    # --- the loop --------------------------------------------------------------------------------
    def fit(self) -> dict:
        job, log, main = self.job, self.job.log, dist.is_main()
        if self.step >= self.stop_at:
            msg = (f"the run in '{self.out}' already reached step {self.step} of {self.stop_at}; "
                   "pass train.max_steps=N or train.epochs=N to train further")
            if main:
                print(msg, file=sys.stderr)
            return {"step": self.step, "output_dir": str(self.out), "message": msg}
        logger = RunLogger(self.out, tensorboard=log.tensorboard,
                           resume_step=self.step if self.resume else None) if main else None
        draws = main and log.images_every and hasattr(self.task, "pictures")
        picture_batch = single_batch(self.dataset, 8, self.device, seed=job.seed) if draws else None
        # a wall-clock budget's end is unknown before the first step is timed (no total: no false ETA)
        bar = tqdm(total=self.stop_at if self.budget_fixed else None, initial=self.step, unit="step",
                   dynamic_ncols=True, file=sys.stderr, disable=not (main and log.progress), desc=job.desc)
        sums: dict[str, torch.Tensor] = {}
        n_logged, t_log, t_ckpt, t0 = 0, time.perf_counter(), time.perf_counter(), time.perf_counter()
        self.t_run = t0
        start_step, t_timed = self.step, None
        batch_images, log_every = job.train.batch_size, log.every_steps
        stopped, diverged = False, None
        per_step_check = self.device.type != "cuda"  # a host sync costs nothing on the CPU: check every step
        after_step = getattr(self.task, "after_step", None)
        try:
            with StopRequest() as stop:
                while self.step < self.stop_at and not stopped:
                    epoch = self.step // self.steps_per_epoch
                    self.task.train()
                    for images, labels in self.loader.epoch(epoch, start=self.step % self.steps_per_epoch):
                        lr, wd = self.hyperparams()
                        set_hyperparams(self.optimizer, lr, wd)
                        logs = self.train_step(images, labels)
                        self.step += 1
                        if not self.budget_fixed:
                            t_timed = self._retime(self.step - start_step - 1, t0, t_timed, bar)
                        extra = after_step(self.step, self.total_steps) if after_step is not None else {}
                        for k, v in logs.items():
                            sums[k] = sums.get(k, 0.0) + v
                        n_logged += 1
                        if per_step_check:
                            self._check_finite()
                        bar.update(1)
                        if self.step == start_step + 1:  # slow steps (large images on a CPU): log at least every 30 s
                            log_every = self._log_every(1, time.perf_counter() - t0)
                        if self.step % log_every == 0 or self.step == self.stop_at:
                            means = {k: dist.all_reduce_mean(v / n_logged).item() for k, v in sums.items()}
                            now = time.perf_counter()
                            rate = n_logged * batch_images / (now - t_log)
                            self._check_finite()
                            if main:
                                logger.log(self.step, {"epoch": round(self.step / self.steps_per_epoch, 4), **means,
                                                       "lr": lr, "weight_decay": wd, **extra, "images_per_s": rate})
                                bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
                            log_every = self._log_every(n_logged, now - t_log)
                            sums, n_logged, t_log = {}, 0, now
                        if self.step % self.steps_per_epoch == 0:
                            self._end_of_epoch(self.step // self.steps_per_epoch, logger, picture_batch)
                            t_ckpt = time.perf_counter()
                        elif time.perf_counter() - t_ckpt > log.checkpoint_minutes * 60:
                            self.save()
                            t_ckpt = time.perf_counter()
                        stopped = dist.any_process(stop.requested, self.device)
                        if self.step >= self.stop_at or stopped:
                            break
            if self.step % self.steps_per_epoch:  # the epoch hook saved already otherwise
                self.save()
        except Diverged as d:
            diverged = d.step
            if main and n_logged:  # the steps since the last row, as they ran (non-finite values as null)
                means = {k: dist.all_reduce_mean(v / n_logged).item() for k, v in sums.items()}
                logger.log(self.step, {"epoch": round(self.step / self.steps_per_epoch, 4), **means})
        bar.close()
        summary = self._summary(time.perf_counter() - t0, self.step - start_step, stopped)
        if diverged is not None:
            summary.update(diverged_at_step=diverged, last_checkpoint_step=self.saved_step)
        elif main and not stopped:
            job.finish(self, summary)
        if main:
            if picture_batch is not None and diverged is None:
                self._pictures(picture_batch, logger, final=True)
            logger.close()
            plot_metrics(self.out / "metrics.jsonl", self.out / "loss.png")
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if stopped:
                print(f"stopped at step {self.step}; continue with: {job.resume_command(self.out)}", file=sys.stderr)
        dist.barrier()
        if diverged is not None:
            raise VitsslError(self._divergence_advice(diverged))
        return summary

    def _train_seconds(self) -> Optional[float]:
        """Seconds of training to reach this step, over every run of it (a resumed run adds its own; steps
        redone after an interruption count once). None when an earlier run's checkpoint did not record it."""
        if self.seconds_before is None:
            return None
        return self.seconds_before + (time.perf_counter() - self.t_run if self.t_run is not None else 0.0)

    def _summary(self, elapsed: float, steps: int, stopped: bool) -> dict:
        """What summary.json says of every run: steps, time (all runs of it), speed (this run), where it ran,
        the data it read."""
        total = None if self.seconds_before is None else self.seconds_before + elapsed
        summary = {"method": self.job.kind, "output_dir": str(self.out), "step": self.step,
                   "total_steps": self.total_steps, "epoch": self.step / self.steps_per_epoch,
                   "stopped_early": stopped, "seconds": round(elapsed if total is None else total, 2),
                   "images_per_s": round(steps * self.job.train.batch_size / max(elapsed, 1e-9), 2),
                   "processes": self.world, "device": str(self.device), "precision": self.precision,
                   "host_memory": self.host_memory,
                   "dataset": {"name": self.dataset.name, "images": len(self.dataset)}}
        if self.step - steps > 0:  # resumed: this run made only the last steps
            summary.update(resumed_at_step=self.step - steps, seconds_this_run=round(elapsed, 2))
            if total is None:
                summary["seconds_partial"] = True  # the earlier runs' time is unknown: "seconds" is this run's
        skipped = list(self.dataset.skipped) + list(self.loader.bad.values())
        if skipped:  # unusable images left out (data.bad_images=skip), cached or streamed
            summary["skipped_images"] = {"count": len(skipped), "first": skipped[:5]}
        return summary

    def _divergence_advice(self, step: int) -> str:
        """What happened, what was kept, and a change that avoids the same failure on resume."""
        o = self.job.optim
        fixes = [f"optim.base_lr={o.base_lr / 4:.3g} (now {o.base_lr:g})"]
        if o.clip_grad == 0:
            fixes.append("optim.clip_grad=3.0 (now off)")
        if self.precision != "fp32":
            fixes.append(f"train.precision=fp32 (now {self.precision})")
        what = (f"the loss or a gradient became non-finite at step {step} (learning rate "
                f"{warmup_cosine(step - 1, self.total_steps, self.warmup_steps, self.peak_lr, o.min_lr):.3g}); "
                "no checkpoint with non-finite weights was written")
        if self.saved_step is not None:
            return (f"{what}: '{self.out / 'checkpoints' / 'last.pt'}' holds step {self.saved_step}. Continue from "
                    f"it with a change, e.g. `{self.job.resume_command(self.out)} {fixes[0]}`"
                    + (f" (or also {', '.join(fixes[1:])})" if fixes[1:] else ""))
        return (f"{what}, and none was saved before it. Start again with {' and '.join(fixes)} "
                f"(the metrics of the steps that ran are in '{self.out}')")

    def _end_of_epoch(self, epoch: int, logger: Optional[RunLogger], picture_batch) -> None:
        log = self.job.log
        self.save()
        if log.checkpoint_every and epoch % log.checkpoint_every == 0 and dist.is_main():
            shutil.copyfile(self.out / "checkpoints" / "last.pt", self.out / "checkpoints" / f"epoch_{epoch:04d}.pt")
        if picture_batch is not None and log.images_every and epoch % log.images_every == 0:
            self._pictures(picture_batch, logger, epoch=epoch)
        values = self.job.epoch_end(self, epoch)
        if values and logger is not None:
            logger.log(self.step, {"epoch": epoch, **values})
        dist.barrier()

    @torch.no_grad()
    def _pictures(self, images: torch.Tensor, logger: Optional[RunLogger], epoch: int = 0, final: bool = False):
        """Same images and same corruption every time (a forked RNG), so pictures compare across epochs."""
        devices = [self.device] if self.device.type == "cuda" else []
        was_training = self.task.training
        self.task.eval()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.job.seed)
            with self.autocast():
                rows = self.task.pictures(images)
        self.task.train(was_training)
        if not rows:  # a task may draw nothing
            return
        name = "final.png" if final else f"epoch_{epoch:04d}.png"
        path = self.out / "images" / name
        save_grid(rows, path)
        if logger is not None:
            logger.image("pictures", path, self.step)


def run(job: Job, *, resume: bool = False) -> dict:
    """Run (or resume) a job on the loop; returns its summary."""
    try:
        loop = Loop(job, resume=resume)
        try:
            return loop.fit()
        finally:
            loop.close()
    finally:
        dist.shutdown()
