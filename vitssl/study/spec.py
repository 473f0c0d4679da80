"""A study file, read and checked: entries x datasets x seeds, pre-trained on a budget, then evaluated
by each protocol. Only the file's shape is checked here; the plan checks every stage's resolved config.

    name: sit_claim                      # default: the file's name
    output_dir: runs/study-sit_claim     # default: runs/study-NAME
    seeds: [0, 1]
    datasets:                            # NAME: data.* keys, for pre-training and every evaluation
      cifar5k: {root: ../shared/data/cifar10, limit: 5000}
    budget: {epochs: 30}                 # epochs: N or [N1, N2, ...] (each evaluated), steps: N, minutes: M
    pretrain: {model.depth: 6}           # overrides of every pre-training (a mapping or a key=value list)
    eval: [features.sweep=true]          # overrides of every evaluation
    entries:
      sit: {config: cpu/sit_cifar10, overrides: {optim.base_lr: 1.0e-3}, budget: {epochs: [10, 30]}}
      mae: cpu/mae_cifar10               # a config alone
      random: {like: sit}                # random init shaped, fed and read like sit (evaluations only)
      scratch: {like: sit, eval: {finetune.layer_decay: 1.0}}   # eval: this entry's own evaluation keys
    protocols:                           # knn, linear, fewshot, finetune: NAME: overrides
      knn: {}
      finetune: {finetune.epochs: 30, snapshots: false}   # snapshots: false: the last epoch only
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from vitssl.errors import ConfigError

PROTOCOLS = ("knn", "linear", "fewshot", "finetune")
TOP_KEYS = ("name", "output_dir", "seeds", "datasets", "budget", "pretrain", "eval", "entries", "protocols")
ENTRY_KEYS = ("config", "overrides", "budget", "like", "random", "eval")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # entry and dataset names are folder names


@dataclass(frozen=True)
class Budget:
    """How long an entry pre-trains: epochs (several: evaluated at each), optimiser steps, or wall-clock
    minutes (results then depend on the machine and its load: for "what does an hour buy")."""

    epochs: tuple[int, ...] = ()
    steps: Optional[int] = None
    minutes: Optional[float] = None

    @property
    def kind(self) -> str:
        return "epochs" if self.epochs else "steps" if self.steps is not None else "minutes"

    def overrides(self) -> list[str]:
        if self.epochs:
            every = math.gcd(*self.epochs) if len(self.epochs) > 1 else 0  # keep epoch_N.pt for each
            return [f"train.epochs={max(self.epochs)}", "train.max_steps=null", "train.max_minutes=null",
                    f"log.checkpoint_every={every}"]
        if self.steps is not None:
            return [f"train.max_steps={self.steps}", "train.max_minutes=null"]
        return [f"train.max_minutes={self.minutes}", "train.max_steps=null"]

    def describe(self) -> str:
        if self.epochs:
            return "epochs " + ", ".join(map(str, self.epochs))
        return f"{self.steps} steps" if self.steps is not None else f"{self.minutes:g} minutes"


@dataclass
class Entry:
    name: str
    config: Optional[str]  # None: the default config (quickstart)
    overrides: list[str]
    budget: Optional[Budget]
    random: bool = False  # evaluate a random-init encoder of this entry's shape; nothing is pre-trained
    eval: list[str] = field(default_factory=list)  # overrides of this entry's evaluations (after the protocol's)


@dataclass
class Study:
    name: str
    path: Path  # the study file
    output_dir: Path
    seeds: list[int]
    datasets: dict[str, list[str]]  # name -> data.* overrides
    entries: list[Entry]
    protocols: dict[str, list[str]]  # protocol -> its overrides
    pretrain: list[str] = field(default_factory=list)
    final_only: set[str] = field(default_factory=set)  # protocols not run on the epoch snapshots
    eval: list[str] = field(default_factory=list)
    budget: Optional[Budget] = None


def as_overrides(value, where: str, prefix: str = "") -> list[str]:
    """A mapping {key: value} or a list of 'key=value' strings -> 'key=value' strings (YAML values)."""
    if value is None:
        return []
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            text = v if isinstance(v, str) else json.dumps(v)  # JSON is YAML, as the command line reads it
            out.append(f"{prefix}{k}={text}")
        return out
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return [v if v.startswith(prefix) else prefix + v for v in value]
    raise ConfigError(f"study key '{where}' must be a mapping of keys to values or a list of key=value, got {value!r}")


def _budget(value, where: str) -> Budget:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("epochs", "steps", "minutes"):
        raise ConfigError(f"study key '{where}' must be one of {{epochs: N or [N, ...]}}, {{steps: N}} or "
                          f"{{minutes: M}}, got {value!r}")
    kind, v = next(iter(value.items()))
    if kind == "epochs":
        epochs = v if isinstance(v, list) else [v]
        if not epochs or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs):
            raise ConfigError(f"study key '{where}.epochs' must be a positive whole number or a list of them, "
                              f"got {v!r}")
        return Budget(epochs=tuple(sorted(set(epochs))))
    if kind == "steps":
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"study key '{where}.steps' must be a positive whole number, got {v!r}")
        return Budget(steps=v)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"study key '{where}.minutes' must be a positive number, got {v!r}")
    return Budget(minutes=float(v))


def _name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"study {where} name {name!r} must be letters, digits and _ . + - (it names a folder)")
    return name


def _entries(raw, where: str = "entries") -> list[Entry]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("study key 'entries' must map entry names to a config (e.g. sit: cpu/sit_cifar10) "
                          "or to {config, overrides, budget} or {like: OTHER_ENTRY}")
    specs: dict[str, dict] = {}
    for name, spec in raw.items():
        _name(name, "entry")
        if isinstance(spec, str) or spec is None:
            spec = {"config": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"study entry '{name}' must be a config name or a mapping, got {spec!r}")
        unknown = sorted(set(spec) - set(ENTRY_KEYS))
        if unknown:
            raise ConfigError(f"study entry '{name}' has unknown key '{unknown[0]}'; allowed: {', '.join(ENTRY_KEYS)}")
        specs[name] = spec
    entries = []
    for name, spec in specs.items():
        random = bool(spec.get("random", False))
        if "like" in spec:
            other = spec["like"]
            if other not in specs or "like" in specs[other]:
                raise ConfigError(f"study entry '{name}': like: {other!r} must name another entry that is not "
                                  f"itself a 'like' one; entries: {', '.join(specs)}")
            if set(spec) - {"like", "random", "eval"}:
                raise ConfigError(f"study entry '{name}': 'like' takes the other entry's config and overrides; "
                                  "give no config, overrides or budget beside it (eval: its own evaluation keys)")
            spec, random = {**specs[other], "eval": spec.get("eval")}, True
        config = spec.get("config")
        if config is not None and not isinstance(config, str):
            raise ConfigError(f"study entry '{name}': config must be a file or built-in config name, got {config!r}")
        budget = _budget(spec["budget"], f"entries.{name}.budget") if spec.get("budget") is not None else None
        entries.append(Entry(name, config, as_overrides(spec.get("overrides"), f"entries.{name}.overrides"),
                             None if random else budget, random,
                             as_overrides(spec.get("eval"), f"entries.{name}.eval")))
    return entries


def read_study(path: str | Path) -> Study:
    """The study file at `path`, its shape checked (one-line errors naming the key)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"study file '{path}' is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"study file '{path}' must hold a mapping (entries, datasets, protocols, ...)")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"study key '{unknown[0]}' is unknown; allowed: {', '.join(TOP_KEYS)}")
    name = _name(raw.get("name") or path.stem, "study")
    seeds = raw.get("seeds", [0])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    whole = all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not seeds or not whole or len(set(seeds)) < len(seeds):
        raise ConfigError(f"study key 'seeds' must be a list of different whole numbers, got {raw.get('seeds')!r}")
    datasets_raw = raw.get("datasets") or {"synthetic": {}}
    if not isinstance(datasets_raw, dict):
        raise ConfigError("study key 'datasets' must map names to data keys, e.g. cifar: {root: data/cifar10}")
    datasets = {_name(n, "dataset"): as_overrides(v or {}, f"datasets.{n}", prefix="data.")
                for n, v in datasets_raw.items()}
    protocols_raw = raw.get("protocols")
    if not isinstance(protocols_raw, dict) or not protocols_raw:
        raise ConfigError(f"study key 'protocols' must map protocols ({', '.join(PROTOCOLS)}) to their overrides, "
                          "e.g. knn: {} or linear: {linear.epochs: 30}")
    for p in protocols_raw:
        if p not in PROTOCOLS:
            raise ConfigError(f"study protocol '{p}' is unknown; choose among {', '.join(PROTOCOLS)}")
    final_only = set()
    for p, v in protocols_raw.items():
        snapshots = v.get("snapshots", True) if isinstance(v, dict) else True
        if not isinstance(snapshots, bool):
            raise ConfigError(f"study key 'protocols.{p}.snapshots' must be true or false, got {snapshots!r}")
        if not snapshots:
            final_only.add(p)
    protocols = {p: as_overrides({k: x for k, x in v.items() if k != "snapshots"} if isinstance(v, dict) else v,
                                 f"protocols.{p}") for p, v in protocols_raw.items()}
    budget = _budget(raw["budget"], "budget") if raw.get("budget") is not None else None
    out = Path(raw.get("output_dir") or f"runs/study-{name}")
    return Study(name=name, path=path, output_dir=out, seeds=seeds, datasets=datasets,
                 entries=_entries(raw.get("entries")), protocols=protocols,
                 pretrain=as_overrides(raw.get("pretrain"), "pretrain"), eval=as_overrides(raw.get("eval"), "eval"),
                 budget=budget, final_only=final_only)
