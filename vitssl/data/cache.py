"""The disk cache of decoded datasets and extracted features (`~/.cache/vitssl`, or `VITSSL_CACHE`):
what it holds, a size cap with least-recently-used eviction (`VITSSL_CACHE_MAX_GB`, default 20), and
`vitssl cache list` / `vitssl cache clear`."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

DEFAULT_MAX_GB = 20.0


def cache_dir() -> Path:
    return Path(os.environ.get("VITSSL_CACHE", Path.home() / ".cache" / "vitssl"))


def max_bytes() -> Optional[int]:
    """The cap from VITSSL_CACHE_MAX_GB (0 or 'none': no cap)."""
    raw = os.environ.get("VITSSL_CACHE_MAX_GB", str(DEFAULT_MAX_GB)).strip().lower()
    if raw in ("0", "none", "off", ""):
        return None
    try:
        return int(float(raw) * 2 ** 30)
    except ValueError:
        print(f"note: VITSSL_CACHE_MAX_GB={raw!r} is not a number of GB; using {DEFAULT_MAX_GB:g}", file=sys.stderr)
        return int(DEFAULT_MAX_GB * 2 ** 30)


@dataclass
class Entry:
    kind: str  # 'dataset' (decoded images) or 'features'
    name: str
    path: Path
    bytes: int
    used: float  # last use (seconds since the epoch)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def entries(root: Optional[Path] = None) -> list[Entry]:
    """Everything the cache holds, least recently used first."""
    root = root or cache_dir()
    out = []
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and (d / "meta.json").is_file():
                out.append(Entry("dataset", d.name, d, _size(d), (d / "meta.json").stat().st_mtime))
        feats = root / "features"
        if feats.is_dir():
            out += [Entry("features", f.stem, f, f.stat().st_size, f.stat().st_mtime) for f in feats.glob("*.pt")]
    return sorted(out, key=lambda e: e.used)


def touch(path: Path) -> None:
    """Mark an entry as just used (its clock for eviction)."""
    try:
        os.utime(path / "meta.json" if path.is_dir() else path)
    except OSError:
        pass


def remove(entry: Entry) -> None:
    if entry.path.is_dir():
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)


def enforce(keep: Path, root: Optional[Path] = None) -> list[Entry]:
    """Evict least-recently-used entries (never `keep`, the one just written) until the cache fits the
    cap; returns what was evicted (one note per eviction)."""
    cap = max_bytes()
    if cap is None:
        return []
    items = entries(root)
    total = sum(e.bytes for e in items)
    evicted = []
    for e in items:
        if total <= cap:
            break
        if e.path == keep:
            continue
        remove(e)
        total -= e.bytes
        evicted.append(e)
        print(f"note: the vitssl cache is over VITSSL_CACHE_MAX_GB={cap / 2 ** 30:g}; removed {e.kind} {e.name} "
              f"({e.bytes / 2 ** 20:.0f} MB, unused since {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.used))})",
              file=sys.stderr)
    return evicted
