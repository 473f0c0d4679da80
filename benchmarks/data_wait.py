"""Does the training step wait for data? (issue 5)

Times the same training steps twice: fed by vitssl's loader (a fresh shuffled batch of the real
dataset every step: resident uint8 on CUDA, an index into the in-memory cache on CPU) and fed one
fixed batch already on the device. A ratio near 1 means the step never waits for its images; the
target is <= 1.05.

python benchmarks/data_wait.py [--config gmml_cifar10] [--root ../shared/data/cifar10] [--device cpu] [--steps 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, write  # noqa: E402
from pretrain_throughput import step_fn  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.data.dataset import load_dataset  # noqa: E402
from vitssl.data.loader import BatchLoader  # noqa: E402
from vitssl.engine.optim import build_optimizer  # noqa: E402
from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods import registry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="gmml_cifar10")
    ap.add_argument("--root", default="../shared/data/cifar10", help="dataset root; 'synthetic' needs nothing")
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    dev = torch.device(a.device)
    keep_freed_memory(dev)  # as the trainer does on CPU
    cfg = load_config(a.config, [f"data.root={a.root}", f"train.batch_size={a.batch}"])
    ds = load_dataset(cfg.data, "train", progress=False)
    loader = BatchLoader(ds, batch_size=a.batch, device=dev, num_workers=cfg.data.num_workers)
    torch.manual_seed(0)
    method = registry.get(cfg.method.name).build(cfg).to(dev).train()
    opt = build_optimizer(method, cfg.optim, dev, exempt=method.no_weight_decay())
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    fixed = next(iter(loader))[0]

    def median_step(next_batch) -> float:
        """Median seconds of `steps` steps, fetching the batch inside the timed region; warm-up dropped."""
        times = []
        for _ in range(a.steps + 1):
            sync()
            t = time.perf_counter()
            step_fn(method, opt, next_batch(), a.precision, cfg.optim.clip_grad, cfg.optim.clip_mode)()
            sync()
            times.append(time.perf_counter() - t)
        return sorted(times[1:])[a.steps // 2]

    t_fixed = median_step(lambda: fixed)
    batches = loader.epoch(1)
    t_real = median_step(lambda: next(batches)[0])
    rows = [{"config": a.config, "data": ds.name, "device": str(dev), "precision": a.precision, "batch": a.batch,
             "s_per_step_fixed_batch": round(t_fixed, 4), "s_per_step_real_data": round(t_real, 4),
             "ratio": round(t_real / t_fixed, 3)}]
    print(rows[0])
    write(f"data_wait_{dev.type}", rows, list(rows[0]), "python benchmarks/data_wait.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
