"""Checkpoint -> results.json through the CLI, every encoder source, export round-trip, transfer."""

import json

import pytest
import torch

from tests.conftest import TINY_MODEL, tiny_overrides
from vitssl.cli.main import main
from vitssl.config import load_config
from vitssl.engine import checkpoint as ckpt
from vitssl.errors import CheckpointError, VitsslError
from vitssl.evaluation.encoders import arch_from_state, load_encoder
from vitssl.evaluation.run import eval_config, evaluate
from vitssl.training.pretrain import pretrain

FAST = ["data.synthetic_train=64", "data.synthetic_test=32", "data.num_workers=0", "features.batch_size=32",
        "linear.epochs=3", "linear.batch_size=16", "fewshot.shots=[1,2]", "fewshot.draws=3", "fewshot.steps=5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evalrun")
    pretrain(load_config(None, tiny_overrides(tmp, "train.max_steps=2")))
    return tmp / "run"


def read(path):
    return json.loads((path / "results.json").read_text())


@pytest.mark.parametrize("protocol", ["knn", "linear", "fewshot"])
def test_each_protocol_writes_results(run, protocol, capsys):
    assert main(["eval", protocol, "--checkpoint", str(run), *FAST]) == 0
    out = run / "eval" / f"{protocol}-synthetic"
    res = read(out)
    assert res["protocol"] == protocol and res["dataset"] == "synthetic"
    assert res["method"] == "sit" and res["pool"] == "cls" and res["test_images"] == 32
    assert (out / "results.md").is_file() and (out / "config.yaml").is_file()
    assert json.loads(capsys.readouterr().out)["accuracy"] == res["accuracy"]
    if protocol == "fewshot":
        assert [r["shots"] for r in res["per_shots"]] == [1, 2] and len(res["per_shots"][0]["draws"]) == 3


def test_knn_accuracy_equals_an_independent_weighted_vote(run, tmp_path):
    """The written-out protocol: CLS of the normed last block, cosine similarity, the 20 nearest
    training images vote with weight exp(sim / 0.07)."""
    from vitssl.data.augment import Augment
    from vitssl.data.dataset import load_dataset

    cfg = eval_config(str(run), FAST + [f"output_dir={tmp_path}"])
    res = evaluate("knn", cfg, progress=False)
    enc, _ = load_encoder(str(run))
    plain = Augment(None, image_size=32, mean=cfg.data.mean, std=cfg.data.std).plain
    feats = {}
    for split in ("train", "test"):
        ds = load_dataset(cfg.data, split, progress=False)
        with torch.no_grad():
            z = enc.eval().forward_features(plain(ds.images))[:, 0]
        feats[split] = (torch.nn.functional.normalize(z, dim=1), ds.labels)
    (tr, ytr), (te, yte) = feats["train"], feats["test"]
    sim, idx = (te @ tr.T).topk(20, dim=1)
    votes = torch.zeros(len(te), 10).scatter_add_(1, ytr[idx], (sim / 0.07).exp())
    want = (votes.argmax(1) == yte).float().mean().item() * 100
    assert res["accuracy"] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("protocol", ["knn", "linear", "fewshot"])
def test_protocols_score_separable_features_perfectly_and_shuffled_labels_at_chance(run, protocol, tmp_path,
                                                                                    monkeypatch):
    """Features that encode the label (plus noise): every protocol must reach 100 %; if the training side's
    features are paired with the wrong labels, chance. A protocol that tests on the wrong images, or
    misaligns labels and features, fails one or the other."""
    from vitssl.evaluation import run as run_mod

    def fake(encoder, encoder_id, ds, *, blocks, **kw):
        g = torch.Generator().manual_seed(len(ds))
        labels = ds.labels if ds.split == "test" or not shuffle else ds.labels[torch.randperm(len(ds), generator=g)]
        z = torch.nn.functional.one_hot(labels, 10).float() * 3 + torch.randn(len(ds), 10, generator=g) * 0.3
        return {b: z for b in blocks}

    monkeypatch.setattr(run_mod, "cached_extract", fake)
    extra = ["linear.epochs=30", "fewshot.steps=100"] if protocol != "knn" else []
    for shuffle, check in ((False, lambda a: a == 100.0), (True, lambda a: a < 40.0)):
        res = evaluate(protocol, eval_config(str(run), FAST + extra + [f"output_dir={tmp_path / str(shuffle)}"]),
                       progress=False)
        assert check(res["accuracy"]), (shuffle, res["accuracy"])


def test_layer_sweep_probes_every_block_and_chooses_on_held_out_data(run, tmp_path):
    res = evaluate("linear", eval_config(str(run), FAST + ["features.sweep=true", "linear.lrs=[0.1,1.0]",
                                                           f"output_dir={tmp_path}"]), progress=False)
    assert [r["features"] for r in res["per_block"]] == ["block 1", "block 2"]
    best = max(res["per_block"], key=lambda r: r["val_accuracy"])
    assert res["features"] == best["features"] and res["accuracy"] == best["accuracy"]
    res = evaluate("knn", eval_config(str(run), FAST + ["features.sweep=true", "features.pool=cls+avg",
                                                        f"output_dir={tmp_path}"]), progress=False)
    assert len(res["per_block"]) == 2 and "val_accuracy" in res["per_block"][0]


def test_features_are_cached_and_reused(run, tmp_path, monkeypatch):
    from vitssl.engine import features

    cfg = eval_config(str(run), FAST + [f"output_dir={tmp_path}"])
    first = evaluate("knn", cfg, progress=False)
    calls = []
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(1))
    assert evaluate("knn", cfg, progress=False)["accuracy"] == first["accuracy"] and calls == []


def test_every_encoder_source_gives_the_same_encoder(run, tmp_path):
    enc, info = load_encoder(str(run))
    assert info["method"] == "sit" and info["step"] == 2
    # export -> safetensors + json, loadable back
    assert main(["export", str(run), "--out", str(tmp_path / "enc")]) == 0
    meta = json.loads((tmp_path / "enc.json").read_text())
    assert meta["arch"]["embed_dim"] == 64 and meta["method"] == "sit"
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "enc.safetensors")))
    assert {"patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.1.attn.qkv.weight", "norm.bias"} <= keys
    back, _ = load_encoder(str(tmp_path / "enc.safetensors"))
    # a timm-format state dict: shapes inferred, heads given
    torch.save(enc.state_dict(), tmp_path / "timm.pth")
    timm, info = load_encoder(str(tmp_path / "timm.pth"), model_cfg=load_config(None, TINY_MODEL).model)
    assert info["method"] == "timm"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = enc.forward_features(x)
        assert torch.equal(back.forward_features(x), ref) and torch.allclose(timm.forward_features(x), ref)
    # evaluating the exported file gives the run's numbers
    a = evaluate("knn", eval_config(str(run), FAST + [f"output_dir={tmp_path / 'a'}"]), progress=False)
    b = evaluate("knn", eval_config(str(tmp_path / "enc.safetensors"),
                                    FAST + ["data.root=synthetic", "data.image_size=32", "features.pool=cls",
                                            f"output_dir={tmp_path / 'b'}"]), progress=False)
    assert a["accuracy"] == b["accuracy"]


def test_random_encoder_and_transfer_to_another_dataset(run, cifar_small, tmp_path):
    res = evaluate("knn", eval_config("random", TINY_MODEL + FAST + ["data.image_size=32", f"output_dir={tmp_path}"]),
                   progress=False)
    assert res["method"] == "random" and res["pool"] == "avg"
    res = evaluate("linear", eval_config(str(run), FAST + [f"data.root={cifar_small}", f"output_dir={tmp_path / 't'}"]),
                   progress=False)
    assert res["dataset"] == "cifar_small" and res["train_images"] == 80 and res["test_images"] == 40
    assert res["classes"] == 10


def test_bad_sources_are_clear_errors(run, tmp_path, capsys):
    assert main(["eval", "knn", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_encoder(str(tmp_path / "junk.pt"))
    torch.save({"w": torch.zeros(2)}, tmp_path / "notvit.pt")
    with pytest.raises(CheckpointError, match="not a ViT"):
        load_encoder(str(tmp_path / "notvit.pt"))
    assert main(["eval", "knn", "--checkpoint", str(run), "features.blocks=[7]", *FAST]) == 2
    assert "features.blocks" in capsys.readouterr().err
    assert main(["eval", "knn", "--checkpoint", str(run), "knn.kk=3"]) == 2
    assert "did you mean 'knn.k'" in capsys.readouterr().err


def test_arch_inference_from_timm_weights():
    from vitssl.models.vit import build_vit

    state = build_vit(arch="vit_small", img_size=64, patch_size=16).state_dict()
    arch = arch_from_state(state)
    assert (arch["embed_dim"], arch["depth"], arch["num_heads"], arch["img_size"], arch["mlp_ratio"]) == \
        (384, 12, 6, 64, 4.0)


def test_finetune_with_layer_decay_and_a_time_budget(run, tmp_path):
    from vitssl.evaluation.finetune import layer_decay_groups
    from vitssl.models.vit import build_vit

    groups = layer_decay_groups(build_vit(arch="vit_tiny", img_size=32, patch_size=4, depth=2, num_classes=10),
                                0.05, 0.5)
    scale = {round(g["lr_scale"], 4) for g in groups}
    assert scale == {0.125, 0.25, 0.5, 1.0}  # embeddings, blocks 1 and 2, head (+ final norm)
    assert all(g["weight_decay"] == 0 for g in groups if all(p.ndim <= 1 for p in g["params"]))
    ft = FAST + ["finetune.batch_size=16", "finetune.epochs=2", "finetune.eval_every=1", "finetune.warmup_epochs=0.5",
                 f"output_dir={tmp_path / 'ft'}"]
    res = evaluate("finetune", eval_config(str(run), ft), progress=False)
    assert res["protocol"] == "finetune" and res["steps"] == 8 and [r["epoch"] for r in res["per_epoch"]] == [1, 2]
    assert (tmp_path / "ft" / "finetuned.pt").is_file()
    rows = [json.loads(r) for r in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert any("test_accuracy" in r for r in rows)
    # a budget far below the epochs asked for stops early and still reports
    res = evaluate("finetune", eval_config("random", TINY_MODEL + ft + ["data.image_size=32", "finetune.epochs=500",
                                                                      "finetune.max_minutes=0.02",
                                                                      f"output_dir={tmp_path / 'ft2'}"]), progress=False)
    assert 6 <= res["steps"] < 2000 and res["method"] == "random"


def test_finetune_is_a_run_that_resumes_exactly(run, tmp_path):
    """Fine-tuning runs on the pre-training loop: stopped at step 3 and resumed, it ends with the same
    weights as a run that never stopped; a second start in the same folder is refused with the way on."""
    ft = FAST + ["finetune.batch_size=16", "finetune.epochs=2", "finetune.eval_every=1", "finetune.clip_grad=1.0"]
    full = evaluate("finetune", eval_config(str(run), ft + [f"output_dir={tmp_path / 'a'}"]), progress=False)
    part = ft + [f"output_dir={tmp_path / 'b'}"]
    assert evaluate("finetune", eval_config(str(run), part + ["finetune.max_steps=3"]), progress=False)["steps"] == 3
    with pytest.raises(VitsslError, match="already holds a run; continue it with `vitssl eval finetune .*--resume"):
        evaluate("finetune", eval_config(str(run), part), progress=False)
    resumed = evaluate("finetune", eval_config(str(run), part), progress=False, resume=True)
    assert resumed["steps"] == full["steps"] == 8 and resumed["accuracy"] == full["accuracy"]
    a, b = (ckpt.load(tmp_path / d / "finetuned.pt")["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = ckpt.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert state["method"] == "finetune" and state["step"] == 8 and "optimizer" in state
    rows = [json.loads(r) for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [3, 8]  # every 20 steps, at a stop and at the end


def test_report_gathers_runs_into_a_table_with_plots(run, tmp_path):
    evaluate("fewshot", eval_config(str(run), FAST), progress=False)
    evaluate("knn", eval_config(str(run), FAST), progress=False)
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--images", "3"]) == 0
    res = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert {(r["protocol"], r["dataset"]) for r in res["rows"]} >= {("fewshot", "synthetic"), ("knn", "synthetic")}
    md = (tmp_path / "rep" / "results.md").read_text()
    assert "| run | method |" in md and "knn synthetic" in md and "±" in md
    for png in ("loss.png", "fewshot.png", f"attention_{run.name}.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
    assert main(["report", str(tmp_path)]) == 2  # not a run folder


def test_a_random_baseline_takes_its_image_size_from_the_data(tmp_path, capsys):
    """Not a silent 32 px with 16-px patches (2x2 tokens): the data's size, 8x8 to 14x14 tokens."""
    from PIL import Image

    for split in ("train", "test"):
        for c in ("a", "b"):
            for i in range(3):
                (tmp_path / "photos" / split / c).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (120 + i, 90), (i * 40, 10, 10)).save(tmp_path / "photos" / split / c / f"{i}.jpg")
    cfg = eval_config("random", [f"data.root={tmp_path / 'photos'}"])
    assert (cfg.data.image_size, cfg.model.patch_size) == (88, 8)  # shorter side 90, a whole number of patches
    assert "a random ViT for 88-px images with 8-px patches (11x11 tokens)" in capsys.readouterr().err
    cfg = eval_config("random", [f"data.root={tmp_path / 'photos'}", "data.image_size=64", "model.patch_size=16"])
    assert (cfg.data.image_size, cfg.model.patch_size) == (64, 16)  # as asked


def test_attention_pictures_decode_only_the_images_they_show(cifar_small, tmp_path, monkeypatch):
    from vitssl.data import dataset
    from vitssl.evaluation.report import attention_picture

    pretrain(load_config(None, tiny_overrides(tmp_path, f"data.root={cifar_small}", "train.max_steps=1",
                                              "log.images_every=0")))

    def whole_split(paths, *args, **kwargs):
        raise AssertionError(f"decoded a whole split ({len(paths)} images) for a few pictures")

    monkeypatch.setattr(dataset, "decode_files", whole_split)
    assert attention_picture(tmp_path / "run", tmp_path / "att.png", n_images=3)
    assert (tmp_path / "att.png").stat().st_size > 1000
