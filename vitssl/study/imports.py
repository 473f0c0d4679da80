"""Finished stages brought from another copy of a study (`vitssl study --import results.json`): the other
half of the seeds run on another machine, or a study folder that was lost (a wiped scratch disk) whose
results.json was kept. A record counts only for the stage with the same label and config key; a
pre-training counts as done only when every evaluation of it is imported (an evaluation never mixes a
run made here with one made elsewhere). Imported records are kept in the study folder's imported.json."""

from __future__ import annotations

import json
from pathlib import Path

from vitssl.errors import ConfigError
from vitssl.study.plan import Stage

FILE = "imported.json"  # in the study's output_dir: {label: {"key", "row", "from"}}


def read_records(path: Path) -> dict[str, dict]:
    """The finished evaluations a study's results.json lists: {label: {"key", "row", "from"}}."""
    try:
        data = json.loads(path.read_text())
        by_folder = {s["folder"]: s for s in data["stages"]}
        rows = data["rows"]
        records = {}
        for row in rows:
            stage = by_folder[row["folder"]]
            records[stage["stage"]] = {"key": stage["key"], "row": row, "from": str(path)}
    except OSError as e:
        raise ConfigError(f"--import {path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"--import {path}: not a study's results.json (rows with the folder and config key of "
                          f"each stage; {type(e).__name__}: {e})") from None
    return records


def load(output_dir: Path) -> dict[str, dict]:
    """The records imported into this study folder before (none when there is no imported.json)."""
    try:
        return json.loads((output_dir / FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{output_dir / FILE} is unreadable ({e}); remove it and import again") from None


def merge(stages: list[Stage], records: dict[str, dict], files: list[Path]) -> tuple[dict[str, dict], list[str]]:
    """`records` with those of `files` that match a stage of this plan; and one line per file saying
    what was taken and what was not (another config, or a stage this study does not have)."""
    keys = {st.label: st.key for st in stages}
    records = dict(records)
    lines = []
    for path in files:
        new = read_records(path)
        taken = {label: r for label, r in new.items() if keys.get(label) == r["key"]}
        other = sum(label in keys for label in new) - len(taken)
        records.update(taken)
        lines.append(f"--import {path}: {len(taken)} finished evaluation(s) of this study"
                     + (f"; {other} of another config, not imported" if other else "")
                     + (f"; {len(new) - len(taken) - other} of stages this study does not have"
                        if len(new) - len(taken) - other else ""))
    return records, lines


def attach(stages: list[Stage], records: dict[str, dict]) -> None:
    """Mark the stages the records stand for: each evaluation with a record of its config, and each
    pre-training all of whose evaluations have one."""
    evals: dict[str, list[Stage]] = {}
    for st in stages:
        r = records.get(st.label)
        st.imported = r if r is not None and r["key"] == st.key else None
        if st.source is not None:
            evals.setdefault(st.source.label, []).append(st)
    for st in stages:
        if st.kind == "pretrain":
            mine = evals.get(st.label, [])
            st.imported = {"evaluations": len(mine)} if mine and all(e.imported for e in mine) else None
