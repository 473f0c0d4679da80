"""The first losses of every registered method for a fixed seed: run before and after a refactor
that must not change the numbers, and compare.

    python tools/loss_fingerprint.py [--steps 4] > before.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch


def fingerprint(steps: int) -> dict:
    from vitssl.config import load_config
    from vitssl.methods import registry
    from vitssl.training.pretrain import pretrain

    torch.set_num_threads(1)
    out = {}
    for name in registry.names():
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(None, [f"method.name={name}", "data.synthetic_train=64", "data.synthetic_test=16",
                                     "data.image_size=32", "model.patch_size=8", "model.embed_dim=48",
                                     "model.depth=2", "model.num_heads=2", "train.epochs=1",
                                     "train.batch_size=16", f"train.max_steps={steps}", "log.every_steps=1",
                                     "log.knn_every=0", "log.images_every=0", "log.progress=false", "seed=3",
                                     f"output_dir={tmp}/run", f"data.cache_dir={tmp}/cache"])
            pretrain(cfg)
            rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
            out[name] = [round(r["loss"], 6) for r in rows if "loss" in r]
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    json.dump(fingerprint(ap.parse_args().steps), sys.stdout, indent=1)
    print()
