"""Pre-training throughput, memory and model FLOP utilisation (MFU) of a full training step:
augmentation, corruption or segmentation, forward, backward, clipping, AdamW and teacher EMA, on a
fixed uint8 batch already on the device.

FLOPs are counted from the shapes of every matrix multiply, convolution and attention call of one
step (forward and backward, `common.count_flops`), so heads and decoders count too; MFU is
FLOPs / step time / the measured peak of a plain matrix multiply of the same dtype on the same
machine. Peak memory: CUDA's allocator peak; on CPU each row runs in its own process and reports
the growth of its peak resident memory over the step (activations, gradients, optimiser state).
Each setting is one encoder; every method runs on it with its own shipped config (RandSAC: square
16 -> 4 where the grid allows it, hierarchical blobs 11 -> 5 at 224 px, whose 14x14 grid does not;
MAE at 224: the paper's 8 x 512 decoder). "supervised" is the plain step for comparison: the
encoder and a linear classifier on the un-augmented batch.

python benchmarks/pretrain_throughput.py [--device cpu] [--methods sit gmml randsac mae mocov3 dino supervised] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_flops, device, timeit, write  # noqa: E402

from vitssl.config import load_config  # noqa: E402
from vitssl.engine.optim import build_optimizer, clip_gradients  # noqa: E402
from vitssl.hostmem import keep_freed_memory  # noqa: E402
from vitssl.methods import registry  # noqa: E402
from vitssl.models.vit import encoder_from_config  # noqa: E402

MAE_224 = ["model.arch=vit_small", "model.patch_size=16", "data.image_size=224", "method.decoder_dim=512",
           "method.decoder_depth=8", "method.decoder_heads=16"]
SETTINGS = [  # name, batch, {method: (config, overrides)}
    ("ViT-T/4 @ 32", 128, {"sit": ("sit_cifar10", []), "gmml": ("gmml_cifar10", []),
                           "randsac": ("randsac_cifar10", []), "mae": ("mae_cifar10", []),
                           "mocov3": ("mocov3_cifar10", []), "dino": ("dino_cifar10", []),
                           "supervised": ("gmml_cifar10", [])}),
    ("ViT-S/16 @ 192", 32, {"randsac": ("randsac/square_192", [])}),
    ("ViT-S/16 @ 224", 32, {"sit": ("sit_224", []), "gmml": ("sit_224", ["method.name=gmml"]),
                            "randsac": ("randsac_224", []), "mae": ("mae_cifar10", MAE_224),
                            "mocov3": ("mocov3_224", []), "dino": ("dino_224", []), "supervised": ("sit_224", [])}),
]


def variant(cfg, method_name: str) -> str:
    m = cfg.method
    if method_name == "supervised":
        return "supervised (encoder + linear head)"
    if m.name != "randsac":
        return m.name
    if m.segments == "square":
        n = (cfg.data.image_size // cfg.model.patch_size // m.square_size) ** 2
        parts = f" -> {(cfg.data.image_size // cfg.model.patch_size // m.partition_size) ** 2}" if m.partition_size else ""
        return f"randsac square {n}{parts}"
    return f"randsac blob {m.blobs}" + (f" -> {m.blob_partitions}" if m.blob_partitions else "")


class Supervised(torch.nn.Module):
    """The plain training step: normalised images -> encoder -> linear head -> cross-entropy."""

    def __init__(self, encoder, classes: int = 10):
        super().__init__()
        self.encoder, self.head = encoder, torch.nn.Linear(encoder.embed_dim, classes)

    def no_weight_decay(self) -> set[str]:
        return set()  # the loop's rule alone, as for SiT

    def forward(self, images):
        x = images.float().div(255)
        logits = self.head(self.encoder.forward_features(x)[:, 0])
        return {"loss": F.cross_entropy(logits, torch.zeros(len(x), dtype=torch.long, device=x.device))}

    def after_step(self, step, total):
        return {}


def step_fn(method, opt, images, precision, clip, mode="per_param"):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            loss = method(images)["loss"]
        loss.backward()
        if clip:
            clip_gradients([p for p in method.parameters() if p.requires_grad], clip, mode)
        opt.step()
        method.after_step(1, 1000)

    return step


def matmul_peak(dev: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of the best of a few large square matrix multiplies."""
    n = 4096 if dev.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    sec = min(timeit(lambda: a @ b, warmup=2, repeat=5, sync=sync) for _ in range(2))
    return 2 * n ** 3 / sec


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def run_row(setting: str, method_name: str, dev: torch.device, precision: str, repeat: int, compile: bool) -> dict:
    name, batch, configs = next(s for s in SETTINGS if s[0] == setting)
    config, extra = configs[method_name]
    cfg = load_config(config, extra)
    keep_freed_memory(dev)  # as the trainer does on CPU
    torch.manual_seed(0)
    if method_name == "supervised":
        method = Supervised(encoder_from_config(cfg.model, cfg.data.image_size)).to(dev).train()
    else:
        method = registry.get(method_name).build(cfg).to(dev).train()
    opt = build_optimizer(method, cfg.optim, dev, exempt=method.no_weight_decay())
    size = cfg.data.resolved_store_size if method_name != "supervised" else cfg.data.image_size
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
    step = step_fn(method, opt, images, precision, cfg.optim.clip_grad, cfg.optim.clip_mode)
    base = rss_bytes()  # model and batch; what the steps add on top is the step's memory
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    flops = count_flops(step)  # eager, before any compilation
    if compile:  # as `train.compile`: block by block
        for m in method.modules():
            if getattr(m, "compile_unit", False):
                m.compile()
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    sec = timeit(step, warmup=1, repeat=repeat, sync=sync)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"setting": name, "method": variant(cfg, method_name), "batch": batch, "precision": precision,
            "compiled": compile, "device": str(dev), "s_per_step": round(sec, 3), "images_per_s": round(batch / sec, 1),
            "gflop_per_step": round(flops / 1e9, 1), "achieved_gflops": round(flops / sec / 1e9, 1),
            "step_memory_mib": round(peak / 2 ** 20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", type=device, choices=["cpu", "cuda"])
    ap.add_argument("--methods", nargs="+", default=["sit", "gmml", "randsac", "mae", "mocov3", "dino", "supervised"])
    ap.add_argument("--settings", nargs="+", default=[s[0] for s in SETTINGS], help="names as in SETTINGS")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks (train.compile)")
    ap.add_argument("--row", nargs=2, metavar=("SETTING", "METHOD"), help=argparse.SUPPRESS)  # one row, as JSON
    args = ap.parse_args()
    dev = torch.device(args.device)
    if args.row:
        print(json.dumps(run_row(*args.row, dev, args.precision, args.repeat, args.compile)))
        return
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision, torch.float32)
    peak = matmul_peak(dev, dtype)
    print(f"matmul peak ({dtype}): {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for name, _, configs in SETTINGS:
        for method_name in args.methods:
            if name not in args.settings or method_name not in configs:
                continue
            cmd = [sys.executable, __file__, "--device", args.device, "--precision", args.precision,
                   "--repeat", str(args.repeat), "--row", name, method_name] + (["--compile"] if args.compile else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{name} / {method_name} failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["mfu_pct"] = round(100 * row["achieved_gflops"] * 1e9 / peak, 1)
            row["matmul_peak_gflops"] = round(peak / 1e9)
            rows.append(row)
            print(row, flush=True)
    write(f"pretrain_throughput_{dev.type}_{args.precision}" + ("_compiled" if args.compile else ""), rows,
          ["setting", "method", "batch", "s_per_step", "images_per_s", "gflop_per_step", "achieved_gflops",
           "mfu_pct", "step_memory_mib"],
          "python benchmarks/pretrain_throughput.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
