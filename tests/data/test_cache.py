"""The disk cache: least-recently-used eviction under VITSSL_CACHE_MAX_GB, `vitssl cache list/clear`."""

from __future__ import annotations

import os
import time

from vitssl.cli.main import main
from vitssl.config import DataConfig
from vitssl.data import cache
from vitssl.data.dataset import load_dataset


def decoded(size: int):
    return load_dataset(DataConfig(image_size=size, synthetic_train=64, synthetic_test=16), "train", progress=False)


def test_least_recently_used_entries_go_first_and_the_new_one_stays(monkeypatch, capsys):
    decoded(16)
    decoded(20)
    a, b = cache.entries()  # 16 px then 20 px (least recently used first)
    assert "16px" in a.name and "20px" in b.name and a.kind == "dataset"
    past = time.time() - 3600
    os.utime(b.path / "meta.json", (past, past))  # the 20-px entry now unused for an hour
    decoded(16)  # a cache hit marks it used
    assert [e.name for e in cache.entries()][0] == b.name
    monkeypatch.setenv("VITSSL_CACHE_MAX_GB", str((a.bytes + b.bytes + 1000) / 2 ** 30))
    decoded(18)  # over the cap: the 20-px entry goes, the 16-px one (used just now) and the new (smaller) one stay
    names = [e.name for e in cache.entries()]
    assert b.name not in names and a.name in names and any("18px" in n for n in names)
    assert f"removed dataset {b.name}" in capsys.readouterr().err


def test_cache_list_and_clear(capsys):
    decoded(16)
    decoded(20)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "synthetic-train-16px" in out
    assert main(["cache", "clear", "synthetic-train-16px"]) == 0
    assert "removed 1 of 2 entries" in capsys.readouterr().out
    assert [e.name.split("-")[2] for e in cache.entries()] == ["20px"]
    assert main(["cache", "clear"]) == 0 and cache.entries() == []
