import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from tests.conftest import ROOT, tiny_overrides
from vitssl.config import load_config
from vitssl.engine import checkpoint as ckpt
from vitssl.errors import VitsslError
from vitssl.hostmem import keep_freed_memory
from vitssl.training.pretrain import pretrain, trainer


def test_run_folder_contents(tmp_path):
    summary = pretrain(load_config(None, tiny_overrides(tmp_path, "log.tensorboard=true")))
    run = tmp_path / "run"
    assert summary["step"] == 8 and summary["epoch"] == 2.0
    assert summary["host_memory"] == ("kept" if keep_freed_memory() else "default")  # CPU runs say how they ran
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["batch_size"] == 16
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert {"step", "epoch", "loss", "lr", "loss_recons", "loss_contr", "momentum"} <= set(rows[0])
    assert (run / "checkpoints" / "last.pt").is_file()
    assert {p.name for p in (run / "images").iterdir()} == {"epoch_0001.png", "epoch_0002.png", "final.png"}
    assert (run / "loss.png").is_file() and (run / "summary.json").is_file()
    assert any((run / "tensorboard").iterdir())
    state = ckpt.load(run / "checkpoints" / "last.pt")
    assert state["step"] == 8 and state["method"] == "sit" and "optimizer" in state and "scaler" in state


def test_resume_continues_exactly(tmp_path):
    full = pretrain(load_config(None, tiny_overrides(tmp_path / "a")))
    first = pretrain(load_config(None, tiny_overrides(tmp_path / "b", "train.max_steps=3")))  # stops mid-epoch
    run_b = tmp_path / "b" / "run"
    state = ckpt.load(run_b / "checkpoints" / "last.pt")
    assert state["step"] == 3 and 0 < state["train_seconds"] <= first["seconds"] + 0.01
    resumed = pretrain(load_config(run_b / "config.yaml", ["train.max_steps=null"]), resume=True)
    assert full["step"] == resumed["step"] == 8
    # its time is the whole training's (the first run's, to its checkpoint, and this run's), its speed this run's
    assert resumed["resumed_at_step"] == 3 and "seconds_partial" not in resumed
    assert resumed["seconds"] == pytest.approx(state["train_seconds"] + resumed["seconds_this_run"], abs=0.02)
    assert resumed["images_per_s"] == pytest.approx(5 * 16 / resumed["seconds_this_run"], rel=0.02)
    a = ckpt.load(tmp_path / "a" / "run" / "checkpoints" / "last.pt")
    b = ckpt.load(run_b / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows = [json.loads(line) for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))  # no step logged twice


def test_a_resume_from_a_checkpoint_without_its_time_says_its_seconds_are_partial(tmp_path):
    pretrain(load_config(None, tiny_overrides(tmp_path, "train.max_steps=3", "log.images_every=0")))
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = ckpt.load(path)
    del state["train_seconds"]  # as written before checkpoints recorded it
    ckpt.save_atomic(state, path)
    resumed = pretrain(load_config(tmp_path / "run" / "config.yaml", ["train.max_steps=4"]), resume=True)
    assert resumed["seconds_partial"] and resumed["seconds"] == resumed["seconds_this_run"]


def test_refuses_to_overwrite_a_run(tmp_path):
    pretrain(load_config(None, tiny_overrides(tmp_path, "train.max_steps=1")))
    with pytest.raises(VitsslError, match="already holds a run.*--resume"):
        pretrain(load_config(None, tiny_overrides(tmp_path)))


class _Deterministic(torch.nn.Module):
    """A loss that is a mean over the batch and has no randomness: accumulation must not change its gradient."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3 * 16 * 16, 4)

    def forward(self, images, labels=None):
        out = self.lin(images.float().flatten(1) / 255)
        loss = ((out - labels.float()[:, None]) ** 2).mean()
        return {"loss": loss, "out_mean": out.mean()}


def test_accumulation_gives_the_gradient_of_the_full_batch(tmp_path):
    grads, logs = {}, {}
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(16) % 3
    for accum in (1, 4):
        tr = trainer(load_config(None, tiny_overrides(tmp_path / str(accum), f"train.accum_steps={accum}",
                                                      "optim.clip_grad=0", "data.image_size=16")))
        tr.model = tr.task = net = _Deterministic()
        tr.optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
        tr.trainable = list(net.parameters())
        logs[accum] = tr.train_step(images, labels)
        grads[accum] = [p.grad.clone() for p in net.parameters()]
    for a, b in zip(grads[1], grads[4]):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(logs[1]["loss"], logs[4]["loss"], atol=1e-6)  # the logged loss is the full batch's too
    assert torch.allclose(logs[1]["out_mean"], logs[4]["out_mean"], atol=1e-6)


def test_interrupt_saves_and_resumes(tmp_path):
    """Ctrl-C finishes the step, writes last.pt and says how to resume; nothing is lost."""
    args = tiny_overrides(tmp_path, "train.epochs=200", "log.images_every=0")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vitssl", "pretrain", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "vitssl pretrain --resume" in err
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert 3 <= state["step"] < 800


@pytest.mark.slow
def test_compile_matches_eager(tmp_path):
    """torch.compile of the transformer blocks changes speed, not results."""
    eager = tmp_path / "eager"
    compiled = tmp_path / "compiled"
    for folder, flag in ((eager, "false"), (compiled, "true")):
        pretrain(load_config(None, tiny_overrides(folder, "train.max_steps=2", f"train.compile={flag}",
                                                  "log.images_every=0")))
    a = ckpt.load(eager / "run" / "checkpoints" / "last.pt")["model"]
    b = ckpt.load(compiled / "run" / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys()  # compiling keeps the state-dict names
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3), k


def test_bf16_autocast_on_cpu(tmp_path):
    """bf16 autocast runs the same step in lower precision: the first loss is the fp32 one to bf16 accuracy."""
    first = {}
    for precision in ("fp32", "bf16"):
        summary = pretrain(load_config(None, tiny_overrides(tmp_path / precision, "train.max_steps=2",
                                                            f"train.precision={precision}", "log.images_every=0")))
        assert summary["precision"] == precision
        first[precision] = json.loads((tmp_path / precision / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["bf16"]["loss"] == pytest.approx(first["fp32"]["loss"], rel=0.03)
    assert first["bf16"]["loss"] != first["fp32"]["loss"]  # it did run in bf16


def test_wall_clock_budget_fixes_the_schedule(tmp_path):
    summary = pretrain(load_config(None, tiny_overrides(tmp_path, "train.epochs=1000", "train.max_minutes=0.03",
                                                        "log.images_every=0")))
    assert summary["total_steps"] == summary["step"] < 4000  # the schedule ends with the budget, not 1000 epochs
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["budget"] and state["total_steps"] == summary["total_steps"]


def test_a_budgeted_run_shows_its_end_after_the_first_step_and_logs_every_30_seconds(tmp_path):
    """Before: the bar showed 0/117,600 steps and an ETA of 1,700 hours for a 5-minute budget until the
    tenth step. Now its total is the budget's end at the first step's pace (refined later)."""
    import time

    from vitssl.training.pretrain import trainer

    loop = trainer(load_config(None, tiny_overrides(tmp_path, "train.epochs=1000", "train.max_minutes=0.5",
                                                    "log.every_steps=50")))
    try:
        class Bar:
            total = None

            def refresh(self):
                pass

        bar = Bar()
        started = time.perf_counter() - 1.0  # the first step took a second
        loop._retime(0, started, None, bar)
        assert 26 <= bar.total <= 29  # 0.98 * (30 s - 1 s) / 1 s per step, not 1000 epochs' worth
        assert loop._log_every(1, 60.0) == 1 and loop._log_every(5, 10.0) == 15 and loop._log_every(10, 1.0) == 50
    finally:
        loop.close()
