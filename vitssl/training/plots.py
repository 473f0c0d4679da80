"""PNG plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(metrics_path: str | Path, out_path: str | Path) -> bool:
    """Loss terms (left) and learning rate (right) against step; False when there is nothing to plot."""
    rows = read_metrics(metrics_path)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    losses = sorted({k for r in rows for k in r if k.startswith("loss")})
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k in losses:
        ax.plot(steps, [r.get(k) for r in rows], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    ax_lr.plot(steps, [r.get("lr") for r in rows], color="tab:gray")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return True
