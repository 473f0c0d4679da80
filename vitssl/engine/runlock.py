"""One run per folder: a lock file naming the process that writes there.

Two runs started into one `output_dir` would delete each other's metrics and mix their checkpoints.
The first holds `RUN/.lock` (its PID, host and start time); a second stops at once with one line.
A lock left by a process that no longer runs (on this host) is taken over, with a message.
`vitssl study` holds the same kind of lock on each stage it runs (its claim), so that two study
processes never run one stage.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from vitssl.errors import VitsslError

LOCK = ".lock"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _boot_ticks(pid: int) -> str | None:
    """When process `pid` started (Linux: clock ticks since boot), telling it from a later process given the
    same PID (after a restart, say); None where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _runs(owner: dict, pid: int) -> bool:
    """Whether the process that wrote `owner` (on this host) still runs: its PID is alive and, where
    recorded, started when it did."""
    if not _alive(pid):
        return False
    then, now = owner.get("ticks"), _boot_ticks(pid)
    return then is None or now is None or then == now


def _owner(lock: Path) -> tuple[dict, int | None, str | None]:
    try:
        owner = json.loads(lock.read_text())
        return owner, int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None, None


def holder(lock: Path) -> dict | None:
    """What the other process that holds `lock` and still runs (on another host: assumed to) wrote in it
    (`pid`, `host`, and what it was given to `acquire` as `about`); None when no other process holds it.
    An empty dict for a lock being written this instant."""
    if not lock.exists():
        return None
    owner, pid, host = _owner(lock)
    if pid is None:  # being written this instant (or garbage, left long ago: acquire takes that over)
        try:
            return {} if time.time() - lock.stat().st_mtime <= 5 else None
        except OSError:
            return None
    if host != socket.gethostname():
        return owner
    return owner if pid != os.getpid() and _runs(owner, pid) else None


def held_by_another(lock: Path) -> bool:
    """Whether `lock` is held by another process that still runs (on another host: assumed to)."""
    return holder(lock) is not None


def acquire(folder: Path, name: str = LOCK, quiet: bool = False, about: dict | None = None) -> Path:
    """Create `folder/name` for this process, or raise naming the process that holds it. `about`: what
    other processes may read of this one (`holder`), e.g. which of a study's stages it runs."""
    lock = folder / name
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "ticks": _boot_ticks(os.getpid()), "about": about}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner, pid, host = _owner(lock)
            if pid is not None and host == me["host"] and not _runs(owner, pid):
                if not quiet:
                    print(f"note: taking over the lock of '{folder}' from process {pid}, which no longer runs",
                          file=sys.stderr)
                lock.unlink(missing_ok=True)
                continue
            if pid is None:  # being written this instant, or garbage: look again
                time.sleep(0.2)
                if lock.exists() and time.time() - lock.stat().st_mtime > 5:
                    lock.unlink(missing_ok=True)
                continue
            raise VitsslError(f"output_dir '{folder}' is in use by another run (process {pid} on {host}, started "
                              f"{owner.get('started', '?')}); wait for it to end or choose another output_dir=... "
                              f"(if that run is gone, delete {lock})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise VitsslError(f"could not take the lock {lock}; delete it if no run uses '{folder}'")


def release(lock: Path | None) -> None:
    if lock is None:
        return
    try:
        owner = json.loads(lock.read_text())
        if int(owner.get("pid", -1)) == os.getpid():
            lock.unlink()
    except (OSError, ValueError):
        pass
