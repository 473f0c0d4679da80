"""A fabricated photo collection for CPU trials of the photo configs (issue 14): JPEGs of varied size
(shorter side 64-500 px) and aspect ratio (3:4 to 16:9, both orientations), quality 80-95, in class
folders under train/ and test/. The content is vitssl's synthetic textures (ten classes, so a probe
can tell whether an encoder learned), rendered at each photo's own size; not real photographs.

python benchmarks/photo_collection.py --out /tmp/photos --train 2000 --test 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vitssl.data import synthetic


def write(out: Path, split: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    labels = synthetic.labels_for(n, seed)
    for i, label in enumerate(labels.tolist()):
        short = int(rng.integers(64, 501))
        aspect = float(rng.uniform(4 / 3, 16 / 9)) if rng.random() < 0.8 else 1.0
        long = int(round(short * aspect))
        img = synthetic.render(torch.tensor([label]), long, g)[0].permute(1, 2, 0).numpy()  # (L, L, 3)
        w, h = (long, short) if rng.random() < 0.7 else (short, long)
        top, left = int(rng.integers(0, long - h + 1)), int(rng.integers(0, long - w + 1))
        folder = out / split / synthetic.CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[top:top + h, left:left + w]).save(folder / f"{split}_{i:05d}.jpg",
                                                              quality=int(rng.integers(80, 96)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    a = ap.parse_args()
    write(Path(a.out), "train", a.train, seed=10)
    write(Path(a.out), "test", a.test, seed=11)
    print(f"wrote {a.train} + {a.test} JPEGs under {a.out}/train and {a.out}/test")


if __name__ == "__main__":
    main()
