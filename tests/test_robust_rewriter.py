"""The rewriter under bad input and untrusted models (issue 7, items 6 and 7).

tests/test_cli.py already covers: missing, directory, empty, text and
truncated input files; an existing OUT without --force; OUT == IN; a missing
output folder, a file used as a folder, a read-only filesystem; a failed
check; rewriting a rewritten model. This file adds corrupted protobuf bytes
(a seeded mutation fuzz), files of other formats (a pickle among them),
Convs with unknown input shapes, a rewritten model rewritten with other
options, OUT as a directory, a full disk and other failures during the write,
an interrupt during the write, external data that points outside the model's
folder, and checks that nothing executes model content or lets the working
directory or the environment choose the op library.
"""
from __future__ import annotations

import ast
import errno
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import haste_onnx
from haste_onnx import cli, model_io
from haste_onnx.model_io import sha256_file
from haste_onnx.op import ConvAttrs
from haste_onnx.op.reference import haste_conv
from models_inline import chain_model, random_input, run_ort

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "haste_onnx"
COMMANDS = ("rewrite", "strip", "info")


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def only_files(folder: Path):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def chain_file(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(chain_model(), str(path))
    return path


@pytest.fixture
def rewritten_file(chain_file, tmp_path, capsys):
    path = tmp_path / "rewritten.onnx"
    assert run(["rewrite", chain_file, path, "--no-probe"], capsys)[0] == 0
    return path


def command_line(command, src, out, extra=()):
    return [command, src] + ([out] if command != "info" else []) + list(extra)


# ---- item 6: bad input ------------------------------------------------------------------------------

def _mutations(data: bytes, count: int, seed: int):
    """Seeded corruptions of a valid model: flipped bytes, overwritten runs, cuts, insertions, swaps."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        b = bytearray(data)
        kind = i % 5
        if kind == 0:
            for pos in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
                b[pos] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            pos = int(rng.integers(0, len(b) - 16))
            b[pos:pos + 16] = bytes([0xFF]) * 16
        elif kind == 2:
            b = b[:int(rng.integers(1, len(b)))]
        elif kind == 3:
            pos = int(rng.integers(0, len(b)))
            b[pos:pos] = rng.bytes(int(rng.integers(1, 40)))
        else:
            a, c = sorted(int(v) for v in rng.integers(0, len(b), size=2))
            b = b[:a] + b[c:] + b[a:c]
        yield kind, bytes(b)


@pytest.mark.parametrize("command", COMMANDS)
def test_corrupted_protobuf_fuzz(command, chain_file, rewritten_file, tmp_path, capsys):
    """Every corruption gives success or a documented exit code with one line; never an internal error."""
    source = (rewritten_file if command == "strip" else chain_file).read_bytes()
    bad = tmp_path / "bad.onnx"
    codes = {}
    for index, (kind, data) in enumerate(_mutations(source, 60, seed=len(command))):
        bad.write_bytes(data)
        before = sha256_file(bad)
        out = tmp_path / "out.onnx"
        code, _, err = run(command_line(command, bad, out, ["--no-load-check"] if command == "rewrite" else []),
                           capsys)
        codes[code] = codes.get(code, 0) + 1
        assert code in (0, 3, 5, 6), (index, kind, code, err)
        assert sha256_file(bad) == before
        if code:
            line = one_line(err)
            assert line.startswith(f"haste-onnx {command}: error: "), line
            assert not out.exists(), (index, kind)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], (index, kind)  # no temporary folder
        if out.exists():
            out.unlink()
    assert codes.get(3, 0) >= 20, codes  # most corruptions are caught as input problems


@pytest.mark.parametrize("kind", ["png", "zip", "json", "npy", "pickle", "random", "zeros", "elf"])
def test_files_that_are_not_onnx(kind, tmp_path, capsys):
    marker = tmp_path / "executed"
    data = {
        "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "json": b'{"graph": {"node": []}, "ir_version": 8}',
        "random": np.random.default_rng(1).bytes(4096),
        "zeros": bytes(4096),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(400),
    }.get(kind)
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("model.onnx", onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])).SerializeToString())
        data = buffer.getvalue()
    elif kind == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.arange(100, dtype=np.float32))
        data = buffer.getvalue()
    elif kind == "pickle":
        data = pickle.dumps(_Payload(str(marker)))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    for command in COMMANDS:
        code, _, err = run(command_line(command, bad, tmp_path / "o.onnx"), capsys)
        assert code == 3, (command, err)
        line = one_line(err)
        assert line.startswith(f"haste-onnx {command}: error: {bad}: ")
        assert "not an ONNX model" in line or "truncated or corrupt" in line or "empty" in line
    assert not marker.exists()
    assert not (tmp_path / "o.onnx").exists()


class _Payload:
    """Unpickling this creates a file: the test's proof that nothing unpickles model bytes."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _unknown_shape_model(rank_known: bool) -> onnx.ModelProto:
    """A Conv whose input has no known shape (not even a rank), or only a rank, after a Reshape to a runtime shape."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["X", "shape"], ["r"], name="reshape"),
             helper.make_node("Conv", ["r", "W", "B"], ["Y"], name="conv", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "unknown", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, ["n"]),
                           helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [4] if rank_known else ["k"])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, ["N", "C", "H", "W"])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("rank_known", [False, True])
def test_conv_with_unknown_input_shape(rank_known, tmp_path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    model = _unknown_shape_model(rank_known)
    onnx.save(model, str(src))
    code, text, err = run(["rewrite", src, out, "--allow-first", "--hyperplanes", "6"], capsys)
    assert code == 0, err
    assert "?" in text  # MACs unknown
    result = onnx.load(str(out))
    node = next(n for n in result.graph.node if n.op_type == "HasteConv")
    inits = {i.name: numpy_helper.to_array(i) for i in result.graph.initializer}
    x = random_input([16 * 7 * 9])
    feeds = {"X": x, "shape": np.array([1, 16, 7, 9], np.int64)}
    y = run_ort(result, feeds, with_library=True)[0]
    expected = haste_conv(x.reshape(1, 16, 7, 9), inits["W"], inits["B"], inits[node.input[3]],
                          ConvAttrs(kernel_shape=(3, 3), pads=(1, 1, 1, 1)), (4, 4), True,
                          merge=onnx.helper.get_attribute_value(
                              next(a for a in node.attribute if a.name == "merge")).decode())
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    # strip gives back exactly the Conv
    assert run(["strip", out, tmp_path / "s.onnx"], capsys)[0] == 0
    np.testing.assert_array_equal(run_ort(onnx.load(str(tmp_path / "s.onnx")), feeds)[0], run_ort(model, feeds)[0])


def test_rewritten_model_with_other_options_keeps_existing_haste_nodes(rewritten_file, tmp_path, capsys):
    out = tmp_path / "again.onnx"
    before = onnx.load(str(rewritten_file))
    code, text, _ = run(["rewrite", rewritten_file, out, "--hyperplanes", "5", "--tile", "2"], capsys)
    # Nothing new is eligible: the existing nodes keep their own settings; the model is written unchanged.
    assert code == 0 and "replaced 0 of 8" in text and "3 already HasteConv" in text
    assert out.read_bytes() == rewritten_file.read_bytes()
    out.unlink()
    code, text, _ = run(["rewrite", rewritten_file, out, "--hyperplanes", "5", "--allow-strided"], capsys)
    assert code == 0 and "replaced 1 of 8" in text and "3 already HasteConv" in text
    after = {n.name: n for n in onnx.load(str(out)).graph.node}
    for node in before.graph.node:
        if node.op_type == "HasteConv":
            assert after[node.name] == node  # untouched: same attributes, same hyperplanes input


def test_output_that_is_a_directory(chain_file, tmp_path, capsys):
    folder = tmp_path / "out.onnx"
    folder.mkdir()
    code, _, err = run(["rewrite", "--no-probe", "--force", chain_file, folder], capsys)
    assert code == 4 and one_line(err) == f"haste-onnx rewrite: error: {folder}: is a directory"
    assert only_files(folder) == []


# ---- item 6: failures while writing -----------------------------------------------------------------

class _FullDisk(io.RawIOBase):
    """A file that accepts `room` bytes and then fails like a full disk."""

    def __init__(self, path, room):
        self.file = open(path, "wb")
        self.room = room

    def write(self, data):
        data = bytes(data)
        if len(data) > self.room:
            self.file.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def flush(self):
        self.file.flush()

    def fileno(self):
        return self.file.fileno()

    def close(self):
        if not self.closed:
            super().close()  # flushes first
            self.file.close()


def _assert_clean_failure(code, err, command, out, tmp_path, before, src, expected_code=4, text="No space left"):
    assert code == expected_code, err
    line = one_line(err)
    assert line.startswith(f"haste-onnx {command}: error: {out}: ") and text in line, line
    assert sha256_file(src) == before
    assert not out.exists() and not model_io.data_file_for(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("command", ["rewrite", "strip"])
@pytest.mark.parametrize("room", [0, 100, 5000])
def test_disk_full_during_the_write(command, room, chain_file, rewritten_file, tmp_path, capsys, monkeypatch):
    src = rewritten_file if command == "strip" else chain_file
    before = sha256_file(src)
    out = tmp_path / "out.onnx"
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        if "w" in mode and "b" in mode:
            return _FullDisk(path, room)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(model_io, "open", fake_open, raising=False)
    code, _, err = run(command_line(command, src, out, ["--no-probe"] if command == "rewrite" else []), capsys)
    _assert_clean_failure(code, err, command, out, tmp_path, before, src)


def test_disk_full_at_fsync(chain_file, tmp_path, capsys, monkeypatch):
    before = sha256_file(chain_file)
    out = tmp_path / "out.onnx"

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model_io.os, "fsync", no_space)
    code, _, err = run(["rewrite", "--no-probe", chain_file, out], capsys)
    _assert_clean_failure(code, err, "rewrite", out, tmp_path, before, chain_file)


def test_disk_full_while_writing_external_data(chain_file, tmp_path, capsys, monkeypatch):
    before = sha256_file(chain_file)
    out = tmp_path / "out.onnx"
    real_save = onnx.save_model

    def half_then_full(model, path, *args, **kwargs):
        real_save(model, path, *args, **kwargs)
        data = Path(path).with_name(kwargs["location"])
        data.write_bytes(data.read_bytes()[:50])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model_io.onnx, "save_model", half_then_full)
    code, _, err = run(["rewrite", "--no-probe", "--external-data", chain_file, out], capsys)
    _assert_clean_failure(code, err, "rewrite", out, tmp_path, before, chain_file)


@pytest.mark.parametrize("existing", [False, True])
def test_failure_moving_the_model_after_its_data_leaves_no_partial_output(existing, chain_file, tmp_path, capsys,
                                                                          monkeypatch):
    """With external data the data file moves first; if the model cannot follow, the old pair stays as it was."""
    out = tmp_path / "out.onnx"
    if existing:
        out.write_bytes(b"old model")
        model_io.data_file_for(out).write_bytes(b"old data")
    before = sha256_file(chain_file)
    real_replace = os.replace

    def fail_for_the_model(a, b):
        if Path(b) == out:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_replace(a, b)

    monkeypatch.setattr(model_io.os, "replace", fail_for_the_model)
    code, _, err = run(["rewrite", "--no-probe", "--force", "--external-data", chain_file, out], capsys)
    assert code == 4 and "cannot move the result into place" in one_line(err)
    assert sha256_file(chain_file) == before
    if existing:
        assert out.read_bytes() == b"old model" and model_io.data_file_for(out).read_bytes() == b"old data"
    else:
        assert not out.exists() and not model_io.data_file_for(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_interrupt_during_the_write_leaves_nothing(chain_file, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.onnx"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io.os, "fsync", interrupted)
    code, _, err = run(["rewrite", "--no-probe", chain_file, out], capsys)
    assert code == 130 and one_line(err) == "haste-onnx rewrite: interrupted"
    assert only_files(tmp_path) == ["model.onnx"]


# ---- item 7: untrusted models -----------------------------------------------------------------------

def _hostile_model(marker: Path) -> onnx.ModelProto:
    """A valid model carrying code and a pickle wherever a model can carry bytes or text."""
    model = chain_model()
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    payload = pickle.dumps(_Payload(str(marker)))
    model.doc_string = code
    model.graph.doc_string = code
    model.producer_name = code
    onnx.helper.set_model_props(model, {"python": code, "pickle": payload.hex(), "onnx_library": "/tmp/evil.so"})
    model.graph.node[0].doc_string = code
    blob = onnx.TensorProto(name="blob", data_type=onnx.TensorProto.UINT8, dims=[len(payload)], raw_data=payload)
    model.graph.initializer.append(blob)
    return model


def test_model_content_is_never_executed_or_unpickled(tmp_path, capsys):
    marker = tmp_path / "executed"
    src = tmp_path / "hostile.onnx"
    model = _hostile_model(marker)
    onnx.save(model, str(src))
    out, stripped = tmp_path / "r.onnx", tmp_path / "s.onnx"
    assert run(["info", src], capsys)[0] == 0
    assert run(["rewrite", "--no-probe", src, out], capsys)[0] == 0
    assert run(["info", out], capsys)[0] == 0
    assert run(["strip", out, stripped], capsys)[0] == 0
    assert not marker.exists()
    result = onnx.load(str(out))  # the content is carried over as data, unchanged
    assert result.doc_string == model.doc_string
    assert {p.key: p.value for p in result.metadata_props} == {p.key: p.value for p in model.metadata_props}


def test_external_data_outside_the_model_folder_is_refused(tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4096, dtype=np.float32).tobytes())
    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save(chain_model(), str(folder / "m.onnx"), save_as_external_data=True, location="d.bin", size_threshold=0)
    for name, location in (("up", "../secret.bin"), ("absolute", str(secret))):
        model = onnx.load(str(folder / "m.onnx"), load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        path = folder / f"{name}.onnx"
        onnx.save(model, str(path))
        for command in COMMANDS:
            code, _, err = run(command_line(command, path, tmp_path / "o.onnx"), capsys)
            assert code == 3, (name, command, err)
            assert "external data" in one_line(err)
        assert not (tmp_path / "o.onnx").exists()


def _package_sources():
    return sorted(PACKAGE.rglob("*.py"))


FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib", "ctypes"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def test_package_has_no_unpickling_or_code_execution():
    problems = []
    for path in _package_sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                names = []
            problems += [f"{path}:{node.lineno}: imports {n}" for n in names if n in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if isinstance(func, ast.Name) and name in FORBIDDEN_CALLS:  # the builtins (re.compile is fine)
                    problems.append(f"{path}:{node.lineno}: calls {name}")
                if name in ("load", "loads") and isinstance(func, ast.Attribute) and \
                        isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy", "torch", "yaml"):
                    keywords = {k.arg: k.value for k in node.keywords}
                    allow = keywords.get("allow_pickle")
                    if func.value.id != "np" and func.value.id != "numpy" or \
                            not (isinstance(allow, ast.Constant) and allow.value is False):
                        problems.append(f"{path}:{node.lineno}: {func.value.id}.{name} without allow_pickle=False")
    assert not problems, problems


def test_library_path_does_not_read_the_environment():
    tree = ast.parse((PACKAGE / "runtime.py").read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | \
        {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"environ", "getenv", "getcwd", "cwd"}


def test_library_is_resolved_inside_the_package_whatever_the_cwd_and_environment(tmp_path):
    """A planted library in the working directory and environment variables pointing at it change nothing."""
    evil = tmp_path / "libhaste_onnx_ops.so"
    evil.write_bytes(b"not a library")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libhaste_onnx_ops.so").write_bytes(b"not a library")
    installed = Path(haste_onnx.__file__).resolve().parent  # the package under test, installed or in-tree
    env = dict(os.environ, PYTHONPATH=str(installed.parent), HASTE_ONNX_LIBRARY=str(evil), HASTE_ONNX_LIB=str(evil),
               HASTE_ONNX_LIB_DIR=str(tmp_path), HASTE_ONNX_OPS=str(evil), LD_LIBRARY_PATH=str(tmp_path),
               ORT_CUSTOM_OPS_LIBRARY=str(evil))
    script = ("import haste_onnx, onnxruntime as ort; print(haste_onnx.get_library_path()); "
              "opts = haste_onnx.session_options(1); print('ok')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, ok = proc.stdout.split()
    assert Path(path) == Path(haste_onnx.get_library_path()) and ok == "ok"
    assert Path(path).resolve().is_relative_to(installed)


def test_a_model_cannot_name_the_library_to_load(tmp_path, capsys):
    """Model metadata naming a library is data; the load check registers only the package's library."""
    import onnxruntime as ort

    registered = []
    real = ort.SessionOptions.register_custom_ops_library

    class Options(ort.SessionOptions):
        def register_custom_ops_library(self, path):
            registered.append(path)
            return real(self, path)

    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    model = chain_model()
    onnx.helper.set_model_props(model, {"custom_ops_library": str(tmp_path / "evil.so")})
    onnx.save(model, str(src))
    original = ort.SessionOptions
    ort.SessionOptions = Options
    try:
        assert run(["rewrite", "--no-probe", src, out], capsys)[0] == 0
    finally:
        ort.SessionOptions = original
    assert registered and set(registered) == {haste_onnx.get_library_path()}
