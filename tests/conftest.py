import numpy as np
import onnxruntime as ort
import pytest

import haste_onnx


def pytest_addoption(parser):
    parser.addoption("--fuzz-cases", type=int, default=None,
                     help="number of randomized kernel-vs-reference cases (default: 200, or 2000 with -m slow)")


@pytest.fixture
def run_haste():
    """Runs a model with the op library in onnxruntime; returns the first output."""

    def run(model, feeds, threads=1):
        opts = haste_onnx.session_options(threads=threads)
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    return run


@pytest.fixture
def run_plain():
    def run(model, feeds):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)[0]

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
