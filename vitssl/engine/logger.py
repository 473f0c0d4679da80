"""Metrics a person can read: one JSON line per logged step, mirrored to TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional


class RunLogger:
    def __init__(self, out_dir: str | Path, *, tensorboard: bool = True, resume_step: Optional[int] = None):
        self.path = Path(out_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():  # drop what was logged after the checkpoint
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"),
                                        purge_step=None if resume_step is None else resume_step + 1)
            except ImportError:  # tensorboard is optional at run time
                self.tb = None

    def log(self, step: int, values: dict) -> None:
        row = {"step": step}
        for k, v in values.items():
            v = float(v) if not isinstance(v, (int, str)) else v
            row[k] = v if not (isinstance(v, float) and not math.isfinite(v)) else None  # NaN, inf: null
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)

    def image(self, tag: str, image_path: str | Path, step: int) -> None:
        if self.tb is None:
            return
        import numpy as np
        from PIL import Image

        self.tb.add_image(tag, np.asarray(Image.open(image_path).convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
