#!/usr/bin/env bash
# Kernel tests under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds the op library with -DHASTE_ONNX_SANITIZE=ON into a separate copy of
# the package tree (build/sanitize/src; the in-tree haste_onnx/lib is never
# touched, and the package still resolves its library only inside itself),
# then runs tests/test_op_kernel.py and tests/test_robust_kernel.py against that
# copy with gcc's libasan (and libstdc++) preloaded into Python. Any sanitizer report, or a
# failing test, fails the script.
#
# Usage: scripts/sanitize.sh [extra pytest arguments]
#   PYTHON     the interpreter with the test dependencies (default: .venv/bin/python, else python3)
#   CXX        the compiler whose libasan is preloaded (default: g++)
#   SANITIZE_DIR  where the copy and the build live (default: build/sanitize)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${SANITIZE_DIR:-$ROOT/build/sanitize}
SRC=$DIR/src
BUILD=$DIR/build
CXX=${CXX:-g++}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
start=$(date +%s)

# 1. A copy of the source and package tree (file times kept, so rebuilds are incremental).
mkdir -p "$SRC"
rm -rf "$SRC/haste_onnx" "$SRC/tests" "$SRC/custom_op" "$SRC/cmake"
tar -C "$ROOT" --exclude=__pycache__ --exclude='haste_onnx/lib' -cf - \
  haste_onnx tests custom_op cmake CMakeLists.txt pyproject.toml | tar -C "$SRC" -xf -

# 2. The sanitized library, written by CMake into the copy's haste_onnx/lib.
configure=(-DHASTE_ONNX_SANITIZE=ON -DCMAKE_CXX_COMPILER="$CXX")
headers=$ROOT/build/dev/_ort_headers/extract/usr/include/onnxruntime  # reuse the dev build's fetched headers
if [[ -z "${ORT_INCLUDE_DIR:-}" && -f "$headers/onnxruntime_c_api.h" ]]; then
  configure+=(-DORT_INCLUDE_DIR="$headers")
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  cmake -S "$SRC" -B "$BUILD" "${generator[@]}" "${configure[@]}" >/dev/null
fi
cmake --build "$BUILD" -j "${JOBS:-2}" >/dev/null
LIB=$SRC/haste_onnx/lib/libhaste_onnx_ops.so
# (ldd's output is captured first: with pipefail, grep -q closing the pipe early
# can fail the pipeline with SIGPIPE.)
linked=$(ldd "$LIB")
if [[ "$linked" != *libasan* || "$linked" != *libubsan* ]]; then
  echo "sanitize: $LIB is not linked with ASan and UBSan" >&2
  exit 2
fi

# 3. The kernel tests against the copy, with the ASan runtime preloaded.
LIBASAN=$("$CXX" -print-file-name=libasan.so)
if [[ ! -f "$LIBASAN" ]]; then
  echo "sanitize: $CXX has no libasan.so ($LIBASAN)" >&2
  exit 2
fi
# libstdc++ too: Python does not link it, and ASan resolves its C++ exception
# interceptor (__cxa_throw, used by onnxruntime) only from libraries present at start-up.
LIBSTDCXX=$("$CXX" -print-file-name=libstdc++.so)
PRELOAD="$LIBASAN"
[[ -f "$LIBSTDCXX" ]] && PRELOAD="$LIBASAN $LIBSTDCXX"
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
cd "$SRC"
# The tests must use the sanitized copy, not an installed or in-tree library.
found=$(PYTHONPATH="$SRC" "$PYTHON" -c "import haste_onnx; print(haste_onnx.get_library_path())")
if [[ "$found" != "$LIB" ]]; then
  echo "sanitize: the tests would load $found, not $LIB" >&2
  exit 2
fi
set +e
# Python leaks by design: leak detection off. Reports go to files and are checked below.
PYTHONPATH="$SRC" LD_PRELOAD="$PRELOAD" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:log_path=$REPORTS/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan" \
  "$PYTHON" -m pytest -q -p no:cacheprovider -W ignore::RuntimeWarning \
  tests/test_op_kernel.py tests/test_robust_kernel.py "$@"
status=$?
set -e
reports=$(find "$REPORTS" -type f | sort)
if [[ -n "$reports" ]]; then
  for f in $reports; do
    echo "==== sanitizer report $(basename "$f")" >&2
    cat "$f" >&2
  done
  status=1
fi
echo "sanitize: $([[ $status == 0 ]] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
exit $status
