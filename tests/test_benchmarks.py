"""The benchmarks' own machinery: FLOPs counted from shapes, the reference SiT step of
`benchmarks/reference/` computing what vitssl's fast step computes (only the speed may differ), and
the side-by-side scripts running end to end at toy sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vitssl.models.vit as vit_module
from tests.conftest import TINY_MODEL
from vitssl.config import load_config
from vitssl.methods import registry
from vitssl.models.vit import VisionTransformer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from common import count_flops  # noqa: E402
from reference.sit_step import research_code_model  # noqa: E402


def test_flops_of_a_vit_forward_equal_the_closed_form():
    vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=96, depth=3, num_heads=3)
    b, n, d = 2, 65, 96
    per_block = 12 * n * d * d + 2 * n * n * d  # qkv, proj, MLP (4x) + q k^T and attn v, multiply-adds
    closed = 2 * b * (3 * per_block + 64 * 48 * d)  # + the patch embedding; 2 FLOPs per multiply-add
    assert count_flops(lambda: vit.forward_features(torch.randn(b, 3, 32, 32))) == closed


def test_reference_step_computes_what_the_fast_step_computes():
    """Explicit attention, a full teacher pass and timm's multiplied stochastic depth (the reference)
    give the same losses and gradients as SDPA, a teacher whose last block computes the CLS token
    alone and skipped dropped samples; the teacher's per-parameter EMA loop equals the one `foreach`
    update."""
    cfg = load_config(None, TINY_MODEL + ["method.proj_hidden=32", "method.proj_dim=16", "data.image_size=16",
                                          "model.drop_path=0.5"])  # stochastic depth on: skipped vs multiplied
    sit = registry.get("sit").build(cfg)
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    clean = [sit.augment(images, v) for v in (0, 1)]
    cor = [sit.corrupt(v) for v in clean]
    views = (clean, [c.images for c in cor], [c.mask for c in cor])

    def loss_and_grads():
        sit.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same stochastic-depth draws in both
        out = sit.losses(*views)
        out["loss"].backward()
        return out["loss"].detach(), [p.grad.clone() for p in sit.parameters() if p.requires_grad]

    fast_loss, fast_grads = loss_and_grads()
    with research_code_model():
        assert vit_module.attend.__name__ == "_explicit_attend"  # the model really runs the written-out form
        assert vit_module.Block.forward.__name__ == "research_block"  # full teacher, timm DropPath
        ref_loss, ref_grads = loss_and_grads()
    assert torch.allclose(fast_loss, ref_loss, atol=1e-5)
    for a, b in zip(fast_grads, ref_grads):  # float32 summation-order noise, relative to each tensor's scale
        assert (a - b).abs().max() <= 1e-5 * a.abs().max() + 1e-6, ((a - b).abs().max(), a.abs().max(), a.shape)

    with torch.no_grad():
        for p in sit.encoder.parameters():
            p.add_(torch.randn_like(p))
    teacher = [p.clone() for p in sit.teacher_parameters()]
    student = list(sit.encoder.parameters()) + list(sit.proj_head.parameters())
    m = 0.99
    loop = [t.mul(m).add_(s, alpha=1 - m) for t, s in zip(teacher, student)]  # the reference's loop
    sit.momentum = m
    sit.cfg.momentum = sit.cfg.momentum_end = m  # a constant schedule: after_step applies exactly m
    sit.after_step(0, 10)
    for a, b in zip(sit.teacher_parameters(), loop):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("script, args, rows", [
    ("reference_pipeline.py", ["--size", "32", "--images", "48", "--batch", "8", "--workers", "1", "--rounds", "1"], 4),
    ("reference_step.py", ["--batch", "8", "--steps", "1", "--workers", "1"], 5),
])
def test_side_by_side_scripts_run_every_row(tmp_path, script, args, rows):
    """Each row in its own process, the reference first with ratio 1; results go where they are told."""
    env = {**os.environ, "VITSSL_BENCH_RESULTS": str(tmp_path)}
    subprocess.run([sys.executable, str(BENCHMARKS / script), *args], env=env, check=True, capture_output=True)
    (result,) = tmp_path.glob("*.json")
    got = json.loads(result.read_text())["rows"]
    assert len(got) == rows and got[0]["pipeline"].startswith("reference") and got[0]["ratio"] == 1.0
    assert all(r["images_per_s"] > 0 for r in got)
    assert result.with_suffix(".md").read_text().count("\n| ") == rows + 1  # header + one line per row
    if script == "reference_step.py":  # each round's ratio to the reference of the same round
        assert got[0]["round_ratios"] == [1.0] and all(len(r["round_ratios"]) == 1 for r in got)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no CUDA")
def test_cuda_without_a_gpu_is_a_usage_error():
    """--device cuda on a machine without one stops at argument parsing, saying why, before any work."""
    out = subprocess.run([sys.executable, str(BENCHMARKS / "scaling.py"), "--device", "cuda"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--device is 'cuda' but" in out.stderr and "use cpu" in out.stderr


def test_encoder_shortcuts_do_less_work(tmp_path):
    """Skipping dropped samples and the CLS-only last block count fewer FLOPs than the plain way."""
    env = {**os.environ, "VITSSL_BENCH_RESULTS": str(tmp_path)}
    subprocess.run([sys.executable, str(BENCHMARKS / "encoder_shortcuts.py"), "--settings", "tiny32", "--batch", "8",
                    "--rounds", "1", "--drop-path", "0.5"], env=env, check=True, capture_output=True)
    rows = json.loads((tmp_path / "encoder_shortcuts_cpu.json").read_text())["rows"]
    timm, fused, skip, full, cls = (r["gflop"] for r in rows)
    assert rows[0]["speedup"] == 1.0 and rows[3]["speedup"] == 1.0
    assert fused == timm and skip < timm and cls < full
    assert [r["default"] for r in rows] == ["", "", "yes", "", "yes"]


def test_repro_summary_pairs_seeds_and_names_what_holds(tmp_path):
    """Gains are paired by seed against random init with the same pooling; an ordering holds only when
    it has the paper's sign on every seed."""
    from repro_summary import claim, orderings, paired

    def row(entry, protocol, seed, acc, pool="avg", epoch=20.0, final=True):
        return {"entry": entry, "protocol": protocol, "seed": seed, "accuracy": acc, "pool": pool,
                "pretrain": "random init" if entry.startswith("scratch") else "epochs 5, 20",
                "pretrain_epoch": 0 if entry.startswith("scratch") else epoch, "final": final}

    rows = [row("scratch-avg", "finetune", 0, 60.0), row("scratch-avg", "finetune", 1, 62.0),
            row("scratch-cls", "finetune", 0, 50.0, "cls"), row("scratch-cls", "finetune", 1, 52.0, "cls"),
            row("mae", "finetune", 0, 65.0), row("mae", "finetune", 1, 63.0),
            row("sit", "finetune", 0, 51.0, "cls"), row("sit", "finetune", 1, 51.0, "cls")]
    text = "\n".join(claim(rows))
    assert "| mae | avg | 64.00 ± 1.41 (2) | 61.00 ± 1.41 (2) (scratch-avg) | +3.00 ± 2.83 (2; +5.00, +1.00) | holds |" \
        in text
    assert "| sit | cls |" in text and "(scratch-cls) | +0.00 ± 1.41 (2; +1.00, -1.00) | unclear" in text
    assert paired({0: 50.0, 1: 50.0}, {0: 50.3, 1: 50.2})[1] == "holds in sign, within noise"
    assert paired({0: 50.0, 1: 50.0}, {0: 45.0, 1: 44.0})[1] == "reversed"
    assert paired({0: 50.0}, {1: 55.0}) == ("–", "not measured yet")  # no seed in common: nothing paired
    assert paired({0: 50.0}, {0: 51.5}) == ("+1.50 (1)", "holds, one seed")  # one seed: no spread to show

    rows = [row("patch-raster", "linear", s, 40.0 + s) for s in (0, 1)] + \
           [row("patch-random", "linear", s, 45.0 + s) for s in (0, 1)]
    text = "\n".join(orderings(rows))
    assert "| patch-random | – | 45.50 ± 0.71 (2) | +5.00 ± 0.00 (2; +5.00, +5.00) | 75.53 | +20.00 |" in text
    assert "| random order beats raster | patch-raster | patch-random | +20.00 | +5.00 ± 0.00 (2; +5.00, +5.00) " \
           "| holds |" in text
    assert "| blobs (K=7) beat raster | patch-raster | blobs-k7 | +26.99 | – | not measured yet |" in text
    only = "\n".join(orderings(rows, "two of them", only_measured=True))  # repro_orderings_lr: its own pairs only
    assert "random order beats raster" in only and "blobs" not in only


def test_study_cpu_time_puts_each_snapshot_at_its_measured_cpu_minutes(tmp_path):
    """Minutes = epochs x images per epoch x measured seconds per image; within a budget, each entry's latest
    snapshot that fits."""
    from tests.study.test_study import toy_study
    from vitssl.cli.main import main

    study = toy_study(tmp_path, epochs=(1, 2))
    assert main(["study", str(study), "--quiet"]) == 0
    res = subprocess.run([sys.executable, str(BENCHMARKS / "study_cpu_time.py"), str(study), "--steps", "1",
                          "--out", str(tmp_path / "cpu")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(BENCHMARKS.parent)))
    assert res.returncode == 0, res.stderr
    record = json.loads((tmp_path / "cpu" / "cpu_time.json").read_text())
    rate = record["img_per_s"]["sit"]
    points = {(p["protocol"], p["epoch"]): p for p in record["points"]}
    assert set(points) == {("knn", 1), ("knn", 2.0), ("linear", 1), ("linear", 2.0)}
    for (_, epoch), p in points.items():  # 128 images per epoch (batch 16)
        assert p["cpu_minutes"] == pytest.approx(epoch * 128 / rate / 60, abs=0.01)
    md = (tmp_path / "cpu" / "cpu_time.md").read_text()
    assert "1 method steps at each entry's configured batch" in md and (tmp_path / "cpu" / "cpu_time.png").is_file()
    assert record["random_init"] and record["timed_steps"] == 1
