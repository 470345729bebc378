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


def test_readme_has_the_two_commands():
    first = _blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def _run_console_examples(workdir):
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 4
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "haste-onnx"
        out = subprocess.run([sys.executable, "-m", "haste_onnx.cli", *argv[1:]], cwd=workdir, capture_output=True,
                             text=True)
        assert out.returncode == 0, f"{command}: {out.stderr}"
    assert (workdir / "resnet20_haste.onnx").is_file() and (workdir / "resnet20_restored.onnx").is_file()


@pytest.fixture(scope="module")
def examples_dir(tmp_path_factory):
    """A folder in which the README's command-line examples have run (once for this module)."""
    workdir = tmp_path_factory.mktemp("readme")
    (workdir / "models").mkdir()
    shutil.copy(ROOT / "models" / "resnet20_fmnist.onnx", workdir / "models")
    _run_console_examples(workdir)
    return workdir


def test_readme_examples_run(examples_dir):
    python = _blocks("python")
    assert python
    for block in python:
        out = subprocess.run([sys.executable, "-c", block], cwd=examples_dir, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "(1, 10)"


def test_readme_python_example_runs_from_the_repository_root(examples_dir):
    """From the repository root the source tree's haste_onnx/ (without the built library) shadows the installed
    package; the example must still find the installed library."""
    where = subprocess.run([sys.executable, "-c", "import haste_onnx; print(haste_onnx.__file__)"], cwd=ROOT,
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve() == ROOT / "haste_onnx" / "__init__.py"  # the shadowing happens
    model = str(examples_dir / "resnet20_haste.onnx")
    for block in _blocks("python"):
        assert '"resnet20_haste.onnx"' in block
        out = subprocess.run([sys.executable, "-c", block.replace('"resnet20_haste.onnx"', repr(model))], cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "(1, 10)"


def _installed_library():
    from importlib import metadata

    try:
        dist = metadata.distribution("haste-onnx")
    except metadata.PackageNotFoundError:
        pytest.skip("haste-onnx is not installed")
    files = [f for f in dist.files or () if tuple(f.parts[:2]) == ("haste_onnx", "lib")]
    if not files:
        pytest.skip("the installed haste-onnx has no op library")
    return Path(dist.locate_file(files[0])).resolve()


def test_library_fallback_ignores_the_working_directory(tmp_path):
    """A source tree without its library falls back to the installed distribution's file, never to a distribution
    (nor a library) planted in the working directory."""
    installed = _installed_library()
    name = installed.name
    src = tmp_path / "src"
    shutil.copytree(ROOT / "haste_onnx", src / "haste_onnx", ignore=shutil.ignore_patterns("lib", "__pycache__"))
    cwd = tmp_path / "cwd"
    (cwd / "haste_onnx" / "lib").mkdir(parents=True)  # a namespace portion: does not shadow src's package
    (cwd / "haste_onnx" / "lib" / name).write_bytes(b"not a library")
    info = cwd / "haste_onnx-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: haste-onnx\nVersion: 9.9\n")
    (info / "RECORD").write_text(f"haste_onnx/lib/{name},,\nhaste_onnx-9.9.dist-info/METADATA,,\n")
    script = ("import sys; sys.path.insert(1, sys.argv[1]); import haste_onnx; "
              "print(haste_onnx.__file__); print(haste_onnx.get_library_path())")
    out = subprocess.run([sys.executable, "-c", script, str(src)], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    package, library = out.stdout.split()
    assert Path(package).resolve() == src / "haste_onnx" / "__init__.py"
    assert Path(library) == installed


def test_library_missing_everywhere_says_what_helps(tmp_path, monkeypatch):
    import haste_onnx.runtime as runtime

    monkeypatch.setattr(runtime, "__file__", str(tmp_path / "haste_onnx" / "runtime.py"))
    monkeypatch.setattr(runtime, "_installed_library", lambda name: None)
    with pytest.raises(runtime.LibraryNotFoundError) as info:
        runtime.get_library_path()
    text = str(info.value)
    assert "pip install ." in text and "environment" in text
