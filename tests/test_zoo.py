"""Model names: where `haste_onnx.zoo` looks, and what it says when a model is not built."""
import shutil
from pathlib import Path

import onnx
import pytest

from haste_onnx import cli, zoo
from haste_onnx.errors import InputError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HASTE_ONNX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def only_cache(cache, monkeypatch):
    """Search only the cache (the package or source tree may hold the bundled model)."""
    monkeypatch.setattr(zoo, "search_dirs", lambda: [zoo.cache_models_dir()])
    return cache


def test_names():
    assert zoo.NAMES == ("resnet20", "resnet18", "resnet34", "vgg16", "mobilenetv2")
    assert zoo.MODELS["resnet20"].bundled and not zoo.MODELS["resnet18"].bundled
    assert zoo.MODELS["mobilenetv2"].data == "imagenet-samples" and len(zoo.MODELS["mobilenetv2"].mean) == 3
    assert zoo.MODELS["resnet18"].mean == (0.2860,) and zoo.MODELS["resnet18"].std == (0.3530,)


def test_search_order(cache):
    dirs = zoo.search_dirs()
    assert dirs[0] == zoo.PACKAGE_DIR / "models" and dirs[-1] == cache
    root = zoo.source_tree()
    if root is not None:  # running from the source tree: <repo>/models is searched after the package
        assert dirs[1] == root / "models" and (root / "pyproject.toml").is_file()


def test_paths_are_used_as_they_are(tmp_path, only_cache):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert zoo.resolve_model(str(f)) == (f, None)
    assert zoo.resolve_model(f) == (f, None)
    # looks like a path: not a name, even when missing (load_model then says "no such file")
    assert zoo.resolve_model("missing.onnx") == (Path("missing.onnx"), None)
    assert zoo.resolve_model("sub/resnet20") == (Path("sub/resnet20"), None)


def test_name_found_in_cache(only_cache):
    only_cache.mkdir(parents=True)
    (only_cache / "resnet18_fmnist.onnx").write_bytes(b"x")
    path, entry = zoo.resolve_model("resnet18")
    assert path == only_cache / "resnet18_fmnist.onnx" and entry.name == "resnet18"
    assert zoo.resolve_model("ResNet18")[0] == path


def test_earlier_folder_wins(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        d.mkdir()
        (d / "resnet20_fmnist.onnx").write_bytes(b"x")
    monkeypatch.setattr(zoo, "search_dirs", lambda: [first, second])
    assert zoo.resolve_model("resnet20")[0] == first / "resnet20_fmnist.onnx"


@pytest.mark.parametrize("name, command", [
    ("resnet18", "python models/train.py resnet18 --epochs 4 --bf16 --out"),
    ("resnet34", "python models/train.py resnet34 --epochs 4 --bf16 --out"),
    ("vgg16", "python models/train.py vgg16_bn --epochs 4 --bf16 --out"),
    ("mobilenetv2", "python models/export_mobilenetv2.py"),
])
def test_not_built_says_how_to_build(name, command, only_cache):
    with pytest.raises(zoo.ModelNotBuilt) as ei:
        zoo.resolve_model(name)
    msg = str(ei.value)
    assert command in msg and str(only_cache / zoo.MODELS[name].file) in msg and "not built yet" in msg
    assert isinstance(ei.value, InputError) and ei.value.exit_code == 3


def test_bundled_model_missing(only_cache):
    with pytest.raises(zoo.ModelNotBuilt) as ei:
        zoo.resolve_model("resnet20")
    assert "bundled model resnet20" in str(ei.value) and "reinstall" in str(ei.value)


def test_unknown_name():
    with pytest.raises(zoo.UnknownModel) as ei:
        zoo.resolve_model("alexnet")
    assert "alexnet" in str(ei.value) and ", ".join(zoo.NAMES) in str(ei.value)


def test_commands_take_names(tmp_path, only_cache, capsys):
    """Every command that reads a model takes a name; a not-built name is one error line, exit 3."""
    for command in (["eval", "--no-probe", "vgg16"], ["rewrite", "vgg16", str(tmp_path / "o.onnx")], ["info", "vgg16"],
                    ["strip", "vgg16", str(tmp_path / "o.onnx")], ["bench", "--no-probe", "vgg16"]):
        code = cli.main(command)
        err = capsys.readouterr().err
        assert code == 3 and len(err.strip().splitlines()) == 1, command
        assert f"haste-onnx {command[0]}: error: model vgg16 is not built yet" in err and "vgg16_bn" in err
    assert not (tmp_path / "o.onnx").exists()
    code = cli.main(["demo", "--no-fetch"])
    err = capsys.readouterr().err
    assert code == 3 and "bundled model resnet20" in err
    # a built one is found by name
    source = Path(__file__).resolve().parents[1] / "models" / "resnet20_fmnist.onnx"
    only_cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, only_cache / "resnet20_fmnist.onnx")
    code = cli.main(["rewrite", "--no-probe", "resnet20", str(tmp_path / "r20.onnx"), "--no-load-check"])
    assert code == 0 and (tmp_path / "r20.onnx").is_file()
    code = cli.main(["info", "resnet20"])
    assert code == 0 and "21 conv layers" in capsys.readouterr().out


def test_bundled_resnet20_if_present():
    """When the bundled model exists (package or source tree), its name resolves to a loadable model."""
    found = zoo.find("resnet20")
    if found is None:
        assert zoo.MODELS["resnet20"].file == "resnet20_fmnist.onnx"
        return
    model = onnx.load(str(found))
    assert model.graph.input[0].name and len(model.graph.input[0].type.tensor_type.shape.dim) == 4
