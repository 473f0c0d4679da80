import subprocess
import sys

from tests.conftest import ROOT, tiny_overrides
from vitssl.cli.main import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "vitssl", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_bad_config_is_one_line_error():
    res = run_cli("pretrain", "train.epoch=3")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        res.stderr.strip()] and "unknown config key 'train.epoch'" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_data_root_is_one_line_error(tmp_path):
    res = run_cli("pretrain", *tiny_overrides(tmp_path, f"data.root={tmp_path / 'nowhere'}"))
    assert res.returncode == 2 and "is not a folder" in res.stderr and "Traceback" not in res.stderr


def test_print_config_and_builtin_names(capsys):
    assert main(["pretrain", "--config", "gmml_cifar10", "--print-config", "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "name: gmml" in out and "epochs: 3" in out


def test_resume_needs_a_run(tmp_path, capsys):
    assert main(["pretrain", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml there" in capsys.readouterr().err


def test_resume_through_cli(tmp_path, capsys):
    assert main(["pretrain", *tiny_overrides(tmp_path, "train.max_steps=2")]) == 0
    assert main(["pretrain", "--resume", str(tmp_path / "run"), "train.max_steps=5"]) == 0
    assert '"step": 5' in capsys.readouterr().out
