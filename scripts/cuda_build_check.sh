#!/usr/bin/env bash
# CI's check of the CUDA path on a machine without a GPU (`make cuda-build-check`).
#
# Installs CUDA's compiler, runtime and headers from PyPI (nvidia-cuda-nvcc,
# nvidia-cuda-runtime, nvidia-cuda-cccl; CUDA 13) into build/cuda-toolkit
# unless CUDACXX names an nvcc, builds the op library with HASTE_ONNX_CUDA=ON
# into a copy of the package tree (build/cuda-check/src; the in-tree
# haste_onnx/lib is never touched), then runs against that copy:
#   tests/test_cuda_build.py   the library carries device code for every
#                              architecture, links no libcudart, loads in this
#                              CPU-only onnxruntime;
#   tests/test_library.py, tests/test_op_kernel.py
#                              the CPU kernel tests with the CUDA build;
#   tests/test_cuda_kernel.py  collected too: skips, with the reason, without a GPU.
#
# Usage: scripts/cuda_build_check.sh [extra pytest arguments]
#   PYTHON   the interpreter with the test dependencies (default: .venv/bin/python, else python3)
#   CUDACXX  an nvcc to use instead of PyPI's
#   HASTE_ONNX_CUDA_ARCHITECTURES  default: cmake/Cuda.cmake's (75-real;80-real;86-real;89-real;90)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${CUDA_CHECK_DIR:-$ROOT/build/cuda-check}
SRC=$DIR/src
BUILD=$DIR/build
TOOLKIT=${CUDA_TOOLKIT_DIR:-$ROOT/build/cuda-toolkit}
# CUDA 13 from PyPI (nvcc 13.x needs a host g++ between 6 and 15).
CUDA_WHEELS=${CUDA_WHEELS:-"nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-cccl==13.3.5.0.6"}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
start=$(date +%s)

# 1. nvcc.
if [[ -z "${CUDACXX:-}" ]]; then
  if [[ ! -x "$TOOLKIT/nvidia/cu13/bin/nvcc" ]]; then
    rm -rf "$TOOLKIT"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install -q --no-compile --target "$TOOLKIT" $CUDA_WHEELS
  fi
  CUDACXX=$TOOLKIT/nvidia/cu13/bin/nvcc
fi
"$CUDACXX" --version | tail -1

# 2. A copy of the source and package tree, and the library built with CUDA into it.
mkdir -p "$SRC"
rm -rf "$SRC/haste_onnx" "$SRC/tests" "$SRC/custom_op" "$SRC/cmake" "$SRC/models"
tar -C "$ROOT" --exclude=__pycache__ --exclude='haste_onnx/lib' -cf - \
  haste_onnx tests custom_op cmake models CMakeLists.txt pyproject.toml | tar -C "$SRC" -xf -
configure=(-DHASTE_ONNX_CUDA=ON -DCMAKE_CUDA_COMPILER="$CUDACXX")
[[ -n "${HASTE_ONNX_CUDA_ARCHITECTURES:-}" ]] && configure+=(-DHASTE_ONNX_CUDA_ARCHITECTURES="$HASTE_ONNX_CUDA_ARCHITECTURES")
for headers in "${ORT_INCLUDE_DIR:-}" "$ROOT"/build/dev/_ort_headers/extract/usr/include/onnxruntime \
               "$ROOT"/build/cp*/_ort_headers/extract/usr/include/onnxruntime; do
  if [[ -n "$headers" && -f "$headers/onnxruntime_c_api.h" ]]; then
    configure+=(-DORT_INCLUDE_DIR="$headers")
    break
  fi
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$SRC" -B "$BUILD" "${generator[@]}" "${configure[@]}" >/dev/null
fi
cmake --build "$BUILD" -j "${JOBS:-2}" >/dev/null
LIB=$SRC/haste_onnx/lib/libhaste_onnx_ops.so
echo "cuda-build-check: built $LIB in $(( $(date +%s) - start )) s"

# 3. The tests against the copy.
cd "$SRC/tests"
HASTE_CUDA_EXPECT_ARCHS="$(grep -oP '(?<=HASTE_ONNX_CUDA_ARCHITECTURES:STRING=).*' "$BUILD/CMakeCache.txt")" \
  PYTHONPATH="$SRC" "$PYTHON" -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml -rs \
  test_cuda_build.py test_library.py test_op_kernel.py test_cuda_kernel.py "$@"
echo "cuda-build-check: passed in $(( $(date +%s) - start )) s"
