"""`vitssl study`: a toy study runs, is killed mid-stage, resumes to the same table, skips what is done,
reruns only what changed; the dry run's plan; one-line errors before anything runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.training.test_failures import one_line
from vitssl.cli.main import main
from vitssl.errors import ConfigError
from vitssl.study.spec import Budget, read_study

PRETRAIN = {"model.patch_size": 8, "model.embed_dim": 32, "model.depth": 2, "model.num_heads": 2,
            "method.proj_hidden": 32, "method.proj_dim": 16, "train.batch_size": 16, "optim.warmup_epochs": 0,
            "log.knn_every": 0, "log.images_every": 0, "log.tensorboard": False, "data.num_workers": 0}


def toy_study(tmp_path: Path, name: str = "toy", epochs=(2, 40), **changes) -> Path:
    study = {"name": name, "output_dir": str(tmp_path / name), "seeds": [0],
             "datasets": {"synth": {"synthetic_train": 128, "synthetic_test": 64, "image_size": 16}},
             "budget": {"epochs": list(epochs)}, "pretrain": PRETRAIN, "eval": {"features.batch_size": 64},
             "entries": {"sit": "quickstart", "random": {"like": "sit"}},
             "protocols": {"knn": {"knn.k": 5}, "linear": {"linear.epochs": 3}}}
    study.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def table(out: Path) -> list[tuple]:
    res = json.loads((out / "results.json").read_text())
    return sorted((s["entry"], s["protocol"], s["pretrain_epoch"], s["mean"], s.get("pretrain_steps"))
                  for s in res["summary"])


def stamps(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in (out / "stages").rglob("stage.json")}


def test_a_study_killed_mid_stage_resumes_to_the_same_table_and_skips_what_is_done(tmp_path, capsys):
    ref = toy_study(tmp_path, "ref")
    assert main(["study", str(ref), "--quiet"]) == 0
    expected = table(tmp_path / "ref")
    # sit pre-trained (epochs 2 and 40), random init: k-NN and linear of each
    assert [(e, p, ep) for e, p, ep, *_ in expected] == [("random", "knn", 0), ("random", "linear", 0),
                                                          ("sit", "knn", 2), ("sit", "knn", 40.0),
                                                          ("sit", "linear", 2), ("sit", "linear", 40.0)]
    md = (tmp_path / "ref" / "results.md").read_text()
    assert "| sit | epochs 2, 40 | 320 |" in md and "Against pre-training epochs" in md
    assert (tmp_path / "ref" / "bars.png").is_file() and (tmp_path / "ref" / "epochs.png").is_file()
    assert len(list((tmp_path / "ref" / "configs").glob("*.yaml"))) == 7  # 1 pre-training + 6 evaluations

    # the same study, stopped by Ctrl-C, then killed (SIGKILL: nothing saved on the way out), during its pre-training
    path = toy_study(tmp_path, "killed")
    out = tmp_path / "killed"
    pre = out / "stages" / "sit" / "synth" / "seed0" / "pretrain"
    for sig, epoch in ((signal.SIGINT, 2), (signal.SIGKILL, 6)):
        proc = subprocess.Popen([sys.executable, "-m", "vitssl", "study", str(path), "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not (pre / "checkpoints" / f"epoch_{epoch:04d}.pt").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate()
        assert not (pre / "summary.json").exists() or json.loads((pre / "summary.json").read_text())["stopped_early"], \
            "the signal came after the stage ended: the test proves nothing"
        assert json.loads((pre / "stage.json").read_text())["status"] == "running"
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "study stopped during stage sit/synth/seed0/pretrain" in err, err
            assert "Traceback" not in err

    res = subprocess.run([sys.executable, "-m", "vitssl", "study", str(path), "--quiet"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "sit/synth/seed0/pretrain" in res.stdout and "resume" in res.stdout
    assert table(out) == expected

    before = stamps(out)
    res = subprocess.run([sys.executable, "-m", "vitssl", "study", str(path), "--quiet"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "0 of 7 stages to run" in res.stdout and stamps(out) == before and table(out) == expected

    # a changed protocol setting reruns that protocol's stages only; the old folders are kept aside
    toy_study(tmp_path, "killed", protocols={"knn": {"knn.k": 5}, "linear": {"linear.epochs": 4}})
    capsys.readouterr()
    assert main(["study", str(path), "--quiet"]) == 0
    plan = capsys.readouterr().out
    assert "3 of 7 stages to run" in plan
    after = {k: v for k, v in stamps(out).items() if "replaced" not in k}
    assert after.keys() == before.keys()
    assert {k for k in after if after[k] != before[k]} == {k for k in after if "/linear" in k}
    assert len(list(out.glob("stages/*/synth/seed0/linear*.replaced-1"))) == 3


def test_dry_run_prints_the_plan_with_estimates_and_runs_nothing(tmp_path, capsys):
    """Seed by seed (a study stopped half-way has a whole table); fine-tuning at the last epoch only."""
    path = toy_study(tmp_path, seeds=[0, 1], budget={"epochs": [1, 2]},
                     protocols={"knn": {}, "finetune": {"finetune.epochs": 1, "snapshots": False}})
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    labels = [line.split()[0] for line in out.splitlines() if line.startswith("  sit/") or line.startswith("  random/")]
    assert labels == ["sit/synth/seed0/pretrain", "sit/synth/seed0/knn@ep1", "sit/synth/seed0/knn",
                      "sit/synth/seed0/finetune", "random/synth/seed0/knn", "random/synth/seed0/finetune",
                      "sit/synth/seed1/pretrain", "sit/synth/seed1/knn@ep1", "sit/synth/seed1/knn",
                      "sit/synth/seed1/finetune", "random/synth/seed1/knn", "random/synth/seed1/finetune"]
    assert "(epochs 1, 2)" in out and "12 of 12 stages to run, estimated" in out
    assert not (tmp_path / "toy").exists()


@pytest.mark.parametrize("load, busy", [(0.3, False), (1.5, True)])
def test_dry_run_says_when_the_rates_were_measured_on_a_busy_machine(tmp_path, capsys, monkeypatch, load, busy):
    """Rates measured while other work runs make every estimate too long: the plan says so."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load * 2, load * 2, load * 2))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    path = toy_study(tmp_path)
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("machine was busy as step rates were measured (load average 3.0 on 2 cores)" in out) == busy


@pytest.mark.parametrize("change, message", [
    ({"entries": {"sit": "no_such_config"}}, "config file 'no_such_config' does not exist"),
    ({"datasets": {"mine": {"root": "/no/such/folder"}}}, "/no/such/folder"),
    ({"protocols": {"knn": {}, "probe": {}}}, "study protocol 'probe' is unknown"),
    ({"protocols": {"linear": {"linear.epoch": 3}}}, "epoch"),
    ({"entries": {"sit": "quickstart", "r": {"like": "mae"}}}, "like: 'mae' must name another entry"),
    ({"budget": {"hours": 2}}, "study key 'budget' must be one of"),
    ({"protocols": {"knn": {"snapshots": "no"}}}, "'protocols.knn.snapshots' must be true or false"),
    ({"seed": [0]}, "study key 'seed' is unknown"),
])
def test_bad_input_is_one_line_before_anything_runs(tmp_path, capsys, change, message):
    path = toy_study(tmp_path, **change) if "seed" not in change else None
    if path is None:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({"seed": [0], "entries": {"a": None}, "protocols": {"knn": {}}}))
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err, err
    assert not (tmp_path / "toy").exists()


def test_budgets_and_entries_are_read_as_written(tmp_path):
    path = toy_study(tmp_path, budget={"epochs": 30}, entries={
        "a": {"config": "cpu/sit_cifar10", "overrides": ["optim.base_lr=1e-3"], "budget": {"epochs": [30, 10, 20]}},
        "b": {"config": "quickstart", "budget": {"minutes": 5}}, "c": None,
        "d": {"like": "a", "eval": {"finetune.layer_decay": 1.0}}})
    s = read_study(path)
    a, b, c, d = s.entries
    assert a.budget == Budget(epochs=(10, 20, 30)) and "log.checkpoint_every=10" in a.budget.overrides()
    assert b.budget.kind == "minutes" and c.config is None and c.budget is None and s.budget == Budget(epochs=(30,))
    assert d.random and d.config == "cpu/sit_cifar10" and d.overrides == ["optim.base_lr=1e-3"]
    assert d.eval == ["finetune.layer_decay=1.0"] and a.eval == []
    with pytest.raises(ConfigError, match="entry name"):
        read_study(toy_study(tmp_path, entries={"a/b": "quickstart"}))
    from vitssl.study.plan import plan

    stages = plan(read_study(toy_study(tmp_path, protocols={"finetune": {}}, entries={
        "sit": "quickstart", "scratch": {"like": "sit", "eval": {"finetune.layer_decay": 1.0}}})), check_data=False)
    decay = {st.entry.name: st.config["finetune"]["layer_decay"] for st in stages if st.kind == "finetune"}
    assert decay == {"sit": 0.75, "scratch": 1.0}


RANDSAC = {"config": "randsac_cifar10", "overrides": {  # 16 px / patch 4: a 4x4 grid, where 2x2 squares in
    "model.embed_dim": 32, "model.depth": 2, "model.num_heads": 2,  # 4x4 quadrants
    "method.decoder_dim": 32, "method.decoder_depth": 1, "method.decoder_heads": 2}}   # tile; the defaults' do not


@pytest.mark.parametrize("entry", ["quickstart", RANDSAC], ids=["sit", "randsac"])
def test_a_later_vitssl_with_new_config_keys_keeps_finished_stages(tmp_path, entry):
    """An upgrade that adds a config key (at its default) must not rerun a study; a changed value must,
    and so must the evaluations of a pre-training that is run again. The defaults it compares with are
    read without the method's cross-checks (RandSAC's squares do not tile the default model's grid)."""
    from vitssl.study.plan import plan
    from vitssl.study.runner import status

    pretrain = {**{k: v for k, v in PRETRAIN.items() if not k.startswith("method.")}, "model.patch_size": 4}
    path = toy_study(tmp_path, budget={"steps": 2}, protocols={"knn": {}}, pretrain=pretrain,
                     entries={"sit": entry})
    assert main(["study", str(path), "--quiet"]) == 0
    pre, knn = plan(read_study(path))
    assert status(pre) == status(knn) == "done"
    for st in (pre, knn):  # as an older vitssl left them: no data.format key, another hash
        cfg = yaml.safe_load((st.folder / "config.yaml").read_text())
        del cfg["data"]["format"]
        (st.folder / "config.yaml").write_text(yaml.safe_dump(cfg))
        state = json.loads((st.folder / "stage.json").read_text())
        (st.folder / "stage.json").write_text(json.dumps({**state, "key": "from-an-older-version"}))
    assert status(pre) == status(knn) == "done"
    cfg = yaml.safe_load((pre.folder / "config.yaml").read_text())
    cfg["optim"]["base_lr"] *= 2
    (pre.folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert status(pre) == "replace" and status(knn) == "replace"


def test_an_evaluation_read_another_way_than_the_method_now_reads_is_rerun(tmp_path):
    """A study that left the pooling to the method (features.pool=auto, as older vitssl wrote it) keeps a
    finished evaluation only if it used the pooling the method is read with now (GMML's changed)."""
    from vitssl.study.plan import plan
    from vitssl.study.runner import status

    path = toy_study(tmp_path, budget={"steps": 2}, protocols={"knn": {}}, entries={"sit": "quickstart"})
    assert main(["study", str(path), "--quiet"]) == 0
    _, knn = plan(read_study(path))
    assert knn.config["features"]["pool"] == "cls"  # SiT is read by its CLS token, and the stage says so
    cfg = yaml.safe_load((knn.folder / "config.yaml").read_text())
    cfg["features"]["pool"] = "auto"
    (knn.folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    state = json.loads((knn.folder / "stage.json").read_text())
    (knn.folder / "stage.json").write_text(json.dumps({**state, "key": "from-an-older-version"}))
    assert status(knn) == "done"
    res = json.loads((knn.folder / "results.json").read_text())
    (knn.folder / "results.json").write_text(json.dumps({**res, "pool": "avg"}))  # read otherwise back then
    assert status(knn) == "replace"


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "benchmarks" / "studies").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_committed_study_file_plans(path):
    """The study files under benchmarks/studies resolve every stage's config (data is not scanned here)."""
    from vitssl.study.plan import plan

    assert plan(read_study(path), check_data=False)


def test_keep_going_records_a_failed_stage_and_runs_the_rest(tmp_path, capsys):
    """A training that diverges stops the study by default; with --keep-going it is listed (with the
    loop's advice), its evaluations are skipped, every other stage runs and the table holds them."""
    path = toy_study(tmp_path, budget={"epochs": [1]}, protocols={"knn": {"knn.k": 5}},
                     entries={"bad": {"config": "quickstart", "overrides": {"optim.base_lr": 1.0e30}},
                              "sit": "quickstart", "random": {"like": "sit"}})
    assert main(["study", str(path), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "non-finite" in err and "Traceback" not in err
    assert not (tmp_path / "toy" / "stages" / "sit").exists()  # stopped at the first failure

    assert main(["study", str(path), "--quiet", "--keep-going"]) == 1
    err = capsys.readouterr().err
    assert "stage bad/synth/seed0/pretrain failed, going on without it" in err
    assert "2 stage(s) did not run to the end" in err
    res = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert set(res["failed"]) == {"bad/synth/seed0/pretrain", "bad/synth/seed0/knn"}
    assert "non-finite" in res["failed"]["bad/synth/seed0/pretrain"]
    assert res["failed"]["bad/synth/seed0/knn"] == "skipped: bad/synth/seed0/pretrain failed"
    assert sorted(s["entry"] for s in res["summary"]) == ["random", "sit"]
    md = (tmp_path / "toy" / "results.md").read_text()
    assert "## Failed stages" in md and "| bad/synth/seed0/pretrain | the loss or a gradient became non-finite" in md
    rows = {line.split(" | ")[0]: line for line in md.splitlines() if line.startswith("| ")}
    assert rows["| sit"].endswith("| block 2, cls |") and rows["| random"].endswith("| block 2, cls |"), md  # read alike
    assert json.loads((tmp_path / "toy" / "stages" / "bad" / "synth" / "seed0" / "pretrain" / "stage.json")
                      .read_text())["status"] == "failed"


def test_two_processes_on_other_seeds_share_one_study(tmp_path, capsys):
    """`--seeds` splits a study between processes running side by side (each sees only its stages as
    work, and writes the table of everything finished); a plain rerun then has nothing left."""
    path = toy_study(tmp_path, seeds=[0, 1], budget={"epochs": [2]}, protocols={"knn": {"knn.k": 5}})
    procs = [subprocess.Popen([sys.executable, "-m", "vitssl", "study", str(path), "--quiet", "--seeds", str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for seed in (0, 1)]
    outs = [p.communicate() for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "3 of 6 stages to run (3 not selected: --seeds/--entries)" in out, out
    assert "sit/synth/seed1/pretrain" not in outs[0][1] and "sit/synth/seed0/pretrain" not in outs[1][1]
    assert main(["study", str(path), "--quiet"]) == 0
    assert "0 of 6 stages to run" in capsys.readouterr().out
    res = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert sorted((s["entry"], s["seeds"]) for s in res["summary"]) == [("random", [0, 1]), ("sit", [0, 1])]
    assert not list((tmp_path / "toy").glob(".*tmp*")), "a temporary file was left behind"


@pytest.mark.parametrize("args, message", [
    (["--seeds", "7"], "--seeds: 7 not in the study; it has 0"),
    (["--entries", "sit,mea"], "--entries: mea not in the study; it has sit, random")])
def test_a_selection_outside_the_study_is_one_line(tmp_path, capsys, args, message):
    path = toy_study(tmp_path)
    assert main(["study", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err, err
    assert not (tmp_path / "toy").exists()


def test_a_stage_another_process_runs_is_left_to_it_never_removed(tmp_path, capsys):
    """The same study started twice: the second leaves the first's running stage (and its evaluations)
    alone instead of restarting it under it, runs the rest, and picks the stage up once that process is gone."""
    from vitssl.study.plan import plan

    path = toy_study(tmp_path)
    folder = tmp_path / "toy" / "stages" / "sit" / "synth" / "seed0" / "pretrain"
    folder.mkdir(parents=True)
    (folder / "their_work.txt").write_text("in progress")
    key = next(st.key for st in plan(read_study(path)) if st.label == "sit/synth/seed0/pretrain")
    (folder / "stage.json").write_text(json.dumps({"stage": "sit/synth/seed0/pretrain", "key": key,
                                                   "status": "running"}))  # no checkpoint yet: would be restarted
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        claim = folder.parent / ".pretrain.claim"  # what a study process holds while it runs a stage
        claim.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "started": "now"}))
        assert main(["study", str(path), "--dry-run"]) == 0
        shown = capsys.readouterr().out
        busy = [line.split()[0] for line in shown.splitlines() if line.split()[1:2] == ["busy"]]
        assert busy == ["sit/synth/seed0/pretrain", "sit/synth/seed0/knn@ep2", "sit/synth/seed0/knn",
                        "sit/synth/seed0/linear@ep2", "sit/synth/seed0/linear"]
        assert "2 of 7 stages to run (5 busy: another process runs them or what they evaluate)" in shown
        assert main(["study", str(path), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "5 stage(s) are still being run by another process" in err
        assert (folder / "their_work.txt").read_text() == "in progress"
        assert {r["entry"] for r in json.loads((tmp_path / "toy" / "results.json").read_text())["rows"]} == {"random"}
        assert not list((tmp_path / "toy" / "stages" / "random").rglob(".*.claim"))  # its own claims released
    finally:
        other.kill()
        other.wait()
    assert main(["study", str(path), "--quiet"]) == 0  # that process is gone: its stage is this one's to run
    rows = json.loads((tmp_path / "toy" / "results.json").read_text())["rows"]
    assert len(rows) == 6 and "another process" not in capsys.readouterr().err


def test_the_eta_leaves_out_what_another_process_holds_and_says_when_it_is_shared(tmp_path):
    """Two processes on one study: each one's ETA counts only the stages nobody else holds, and says what
    it becomes when the other shares them (not twice the time the study will take), only when the other
    may run them (its --entries/--seeds) and never below the longest stage, which one process runs."""
    from vitssl.study.plan import plan
    from vitssl.study.runner import _eta

    study = read_study(toy_study(tmp_path))
    stages = plan(study)
    everything = list(range(len(stages)))
    estimates = [60.0] * len(stages)
    assert _eta(study, stages, everything, estimates, 1.0) == "ETA 7m00s"
    claim = study.output_dir / "stages" / "sit" / "synth" / "seed0" / ".pretrain.claim"
    claim.parent.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    holds = lambda about: claim.write_text(json.dumps(  # noqa: E731
        {"pid": other.pid, "host": socket.gethostname(), "started": "now", "about": about}))
    shared = "ETA 3m00s alone, 1m30s if the 1 other process(es) running this study's stages, which may run these "
    try:
        # the other holds sit's pre-training, and so its four evaluations: random's two are left
        holds(None)  # a process that runs every stage (or did not say)
        assert _eta(study, stages, everything, estimates, 1.5) == shared + "too, share them"
        holds({"seeds": None, "entries": ["random"]})
        assert _eta(study, stages, everything, estimates, 1.5) == shared + "too, share them"
        holds({"seeds": None, "entries": ["sit"]})  # it runs sit's stages only: it cannot share random's
        assert _eta(study, stages, everything, estimates, 1.5) == "ETA 3m00s"
        holds({"seeds": [1], "entries": None})  # another seed
        assert _eta(study, stages, everything, estimates, 1.5) == "ETA 3m00s"
        holds(None)
        uneven = [300.0 if st.entry.name == "random" and st.kind == "knn" else 60.0 for st in stages]
        assert _eta(study, stages, everything, uneven, 1.0) == (  # 6m00s in all, halved 3m00s: the k-NN's 5m
            "ETA 6m00s alone, 5m00s if the 1 other process(es) running this study's stages, which may run these "
            "too, share them")
        last = [j for j in everything if stages[j].entry.name == "random"][-1:]  # one stage left: not shared
        assert _eta(study, stages, last, estimates, 1.0) == "ETA 1m00s"
    finally:
        other.kill()
        other.wait()
    assert _eta(study, stages, everything, estimates, 1.0) == "ETA 7m00s"  # its claim is dead: all are left


def test_two_processes_running_one_study_share_its_stages(tmp_path, capsys):
    """The same command in two terminals: every stage runs once, and both end with the whole table."""
    path = toy_study(tmp_path, seeds=[0, 1])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "vitssl", "study", str(path), "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    ran = [line.split(": ", 2)[2].rsplit(" (", 1)[0] for _, err in outs for line in err.splitlines()
           if line.startswith("study: stage ") and "left to" not in line]
    assert len(ran) == len(set(ran)) == 14  # every stage run, and by one process only
    assert not list((tmp_path / "toy").rglob("*.replaced-*")) and not list((tmp_path / "toy").rglob(".*.claim"))
    assert main(["study", str(path), "--dry-run"]) == 0
    assert "0 of 14 stages to run" in capsys.readouterr().out
    rows = json.loads((tmp_path / "toy" / "results.json").read_text())["rows"]
    assert len(rows) == 12


def test_a_lost_study_folder_is_rebuilt_from_its_results_json(tmp_path, capsys):
    """Seeds run on another machine, or a study folder that was wiped: `--import` its results.json and
    its finished stages count as done (kept for later runs); a record of another config, or a
    pre-training not all of whose evaluations were imported, is run again."""
    path = toy_study(tmp_path, seeds=[0, 1], budget={"epochs": [2]},
                     protocols={"knn": {"knn.k": 5}, "linear": {"linear.epochs": 2}})
    out = tmp_path / "toy"
    assert main(["study", str(path), "--quiet", "--seeds", "1"]) == 0
    kept = tmp_path / "kept.json"
    kept.write_text((out / "results.json").read_text())
    elsewhere = {(r["entry"], r["protocol"]): r["accuracy"] for r in json.loads(kept.read_text())["rows"]}
    assert len(elsewhere) == 4
    shutil.rmtree(out)  # the folder is lost, its results.json was kept

    capsys.readouterr()
    assert main(["study", str(path), "--dry-run", "--import", str(kept)]) == 0
    plan = capsys.readouterr().out
    assert "5 of 10 stages to run (5 imported: finished in another copy of the study)" in plan, plan
    assert f"--import {kept}: 4 finished evaluation(s) of this study" in plan
    assert not out.exists()  # a dry run writes nothing, not even the import

    bad = json.loads(kept.read_text())  # one evaluation of seed 1's pre-training missing: it is trained again
    bad["rows"] = [r for r in bad["rows"] if (r["entry"], r["protocol"]) != ("sit", "linear")]
    (tmp_path / "partial.json").write_text(json.dumps(bad))
    assert main(["study", str(path), "--dry-run", "--import", str(tmp_path / "partial.json")]) == 0
    states = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  sit/") or line.startswith("  random/")}
    assert states["sit/synth/seed1/pretrain"] == "new" and states["sit/synth/seed1/knn"] == "new"
    assert states["random/synth/seed1/knn"] == "imported"

    assert main(["study", str(path), "--report", "--import", str(kept)]) == 0  # the table of what is finished
    assert not (out / "stages").exists()  # nothing ran
    assert [s["seeds"] for s in json.loads((out / "results.json").read_text())["summary"]] == [[1]] * 4

    assert main(["study", str(path), "--quiet", "--import", str(kept)]) == 0
    assert not (out / "stages" / "sit" / "synth" / "seed1").exists()  # nothing of seed 1 ran here
    res = json.loads((out / "results.json").read_text())
    imported = {(r["entry"], r["protocol"]): r["accuracy"] for r in res["rows"] if r["seed"] == 1}
    assert imported == elsewhere and all(r["imported_from"] == str(kept) for r in res["rows"] if r["seed"] == 1)
    assert sorted((s["entry"], s["protocol"], s["seeds"]) for s in res["summary"]) == [
        ("random", "knn", [0, 1]), ("random", "linear", [0, 1]), ("sit", "knn", [0, 1]), ("sit", "linear", [0, 1])]
    assert "4 of these results were imported (`--import`)" in (out / "results.md").read_text()

    capsys.readouterr()
    assert main(["study", str(path), "--quiet"]) == 0  # kept in the study folder: no --import needed again
    assert "0 of 10 stages to run (5 imported" in capsys.readouterr().out

    toy_study(tmp_path, seeds=[0, 1], budget={"epochs": [2]},  # k-NN changed: its records no longer stand for it
              protocols={"knn": {"knn.k": 3}, "linear": {"linear.epochs": 2}})
    assert main(["study", str(path), "--dry-run", "--import", str(kept)]) == 0
    plan = capsys.readouterr().out
    assert f"--import {kept}: 2 finished evaluation(s) of this study; 2 of another config, not imported" in plan
    assert "sit/synth/seed1/pretrain" in plan and " new " in plan.split("sit/synth/seed1/pretrain")[1].split("\n")[0]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"), ("{}", "not a study's results.json"), ("[1, 2", "not a study's results.json")])
def test_an_import_that_is_not_a_studys_results_is_one_line(tmp_path, capsys, content, message):
    path = toy_study(tmp_path)
    given = tmp_path / "given.json"
    if content is not None:
        given.write_text(content)
    assert main(["study", str(path), "--import", str(given)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and f"--import {given}: {message}" in err, err
    assert not (tmp_path / "toy").exists()
