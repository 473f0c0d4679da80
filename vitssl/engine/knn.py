"""Weighted k-nearest-neighbour classification on L2-normalised frozen features (DINO's protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, *, num_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Class scores (M, C) for test features (M, F) from train features (N, F): each of the k most
    cosine-similar training images votes for its class with weight exp(similarity / temperature)."""
    train = F.normalize(train.float(), dim=1)
    k = min(k, train.shape[0])
    scores = []
    for i in range(0, test.shape[0], chunk):
        q = F.normalize(test[i:i + chunk].float(), dim=1)
        sim, idx = (q @ train.T).topk(k, dim=1)  # (m, k)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        scores.append(votes.scatter_add_(1, train_labels[idx], (sim / temperature).exp()))
    return torch.cat(scores)


def accuracy(scores: torch.Tensor, labels: torch.Tensor, top: int = 1) -> float:
    """Top-`top` accuracy in %."""
    top = min(top, scores.shape[1])
    hit = (scores.topk(top, dim=1).indices == labels[:, None]).any(1)
    return 100.0 * hit.float().mean().item()
