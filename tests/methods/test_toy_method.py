"""A method added from a folder of its own (tests/methods/toy) trains, resumes and is evaluated through
the public commands, with no file of vitssl changed."""

from __future__ import annotations

import json

import torch

import tests.methods.toy  # noqa: F401  (registers the toy method)
from vitssl.cli.main import main
from vitssl.engine import checkpoint as ckpt


def test_toy_method_trains_resumes_and_evaluates(tmp_path):
    run = tmp_path / "run"
    args = ["pretrain", "method.name=toy", "method.noise=0.3", "model.patch_size=4", "model.embed_dim=32",
            "model.depth=2", "model.num_heads=2", "data.synthetic_train=64", "data.synthetic_test=32",
            "train.batch_size=16", "train.epochs=2", "log.progress=false", "log.knn_every=1", "log.every_steps=1",
            "data.num_workers=0",
            f"output_dir={run}"]
    assert main([*args, "train.max_steps=5"]) == 0
    assert ckpt.load(run / "checkpoints" / "last.pt")["step"] == 5
    assert main(["pretrain", "--resume", str(run), "train.max_steps=null"]) == 0
    state = ckpt.load(run / "checkpoints" / "last.pt")
    assert state["step"] == 8 and state["method"] == "toy"
    assert int(state["model"]["seen"]) == 8 * 16  # its extra state came through the resume
    assert state["config"]["augment"]["jitter_p"] == 0.0  # its recipe sets the shared sections' defaults ...
    assert state["config"]["optim"]["base_lr"] == 1e-3  # ... and the config file (quickstart) wins over it
    assert (run / "images" / "final.png").is_file() is False  # it draws no pictures: none are written
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))
    assert torch.isfinite(torch.tensor([r["loss"] for r in rows if "loss" in r])).all()

    assert main(["eval", "knn", "--checkpoint", str(run), "knn.k=5", "data.num_workers=0"]) == 0
    res = json.loads((run / "eval" / "knn-synthetic" / "results.json").read_text())
    assert res["method"] == "toy" and res["pool"] == "avg"  # read the way the method declares
