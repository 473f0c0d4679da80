import torch

from vitssl.engine.knn import accuracy, knn_predict
from vitssl.engine.linear import train_probes


def clusters(n_per_class=60, classes=5, dim=16, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


def test_knn_separable_and_random_labels():
    x, y = clusters()
    xt, yt = clusters(seed=0)[0] + 0.05 * torch.randn_like(x), y
    s = knn_predict(x, y, xt, num_classes=5, k=10)
    assert accuracy(s, yt) == 100.0 and accuracy(s, yt, 5) == 100.0
    g = torch.Generator().manual_seed(1)
    noise, noise_t = torch.randn(2000, 16, generator=g), torch.randn(1000, 16, generator=g)
    rand_y, rand_yt = torch.randint(0, 5, (2000,), generator=g), torch.randint(0, 5, (1000,), generator=g)
    assert abs(accuracy(knn_predict(noise, rand_y, noise_t, num_classes=5), rand_yt) - 20) < 6


def test_knn_votes_are_temperature_weighted():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    s = knn_predict(train, labels, torch.tensor([[0.2, 1.0]]), num_classes=2, k=3, temperature=0.5)
    sims = torch.nn.functional.normalize(train, dim=1) @ torch.nn.functional.normalize(torch.tensor([0.2, 1.0]), dim=0)
    expect = torch.stack([(sims[:2] / 0.5).exp().sum(), (sims[2] / 0.5).exp()])
    assert torch.allclose(s[0], expect)


def test_linear_probe_separable_reaches_100_and_random_labels_stay_at_chance():
    x, y = clusters()
    xt, yt = clusters(n_per_class=40, seed=0)
    probes = train_probes(x, y, num_classes=5, lrs=[0.1], epochs=30, batch_size=64)
    assert (probes.scores(xt[None])[0, 0].argmax(-1) == yt).float().mean() == 1.0
    g = torch.Generator().manual_seed(2)
    noise, noise_t = torch.randn(3000, 32, generator=g), torch.randn(2000, 32, generator=g)
    ry, ryt = torch.randint(0, 10, (3000,), generator=g), torch.randint(0, 10, (2000,), generator=g)
    probes = train_probes(noise, ry, num_classes=10, lrs=[0.1], epochs=20)
    acc = (probes.scores(noise_t[None])[0, 0].argmax(-1) == ryt).float().mean().item()
    assert abs(acc - 0.1) < 0.04


def test_probes_trained_together_are_independent():
    """Group 0's probe is the same whatever group 1 holds; each lr is its own probe."""
    x, y = clusters()
    g = torch.Generator().manual_seed(3)
    a = train_probes(torch.stack([x, torch.randn(x.shape, generator=g)]), y, num_classes=5, lrs=[0.05, 0.5], epochs=3)
    b = train_probes(torch.stack([x, 5 * torch.randn(x.shape, generator=g)]), y, num_classes=5, lrs=[0.05, 0.5],
                     epochs=3)
    assert torch.allclose(a.weight[0], b.weight[0], atol=1e-5) and torch.allclose(a.mean[0], b.mean[0])
    assert not torch.allclose(a.weight[0, 0], a.weight[0, 1])


def test_batchnorm_uses_running_statistics_at_test_time():
    x, y = clusters(dim=4)
    probes = train_probes(x + 100.0, y, num_classes=5, lrs=[0.1], epochs=20, batch_size=50)
    assert torch.allclose(probes.mean[0, 0], (x + 100).mean(0), atol=1.0)
    assert (probes.scores((x + 100.0)[None])[0, 0].argmax(-1) == y).float().mean() > 0.95
