"""Nothing lost, nothing executed, one line for every failure (issue: faults and hostile input)."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import tiny_overrides
from vitssl.cli.main import main
from vitssl.config import load_config
from vitssl.engine import checkpoint as ckpt
from vitssl.errors import CheckpointError, ConfigError, VitsslError
from vitssl.training.pretrain import pretrain, trainer

LOCK = ".lock"  # the run-folder lock file (vitssl.engine.runlock.LOCK)


def one_line(err: str) -> bool:
    """stderr ends in exactly one 'error:' line and holds no traceback (progress bars may come before)."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    return "Traceback" not in err and lines[-1].startswith("error: ") and \
        sum(line.startswith("error: ") for line in lines) == 1


def _finite(state) -> bool:
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_divergence_keeps_the_last_good_checkpoint_and_says_how_to_go_on(tmp_path):
    """NaN from step 6: epoch 1 (step 4) was saved, nothing after; the advice resumes from it with a change."""
    tr = trainer(load_config(None, tiny_overrides(tmp_path, "log.every_steps=20", "log.images_every=0",
                                                  "train.epochs=4")))
    real, calls = tr.task.forward, []

    def poisoned(*a, **k):
        calls.append(1)
        out = real(*a, **k)
        return {**out, "loss": out["loss"] * float("nan")} if len(calls) >= 6 else out

    tr.task.forward = poisoned
    with pytest.raises(VitsslError) as err:
        tr.fit()
    msg = str(err.value)
    assert "non-finite at step 6" in msg and "holds step 4" in msg and "optim.base_lr=" in msg
    assert "--resume" in msg and "precision" not in msg  # CPU runs are fp32 already
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and _finite(state)
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged_at_step"] == 6 and summary["last_checkpoint_step"] == 4
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and rows[-1]["loss"] is None  # the steps that ran, non-finite as null
    assert (run / "loss.png").is_file()


def test_a_huge_learning_rate_never_leaves_non_finite_weights(tmp_path, capsys):
    args = ["pretrain", *tiny_overrides(tmp_path, "optim.base_lr=1e6", "log.every_steps=20", "log.images_every=0",
                                        "train.epochs=3")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "non-finite at step" in err and one_line(err)
    for f in (tmp_path / "run" / "checkpoints").glob("*.pt"):
        assert _finite(ckpt.load(f)), f


def test_a_failed_resume_changes_nothing(tmp_path, capsys):
    pretrain(load_config(None, tiny_overrides(tmp_path, "train.max_steps=2", "log.images_every=0")))
    run = tmp_path / "run"
    before = (run / "config.yaml").read_bytes()
    assert main(["pretrain", "--resume", str(run), "model.depth=3"]) == 2
    assert "does not fit this model" in capsys.readouterr().err
    assert (run / "config.yaml").read_bytes() == before
    assert not (run / LOCK).exists()
    assert main(["pretrain", "--resume", str(run), "train.max_steps=3"]) == 0  # a plain resume still works
    assert ckpt.load(run / "checkpoints" / "last.pt")["step"] == 3


def test_one_run_per_folder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                "started": "now"}))
    args = ["pretrain", *tiny_overrides(tmp_path, "train.max_steps=1", "log.images_every=0")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"is in use by another run (process {os.getpid()}" in err and one_line(err)
    assert not (run / "config.yaml").exists() and not (run / "metrics.jsonl").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "x"}))
    assert main(args) == 0
    assert f"taking over the lock of '{run}' from process {dead.pid}" in capsys.readouterr().err
    assert not (run / LOCK).exists()  # released at the end


def test_a_failed_start_leaves_no_run_folder(tmp_path, capsys):
    assert main(["pretrain", *tiny_overrides(tmp_path, f"data.root={tmp_path / 'missing'}")]) == 2
    assert not (tmp_path / "run").exists()
    (tmp_path / "old").mkdir()  # a folder from an older failed start: the report skips it
    (tmp_path / "old" / "config.yaml").write_text("method: {name: sit}\n")
    pretrain(load_config(None, tiny_overrides(tmp_path, "train.max_steps=1", "log.images_every=0")))
    capsys.readouterr()
    assert main(["report", str(tmp_path / "run"), str(tmp_path / "old"), "--out", str(tmp_path / "rep")]) == 0
    assert "skipping" in capsys.readouterr().err
    rows = json.loads((tmp_path / "rep" / "results.json").read_text())["runs"]
    assert [r["method"] for r in rows] == ["sit"]


def _bad_folder(root, n_good=24, bad=("bad1.png", "bad2.jpg")):
    for i in range(n_good):
        d = root / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (i * 9, 0, 0)).save(d / f"{i}.png")
    for name in bad:
        (root / "a" / name).write_bytes(b"not an image")
    return root


def test_bad_images_while_streaming(tmp_path, capsys, recwarn):
    root = _bad_folder(tmp_path / "imgs")
    base = tiny_overrides(tmp_path, f"data.root={root}", "data.cache=stream", "data.holdout=0", "train.batch_size=8",
                          "log.images_every=0", "data.num_workers=1")
    assert main(["pretrain", *base]) == 2
    err = capsys.readouterr().err.strip()
    assert one_line(err) and "cannot be used" in err and "data.bad_images=skip" in err
    summary = pretrain(load_config(None, base + [f"output_dir={tmp_path / 'run2'}", "data.bad_images=skip"]))
    assert summary["skipped_images"]["count"] == 2
    assert sum("leaving out images" in str(w.message) for w in recwarn) == 1  # one warning, not one per sight


def test_a_failed_download_leaves_nothing_behind(tmp_path, monkeypatch):
    from vitssl.data import download
    from vitssl.errors import DataError

    monkeypatch.setenv("VITSSL_DOWNLOAD_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    root = tmp_path / "dl"
    with pytest.raises(DataError, match="cannot download cifar10 from http://127.0.0.1:9/cifar-10-python.tar.gz"):
        download.download("cifar10", root)
    assert not root.exists()  # nothing was fetched: the next run starts clean


class Payload:
    """An object a weights-only load must refuse."""


def test_refused_and_broken_checkpoints_are_one_line(tmp_path):
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    from vitssl.evaluation.encoders import load_encoder

    for load in (ckpt.load, load_encoder):
        with pytest.raises(CheckpointError) as err:
            load(str(tmp_path / "evil.pt"))
        assert "never runs code" in str(err.value) and "weights_only=False" not in str(err.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty \\(0 bytes\\)"):
        ckpt.load(tmp_path / "empty.pt")


def test_write_failures_are_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["pretrain", *tiny_overrides(tmp_path, f"output_dir={blocker / 'run'}")]) == 2
    err = capsys.readouterr().err
    assert f"cannot create output_dir '{blocker / 'run'}'" in err and one_line(err)
    pretrain(load_config(None, tiny_overrides(tmp_path, "train.max_steps=1", "log.images_every=0")))
    run = tmp_path / "run"
    good = (run / "checkpoints" / "last.pt").read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", full)
    assert main(["pretrain", "--resume", str(run), "train.max_steps=2"]) == 2
    err = capsys.readouterr().err
    assert "cannot write checkpoint" in err and "No space left on device" in err and one_line(err)
    assert (run / "checkpoints" / "last.pt").read_bytes() == good  # the previous checkpoint is intact
    monkeypatch.undo()
    assert main(["export", str(run), "--out", str(blocker / "enc")]) == 2
    assert "cannot write the export" in capsys.readouterr().err


def test_yaml_errors_name_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  name: sit\ntrain:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line \\d+, column \\d+"):
        load_config(bad)


def test_who_holds_a_lock(tmp_path):
    """What a study asks before it runs a stage: held by another live process, or free to take."""
    from vitssl.engine.runlock import acquire, held_by_another

    lock = tmp_path / ".stage.claim"
    assert not held_by_another(lock)  # none
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        host = os.uname().nodename
        for pid, held in ((live.pid, True), (dead.pid, False), (os.getpid(), False)):  # another, gone, this one
            lock.write_text(json.dumps({"pid": pid, "host": host, "started": "x"}))
            assert held_by_another(lock) == held, pid
        if Path(f"/proc/{live.pid}/stat").exists():  # a PID given to a later process (after a restart): not it
            lock.write_text(json.dumps({"pid": live.pid, "host": host, "started": "x", "ticks": "1"}))
            assert not held_by_another(lock)
            assert acquire(tmp_path, lock.name, quiet=True) == lock  # taken over
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    finally:
        live.kill()
        live.wait()
    lock.write_text("")  # being written this instant: held; left so for long: garbage, free
    assert held_by_another(lock)
    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert not held_by_another(lock)
