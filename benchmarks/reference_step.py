"""Reference training step side by side (issue 5): the public SiT code's full step vs vitssl's.

Same model (vitssl's SiT, `--config`), same JPEG folder, same batch size; each row times whole
steps including the wait for data:
1. reference: batches from PIL DataLoader workers + NumPy GMML in the collate, explicit attention,
   per-parameter AdamW, clipping and teacher EMA (`benchmarks/reference/`, never used by vitssl);
2. the reference's batches, vitssl's step (fused attention, fused AdamW, one `foreach` EMA) - how
   much of the gain is the step itself;
3. vitssl: images decoded once into a uint8 tensor, augmentation + GMML batched inside the step,
   with glibc's default malloc, then (on CPU) with freed memory kept for reuse, as vitssl's trainer
   runs (`vitssl.hostmem`);
4. (with --compile) the same with the transformer blocks compiled, as `train.compile=true`;
5. (on CPU) the reference again, in the same tuned process: how much of the gain is the allocator.

python benchmarks/reference_step.py [--config sit_cifar10] [--batch 128] [--steps 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write, write_jpegs  # noqa: E402
from reference.sit_data import ReferenceImages, make_collate  # noqa: E402
from reference.sit_step import explicit_attention, reference_optimizer, reference_step  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.data.dataset import load_dataset  # noqa: E402
from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods import registry  # noqa: E402
from vitssl.training.optim import build_optimizer  # noqa: E402


def timed(step, batches, steps: int, sync) -> float:
    """Seconds per step over `steps` steps after one warm-up step, data wait included."""
    it = iter(batches)
    step(next(it), 0)
    sync()
    t = time.perf_counter()
    for i in range(steps):
        step(next(it), i + 1)
    sync()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="sit_cifar10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="add a row with the blocks compiled (train.compile)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="vitssl's rows (the reference: fp32)")
    ap.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (2 = the cores here)")
    a = ap.parse_args()
    images = a.batch * (a.steps + 2)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VITSSL_CACHE"] = str(Path(tmp) / "cache")
        cfg = load_config(a.config, [f"data.root={tmp}/data", "data.num_workers=2"])
        size, total = cfg.data.image_size, 1000
        paths = write_jpegs(Path(tmp) / "data", images, cfg.data.resolved_store_size)

        def fresh():
            torch.manual_seed(0)
            return registry.get(cfg.method.name).build(cfg).to(dev).train()

        def reference_batches():
            loader = DataLoader(ReferenceImages(paths, size), batch_size=a.batch, shuffle=True,
                                num_workers=a.workers, collate_fn=make_collate(cfg.method.max_frac), drop_last=True,
                                pin_memory=dev.type == "cuda")
            return ([t.to(dev, non_blocking=True) for t in batch] for batch in loader)

        rows = []
        method = fresh()
        opt = reference_optimizer(method, cfg.optim)
        with explicit_attention():
            ref = timed(lambda b, i: reference_step(method, opt, b, cfg.optim.clip_grad, i, total),
                        reference_batches(), a.steps, sync)
        rows.append(("reference: PIL workers + NumPy GMML, explicit attention, per-parameter AdamW and EMA", ref))

        method = fresh()
        opt = build_optimizer(method, cfg.optim, dev)

        def our_update(loss, i):
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in method.parameters() if p.requires_grad], cfg.optim.clip_grad)
            opt.step()
            method.after_step(i, total)

        def mixed(batch, i):
            opt.zero_grad(set_to_none=True)
            v1, v2, c1, c2, m1, m2 = batch
            with autocast:
                loss = method.losses([v1, v2], [c1, c2], [m1, m2])["loss"]
            our_update(loss, i)

        rows.append(("reference batches, vitssl step (SDPA, fused AdamW, foreach EMA)",
                     timed(mixed, reference_batches(), a.steps, sync)))

        method = fresh()
        opt = build_optimizer(method, cfg.optim, dev)
        t = time.perf_counter()
        ds = load_dataset(cfg.data, "train", progress=False)
        decode = time.perf_counter() - t
        resident = ds.images.to(dev)  # as the loader: uint8, on the GPU where there is one
        perm = torch.randperm(len(ds), device=dev).view(-1, a.batch)

        def ours(idx, i):
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = method(resident.index_select(0, idx))["loss"]
            our_update(loss, i)

        name = "vitssl: uint8 in memory, batched augment + GMML in the step, vitssl step"
        if dev.type == "cpu":
            rows.append((name + ", default malloc", timed(ours, perm, a.steps, sync)))
            keep_freed_memory()  # as vitssl's trainer does on CPU
            name += ", freed memory kept (as the trainer)"
        rows.append((name, timed(ours, perm, a.steps, sync)))
        if a.compile:
            for m in method.modules():  # as train.compile=true: block by block
                if getattr(m, "compile_unit", False):
                    m.compile()
            rows.append(("vitssl as above, train.compile=true", timed(ours, perm, a.steps, sync)))
        if dev.type == "cpu":
            method = fresh()
            opt = reference_optimizer(method, cfg.optim)
            with explicit_attention():
                rows.append(("reference as row 1, with freed memory kept (vitssl.hostmem)",
                             timed(lambda b, i: reference_step(method, opt, b, cfg.optim.clip_grad, i, total),
                                   reference_batches(), a.steps, sync)))
    fp32 = ("reference:", "reference as")  # the reference's own steps
    out = [{"pipeline": name, "config": a.config, "device": a.device,
            "precision": "fp32" if name.startswith(fp32) else a.precision, "batch": a.batch, "s_per_step": round(sec, 3),
            "images_per_s": round(a.batch / sec, 1), "ratio": round(ref / sec, 2)} for name, sec in rows]
    for r in out:
        print(r)
    print(f"vitssl's one-time decode of {len(ds)} images into the cache: {decode:.1f} s (once per dataset)")
    write(f"reference_step_{dev.type}", out, ["pipeline", "precision", "batch", "s_per_step", "images_per_s", "ratio"],
          "python benchmarks/reference_step.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    np.random.seed(0)
    main()
