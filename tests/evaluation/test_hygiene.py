"""Evaluation that cannot leak or mislead: no test on training images, features cached per exact
image set, baselines read like the run they are compared with, bad requests stopped before decoding."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY_MODEL, tiny_overrides
from vitssl.cli.main import main
from vitssl.config import load_config
from vitssl.data import dataset as dataset_mod
from vitssl.engine import features
from vitssl.errors import ConfigError, DataError
from vitssl.evaluation.run import eval_config, evaluate
from vitssl.training.pretrain import pretrain

FAST = ["data.num_workers=0", "features.batch_size=32", "linear.epochs=3", "linear.batch_size=16",
        "fewshot.draws=2", "fewshot.steps=5"]
RANDOM = TINY_MODEL + ["data.image_size=16"]


def make_folder(root, counts, size=16, seed=0, nested=""):
    """Class folders (optionally under `nested`) of random-noise PNGs."""
    rng = np.random.default_rng(seed)
    for c, n in counts.items():
        d = root / nested / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any image is decoded."""
    def refuse(*a, **k):
        raise AssertionError("an image was decoded before the request was checked")
    monkeypatch.setattr(dataset_mod, "decode_files", refuse)


def test_a_folder_without_splits_is_never_tested_on_its_training_images(tmp_path, capsys):
    root = make_folder(tmp_path / "photos", {"a": 10, "b": 10, "c": 10})
    res = evaluate("knn", eval_config("random", RANDOM + FAST + [f"data.root={root}", f"output_dir={tmp_path / 'o'}"]),
                   progress=False)
    assert res["train_images"] + res["test_images"] == 30 and res["test_images"] == 6
    assert res["test_set"]["formed"].startswith("held out: 6 of 30") and "data.holdout" in res["test_set"]["formed"]
    assert "held out" in capsys.readouterr().err  # said in one line
    stored = json.loads((tmp_path / "o" / "results.json").read_text())
    assert stored["test_set"]["images"] == 6 and stored["train_set"]["images"] == 24
    md = (tmp_path / "o" / "results.md").read_text()
    assert "held out" in md and "pooling avg" in md
    # few-shot support sets come from the training side only
    res = evaluate("fewshot", eval_config("random", RANDOM + FAST + [f"data.root={root}", "fewshot.shots=[2]",
                                                                    f"output_dir={tmp_path / 'f'}"]), progress=False)
    assert res["train_images"] == 24 and res["test_images"] == 6


def test_same_split_or_shared_images_are_refused(tmp_path, no_decoding):
    root = make_folder(tmp_path / "photos", {"a": 4, "b": 4}, nested="train")
    make_folder(root, {"a": 2, "b": 2}, nested="test")
    with pytest.raises(ConfigError, match="test_split 'train' is also the split the probes train on"):
        evaluate("knn", eval_config("random", RANDOM + FAST + [f"data.root={root}", "test_split=train"]), progress=False)


def test_feature_cache_tells_seeded_subsets_and_same_named_folders_apart(tmp_path, monkeypatch):
    """Class-ordered folder: seed 0 and seed 1 subsets share a label sequence but not their images."""
    a = make_folder(tmp_path / "x" / "photos", {"a": 12, "b": 12}, nested="train", seed=1)
    make_folder(a, {"a": 4, "b": 4}, nested="test", seed=2)
    b = make_folder(tmp_path / "y" / "photos", {"a": 12, "b": 12}, nested="train", seed=3)
    make_folder(b, {"a": 4, "b": 4}, nested="test", seed=4)
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *args, **kw: calls.append(args[1].identity) or real(*args, **kw))
    base = RANDOM + FAST + ["data.limit=8"]
    run = lambda *extra: evaluate("knn", eval_config("random", base + list(extra)), progress=False)  # noqa: E731
    run(f"data.root={a}", "seed=0", f"output_dir={tmp_path / 'o0'}")
    n = len(calls)
    assert n == 2  # train and test
    run(f"data.root={a}", "seed=0", f"output_dir={tmp_path / 'o0b'}")
    assert len(calls) == n  # the same images: read from the cache
    run(f"data.root={a}", "seed=1", "model.drop_path=0.1", f"output_dir={tmp_path / 'o1'}")
    assert len(calls) > n  # another subset (and another random encoder): extracted again
    n = len(calls)
    run(f"data.root={b}", "seed=0", f"output_dir={tmp_path / 'ob'}")
    assert len(calls) == n + 2  # a folder of the same name elsewhere: its own features
    from vitssl.config.sections import DataConfig
    from vitssl.data.dataset import scan_dataset

    s0 = scan_dataset(DataConfig(root=str(a), limit=8), "train", seed=0)
    s1 = scan_dataset(DataConfig(root=str(a), limit=8), "train", seed=1)
    assert list(s0.labels) == list(s1.labels) and s0.identity != s1.identity


def test_encoder_cache_key_is_the_file_content(tmp_path):
    from vitssl.evaluation.encoders import fingerprint

    f = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(3)}, f)
    first = fingerprint(f)
    torch.save({"a": torch.ones(3)}, f)
    assert fingerprint(f) != first
    g = tmp_path / "copy.pt"
    g.write_bytes(f.read_bytes())
    assert fingerprint(g) == fingerprint(f)


@pytest.fixture(scope="module")
def sit_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hygiene_run")
    pretrain(load_config(None, tiny_overrides(tmp, "train.max_steps=2", "log.images_every=0")))
    return tmp / "run"


def test_random_baseline_like_a_run_is_read_as_the_run(sit_run, tmp_path):
    extra = ["data.synthetic_train=64", "data.synthetic_test=32"] + FAST
    run_res = evaluate("knn", eval_config(str(sit_run), extra), progress=False)  # into the run's eval/
    assert main(["eval", "knn", "--checkpoint", "random", "--like", str(sit_run), *extra,
                 f"output_dir={tmp_path / 'b'}"]) == 0
    base = json.loads((tmp_path / "b" / "results.json").read_text())
    assert base["method"] == "random" and base["like"] == str(sit_run)
    for k in ("pool", "blocks", "image_size", "model", "test_images", "train_images", "dataset"):
        assert base[k] == run_res[k], k
    assert base["pool"] == "cls" and "sit" in base["pool_from"]
    with pytest.raises(ConfigError, match="--like RUN .* --checkpoint random"):
        eval_config(str(sit_run), [], like=str(sit_run))
    # the report shows what each number used and flags a column that mixes poolings
    evaluate("knn", eval_config(str(sit_run), extra + ["features.pool=avg", "output_dir=" + str(sit_run / "eval" /
                                                                                                "knn-avg")]),
             progress=False)
    assert main(["report", str(sit_run), "--out", str(tmp_path / "rep"), "--images", "2"]) == 0
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "What each number used" in md and "| cls |" in md and "| avg |" in md
    assert "not like for like" in md and "different pool" in md


def test_monitor_queries_are_held_out_training_images(tmp_path, monkeypatch):
    from vitssl.training import monitor as monitor_mod

    seen = []
    real = monitor_mod.load_dataset
    monkeypatch.setattr(monitor_mod, "load_dataset", lambda data, split, **kw: seen.append(split) or
                        real(data, split, **kw))
    cfg = load_config(None, tiny_overrides(tmp_path, "log.knn_every=1", "log.knn_train=40", "log.knn_test=20"))
    mon = monitor_mod.KNNMonitor(cfg, pool="cls", patch_size=4)
    assert seen == ["train"]  # never the test split
    assert len(mon.train) == 40 and len(mon.test) == 20  # knn_train + knn_test of the 64 training images
    tr = {tuple(x.flatten()[:64].tolist()) for x in mon.train.images}
    te = {tuple(x.flatten()[:64].tolist()) for x in mon.test.images}
    assert not tr & te  # disjoint
    assert torch.bincount(mon.test.labels).min() >= 2  # class-balanced


def test_bad_requests_stop_before_any_image_is_decoded(tmp_path, no_decoding):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 5}, nested="train")
    make_folder(root, {"a": 2, "b": 2}, nested="valid")
    make_folder(root, {"images": 4}, nested="val")
    make_folder(root, {"a": 2, "c": 2}, nested="test")
    ev = lambda protocol, *extra: evaluate(protocol, eval_config("random", RANDOM + FAST + [f"data.root={root}",  # noqa
                                                                                          *extra]), progress=False)
    with pytest.raises(DataError, match="has split folders .* but no 'tst'; set test_split"):
        ev("knn", "test_split=tst")
    with pytest.raises(DataError, match="test_split 'val' .* has 1 class, 'images': its labels may live in an "
                                        "annotation file"):
        ev("knn", "test_split=val")
    with pytest.raises(DataError, match="different classes .*only in 'train': b.*only in 'test': c.*set test_split"):
        ev("knn", "test_split=test")
    with pytest.raises(DataError, match="class 'a' of 'train' has only 3; lower fewshot.shots"):
        ev("fewshot", "test_split=valid", "fewshot.shots=[1,5]")
    with pytest.raises(ConfigError, match="data.image_size"):
        ev("knn", "test_split=valid", "data.image_size=18")
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.new("RGB", (16, 16)).save(flat / f"{i}.png")
    with pytest.raises(DataError, match="data.split 'train' of .* has no class labels"):
        evaluate("knn", eval_config("random", RANDOM + FAST + [f"data.root={flat}"]), progress=False)


def test_any_split_folder_name_works_for_evaluation(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 6, "b": 6}, nested="train")
    make_folder(root, {"a": 2, "b": 2}, nested="valid")
    res = evaluate("knn", eval_config("random", RANDOM + FAST + [f"data.root={root}", "test_split=valid",
                                                                f"output_dir={tmp_path / 'o'}"]), progress=False)
    assert res["test_split"] == "valid" and res["test_images"] == 4 and res["train_images"] == 12
    assert res["test_set"]["formed"] == "the folder 'valid/'"


def test_a_different_held_out_part_than_pre_training_left_out_is_flagged(tmp_path, capsys):
    root = make_folder(tmp_path / "photos", {"a": 10, "b": 10})
    pretrain(load_config(None, tiny_overrides(tmp_path, f"data.root={root}", "data.image_size=16",
                                              "train.batch_size=8", "train.max_steps=1", "log.images_every=0")))
    run = tmp_path / "run"
    for extra, flagged in (([], False), (["data.holdout=0.3"], True), (["data.holdout_seed=1"], True)):
        capsys.readouterr()
        evaluate("knn", eval_config(str(run), FAST + extra + [f"output_dir={tmp_path / 'o'}"]), progress=False)
        assert ("some test images were seen (without labels) in pre-training" in capsys.readouterr().err) == flagged
