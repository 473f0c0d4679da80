import pickle

import pytest
import torch

from vitssl.engine import checkpoint as ckpt
from vitssl.errors import CheckpointError


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_roundtrip(tmp_path):
    ckpt.save_atomic({"model": {"w": torch.ones(2)}, "step": 3, "rng": [{"cpu": torch.get_rng_state()}]},
                     tmp_path / "c.pt")
    state = ckpt.load(tmp_path / "c.pt")
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.ones(2))


def test_failed_save_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*disk full; the previous 'last.pt'"):
        ckpt.save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_refuses_pickled_code_and_foreign_files(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": ckpt.FORMAT, "x": Evil()}, f)
    with pytest.raises(CheckpointError, match="corrupt or not a PyTorch weights file") as err:
        ckpt.load(evil)  # a bare pickle is not a torch file; it is refused before its code can run
    assert "weights_only=False" not in str(err.value)  # never PyTorch's advice to load it unsafely
    torch.save({"format": ckpt.FORMAT, "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="holds Python objects.*'(builtins.)?print'.*never runs code") as err:
        ckpt.load(evil)
    assert "weights_only=False" not in str(err.value)
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a vitssl checkpoint"):
        ckpt.load(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load(tmp_path / "missing.pt")
