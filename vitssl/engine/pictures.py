"""Save rows of images as one labelled PNG grid (no torchvision needed), and colour maps for heat maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def save_grid(rows: dict[str, torch.Tensor], path: str | Path, scale: int | None = None, pad: int = 2) -> None:
    """rows: name -> (B, 3, h, w) in [0, 1]; one labelled row each, images side by side."""
    if not rows:
        return
    first = next(iter(rows.values()))
    b, _, h, w = first.shape
    scale = scale or max(1, 96 // h)
    label_w = 90
    cell_h, cell_w = h * scale + pad, w * scale + pad
    canvas = Image.new("RGB", (label_w + b * cell_w, len(rows) * cell_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (name, imgs) in enumerate(rows.items()):
        arr = (imgs.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
        y = pad + r * cell_h
        draw.text((4, y + cell_h // 2 - 6), name, fill=(0, 0, 0))
        for i, a in enumerate(arr):
            tile = Image.fromarray(a).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (label_w + i * cell_w, y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# a few anchors of the viridis colour map (dark blue -> yellow)
_VIRIDIS = torch.tensor([[0.267, 0.005, 0.329], [0.229, 0.322, 0.546], [0.128, 0.567, 0.551],
                         [0.369, 0.789, 0.383], [0.993, 0.906, 0.144]])


def colormap(t: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1], any shape -> RGB in a new last dimension."""
    x = t.float().clamp(0, 1) * (len(_VIRIDIS) - 1)
    lo = x.floor().long().clamp(max=len(_VIRIDIS) - 2)
    w = (x - lo)[..., None]
    c = _VIRIDIS.to(t.device)
    return c[lo] * (1 - w) + c[lo + 1] * w
