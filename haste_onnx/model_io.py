"""Reading and writing models: clear errors for bad files, atomic saves, external data."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import onnx
from google.protobuf.message import DecodeError

from .errors import InputError, OutputError

# Models at or above this size must be saved with external data (protobuf's 2 GiB limit).
EXTERNAL_DATA_THRESHOLD = 2_000_000_000


@dataclass
class LoadedModel:
    model: onnx.ModelProto
    path: Path
    external_files: List[Path] = field(default_factory=list)  # external data files the model reads

    @property
    def has_external_data(self) -> bool:
        return bool(self.external_files)


def load_model(path) -> LoadedModel:
    """Load a model with its external data; InputError names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an ONNX file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from err
    if not data:
        raise InputError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise InputError(f"{path}: {_parse_problem(data)} (protobuf: {str(err).splitlines()[0] if str(err) else type(err).__name__})") from err
    if not model.HasField("graph") or model.ir_version <= 0 or not model.opset_import:
        missing = [n for n, ok in (("graph", model.HasField("graph")), ("ir_version", model.ir_version > 0),
                                   ("opset_import", bool(model.opset_import))) if not ok]
        raise InputError(f"{path}: {_parse_problem(data)} (no {', '.join(missing)})")
    external = _external_files(model, path.parent)
    for file in external:
        if not file.is_file():
            raise InputError(f"{path}: external data file {file} is missing")
    if external:
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except Exception as err:  # onnx raises several types here
            raise InputError(f"{path}: cannot read its external data: {str(err).splitlines()[0]}") from err
    return LoadedModel(model, path, external)


def _parse_problem(data: bytes) -> str:
    # An ONNX file starts with field 1 (ir_version, varint): byte 0x08.
    if data[:1] == b"\x08":
        return "truncated or corrupt ONNX file"
    return "not an ONNX model"


def _external_files(model: onnx.ModelProto, base: Path) -> List[Path]:
    files = []
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    file = base / entry.value
                    if file not in files:
                        files.append(file)
    return files


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_file_for(out: Path) -> Path:
    """Where the external data of `out` goes: `<out name>.data` beside it."""
    return out.with_name(out.name + ".data")


def check_output_path(out, force: bool, inputs: Optional[LoadedModel] = None, external: bool = False) -> Path:
    """Refuse an output that exists (without force), is the input, or sits in a missing folder."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out}: is a directory")
    protected = [inputs.path] + inputs.external_files if inputs is not None else []
    targets = [out] + ([data_file_for(out)] if external else [])
    for target in targets:
        for p in protected:
            if _same_file(target, p):
                raise OutputError(f"{target}: is the input (or its external data); the input is never modified")
    if not force:
        for target in targets:
            if target.exists():
                raise OutputError(f"{target}: already exists (use --force to overwrite)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def save_model(model: onnx.ModelProto, out, external_data: bool = False,
               check: Optional[Callable[[str], None]] = None, deduplicate: bool = False) -> None:
    """Write `model` to `out` atomically, with external data in `<out>.data` if asked or needed.

    `deduplicate` (implies external data): tensors with the same bytes are stored once in `<out>.data`, every
    copy pointing at the same bytes (a steerable model's branches each hold the weights: rewrite/steer.py).

    Everything is written into a temporary folder beside `out`; `check` (if
    given) runs on the temporary file; only then are the files moved into
    place with os.replace (data file first). On any failure nothing at `out`
    changes and the temporary folder is removed. The model is not modified.
    """
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    external_data = external_data or deduplicate or model.ByteSize() >= EXTERNAL_DATA_THRESHOLD
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except OSError as err:
        raise OutputError(f"{out}: cannot write to {parent}: {err.strerror or err}") from err
    try:
        tmp_model = tmpdir / out.name
        data_name = data_file_for(out).name
        try:
            if deduplicate:
                _save_deduplicated(model, tmp_model, data_name)
            elif external_data:
                copy = onnx.ModelProto()
                copy.CopyFrom(model)
                onnx.save_model(copy, str(tmp_model), save_as_external_data=True, all_tensors_to_one_file=True,
                                location=data_name, size_threshold=1024)
            else:
                with open(tmp_model, "wb") as f:
                    f.write(model.SerializeToString())
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as err:
            raise OutputError(f"{out}: cannot write: {err.strerror or err}") from err
        if check is not None:
            check(str(tmp_model))
        data_target, previous, moved = data_file_for(out), tmpdir / (data_name + ".previous"), False
        try:
            if external_data and (tmpdir / data_name).exists():
                if data_target.exists():  # kept until the model is in place, so a failure can restore it
                    os.replace(data_target, previous)
                os.replace(tmpdir / data_name, data_target)
                moved = True
            os.replace(tmp_model, out)
        except OSError as err:
            # OUT and OUT.data stay a pair: put the previous data back, or remove the new data.
            try:
                if previous.exists():
                    os.replace(previous, data_target)
                elif moved:
                    data_target.unlink()
            except OSError:
                pass
            raise OutputError(f"{out}: cannot move the result into place: {err.strerror or err}") from err
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _save_deduplicated(model: onnx.ModelProto, path: Path, data_name: str, threshold: int = 1024) -> None:
    """`model` at `path` with every tensor of `threshold` bytes or more in `data_name` beside it, each distinct
    content once (page-aligned, so onnxruntime may map it); copies point at the same offset."""
    from onnx import external_data_helper, numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    stored = {}
    with open(path.parent / data_name, "wb") as data:
        for tensor in external_data_helper._get_all_tensors(copy):
            if tensor.data_type == onnx.TensorProto.STRING or tensor.data_location == onnx.TensorProto.EXTERNAL:
                continue
            if not tensor.HasField("raw_data"):
                array = numpy_helper.to_array(tensor)
                if array.nbytes < threshold:
                    continue
                tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
            if len(tensor.raw_data) < threshold:
                continue
            key = hashlib.sha256(tensor.raw_data).digest()
            if key not in stored:
                data.write(b"\0" * (-data.tell() % 4096))
                stored[key] = (data.tell(), len(tensor.raw_data))
                data.write(tensor.raw_data)
            offset, length = stored[key]
            external_data_helper.set_external_data(tensor, data_name, offset, length)
            tensor.data_location = onnx.TensorProto.EXTERNAL
            tensor.ClearField("raw_data")
        data.flush()
        os.fsync(data.fileno())
    with open(path, "wb") as f:
        f.write(copy.SerializeToString())
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, renamed into place (OutputError on failure)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as err:
        raise OutputError(f"{path}: cannot write to {parent}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write: {err.strerror or err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
