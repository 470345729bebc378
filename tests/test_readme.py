"""The README's examples run, so they cannot rot."""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "models" / "resnet20_fmnist.onnx", tmp_path / "models")
    return tmp_path


def test_readme_has_the_two_commands():
    first = _blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_examples_run(workdir):
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 4
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "haste-onnx"
        out = subprocess.run([sys.executable, "-m", "haste_onnx.cli", *argv[1:]], cwd=workdir, capture_output=True,
                             text=True)
        assert out.returncode == 0, f"{command}: {out.stderr}"
    assert (workdir / "resnet20_haste.onnx").is_file() and (workdir / "resnet20_restored.onnx").is_file()
    for block in _blocks("python"):
        out = subprocess.run([sys.executable, "-c", block], cwd=workdir, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "(1, 10)"
