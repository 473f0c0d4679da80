"""PNG plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_metrics(metrics_path: str | Path, out_path: str | Path) -> bool:
    """Loss terms, learning rate and, when monitored, k-NN accuracy against step; False when there is
    nothing to plot."""
    rows = read_metrics(metrics_path)
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = sorted({k for r in rows for k in r if k.startswith("loss")})
    knn = any("knn_acc" in r for r in rows)
    fig, axes = plt.subplots(1, 3 if knn else 2, figsize=(15 if knn else 10, 3.6))
    panels = [(axes[0], losses, "loss"), (axes[1], ["lr"], "learning rate")] + \
        ([(axes[2], ["knn_acc"], "k-NN accuracy (%)")] if knn else [])
    for ax, keys, label in panels:
        for k in keys:
            ax.plot(*_series(rows, k), label=k, marker="o" if k == "knn_acc" else None)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return True
