"""`pip install .` (not only -e) gives the whole package: every built-in config is in the wheel."""

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT
from vitssl.config.load import builtin_configs


def test_the_wheel_ships_every_builtin_config(tmp_path):
    src = tmp_path / "src"  # a clean copy: no build/ or egg-info left by an earlier build can fill the gaps
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vitssl", src / "vitssl", ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    wheel = next((tmp_path / "dist").glob("vitssl-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".yaml")}
    wanted = {f"vitssl/configs/{name}.yaml" for name in builtin_configs()}
    assert len(wanted) >= 24 and wanted <= shipped, sorted(wanted - shipped)
