"""A study's results: one row per evaluation, mean +- std over seeds, a Markdown table, plots
(method x protocol bars with their spread; accuracy against pre-training epochs) and every stage's
resolved config."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import yaml

from vitssl.machine import describe
from vitssl.study.plan import Stage
from vitssl.study.spec import Study


def atomic_write(path: Path, text: str) -> None:
    """Readers (and a second study process on other seeds) never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _savefig(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def rows_of(stages: list[Stage], done: dict[str, str]) -> list[dict]:
    """One row per finished evaluation whose folder holds this study's config (`done`: label -> 'done',
    or 'imported': the row of its record, from another copy of the study; a folder left by another
    config, still to be rerun, is not reported)."""
    rows = []
    for st in stages:
        if st.kind == "pretrain" or st.label not in done:
            continue
        if done[st.label] == "imported":
            rows.append({**st.imported["row"], "imported_from": st.imported["from"]})
            continue
        r = _read(st.folder / "results.json")
        row = {"entry": st.entry.name, "dataset": st.dataset, "seed": st.seed, "protocol": st.kind,
               "accuracy": round(r["accuracy"], 3), "features": r.get("features"), "pool": r.get("pool"),
               "test_images": r.get("test_images"), "train_images": r.get("train_images"), "folder": str(st.folder)}
        if st.source is None:
            row.update(pretrain="random init", pretrain_epoch=0)
        else:
            s = _read(st.source.folder / "summary.json")
            row.update(pretrain=st.source.budget.describe() if st.source.budget else "config",
                       pretrain_epoch=st.epoch if st.epoch is not None else round(s["epoch"], 3),
                       pretrain_steps=s["step"],  # minutes unknown when an earlier run of it did not record its time
                       pretrain_minutes=None if s.get("seconds_partial") else round(s["seconds"] / 60, 2))
        row["final"] = st.epoch is None  # the end of the run (else an epoch_N.pt snapshot)
        if st.kind == "finetune":
            row.update(finetune_epochs=r.get("epochs_run"), finetune_steps=r.get("steps"))
        rows.append(row)
    return rows


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean +- sample std over seeds per (entry, dataset, protocol, pre-training epoch)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["entry"], r["dataset"], r["protocol"], r["pretrain_epoch"], r.get("final", False))].append(r)
    out = []
    for (entry, dataset, protocol, epoch, final), rs in groups.items():
        m, s = mean_std([r["accuracy"] for r in rs])
        item = {"entry": entry, "dataset": dataset, "protocol": protocol, "pretrain_epoch": epoch, "final": final,
                "mean": round(m, 2), "std": round(s, 2), "seeds": sorted(r["seed"] for r in rs),
                "read": " / ".join(sorted({_read_as(r) for r in rs}))}  # one value unless the seeds differ
        steps = [r["pretrain_steps"] for r in rs if "pretrain_steps" in r]
        if steps and final:
            item["pretrain_steps"] = round(sum(steps) / len(steps))
            minutes = [r["pretrain_minutes"] for r in rs]
            if None not in minutes:
                item["pretrain_minutes"] = round(sum(minutes) / len(minutes), 2)
        out.append(item)
    return out


def _read_as(row: dict) -> str:
    """Which features an evaluation read, e.g. 'block 6, cls'."""
    features, pool = row.get("features") or "", row.get("pool") or ""
    return features if "pool" in features else ", ".join(x for x in (features, pool) if x) or "?"


def _cell(item: dict | None) -> str:
    if item is None:
        return "–"
    spread = f" ± {item['std']:.2f}" if len(item["seeds"]) > 1 else ""
    return f"{item['mean']:.2f}{spread} ({len(item['seeds'])})"


def markdown(study: Study, summary: list[dict], meta: dict, failed: dict[str, str] | None = None) -> str:
    m = meta["machine"]
    lines = [f"# Study {study.name}", "",
             f"`{meta['command']}` — {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
             + (f", {m['gpu']}" if m.get("gpu") else "") + f", {m['date']}.", "",
             f"Accuracy in % on each dataset's test split: mean ± sample std over seeds (number of seeds). "
             f"Seeds: {', '.join(map(str, study.seeds))}. Stage folders under `{study.output_dir}/stages/`. "
             "Minutes: wall-clock pre-training time on this machine at the load it had (mean over seeds; – where "
             "a resumed run's earlier time is unknown).", ""]
    if meta.get("imported"):
        lines += [f"{meta['imported']} of these results were imported (`--import`) from "
                        + ", ".join(f"`{f}`" for f in meta["imported_from"])
                        + ": finished in another copy of this study, same configs (results.json rows say which).", ""]
    protocols = list(study.protocols)
    budgets = {e.name: ("random init" if e.random else (e.budget or study.budget).describe()
                        if (e.budget or study.budget) else "the config's") for e in study.entries}
    for dataset in study.datasets:
        finals = {(s["entry"], s["protocol"]): s for s in summary if s["dataset"] == dataset and s["final"]}
        lines += [f"## {dataset}", "", "| entry | pre-training | steps | minutes | " + " | ".join(protocols)
                  + " | read by |", "|---" * (5 + len(protocols)) + "|"]
        for e in study.entries:
            first = next((finals[(e.name, p)] for p in protocols if (e.name, p) in finals), {})
            read = sorted({finals[(e.name, p)]["read"] for p in protocols if (e.name, p) in finals})
            lines.append(f"| {e.name} | {budgets[e.name]} | {first.get('pretrain_steps', '–')} | "
                         f"{first.get('pretrain_minutes', '–')} | "
                         + " | ".join(_cell(finals.get((e.name, p))) for p in protocols) + f" | {'; '.join(read) or '–'} |")
        curve = [s for s in summary if s["dataset"] == dataset and (not s["final"] or len(_epochs(summary, s)) > 1)]
        epochs = sorted({s["pretrain_epoch"] for s in curve})
        if len(epochs) > 1:
            lines += ["", f"Against pre-training epochs ({dataset}):", "",
                      "| entry | protocol | " + " | ".join(f"ep {e:g}" for e in epochs) + " |",
                      "|---" * (2 + len(epochs)) + "|"]
            for e in study.entries:
                for p in protocols:
                    by = {s["pretrain_epoch"]: s for s in curve if s["entry"] == e.name and s["protocol"] == p}
                    if by:
                        lines.append(f"| {e.name} | {p} | " + " | ".join(_cell(by.get(x)) for x in epochs) + " |")
        lines.append("")
    if failed:
        lines += ["## Failed stages", "", "Not in the tables above; rerun the study to retry them.", "",
                  "| stage | what happened |", "|---|---|"]
        lines += [f"| {label} | {why.replace('|', '/')} |" for label, why in failed.items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def _epochs(summary: list[dict], item: dict) -> set:
    return {s["pretrain_epoch"] for s in summary
            if (s["entry"], s["dataset"], s["protocol"]) == (item["entry"], item["dataset"], item["protocol"])}


def plot(study: Study, summary: list[dict], out: Path) -> list[str]:
    """bars.png (each entry's final accuracy per protocol, error bars: std over seeds) and, when an
    entry is evaluated at several epochs, epochs.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    protocols, entries, datasets = list(study.protocols), [e.name for e in study.entries], list(study.datasets)
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(5.0, 1.2 * len(protocols) * len(entries)) * len(datasets),
                                                        3.8), squeeze=False)
    width = 0.8 / len(entries)
    for ax, dataset in zip(axes[0], datasets):
        for k, entry in enumerate(entries):
            items = [next((s for s in summary if (s["entry"], s["dataset"], s["protocol"]) == (entry, dataset, p)
                           and s["final"]), None) for p in protocols]
            xs = [i + (k - (len(entries) - 1) / 2) * width for i in range(len(protocols))]
            ax.bar(xs, [s["mean"] if s else 0 for s in items], width, yerr=[s["std"] if s else 0 for s in items],
                   capsize=3, label=entry)
        ax.set_xticks(range(len(protocols)), protocols)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{study.name}: {dataset}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _savefig(fig, out / "bars.png")
    plt.close(fig)
    written.append("bars.png")
    curves = [s for s in summary if len(_epochs(summary, s)) > 1]
    if curves:
        fig, axes = plt.subplots(1, len(protocols), figsize=(5 * len(protocols), 3.8), squeeze=False)
        for ax, p in zip(axes[0], protocols):
            for dataset in datasets:
                for entry in entries:
                    pts = sorted((s["pretrain_epoch"], s["mean"], s["std"]) for s in curves
                                 if (s["entry"], s["dataset"], s["protocol"]) == (entry, dataset, p))
                    if pts:
                        x, y, e = zip(*pts)
                        ax.errorbar(x, y, yerr=e, marker="o", capsize=3,
                                    label=entry if len(datasets) == 1 else f"{entry} ({dataset})")
                    base = next((s for s in summary if (s["entry"], s["dataset"], s["protocol"]) == (entry, dataset, p)
                                 and s["pretrain_epoch"] == 0 and not pts), None)
                    if base is not None:
                        ax.axhline(base["mean"], linestyle="--", color="grey", label=f"{entry} (no pre-training)")
            ax.set_xlabel("pre-training epochs")
            ax.set_ylabel(f"{p} accuracy (%)")
            if ax.get_legend_handles_labels()[0]:  # a protocol with no results yet has nothing to name
                ax.legend(fontsize=8)
        fig.tight_layout()
        _savefig(fig, out / "epochs.png")
        plt.close(fig)
        written.append("epochs.png")
    return written


def write_results(study: Study, stages: list[Stage], done: dict[str, str],
                  failed: dict[str, str] | None = None) -> dict:
    """results.json, results.md, plots and configs/ (every stage's resolved config) in the study's folder,
    from the evaluations in `done` (finished stages with this study's config: label -> 'done' or
    'imported'); `failed`: stages that failed in this run (label: why), listed apart."""
    out = study.output_dir
    rows = rows_of(stages, done)
    summary = summarise(rows)
    configs = out / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for st in stages:
        atomic_write(configs / (st.label.replace("/", "__").replace("@", "_") + ".yaml"),
                     yaml.safe_dump(st.config, sort_keys=False))
    meta = {"study": study.name, "file": str(study.path), "output_dir": str(out),
            "command": f"vitssl study {study.path}",
            "machine": describe(), "seeds": study.seeds}
    sources = sorted({r["imported_from"] for r in rows if "imported_from" in r})
    if sources:
        meta.update(imported=sum("imported_from" in r for r in rows), imported_from=sources)
    plots = plot(study, summary, out) if summary else []
    result = {**meta, "summary": summary, "rows": rows, "plots": plots, "failed": dict(failed or {}),
              "stages": [{"stage": s.label, "folder": str(s.folder), "key": s.key} for s in stages]}
    atomic_write(out / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write(out / "results.md", markdown(study, summary, meta, failed))
    return result
