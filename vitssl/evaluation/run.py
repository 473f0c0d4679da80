"""`vitssl eval PROTOCOL`: from a checkpoint to `results.json` (+ a Markdown table and the resolved config)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import yaml

from vitssl import distributed as dist
from vitssl.config.load import apply_overrides, merge, read_yaml
from vitssl.config.schema import from_dict, to_dict
from vitssl.config.sections import check_image_size
from vitssl.data.augment import Augment
from vitssl.data.dataset import ImageDataset, SplitScan, load_dataset, scan_dataset
from vitssl.distributed import resolve_device
from vitssl.engine.features import cached_extract
from vitssl.engine.knn import accuracy, knn_predict
from vitssl.engine.linear import train_probes
from vitssl.errors import ConfigError, DataError
from vitssl.evaluation import encoders
from vitssl.evaluation.config import EvalConfig
from vitssl.evaluation.finetune import run_finetune
from vitssl.hostmem import keep_freed_memory
from vitssl.methods.registry import pool_of
from vitssl.models.vit import block_indices


def sections_of(pre: dict) -> dict:
    """The evaluation defaults a pre-training config (a dict) gives: its data (all of each split, no
    download) and its model."""
    data = {k: v for k, v in (pre.get("data") or {}).items() if k not in ("limit", "split", "download")}
    return {"data": data, "model": pre.get("model") or {}}


def _pretrain_sections(source: str) -> dict:
    """The data and model sections a checkpoint was pre-trained with (defaults for the evaluation)."""
    if source == "random":
        return {}
    path = encoders.checkpoint_file(source)
    cfg_file = path.parent.parent / "config.yaml" if path.parent.name == "checkpoints" else None
    if cfg_file is None or not cfg_file.is_file():
        return {}
    return sections_of(read_yaml(cfg_file))


def _like_sections(run: str) -> dict:
    """What a random baseline takes from the run it is compared with: the encoder's shape and the data
    it was pre-trained on (pooling is resolved from the run's method when the evaluation starts)."""
    enc, _ = encoders.load_encoder(run)
    arch = enc.arch
    model = {"patch_size": arch["patch_size"], "embed_dim": arch["embed_dim"], "depth": arch["depth"],
             "num_heads": arch["num_heads"], "mlp_ratio": arch["mlp_ratio"], "pos_embed": arch.get("pos_embed", "learned")}
    return merge(_pretrain_sections(run), {"model": model, "data": {"image_size": arch["img_size"]}})


def eval_config(checkpoint: str, overrides: list[str], config_file: Optional[str] = None,
                like: Optional[str] = None) -> EvalConfig:
    """The evaluation config: the checkpoint's pre-training data and model (or, for `--checkpoint random
    --like RUN`, RUN's), then the config file, then the overrides."""
    for item in overrides:  # `like=RUN` as an override means the same as --like RUN
        if item.startswith("like="):
            like = item.partition("=")[2] or None
    if like is not None and checkpoint != "random":
        raise ConfigError("--like RUN shapes a random baseline like RUN; use it with --checkpoint random")
    data = _like_sections(like) if like is not None else _pretrain_sections(checkpoint)
    if config_file:
        data = merge(data, read_yaml(config_file))
    data = apply_overrides(merge(data, {"checkpoint": checkpoint, "like": like}), overrides)
    if checkpoint == "random" and like is None:
        data = _random_shape(data)
    return from_dict(EvalConfig, data)


PATCH_FOR = ((32, 4), (64, 8), (128, 8), (10 ** 9, 16))  # image side -> patch side: 8x8 to 14x14 tokens


def _random_shape(data: dict) -> dict:
    """`--checkpoint random` without --like: the image size the data has (not a silent 32 px) and a
    patch size giving 8x8 to 14x14 tokens, where the config leaves them unset; one line says so."""
    d, m = dict(data.get("data") or {}), dict(data.get("model") or {})
    if "image_size" in d and "patch_size" in m:
        return data
    size = d.get("image_size") or native_size(from_dict(EvalConfig, data).data)
    patch = m.get("patch_size") or next(p for limit, p in PATCH_FOR if size <= limit)
    if "image_size" not in d:
        size = max(patch, size // patch * patch)  # a whole number of patches
    print(f"note: --checkpoint random without --like: a random ViT for {size}-px images with {patch}-px patches "
          f"({size // patch}x{size // patch} tokens), from the data; set data.image_size and model.patch_size, or "
          "pass --like RUN to shape it like a pre-trained run", file=sys.stderr)
    return merge(data, {"data": {"image_size": size}, "model": {"patch_size": patch}})


def native_size(data_cfg) -> int:
    """The side the images of data.split have: the array's side, or the median shorter side of up to 32
    image files (header only) capped at 224 (the usual evaluation size for photos)."""
    scan = scan_dataset(data_cfg, data_cfg.split)
    if scan.kind == "synthetic":
        return data_cfg.image_size
    if scan._images is not None:
        return int(min(scan._images.shape[1:3]))
    from PIL import Image

    sides = []
    for p in scan.paths[:: max(1, len(scan.paths) // 32)][:32]:
        try:
            with Image.open(p) as im:
                sides.append(min(im.size))
        except OSError:
            continue
    return int(min(224, sorted(sides)[len(sides) // 2])) if sides else data_cfg.image_size


def _split(n: int, frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (fit, val) index split of the training images."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * frac)))
    return perm[n_val:], perm[:n_val]


class Evaluation:
    """The encoder, both splits and their features for one config."""

    def __init__(self, cfg: EvalConfig, progress: bool = True, protocol: Optional[str] = None):
        self.cfg, self.progress = cfg, progress
        self.device = torch.device(resolve_device(cfg.device))
        keep_freed_memory(self.device)
        self.encoder, self.info = encoders.load_encoder(cfg.checkpoint, model_cfg=cfg.model,
                                                        image_size=cfg.data.image_size, seed=cfg.seed)
        patch = self.encoder.patch_size
        check_image_size(cfg.data.image_size, patch, "the checkpoint's patch size")
        self.pool, self.pool_from = self._resolve_pool()
        depth = self.encoder.depth
        self.blocks = (list(range(depth)) if cfg.features.sweep
                       else block_indices(cfg.features.blocks, depth, "features.blocks"))
        # everything about the data is checked on file lists and labels, before an image is decoded
        train_scan, test_scan = check_splits(cfg, protocol)
        self._note_other_holdout(test_scan)
        self.train = load_dataset(cfg.data, cfg.data.split, seed=cfg.seed, min_side=patch, progress=progress,
                                  scan=train_scan)
        test_data = dataclasses.replace(cfg.data, limit=cfg.test_limit)
        self.test = load_dataset(test_data, cfg.test_split, seed=cfg.seed, min_side=patch, progress=progress,
                                 key="test_split", scan=test_scan)
        self.num_classes = len(self.train.classes)
        self.preprocess = Augment(None, image_size=cfg.data.image_size, mean=cfg.data.mean, std=cfg.data.std).plain
        self.out: Optional[Path] = None

    def _note_other_holdout(self, test_scan: SplitScan) -> None:
        """A held-out test part drawn differently from the one pre-training left out holds images the
        encoder saw (without labels): say so."""
        pre = (self.info.get("pretrain_config") or {}).get("data") or {}
        if not test_scan.formed.startswith("held out") or pre.get("root") != self.cfg.data.root:
            return
        d = self.cfg.data
        if (pre.get("holdout"), pre.get("holdout_seed")) != (d.holdout, d.holdout_seed):
            print(f"note: pre-training held out data.holdout={pre.get('holdout')}, data.holdout_seed="
                  f"{pre.get('holdout_seed')} of '{d.root}', this evaluation {d.holdout}, {d.holdout_seed}: some test "
                  "images were seen (without labels) in pre-training", file=sys.stderr)

    def _resolve_pool(self) -> tuple[str, str]:
        """(pooling, where it came from). A random baseline made `--like RUN` is read as RUN's method reads."""
        pool = self.cfg.features.pool
        if pool != "auto":
            return pool, "features.pool"
        if self.cfg.like is not None:
            _, like_info = encoders.load_encoder(self.cfg.like)
            return pool_of(like_info["method"]), f"the method of {self.cfg.like} ({like_info['method']})"
        if self.info["method"] == "random":
            print("note: a random encoder is read with mean pooling (features.pool=auto); to compare it with a "
                  "pre-trained run read the same way, pass --like RUN (or set features.pool)", file=sys.stderr)
        return pool_of(self.info["method"]), f"the checkpoint's method ({self.info['method']})"

    def features(self, ds: ImageDataset) -> dict[int, torch.Tensor]:
        c = self.cfg
        return cached_extract(self.encoder, self.info["id"], ds, blocks=sorted(set(self.blocks)), pool=self.pool,
                              preprocess=self.preprocess, image_size=c.data.image_size, mean=c.data.mean,
                              std=c.data.std, cache=c.features.cache, batch_size=c.features.batch_size,
                              device=self.device, num_workers=c.data.num_workers, progress=self.progress)

    def groups(self) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Feature groups to evaluate: each block (sweep), or the chosen blocks concatenated.
        Returns names, train (G, N, F), test (G, M, F)."""
        tr, te = self.features(self.train), self.features(self.test)
        if self.cfg.features.sweep:
            names = [f"block {b + 1}" for b in self.blocks]
            return names, torch.stack([tr[b] for b in self.blocks]), torch.stack([te[b] for b in self.blocks])
        name = "+".join(f"block {b + 1}" for b in self.blocks)
        return [name], torch.cat([tr[b] for b in self.blocks], 1)[None], torch.cat([te[b] for b in self.blocks], 1)[None]

    def describe(self) -> dict:
        c = self.cfg
        enc = self.encoder
        return {"dataset": self.train.name, "train_split": self.train.split, "test_split": self.test.split,
                "train_images": len(self.train), "test_images": len(self.test), "classes": self.num_classes,
                "train_set": {"split": self.train.split, "images": len(self.train), "formed": self.train.formed},
                "test_set": {"split": self.test.split, "images": len(self.test), "formed": self.test.formed},
                "checkpoint": self.info["source"], "method": self.info["method"], "like": c.like,
                "pretrain_step": self.info.get("step"), "pretrain_epoch": self.info.get("epoch"),
                "pool": self.pool, "pool_from": self.pool_from,
                "blocks": [b + 1 for b in self.blocks], "image_size": c.data.image_size,
                "model": {k: enc.arch[k] for k in ("patch_size", "embed_dim", "depth", "num_heads")},
                "seed": c.seed}


def _check_labelled(scan: SplitScan, key: str, root: str) -> None:
    if not scan.labelled:
        raise DataError(f"{key} '{scan.split}' of '{root}' has no class labels ({scan.formed}); evaluation needs "
                        "class sub-folders (or CIFAR) in data.split and test_split")
    if len(scan.classes) < 2:
        raise DataError(f"{key} '{scan.split}' of '{root}' has 1 class, '{scan.classes[0]}': its labels may live "
                        "in an annotation file; evaluation needs one sub-folder per class")


def check_splits(cfg: EvalConfig, protocol: Optional[str] = None) -> tuple[SplitScan, SplitScan]:
    """Scan both splits (file lists and labels only) and stop, naming the key to change, on anything that
    would make the numbers wrong: the same images on both sides, missing labels, different classes,
    few-shot counts a class cannot give."""
    root = cfg.data.root
    if cfg.data.split == cfg.test_split:
        raise ConfigError(f"test_split '{cfg.test_split}' is also the split the probes train on (data.split): "
                          "evaluation never tests on training images; set test_split to a held-out split")
    train = scan_dataset(cfg.data, cfg.data.split, seed=cfg.seed, key="data.split")
    test = scan_dataset(dataclasses.replace(cfg.data, limit=cfg.test_limit), cfg.test_split, seed=cfg.seed,
                        key="test_split")
    _check_labelled(train, "data.split", root)
    _check_labelled(test, "test_split", root)
    if train.classes != test.classes:
        only_tr, only_te = sorted(set(train.classes) - set(test.classes)), sorted(set(test.classes) - set(train.classes))
        detail = "; ".join(f"only in '{s}': {', '.join(c[:5])}" + (" ..." if len(c) > 5 else "")
                           for s, c in ((train.split, only_tr), (test.split, only_te)) if c) or "the same names in another order"
        raise DataError(f"splits '{train.split}' (data.split, {len(train.classes)} classes) and '{test.split}' "
                        f"(test_split, {len(test.classes)} classes) of '{root}' have different classes ({detail}); "
                        "set test_split to a split with the same class folders")
    if train.paths is not None and test.paths is not None:
        shared = set(train.paths) & set(test.paths)
        if shared:
            raise DataError(f"{len(shared)} images of test_split '{test.split}' are also in data.split "
                            f"'{train.split}' (e.g. {sorted(shared)[0]}); evaluation never tests on training images")
    if protocol == "fewshot":
        counts = train.class_counts()
        fewest = int(counts.min())
        if max(cfg.fewshot.shots) > fewest:
            name = train.classes[int(counts.argmin())]
            raise DataError(f"few-shot with {max(cfg.fewshot.shots)} images per class, but class '{name}' of "
                            f"'{train.split}' has only {fewest}; lower fewshot.shots (at most {fewest})")
    return train, test


def _select(val_acc: list[float]) -> int:
    return max(range(len(val_acc)), key=lambda i: val_acc[i])


def run_knn(ev: Evaluation) -> dict:
    c = ev.cfg.knn
    names, tr, te = ev.groups()
    ytr, yte = ev.train.labels, ev.test.labels
    kw = dict(num_classes=ev.num_classes, k=c.k, temperature=c.temperature)
    per = []
    for name, a, b in zip(names, tr, te):
        s = knn_predict(a, ytr, b, **kw)
        per.append({"features": name, "accuracy": accuracy(s, yte), "top5": accuracy(s, yte, 5)})
    best = 0
    if len(names) > 1:  # choose the block on held-out training images, never on the test split
        fit, val = _split(len(ytr), ev.cfg.features.val_frac, ev.cfg.seed)
        for row, a in zip(per, tr):
            row["val_accuracy"] = accuracy(knn_predict(a[fit], ytr[fit], a[val], **kw), ytr[val])
        best = _select([r["val_accuracy"] for r in per])
    return {"protocol": "knn", **per[best], "k": c.k, "temperature": c.temperature,
            **({"per_block": per} if len(per) > 1 else {})}


def run_linear(ev: Evaluation) -> dict:
    c = ev.cfg.linear
    names, tr, te = ev.groups()
    ytr, yte = ev.train.labels, ev.test.labels
    kw = dict(num_classes=ev.num_classes, epochs=c.epochs, batch_size=c.batch_size, weight_decay=c.weight_decay,
              momentum=c.momentum, seed=ev.cfg.seed)
    bar = f"{len(names) * len(c.lrs)} linear probes" if ev.progress else None
    tr, te = tr.to(ev.device), te.to(ev.device)
    ytr_d = ytr.to(ev.device)
    chosen_lr = [0] * len(names)
    val_acc = None
    if len(names) * len(c.lrs) > 1:  # choose block and lr on held-out training images
        fit, val = _split(len(ytr), ev.cfg.features.val_frac, ev.cfg.seed)
        fit, val = fit.to(ev.device), val.to(ev.device)
        probes = train_probes(tr[:, fit], ytr_d[fit], lrs=c.lrs, progress=bar and bar + " (choosing)", **kw)
        scores = probes.scores(tr[:, val])  # (G, L, V, C)
        acc = (scores.argmax(-1) == ytr_d[val]).float().mean(-1) * 100  # (G, L)
        chosen_lr = acc.argmax(1).tolist()
        val_acc = acc.max(1).values.tolist()
    probes = train_probes(tr, ytr_d, lrs=c.lrs, progress=bar, **kw)
    scores = probes.scores(te)  # (G, L, M, C)
    per = []
    for g, name in enumerate(names):
        s = scores[g, chosen_lr[g]].cpu()
        row = {"features": name, "accuracy": accuracy(s, yte), "top5": accuracy(s, yte, 5), "lr": c.lrs[chosen_lr[g]]}
        if val_acc is not None:
            row["val_accuracy"] = val_acc[g]
        per.append(row)
    best = _select(val_acc) if val_acc is not None else 0
    return {"protocol": "linear", **per[best], "epochs": c.epochs, **({"per_block": per} if len(per) > 1 else {})}


def run_fewshot(ev: Evaluation) -> dict:
    c = ev.cfg.fewshot
    names, tr, te = ev.groups()
    if len(names) > 1:
        raise ConfigError("few-shot evaluates one feature set; set features.sweep=false (and pick features.blocks)")
    tr, te = tr[0].to(ev.device), te[0].to(ev.device)
    ytr, yte = ev.train.labels.to(ev.device), ev.test.labels.to(ev.device)
    by_class = [torch.nonzero(ytr == k)[:, 0] for k in range(ev.num_classes)]
    rows = []
    for shots in c.shots:
        fewest = min(len(i) for i in by_class)
        if shots > fewest:
            raise DataError(f"few-shot with {shots} images per class, but a class of '{ev.train.name}' has only "
                            f"{fewest}; lower fewshot.shots")
        draws = []
        for d in range(c.draws):  # every draw is its own probe group, trained together
            gen = torch.Generator().manual_seed(ev.cfg.seed * 1000 + shots * 17 + d)
            draws.append(torch.cat([i[torch.randperm(len(i), generator=gen)[:shots].to(i.device)] for i in by_class]))
        idx = torch.stack(draws)  # (D, shots * C)
        probes = train_probes(tr[idx], ytr[idx], num_classes=ev.num_classes, lrs=[c.lr], epochs=c.steps,
                              batch_size=idx.shape[1], weight_decay=c.weight_decay, seed=ev.cfg.seed,
                              progress=f"{shots}-shot probes ({len(draws)} draws)" if ev.progress else None)
        scores = probes.scores(te[None].expand(len(draws), -1, -1))[:, 0]  # (D, M, C)
        accs = [(s.argmax(-1) == yte).float().mean().item() * 100 for s in scores]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / max(1, len(accs) - 1))
        rows.append({"shots": shots, "accuracy": mean, "std": std, "draws": accs})
    return {"protocol": "fewshot", "features": names[0], "accuracy": rows[-1]["accuracy"],
            "std": rows[-1]["std"], "shots": rows[-1]["shots"], "per_shots": rows}


RUNNERS = {"knn": run_knn, "linear": run_linear, "fewshot": run_fewshot, "finetune": run_finetune}


def default_output_dir(cfg: EvalConfig, protocol: str, dataset: str) -> Path:
    if cfg.checkpoint != "random":
        path = encoders.checkpoint_file(cfg.checkpoint)
        if path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
            return path.parent.parent / "eval" / f"{protocol}-{dataset}"
        return Path("evals") / f"{path.stem}-{protocol}-{dataset}"
    return Path("evals") / f"random-{protocol}-{dataset}"


def markdown(result: dict) -> str:
    like = f" shaped and read like `{result['like']}`" if result.get("like") else ""
    blocks = ", ".join(str(b) for b in result.get("blocks", []))
    head = (f"**{result['protocol']}** on {result['dataset']} ({result['test_split']}, {result['test_images']} images), "
            f"{result['method']} encoder from `{result['checkpoint']}`{like}: **{result['accuracy']:.2f} %**\n\n"
            f"- features: {result.get('features', '')} (blocks evaluated: {blocks}), pooling "
            f"{result['pool']} (from {result.get('pool_from', '?')}), {result['image_size']} px\n"
            f"- trained on {result['train_images']} images of '{result['train_split']}' "
            f"({result['train_set']['formed']}); tested on {result['test_images']} images of "
            f"'{result['test_split']}' ({result['test_set']['formed']})\n")
    rows = result.get("per_block") or result.get("per_shots") or result.get("per_epoch")
    if not rows:
        return head
    cols = [k for k in rows[0] if k != "draws"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in cols) + " |")
    return head + "\n" + "\n".join(lines) + "\n"


def evaluate(protocol: str, cfg: EvalConfig, progress: bool = True, resume: bool = False) -> dict:
    """Run one protocol and write results.json, results.md and config.yaml; returns the results.
    `resume` continues an interrupted fine-tuning in its output folder."""
    if protocol not in RUNNERS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(RUNNERS)}")
    if resume and protocol != "finetune":
        raise ConfigError(f"--resume continues a fine-tuning run; {protocol} has nothing to resume")
    t0 = time.time()
    ev = Evaluation(cfg, progress=progress, protocol=protocol)
    out = ev.out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg, protocol, ev.train.name)
    out.mkdir(parents=True, exist_ok=True)
    if protocol == "finetune":
        hint = f"vitssl eval finetune --checkpoint {cfg.checkpoint} output_dir={out} --resume (and the same settings)"
        result = run_finetune(ev, resume=resume, resume_hint=hint)
    else:
        result = RUNNERS[protocol](ev)
    result = {"protocol": protocol, **ev.describe(), **result, "seconds": round(time.time() - t0, 1)}
    if dist.launch_rank() == 0:
        (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "results.md").write_text(markdown(result))
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    result["output_dir"] = str(out)
    return result
