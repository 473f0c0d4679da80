"""Atomic checkpoints (write to a temporary file, then rename) and safe loading (`weights_only=True`)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from vitssl.errors import CheckpointError, first_line

FORMAT = "vitssl-checkpoint-1"


def write_failure(e: BaseException) -> str | None:
    """The cause, in words, when `e` is (or wraps) a failed write: a full disk, a read-only folder..."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or first_line(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(e)
    if (isinstance(e, RuntimeError) and "writing" in text) or "os error" in text.lower():
        return first_line(e)  # torch's stream writer or safetensors' Rust I/O, without a chained OSError
    return None


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `obj` so that `path` always holds either the old or the new checkpoint, never half of one."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(obj, format=FORMAT), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        cause = write_failure(e)
        if cause is not None:
            raise CheckpointError(f"cannot write checkpoint '{path}': {cause}; the previous '{path.name}' (if any) "
                                  "is intact. Free space there, or choose another output_dir=...") from None
        raise


def load_error(path: Path, e: Exception) -> str:
    """One line for a file torch.load refused: what the file is not, and what to do instead (never
    PyTorch's advice to load it with weights_only=False, which would run code from the file)."""
    text = str(e)
    if path.is_file() and path.stat().st_size == 0:
        return f"'{path}' is empty (0 bytes): a copy or a save that did not finish; use another checkpoint"
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"'{path}' holds Python objects, not only tensors (it asks for '{found.group(1)}'); vitssl loads "
                "weights with weights_only=True and never runs code from a file: give a checkpoint vitssl wrote, "
                "an exported .safetensors, or a plain state dict of tensors")
    if "Weights only load failed" in text:  # PyTorch's text suggests an unsafe retry: keep only its reason
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = f" ({detail.group(1).strip()})" if detail else ""
        return f"'{path}' is corrupt or not a PyTorch weights file{reason}; use another checkpoint"
    return f"cannot load '{path}': {first_line(e)}; it is corrupt or not a PyTorch weights file"


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_atomic`; only tensors and plain containers are accepted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(load_error(path, e)) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a vitssl checkpoint (no '{FORMAT}' marker)")
    return obj
