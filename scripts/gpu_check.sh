#!/usr/bin/env bash
# The whole GPU verification of the CUDA kernel in one call (issue 21), for a
# machine with an NVIDIA GPU, nvcc, CMake, PyTorch with CUDA, onnx and
# onnxruntime (CPU is enough), numpy and pytest, and no network.
#
#   scripts/gpu_check.sh --prepare [CARRY]   here, on any machine with a build:
#       copies what the GPU machine lacks (onnxruntime's C/C++ headers, from a
#       previous build's fetch or ORT_INCLUDE_DIR) into CARRY (default .gpu-carry,
#       ignored by git; about 0.3 MB)
#   scripts/gpu_check.sh [CARRY]             there, from a clean checkout plus CARRY:
#       1. builds the op library with HASTE_ONNX_CUDA=ON for the GPU found
#          (HASTE_ONNX_CUDA_ARCHITECTURES, default: the GPU's own, e.g. 90);
#       2. runs tests/test_cuda_build.py, tests/test_cuda_kernel.py (CUDA vs the
#          numpy reference and the CPU kernel on randomized configurations,
#          identical codes, stats, fused residual/activation, 1000 runs without
#          leaks, the ResNet-20 layer by layer; the CUDAExecutionProvider test
#          skips without onnxruntime-gpu) and tests/test_op_kernel.py (the CPU
#          kernel from the same library);
#       3. compute-sanitizer memcheck and racecheck over tests/cuda_sanitize_driver.py;
#       4. benchmarks/cuda_bench.py (HasteConv vs cuDNN, TF32 off and on);
#       and writes SUMMARY.md, the logs and the benchmark's JSON into $OUT (the
#       device tool's folder) or build/gpu-check. Each step has a time limit; the
#       whole fits in 8 minutes on one H200. Exit status: non-zero if any step failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ "${1:-}" == "--prepare" ]]; then
  CARRY=${2:-.gpu-carry}
  headers=${ORT_INCLUDE_DIR:-}
  if [[ -z "$headers" ]]; then
    for h in build/dev/_ort_headers/extract/usr/include/onnxruntime build/*/_ort_headers/extract/usr/include/onnxruntime \
             build/cuda-check/build/_ort_headers/extract/usr/include/onnxruntime; do
      [[ -f "$h/onnxruntime_c_api.h" ]] && { headers=$h; break; }
    done
  fi
  if [[ -z "$headers" || ! -f "$headers/onnxruntime_c_api.h" ]]; then
    echo "gpu_check --prepare: no onnxruntime headers found; build once (make install) or set ORT_INCLUDE_DIR" >&2
    exit 2
  fi
  rm -rf "$CARRY" && mkdir -p "$CARRY/ort-include"
  cp "$headers"/*.h "$CARRY/ort-include/"
  grep -qxF "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> "$(git rev-parse --git-path info/exclude)"
  echo "gpu_check: $CARRY ready ($(du -sh "$CARRY" | cut -f1)); carry it to the GPU machine and run scripts/gpu_check.sh $CARRY"
  exit 0
fi

CARRY=${1:-.gpu-carry}
OUTDIR=${OUT:-$ROOT/build/gpu-check}
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/SUMMARY.md
PY=${PYTHON:-python3}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export HASTE_GPU_SUMMARY=$OUTDIR/gpu_tests.jsonl HASTE_REQUIRE_GPU=${HASTE_REQUIRE_GPU:-1}
rm -f "$HASTE_GPU_SUMMARY"
start=$(date +%s)
failed=0
step() {  # step NAME LIMIT_S COMMAND...: runs it with a time limit, logs to $OUTDIR/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  local status=passed
  [[ $rc -ne 0 ]] && { status="FAILED (exit $rc$([[ $rc -eq 124 ]] && echo ', time limit'))"; failed=1; }
  echo "| $name | $status | $(( $(date +%s) - t0 )) s |" >>"$SUMMARY"
  echo "gpu_check: $name $status"
  return $rc
}

{
  echo "# gpu_check.sh summary"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo "- python: $($PY -c 'import sys, torch, onnxruntime as o; print(sys.version.split()[0], "torch", torch.__version__, "onnxruntime", o.__version__, o.get_available_providers())' 2>&1)"
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
} >"$SUMMARY"

# 1. Build.
if [[ -z "${HASTE_ONNX_CUDA_ARCHITECTURES:-}" ]]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  HASTE_ONNX_CUDA_ARCHITECTURES=${cap:-90}
fi
export HASTE_CUDA_EXPECT_ARCHS=$HASTE_ONNX_CUDA_ARCHITECTURES
GENERATOR=Unix\ Makefiles
command -v ninja >/dev/null && GENERATOR=Ninja
export ROOT CARRY GENERATOR HASTE_ONNX_CUDA_ARCHITECTURES
build() {
  cmake -S "$ROOT" -B "$ROOT/build/gpu" -G "$GENERATOR" -DHASTE_ONNX_CUDA=ON \
    -DHASTE_ONNX_CUDA_ARCHITECTURES="$HASTE_ONNX_CUDA_ARCHITECTURES" -DORT_INCLUDE_DIR="$ROOT/$CARRY/ort-include" &&
    cmake --build "$ROOT/build/gpu" -j "$(nproc)"
}
export -f build
if ! step build 240 bash -c build; then
  echo; echo "Build failed: see build.log" >>"$SUMMARY"
  tail -30 "$OUTDIR/build.log"
  exit 1
fi

# 2. Tests (CUDA, then the CPU kernel from the same library).
cd "$ROOT/tests"
step tests 300 "$PY" -m pytest -q -p no:cacheprovider --rootdir=.. -c ../pyproject.toml -rs \
  --junitxml="$OUTDIR/tests.xml" test_cuda_build.py test_cuda_kernel.py test_op_kernel.py
tail -5 "$OUTDIR/tests.log"

# 3. compute-sanitizer.
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    step "sanitizer-$tool" 150 compute-sanitizer --tool "$tool" --error-exitcode 3 "$PY" cuda_sanitize_driver.py
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|HAZARD" "$OUTDIR/sanitizer-$tool.log" | head -3 | sed 's/^/    /' >>"$SUMMARY"
  done
else
  echo "| sanitizer | SKIPPED (no compute-sanitizer on PATH) | |" >>"$SUMMARY"
fi
cd "$ROOT"

# 4. Benchmark (whatever time is left of the 8 minutes decides --quick).
left=$(( 480 - ($(date +%s) - start) ))
quick=()
(( left < 200 )) && quick=(--quick)
step bench $(( left > 60 ? left - 20 : 60 )) "$PY" benchmarks/cuda_bench.py "${quick[@]}" \
  --json "$OUTDIR/bench.json" --markdown "$OUTDIR/bench.md"

{
  echo
  echo "## Test figures"
  echo
  cat "$HASTE_GPU_SUMMARY" 2>/dev/null | sed 's/^/    /'
  echo
  echo "## Benchmark"
  echo
  cat "$OUTDIR/bench.md" 2>/dev/null || echo "(no benchmark output)"
  echo
  echo "Total: $(( $(date +%s) - start )) s"
} >>"$SUMMARY"
cat "$SUMMARY"
exit $failed
