"""Running a study's stages: each one a normal run folder, skipped when finished with the same resolved
config, resumed when interrupted (a study killed at any moment continues with the same command)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from vitssl.config.load import build_config, config_to_dict
from vitssl.config.schema import from_dict, to_dict
from vitssl.engine import runlock
from vitssl.errors import ConfigError, VitsslError
from vitssl.evaluation.config import EvalConfig
from vitssl.study import imports
from vitssl.study.estimate import Rates, busy_note, estimate
from vitssl.study.plan import Stage, plan
from vitssl.study.results import atomic_write, write_results
from vitssl.study.spec import Study

STATE = "stage.json"  # in each stage folder: the config key, 'running', 'done' or 'failed', seconds
OTHER = "other"  # the state shown for a stage left out by --seeds/--entries (another process may run it)
BUSY = "busy"  # claimed by another process that still runs (or what it evaluates is): left to it
IMPORTED = "imported"  # finished in another copy of the study (--import): its record stands for it
SETTLED = ("done", IMPORTED)


def _state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None


def _write_state(folder: Path, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, folder / STATE)


def _claim_file(stage: Stage) -> Path:
    """The lock a process holds while it runs a stage: beside the stage's folder (a restarted or replaced
    stage's folder is removed or moved aside; the claim must outlive that)."""
    return stage.folder.parent / f".{stage.folder.name}.claim"


def _claim(stage: Stage, about: dict | None = None) -> Path | None:
    """Take the stage for this process, atomically; None when another live process has it. `about`: the
    --seeds/--entries this process runs, for the others' ETA."""
    stage.folder.parent.mkdir(parents=True, exist_ok=True)
    claim = _claim_file(stage)
    try:
        # a dead process's claim is taken over
        return runlock.acquire(claim.parent, claim.name, quiet=True, about=about)
    except VitsslError:
        return None


class StudyStopped(Exception):
    """Ctrl-C during a stage: what was done is kept (an interrupted training saved a checkpoint)."""


class StagesFailed(Exception):
    """With keep_going: stages that failed (a diverged training, an unreadable image found while decoding)
    and those skipped because what they evaluate failed; everything else ran and is in the results."""

    def __init__(self, failed: dict[str, str]):
        super().__init__(f"{len(failed)} stage(s) failed or were skipped")
        self.failed = failed


def _summary(folder: Path) -> dict | None:
    """A training run's summary.json (also written when Ctrl-C stopped it: marked stopped_early)."""
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _finished(stage: Stage) -> bool:
    if stage.kind != "pretrain":
        return (stage.folder / "results.json").is_file()
    summary = _summary(stage.folder)
    return summary is not None and not summary.get("stopped_early")


def status(stage: Stage) -> str:
    """done | resume | restart | new | replace (a folder of another config, moved aside when the stage runs) |
    busy (another process runs it, or what it evaluates) | imported (finished in another copy of the study;
    an evaluation only while what it evaluates is imported too)."""
    if runlock.held_by_another(_claim_file(stage)) or (stage.source is not None and status(stage.source) == BUSY):
        return BUSY
    how = _local_status(stage)
    if how != "done" and stage.imported is not None and (stage.source is None or status(stage.source) == IMPORTED):
        return IMPORTED
    return how


def _local_status(stage: Stage) -> str:
    state = _state(stage.folder)
    if state is None:
        if stage.folder.exists() and any(stage.folder.iterdir()):
            return "replace"
        return "new"
    if stage.source is not None and status(stage.source) != "done":
        return "replace"  # what it evaluated is being trained again
    if state.get("key") != stage.key and not _same_config(stage):
        return "replace"
    if state.get("status") == "done" and _finished(stage):
        return "done"
    last = stage.folder / "checkpoints" / "last.pt"
    budget_timed = stage.kind == "pretrain" and stage.budget is not None and stage.budget.kind == "minutes"
    if stage.kind in ("pretrain", "finetune") and last.is_file() and not budget_timed:
        return "resume"
    return "restart"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)  # lists and tuples alike
    return out


IGNORED = ("output_dir", "log.progress")  # where a run is written, whether bars are drawn: not what it computes


def _same_config(stage: Stage) -> bool:
    """Whether the run in the stage's folder was made with this stage's config, allowing for keys a
    later vitssl added (with their defaults): an upgrade does not throw away a study's finished stages."""
    try:
        old = _flat(yaml.safe_load((stage.folder / "config.yaml").read_text()) or {})
    except (OSError, yaml.YAMLError):
        return False
    if stage.kind == "pretrain":
        defaults = config_to_dict(build_config({"method": {"name": stage.config["method"]["name"]}},
                                                 cross_check=False))
    else:
        defaults = to_dict(EvalConfig())
    defaults, new = _flat(defaults), _flat(stage.config)
    for key, value in new.items():
        if key in IGNORED:
            continue
        if key in old:
            if old[key] != value and not (key == "features.pool" and old[key] == '"auto"' and _pool_read(stage) == value):
                return False  # (a stage made when the study left the pooling to the method: the one it used counts)
        elif defaults.get(key) != value:
            return False  # a new key set away from its default
    return True


def _pool_read(stage: Stage) -> str | None:
    """The pooling a finished evaluation used (its results.json), as _flat writes values."""
    try:
        return json.dumps(json.loads((stage.folder / "results.json").read_text())["pool"])
    except (OSError, ValueError, KeyError):
        return None


def _move_aside(folder: Path) -> Path:
    n = 1
    while (aside := folder.with_name(f"{folder.name}.replaced-{n}")).exists():
        n += 1
    folder.rename(aside)
    return aside


def _run_stage(stage: Stage, how: str, progress: bool) -> None:
    if how == "replace":
        aside = _move_aside(stage.folder)
        print(f"study: {stage.folder} held a run of another config; moved to {aside}", file=sys.stderr)
    elif how == "restart" and stage.folder.exists():
        shutil.rmtree(stage.folder)  # an interrupted evaluation, or a wall-clock budget: not resumable mid-way
    resume = how == "resume"
    _write_state(stage.folder, {"stage": stage.label, "key": stage.key, "status": "running"})
    t = time.time()
    try:
        if stage.kind == "pretrain":
            from vitssl.training.pretrain import pretrain

            config = json.loads(json.dumps(stage.config))
            config["log"]["progress"] = progress and config["log"].get("progress", True)
            pretrain(build_config(config), resume=resume)
        else:
            from vitssl.evaluation.run import evaluate

            evaluate(stage.kind, from_dict(EvalConfig, stage.config), progress=progress, resume=resume)
    except KeyboardInterrupt:
        raise StudyStopped(stage.label) from None
    except VitsslError:
        if (_summary(stage.folder) or {}).get("stopped_early"):
            raise StudyStopped(stage.label) from None  # fine-tuning stopped by Ctrl-C (it says so as an error)
        raise
    seconds = round(time.time() - t, 1)
    if not _finished(stage):  # stopped early (Ctrl-C): the loop saved a checkpoint; the next run resumes
        raise StudyStopped(stage.label)
    _write_state(stage.folder, {"stage": stage.label, "key": stage.key, "status": "done", "seconds": seconds})


def _done(stages: list[Stage]) -> dict[str, str]:
    """The finished evaluations: label -> 'done' (its folder here) or 'imported'."""
    return {s.label: how for s in stages if s.kind != "pretrain" and (how := status(s)) in SETTLED}


def _eta(study: Study, stages: list[Stage], rest: list[int], estimates: list[float], pace: float) -> str:
    """The time left for the stages this process has still to run, as they are now: those finished or
    held by another process meanwhile left out (`pace`: measured time over estimated time so far). Other
    processes running this study whose --entries/--seeds take in some of those stages may share them:
    said with the time that would take (never less than the longest stage left, which one process runs)."""
    rest = [j for j in rest if status(stages[j]) not in (*SETTLED, BUSY)]
    left = [pace * estimates[j] for j in rest]
    held = (runlock.holder(c) for c in (study.output_dir / "stages").rglob(".*.claim"))
    others = {(h.get("host"), h.get("pid")): h.get("about") for h in held if h}  # one per process
    sharers = sum(any(_selects(about, stages[j]) for j in rest) for about in others.values())
    if not sharers or len(left) < 2:
        return f"ETA {_clock(sum(left))}"
    shared = max(max(left), sum(left) / (1 + sharers))
    return (f"ETA {_clock(sum(left))} alone, {_clock(shared)} if the {sharers} other process(es) running this "
            "study's stages, which may run these too, share them")


def _selects(about: dict | None, stage: Stage) -> bool:
    """Whether a process whose claim says `about` (its --seeds/--entries) may run `stage`: one that did not
    say may run any."""
    if not isinstance(about, dict):
        return True
    seeds, entries = about.get("seeds"), about.get("entries")
    return (seeds is None or stage.seed in seeds) and (entries is None or stage.entry.name in entries)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def print_plan(study: Study, stages: list[Stage], states: list[str], estimates: list[float]) -> None:
    print(f"study '{study.name}' ({study.path}) -> {study.output_dir}")
    print(f"  {len(study.entries)} entries x {len(study.datasets)} datasets x {len(study.seeds)} seeds; "
          f"protocols: {', '.join(study.protocols)}")
    width = max(len(s.label) for s in stages)
    for st, how, est in zip(stages, states, estimates):
        budget = f"  ({st.budget.describe()})" if st.kind == "pretrain" and st.budget else ""
        when = {"done": "done", IMPORTED: "done", OTHER: "–", BUSY: "–"}.get(how, f"~{_clock(est)}")
        print(f"  {st.label:<{width}}  {how:<8} {when:>9}{budget}")
    todo = sum(e for e, h in zip(estimates, states) if h not in (*SETTLED, OTHER, BUSY))
    others, busy, imported = (sum(h == x for h in states) for x in (OTHER, BUSY, IMPORTED))
    print(f"  {sum(h not in (*SETTLED, OTHER, BUSY) for h in states)} of {len(stages)} stages to run"
          + (f" ({imported} imported: finished in another copy of the study)" if imported else "")
          + (f" ({others} not selected: --seeds/--entries)" if others else "")
          + (f" ({busy} busy: another process runs them or what they evaluate)" if busy else "")
          + f", estimated {_clock(todo)} on this machine (measured step rates; data decoding and a loaded machine "
          "add to it)")


def _select(study: Study, seeds: list[int] | None, entries: list[str] | None):
    """The stages this process runs: --seeds and --entries checked against the study (one line if not)."""
    for given, known, key in ((seeds, study.seeds, "--seeds"), (entries, [e.name for e in study.entries], "--entries")):
        unknown = [x for x in given or [] if x not in known]
        if unknown:
            raise ConfigError(f"{key}: {', '.join(map(str, unknown))} not in the study; it has "
                              f"{', '.join(map(str, known))}")
    return lambda st: (seeds is None or st.seed in seeds) and (entries is None or st.entry.name in entries)


def run_study(study: Study, *, dry_run: bool = False, progress: bool = True, keep_going: bool = False,
              seeds: list[int] | None = None, entries: list[str] | None = None,
              imports_from: list[Path] | None = None, report: bool = False) -> dict | None:
    """Plan (everything checked before anything runs), print the plan, run what is not done, write the
    results. Returns the results (None for a dry run). `keep_going`: a stage that fails (a diverged
    training, a bad image met while decoding) is recorded and the study goes on without it and the
    evaluations of what it trained; StagesFailed names them at the end. `seeds`, `entries`: run only
    those stages (e.g. one process per seed, side by side); the results hold every finished stage.
    `imports_from`: results.json files of other copies of this study whose finished stages count as done
    here (imports.py); kept in the study folder for the next runs (not by a dry run). `report`: write the
    results of what is finished (and the imports), run nothing."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("vitssl study runs in one process (its stages one after another); run it without "
                          "torchrun, or run a stage's own command under torchrun")
    if study.output_dir.exists() and not study.output_dir.is_dir():
        raise ConfigError(f"study output_dir '{study.output_dir}' is a file; set output_dir in the study file")
    selected = _select(study, seeds, entries)
    stages = plan(study)
    records, import_lines = imports.merge(stages, imports.load(study.output_dir), list(imports_from or []))
    imports.attach(stages, records)
    states = [how if how in SETTLED or selected(s) else OTHER for s, how in ((s, status(s)) for s in stages)]
    load = busy_note()
    rates = Rates()
    estimates = [0.0 if how in (*SETTLED, OTHER, BUSY) else estimate(st, rates, resume=how == "resume")
                 for st, how in zip(stages, states)]
    print_plan(study, stages, states, estimates)
    for line in import_lines:
        print(f"  {line}")
    if load and any(e > 0 for e in estimates):
        print(f"  note: {load}")
    if dry_run:
        return None
    study.output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(study.output_dir / "study.yaml", study.path.read_text())
    if imports_from:
        atomic_write(study.output_dir / imports.FILE, json.dumps(records, indent=1) + "\n")
    if report:
        return _report(study, stages, {})
    todo = [i for i, how in enumerate(states) if how not in (*SETTLED, OTHER)]  # busy ones: looked at again
    started, spent, planned = time.time(), 0.0, 0.0
    failed: dict[str, str] = {}
    left_to_others: list[str] = []
    for n, i in enumerate(todo, 1):
        st = stages[i]
        t = time.time()
        if st.source is not None and st.source.label in failed:
            failed[st.label] = f"skipped: {st.source.label} failed"
            continue
        # taken before it is looked at: two processes never run one stage
        claim = _claim(st, {"seeds": seeds, "entries": entries})
        try:
            how = status(st) if claim else BUSY  # as it is now: another process may have finished it, or have it
            if how in SETTLED:
                continue
            if how == BUSY:
                left_to_others.append(st.label)
                print(f"study: stage {n}/{len(todo)}: {st.label} is being run by another process (or what it "
                      "evaluates is); left to it", file=sys.stderr, flush=True)
                continue
            print(f"study: stage {n}/{len(todo)}: {st.label} ({how})", file=sys.stderr, flush=True)
            try:
                _run_stage(st, how, progress)
            except VitsslError as e:
                if not keep_going:
                    raise
                failed[st.label] = _one_line(e)
                _write_state(st.folder, {"stage": st.label, "key": st.key, "status": "failed",
                                         "error": failed[st.label]})
                print(f"study: stage {st.label} failed, going on without it: {failed[st.label]}", file=sys.stderr,
                      flush=True)
        finally:
            runlock.release(claim)
        gc.collect()
        spent += time.time() - t
        planned += estimates[i]
        if st.kind != "pretrain":  # the table so far, so that a long study's finished part can be read (and kept)
            write_results(study, stages, _done(stages), failed)
        print(f"study: {n}/{len(todo)} stages done, {_clock(time.time() - started)} elapsed, "
              + _eta(study, stages, todo[n:], estimates, spent / planned if planned > 0 else 1.0),
              file=sys.stderr, flush=True)
    results = _report(study, stages, failed)
    pending = [st.label for st in stages if st.label in left_to_others and status(st) != "done"]  # not yet, there
    if pending:
        print(f"study: {len(pending)} stage(s) are still being run by another process ({', '.join(pending[:3])}"
              f"{', ...' if len(pending) > 3 else ''}); the same command again, once it has ended, adds them to the "
              "results", file=sys.stderr)
    if failed:
        raise StagesFailed(failed)
    return results


def _report(study: Study, stages: list[Stage], failed: dict[str, str]) -> dict:
    results = write_results(study, stages, _done(stages), failed)
    print(f"study: wrote {study.output_dir}/results.md, results.json and {len(results['plots'])} plots",
          file=sys.stderr)
    return results


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__

