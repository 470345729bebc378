"""The failures haste-onnx expects, each with the exit code the command line returns for it.

| code | meaning |
|---|---|
| 0 | success |
| 1 | internal error (a bug: rerun with `--debug` for the traceback) |
| 2 | usage error: unknown option, bad option value, options that contradict each other |
| 3 | input problem: missing file, not ONNX, truncated, unreadable, external data missing, a plan for another model |
| 4 | output problem: OUT exists (no `--force`), OUT is the input, folder missing or not writable |
| 5 | nothing to do or model rejected: no Conv, no eligible Conv, nothing to strip, opset < 7 |
| 6 | the result fails `onnx.checker` or does not load in onnxruntime (or the op library is missing) |
"""
from __future__ import annotations

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT, EXIT_REJECTED, EXIT_CHECK = range(7)


class HasteOnnxError(Exception):
    """An expected failure: reported as one line, with `exit_code`."""

    exit_code = EXIT_INTERNAL


class UsageError(HasteOnnxError):
    """Options that contradict each other (argparse catches the rest)."""

    exit_code = EXIT_USAGE


class InputError(HasteOnnxError):
    """The input file is missing, unreadable, not ONNX, truncated or lacks its external data."""

    exit_code = EXIT_INPUT


class OutputError(HasteOnnxError):
    """The output exists (without --force), is the input, or cannot be written."""

    exit_code = EXIT_OUTPUT


class ModelRejected(HasteOnnxError):
    """Nothing to do (no Conv, nothing eligible, nothing to strip) or a model that cannot be handled."""

    exit_code = EXIT_REJECTED


class CheckError(HasteOnnxError):
    """The result fails onnx.checker or does not load in onnxruntime (or the op library is missing)."""

    exit_code = EXIT_CHECK
