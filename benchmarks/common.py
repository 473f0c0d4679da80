"""Shared by the benchmarks: machine description, timing, and writing results as JSON + Markdown."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from vitssl.data.synthetic import make_synthetic
from vitssl.distributed import resolve_device
from vitssl.errors import ConfigError
from vitssl.machine import describe

RESULTS = Path(os.environ.get("VITSSL_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")  # tests redirect it


def device(name: str) -> str:
    """argparse type of --device: 'cpu', 'cuda' or 'auto'; asking for CUDA where there is none is a usage
    error that says so, before any work starts."""
    try:
        return resolve_device(name, key="--device")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def machine() -> dict:
    return describe()


def timeit(fn, *, warmup: int = 1, repeat: int = 3, sync=None) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write(name: str, rows: list[dict], columns: list[str], command: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "command": command, "machine": machine(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown_table(rows, columns)
    m = payload["machine"]
    (RESULTS / f"{name}.md").write_text(f"# {name}\n\n`{command}`\n\n{m['cpu']}, {m['cores']} cores, torch "
                                        f"{m['torch']}, {m['date']}\n\n{table}\n")
    print(table)


def run_rows(script: str, plan: list[tuple[str, str, str]], data: str, rounds: int) -> dict[str, list[dict]]:
    """Every row of `plan` (kind, host allocator setting, name), `rounds` times, interleaved, each in a
    fresh process (so that no row inherits another's heap): `script` again with this process's
    arguments and `--row kind --data data`, which prints its result as a JSON line. name -> results."""
    results = {name: [] for _, _, name in plan}
    for _ in range(rounds):
        for kind, allocator, name in plan:
            env = {**os.environ, "VITSSL_HOST_ALLOCATOR": allocator}
            out = subprocess.run([sys.executable, script, *sys.argv[1:], "--row", kind, "--data", data],
                                 env=env, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"row {name!r} failed:\n{out.stderr[-3000:]}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{name}: {results[name][-1]}", flush=True)
    return results


def write_jpegs(folder: Path, n: int, store: int) -> list[str]:
    """n synthetic images as JPEG files in class folders (what a user's folder looks like)."""
    images, labels = make_synthetic(n, store, seed=0)
    paths = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = folder / "train" / f"class{int(lab)}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:05d}.jpg"
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(p, quality=90)
        paths.append(str(p))
    return paths


def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def count_flops(fn) -> int:
    """FLOPs of the matrix multiplies, convolutions and attention calls that `fn()` runs, from their
    shapes (PyTorch's counter, taught the CPU flash-attention kernels it does not know)."""
    aten = torch.ops.aten
    counter = FlopCounterMode(display=False, custom_mapping={
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward})
    with counter:
        fn()
    return counter.get_total_flops()
