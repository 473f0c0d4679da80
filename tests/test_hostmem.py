"""The host-allocator setting: freed large tensors are reused without new page faults."""

import json
import os
import platform
import statistics
import subprocess
import sys

import pytest

PROBE = """
import json, resource, torch
from vitssl.hostmem import keep_freed_memory
tuned = keep_freed_memory()
x = torch.rand(16, 1024, 1024)  # 64 MiB, above glibc's largest adaptive mmap threshold
faults = []
for _ in range(24):  # a step's worth of temporaries, freed at its end
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x * 2
    z = y + 1
    (z * y).sum()
    del y, z
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"tuned": tuned, "faults": faults}))
"""


def _probe(setting: str) -> dict:
    env = {**os.environ, "VITSSL_HOST_ALLOCATOR": setting}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    pages = 64 * 1024 * 1024 // 4096
    default, tuned = _probe("default"), _probe("")
    assert not default["tuned"] and tuned["tuned"]
    assert min(default["faults"]) > 2 * pages  # every step faults its three temporaries' pages in again
    # With the setting, the heap grows to a high-water mark and the freed blocks are reused. Where the
    # small allocations between the large blocks fall decides how many steps that takes (runs here
    # reached 9 blocks by step 6; a CI run grew by one block at step 16), so judge the whole run: far
    # fewer pages than the default faults in, and most steps none at all.
    assert sum(tuned["faults"]) < sum(default["faults"]) / 3
    assert statistics.median(tuned["faults"]) == 0


def test_only_cpu_runs_touch_the_host_allocator():
    from vitssl.hostmem import keep_freed_memory

    assert keep_freed_memory("cuda") is False and keep_freed_memory("meta") is False
