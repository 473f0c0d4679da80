"""A study's stages with their resolved configs: one pre-training per (entry, dataset, seed), one
evaluation per protocol (and per listed epoch). Everything is resolved and checked here, before a
stage runs: a typo in any stage is an error before the first hour of work, not after it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vitssl.config import config_to_dict, load_config
from vitssl.config.load import apply_overrides, merge
from vitssl.config.schema import from_dict, to_dict
from vitssl.config.sections import DataConfig
from vitssl.data.dataset import scan_dataset
from vitssl.errors import VitsslError
from vitssl.evaluation.config import EvalConfig
from vitssl.evaluation.run import check_splits, sections_of
from vitssl.methods.registry import pool_of
from vitssl.study.spec import Budget, Entry, Study


@dataclass
class Stage:
    kind: str  # 'pretrain' or a protocol
    entry: Entry
    dataset: str
    seed: int
    folder: Path
    config: dict  # the resolved config the stage runs with
    key: str  # identifies the config (and, for an evaluation, the pre-training it reads)
    source: Optional["Stage"] = None  # the pre-training an evaluation reads (None: random init)
    epoch: Optional[int] = None  # an evaluation of the pre-training's epoch_N.pt snapshot
    budget: Optional[Budget] = None
    images: int = 0  # training images (an estimate's input)
    test_images: int = 0
    imported: Optional[dict] = None  # a finished stage's record brought from another copy of the study (imports.py)

    @property
    def label(self) -> str:
        at = f"@ep{self.epoch}" if self.epoch is not None else ""
        return f"{self.entry.name}/{self.dataset}/seed{self.seed}/{self.kind}{at}"


def _key(config: dict, source: Optional[Stage]) -> str:
    cfg = {k: v for k, v in config.items() if k != "output_dir"}
    if isinstance(cfg.get("log"), dict):
        cfg["log"] = {k: v for k, v in cfg["log"].items() if k != "progress"}
    text = json.dumps({"config": cfg, "source": source.key if source else None}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _where(stage_label: str, e: VitsslError) -> VitsslError:
    return type(e)(f"study stage {stage_label}: {e}")


def _pretrain_stage(study: Study, entry: Entry, dataset: str, seed: int, folder: Path) -> Stage:
    budget = entry.budget or study.budget
    overrides = [*study.pretrain, *entry.overrides, *study.datasets[dataset], *(budget.overrides() if budget else []),
                 f"seed={seed}", f"output_dir={folder}"]
    cfg = load_config(entry.config, overrides)
    config = config_to_dict(cfg)
    return Stage("pretrain", entry, dataset, seed, folder, config, _key(config, None), budget=budget)


def _eval_stage(study: Study, pre: Stage, protocol: str, epoch: Optional[int]) -> Stage:
    entry = pre.entry
    # read as the method is, written out: a later vitssl that reads the method another way reruns the stage
    base = merge(sections_of(pre.config), {"features": {"pool": pool_of(pre.config["method"]["name"])}})
    if entry.random:
        checkpoint = "random"
    elif epoch is not None:
        checkpoint = str(pre.folder / "checkpoints" / f"epoch_{epoch:04d}.pt")
    else:
        checkpoint = str(pre.folder)
    name = protocol if epoch is None else f"{protocol}-ep{epoch}"
    folder = pre.folder.parent / name
    data = apply_overrides(merge(base, {"checkpoint": checkpoint, "seed": pre.seed}),
                           [*study.eval, *study.datasets[pre.dataset], *study.protocols[protocol], *entry.eval,
                            f"output_dir={folder}"])
    config = to_dict(from_dict(EvalConfig, data))
    source = None if entry.random else pre
    return Stage(protocol, entry, pre.dataset, pre.seed, folder, config, _key(config, source), source=source,
                 epoch=epoch)


def plan(study: Study, *, check_data: bool = True) -> list[Stage]:
    """Every stage, in the order they run (each pre-training, then its evaluations), resolved and
    checked; `check_data` also scans every split (file lists and labels, nothing decoded)."""
    stages: list[Stage] = []
    for seed in study.seeds:  # every entry's first seed first: a study stopped half-way has a whole table
        for entry in study.entries:
            for dataset in study.datasets:
                folder = study.output_dir / "stages" / entry.name / dataset / f"seed{seed}"
                label = f"{entry.name}/{dataset}/seed{seed}/pretrain"
                try:
                    pre = _pretrain_stage(study, entry, dataset, seed, folder / "pretrain")
                except VitsslError as e:
                    raise _where(label, e) from None
                if not entry.random:
                    stages.append(pre)
                budget = pre.budget
                snapshots = list(budget.epochs[:-1]) if budget is not None and not entry.random else []
                for protocol in study.protocols:
                    for epoch in [*([] if protocol in study.final_only else snapshots), None]:
                        try:
                            stages.append(_eval_stage(study, pre, protocol, epoch))
                        except VitsslError as e:
                            raise _where(f"{entry.name}/{dataset}/seed{seed}/{protocol}", e) from None
    if check_data:
        _check_data(stages)
    return stages


def _check_data(stages: list[Stage]) -> None:
    """Scan each distinct split once: a missing folder, an unlabelled split, a test split that holds
    training images stop the study here."""
    seen: dict[str, tuple[int, int]] = {}
    for st in stages:
        try:
            if st.kind == "pretrain":
                data = from_dict(DataConfig, st.config["data"], "data")
                k = json.dumps(["pre", st.config["data"], st.seed], sort_keys=True, default=str)
                if k not in seen:
                    seen[k] = (len(scan_dataset(data, data.split, seed=st.seed)), 0)
            else:
                cfg = from_dict(EvalConfig, st.config)
                k = json.dumps(["eval", st.config["data"], st.config["test_split"], st.config["test_limit"], st.seed,
                                st.kind == "fewshot" and st.config["fewshot"]], sort_keys=True, default=str)
                if k not in seen:
                    tr, te = check_splits(cfg, st.kind)
                    seen[k] = (len(tr), len(te))
        except VitsslError as e:
            raise _where(st.label, e) from None
        st.images, st.test_images = seen[k]
