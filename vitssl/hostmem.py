"""Let large CPU tensors reuse freed heap memory instead of fresh pages from the kernel.

glibc serves every allocation above its mmap threshold (adaptive, at most 32 MiB) with new mmap'd
pages and gives them back on free, so on a CPU each large activation of every step pays a page
fault per 4 KiB and the kernel zeroes it. A SiT run on CIFAR-10 (ViT-T/4, batch 128, 2 cores) went
from 11.4 to 14.0 images/s with these thresholds raised (2026-11-23, `benchmarks/RESULTS.md`).
Peak memory is unchanged; freed memory stays in the process for reuse.

Process-wide and glibc-only: elsewhere (macOS, musl, Windows) it does nothing. It runs once, when a
CPU pre-training or evaluation run starts (a pre-training run's summary.json records it as
`host_memory`); set VITSSL_HOST_ALLOCATOR=default to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB of free heap is kept


def keep_freed_memory(device: torch.device | str = "cpu") -> bool:
    """For a run on `device`: raise glibc's mmap and trim thresholds once per process if it is the
    CPU; True when they are in effect. Other devices keep their tensors off the host heap."""
    return torch.device(device).type == "cpu" and _tune()


@lru_cache(maxsize=None)
def _tune() -> bool:
    if os.environ.get("VITSSL_HOST_ALLOCATOR", "").lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
