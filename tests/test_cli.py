"""The command line: rewrite / strip / info, guarantees (atomic, input untouched, idempotent), errors, exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from haste_onnx import cli
from haste_onnx.errors import CheckError
from haste_onnx.model_io import sha256_file
from haste_onnx.plan.options import layer_seed
from models_inline import chain_model, no_conv_model, plain_model, random_input, run_ort

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err, code_name=None):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(chain_model(), str(path))
    return path


def test_rewrite_prints_the_table_and_writes_a_loadable_model(model_file, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    before = sha256_file(model_file)
    code, text, err = run(["rewrite", model_file, out, "--no-probe"], capsys)
    assert code == 0 and err == ""
    lines = text.splitlines()
    assert lines[0].split() == ["node", "input", "shape", "kernel", "stride", "MACs", "result"]
    rows = {line.split()[0]: line for line in lines[2:10]}
    assert rows["c1"].split() == ["c1", "Nx16x8x8", "3x3", "1x1", "147,456", "replaced"]
    assert rows["Y"].split()[:5] == ["Y", "Nx16x8x8", "3x3", "2x2", "36,864"]
    assert rows["Y"].endswith("kept: stride 2x2 (--allow-strided)")
    assert lines[10] == "plan: L=14, tile 4x4 on 3 layer(s); 5 Conv layer(s) kept"
    assert lines[11].startswith("replaced 3 of 8 conv layers (5 kept dense, 0 already HasteConv); 78.8% of 0.56 M")
    assert lines[12] == f"wrote {out} (loads in onnxruntime)"
    assert sha256_file(model_file) == before
    model = onnx.load(str(out))
    assert sum(n.op_type == "HasteConv" for n in model.graph.node) == 3
    x = random_input([1, 3, 8, 8])
    got = run_ort(model, {"X": x}, with_library=True)[0]
    assert got.shape == (1, 16, 4, 4) and np.isfinite(got).all()


def test_rewrite_options_reach_the_model(model_file, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, text, _ = run(["rewrite", model_file, out, "--hyperplanes", "9", "--tile", "2x3", "--sparsity", "0.5",
                         "--seed", "4", "--no-centering", "--allow-1x1", "--exclude", "c2", "--min-channels", "8",
                         "--layer-hyperplanes", "p*=3"], capsys)
    assert code == 0
    nodes = {n.name: n for n in onnx.load(str(out)).graph.node}
    assert nodes["c2"].op_type == "Conv" and nodes["pw"].op_type == "HasteConv"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes["c1"].attribute}
    assert (attrs["tile"], attrs["centering"], attrs["seed"], round(attrs["sparsity"], 4)) == ([2, 3], 0, layer_seed(4, 1), 0.5)
    planes = {i.name: i for i in onnx.load(str(out)).graph.initializer}["c1.hyperplanes"]
    assert list(planes.dims) == [9, 4 * 5]
    planes = {i.name: i for i in onnx.load(str(out)).graph.initializer}["pw.hyperplanes"]
    assert list(planes.dims) == [3, 2 * 3]


def test_rewrite_json(model_file, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    code, text, _ = run(["rewrite", "--json", "--no-probe", model_file, out], capsys)
    assert code == 0
    doc = json.loads(text)
    assert doc["output"] == str(out) and doc["load_check"] == "onnxruntime"
    assert doc["settings"]["hyperplanes"] == 14 and doc["settings"]["tile"] == [4, 4]
    assert [(r["node"], r["status"]) for r in doc["layers"]][:3] == [("stem", "kept"), ("c1", "replaced"),
                                                                     ("c2", "replaced")]
    assert doc["layers"][1]["settings"]["seed"] == layer_seed(0, 1) and doc["layers"][1]["macs"] == 147456
    assert doc["summary"]["replaced"] == 3 and doc["summary"]["conv_macs"] == 561152


@pytest.mark.parametrize("how", [[], ["--no-probe"]], ids=["probe", "one-L"])
def test_rewriting_the_output_again_changes_nothing(how, model_file, tmp_path, capsys):
    once, twice = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    assert run(["rewrite", "--no-probe", model_file, once, *how], capsys)[0] == 0
    replaced = sum(n.op_type == "HasteConv" for n in onnx.load(str(once)).graph.node)
    code, text, _ = run(["rewrite", once, twice, *how], capsys)
    assert code == 0
    assert f"replaced 0 of 8 conv layers ({8 - replaced} kept dense, {replaced} already HasteConv)" in text
    assert once.read_bytes() == twice.read_bytes()


def test_existing_output_needs_force(model_file, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"keep me")
    code, _, err = run(["rewrite", "--no-probe", model_file, out], capsys)
    assert code == 4
    assert one_error_line(err) == f"haste-onnx rewrite: error: {out}: already exists (use --force to overwrite)"
    assert out.read_bytes() == b"keep me"
    assert run(["rewrite", "--no-probe", "--force", model_file, out], capsys)[0] == 0
    assert any(n.op_type == "HasteConv" for n in onnx.load(str(out)).graph.node)  # the rewrite, not "keep me"


def test_output_may_never_be_the_input(model_file, capsys):
    before = sha256_file(model_file)
    code, _, err = run(["rewrite", "--no-probe", "--force", model_file, model_file], capsys)
    assert code == 4 and "the input is never modified" in one_error_line(err)
    assert sha256_file(model_file) == before


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "truncated"])
def test_bad_input_files(case, model_file, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    expected = {"missing": "no such file", "directory": "is a directory", "empty": "empty file",
                "text": "not an ONNX model", "truncated": "truncated or corrupt ONNX file"}[case]
    if case == "directory":
        bad.mkdir()
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "text":
        bad.write_text("this is not a model\n" * 10)
    elif case == "truncated":
        data = model_file.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    for command in (["rewrite", "--no-probe", bad, tmp_path / "o.onnx"], ["strip", bad, tmp_path / "o.onnx"], ["info", bad]):
        code, out, err = run(command, capsys)
        assert code == 3, (command, err)
        line = one_error_line(err)
        assert line.startswith(f"haste-onnx {command[0]}: error: {bad}: ") and expected in line
    assert not (tmp_path / "o.onnx").exists()


def test_model_without_conv(tmp_path, capsys):
    path = tmp_path / "noconv.onnx"
    onnx.save(no_conv_model(), str(path))
    code, _, err = run(["rewrite", "--no-probe", path, tmp_path / "o.onnx"], capsys)
    assert code == 5 and one_error_line(err) == "haste-onnx rewrite: error: the model has no Conv node"
    assert not (tmp_path / "o.onnx").exists()


def test_nothing_eligible_prints_the_reasons_and_writes_nothing(model_file, tmp_path, capsys):
    code, out, err = run(["rewrite", "--no-probe", model_file, tmp_path / "o.onnx", "--include", "nothing*"], capsys)
    assert code == 5
    assert one_error_line(err) == "haste-onnx rewrite: error: no Conv is eligible for HasteConv; nothing to do"
    assert out.count("not matched by --include") == 8
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("where", ["missing folder", "file as folder", "read-only filesystem"])
def test_unwritable_output(where, model_file, tmp_path, capsys):
    out = {"missing folder": tmp_path / "nope" / "o.onnx", "file as folder": model_file / "o.onnx",
           "read-only filesystem": Path("/proc/haste_onnx_test_out.onnx")}[where]
    before = sha256_file(model_file)
    code, _, err = run(["rewrite", "--no-probe", model_file, out], capsys)
    assert code == 4
    assert one_error_line(err).startswith(f"haste-onnx rewrite: error: {out}")
    assert not out.exists() and sha256_file(model_file) == before


def test_a_failed_check_leaves_no_output_and_no_temporary_files(model_file, tmp_path, capsys, monkeypatch):
    import haste_onnx.check

    def refuse(path, with_library=True):
        assert Path(path).is_file() and Path(path).parent != tmp_path  # checks the temporary file
        raise CheckError("onnxruntime refuses the result: simulated")

    monkeypatch.setattr(haste_onnx.check, "check_load", refuse)
    out = tmp_path / "out.onnx"
    code, _, err = run(["rewrite", "--no-probe", model_file, out], capsys)
    assert code == 6 and one_error_line(err) == "haste-onnx rewrite: error: onnxruntime refuses the result: simulated"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_missing_library_fails_the_load_check(model_file, tmp_path, capsys, monkeypatch):
    import haste_onnx.runtime

    def missing():
        raise haste_onnx.runtime.LibraryNotFoundError("the HasteConv op library is not installed at /x")

    monkeypatch.setattr(haste_onnx.runtime, "get_library_path", missing)
    code, _, err = run(["rewrite", "--no-probe", model_file, tmp_path / "o.onnx"], capsys)
    assert code == 6 and "op library is not installed" in one_error_line(err)
    assert not (tmp_path / "o.onnx").exists()
    code, text, _ = run(["rewrite", "--no-probe", "--no-load-check", model_file, tmp_path / "o.onnx"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'o.onnx'} (not load-checked)" in text


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(["rewrite", "--no-probe", "--debug", tmp_path / "missing.onnx", tmp_path / "o.onnx"], capsys)
    assert code == 3 and "Traceback" in err and err.strip().splitlines()[-1].endswith("no such file")


def test_internal_errors_are_one_line_with_exit_1(model_file, tmp_path, capsys, monkeypatch):
    import haste_onnx.rewrite

    def boom(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(haste_onnx.rewrite, "rewrite_model", boom)
    code, _, err = run(["rewrite", "--no-probe", model_file, tmp_path / "o.onnx"], capsys)
    assert code == 1
    assert one_error_line(err) == ("haste-onnx rewrite: internal error: ZeroDivisionError: simulated bug "
                                   "(rerun with --debug for the traceback)")


@pytest.mark.parametrize("args", [["--hyperplanes", "0"], ["--hyperplanes", "65"], ["--tile", "0"],
                                  ["--tile", "4x"], ["--sparsity", "1"], ["--seed", "-1"], ["--bogus"],
                                  ["--layer-hyperplanes", "c1"], ["--layer-hyperplanes", "c1=0"],
                                  ["--layer-hyperplanes", "=4"], ["--layer-hyperplanes", "c1=x"]])
def test_usage_errors_exit_2(args, model_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["rewrite", "--no-probe", str(model_file), str(tmp_path / "o.onnx"), *args])
    assert exc.value.code == 2
    assert not (tmp_path / "o.onnx").exists()


def test_external_data_in_and_out(tmp_path, capsys):
    original = plain_model()
    src = tmp_path / "src"
    src.mkdir()
    path = src / "ext.onnx"
    onnx.save(plain_model(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)  # (saving moves the tensors of the proto it is given)
    hashes = {p.name: sha256_file(p) for p in src.iterdir()}
    out = tmp_path / "out.onnx"
    code, text, err = run(["rewrite", path, out, "--hyperplanes", "64", "--sparsity", "0"], capsys)
    assert code == 0, err
    assert {p.name: sha256_file(p) for p in src.iterdir()} == hashes  # input and its data untouched
    assert (tmp_path / "out.onnx.data").is_file()
    assert out.stat().st_size < 2000  # the tensors live in the data file
    model = onnx.load(str(out))
    x = random_input([1, 3, 8, 8])
    np.testing.assert_allclose(run_ort(model, {"X": x}, with_library=True)[0], run_ort(original, {"X": x})[0],
                               atol=1e-4)
    # info reads it too; strip writes external data again
    code, text, _ = run(["info", out], capsys)
    assert code == 0 and "external data:" in text
    code, _, _ = run(["strip", out, tmp_path / "s.onnx"], capsys)
    assert code == 0 and (tmp_path / "s.onnx.data").is_file()
    np.testing.assert_array_equal(run_ort(onnx.load(str(tmp_path / "s.onnx")), {"X": x})[0],
                                  run_ort(original, {"X": x})[0])


def test_missing_external_data_is_an_input_error(tmp_path, capsys):
    path = tmp_path / "ext.onnx"
    onnx.save(plain_model(), str(path), save_as_external_data=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    code, _, err = run(["info", path], capsys)
    assert code == 3 and "external data file" in one_error_line(err) and "is missing" in err


def test_strip_command(model_file, tmp_path, capsys):
    rewritten, stripped = tmp_path / "r.onnx", tmp_path / "s.onnx"
    assert run(["rewrite", model_file, rewritten, "--no-probe"], capsys)[0] == 0
    code, text, _ = run(["strip", rewritten, stripped], capsys)
    assert code == 0 and "stripped 3 HasteConv layer(s) back to Conv" in text
    x = random_input([1, 3, 8, 8])
    np.testing.assert_array_equal(run_ort(onnx.load(str(stripped)), {"X": x})[0],
                                  run_ort(onnx.load(str(model_file)), {"X": x})[0])
    code, _, err = run(["strip", model_file, tmp_path / "s2.onnx"], capsys)
    assert code == 5 and "no HasteConv" in one_error_line(err)
    code, text, _ = run(["strip", "--json", "--force", rewritten, stripped], capsys)
    assert code == 0 and json.loads(text)["summary"]["stripped"] == 3


def test_console_entry_point_in_a_fresh_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", "import sys; from haste_onnx.cli import main; sys.exit(main())",
                           "rewrite", str(tmp_path / "missing.onnx"), str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"haste-onnx rewrite: error: {tmp_path / 'missing.onnx'}: no such file"
    assert proc.stdout == ""


def test_registry_lists_the_subcommands(capsys):
    assert list(cli.SUBCOMMANDS) == ["rewrite", "strip", "info", "eval", "bench", "demo", "compare", "fetch-data"]
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in out
    assert "Exit codes: 0 ok" in out
