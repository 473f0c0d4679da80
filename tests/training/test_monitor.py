import json

import torch

from tests.conftest import tiny_overrides
from vitssl.config import load_config
from vitssl.training.monitor import collapse_signals
from vitssl.training.pretrain import pretrain


def test_collapse_signals():
    g = torch.Generator().manual_seed(0)
    spread = collapse_signals(torch.randn(2000, 32, generator=g))
    assert 0.9 < spread["embed_std"] < 1.1 and spread["eff_rank"] > 25
    collapsed = collapse_signals(torch.ones(2000, 32) + 1e-4 * torch.randn(2000, 32, generator=g))
    assert collapsed["embed_std"] < 0.01
    line = collapse_signals(torch.randn(2000, 1, generator=g) * torch.randn(1, 32, generator=g))
    assert line["eff_rank"] < 1.5  # all embeddings on one axis


def test_knn_monitor_is_logged_every_n_epochs(tmp_path, capsys, monkeypatch):
    from vitssl.training.monitor import KNNMonitor

    probed = []
    real = KNNMonitor.probe
    monkeypatch.setattr(KNNMonitor, "probe", lambda self, enc, dev, **kw: probed.append(enc) or real(self, enc, dev))
    summary = pretrain(load_config(None, tiny_overrides(tmp_path, "log.knn_every=1", "log.knn_train=44",
                                                        "log.knn_test=20", "optim.base_lr=0.05")))
    # the run ends comparing itself with a random-init encoder of the same shape on the same images
    versus = summary["versus_random_init"]
    assert versus["images"] == 20 and set(versus) >= {"knn", "knn_random_init", "linear", "linear_random_init"}
    trained, baseline = probed
    assert trained.arch == baseline.arch and not torch.equal(trained.pos_embed, baseline.pos_embed)
    assert "learned? k-NN on 20 held-out training images" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["versus_random_init"] == versus
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in rows if "knn_acc" in r]
    assert [r["epoch"] for r in knn] == [1, 2]
    assert all(0 <= r["knn_acc"] <= 100 and r["eff_rank"] >= 1 and r["embed_std"] > 0 for r in knn)
    assert (tmp_path / "run" / "loss.png").is_file()


def test_knn_monitor_turns_itself_off_without_labels(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    for i in range(20):
        Image.new("RGB", (32, 32), (i * 10, 0, 0)).save(flat / f"{i}.png")
    pretrain(load_config(None, tiny_overrides(tmp_path, f"data.root={flat}", "data.split=all", "log.knn_every=1",
                                              "train.batch_size=8", "train.max_steps=2")))
    assert "k-NN monitor off" in capsys.readouterr().err
