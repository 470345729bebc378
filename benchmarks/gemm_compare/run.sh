#!/usr/bin/env bash
# Per-tile GEMM comparison (docs/gemm_compare.md): installs OpenBLAS, libxsmm,
# oneDNN and Eigen from Debian if missing, builds benchmarks/gemm_compare/gemm_compare.cc
# with g++ and writes benchmarks/results/gemm_compare.txt. Not part of the tests or CI.
# Usage: bash benchmarks/gemm_compare/run.sh [seconds timed per case, default 9]
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(g++ libopenblas-dev libxsmm-dev libdnnl-dev libeigen3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! grep -qw avx512f /proc/cpuinfo; then
  echo "this benchmark runs our AVX-512 variant: the CPU has no AVX-512F" >&2
  exit 1
fi

# OpenBLAS: Debian's pthread build, the one its alternatives point at by default.
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
blas_lib=/usr/lib/x86_64-linux-gnu/openblas-pthread
out_dir=build/gemm_compare
mkdir -p "$out_dir" benchmarks/results
# Flags of custom_op/haste_conv_cpu_avx512.cc in CMakeLists.txt (plus -O3 there).
flags=(-std=c++17 -O3 -mavx512f -mavx512vl -mavx512dq -mavx2 -mfma -mprefer-vector-width=512)
g++ "${flags[@]}" -I custom_op -I "$blas_inc" -I /usr/include/eigen3 -DEIGEN_DONT_PARALLELIZE \
  benchmarks/gemm_compare/gemm_compare.cc custom_op/haste_conv_cpu.cc custom_op/haste_conv_cpu_generic.cc \
  -o "$out_dir/gemm_compare" \
  -L "$blas_lib" -Wl,-rpath,"$blas_lib" -lxsmm -lopenblas -ldnnl -lpthread -ldl -lrt -lm

result=benchmarks/results/gemm_compare.txt
{
  echo "# benchmarks/gemm_compare/run.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(lscpu | grep -E '^L[123]' | tr -s ' ' | paste -sd ';' -)"
  echo "compiler: $(g++ --version | head -1); flags: ${flags[*]}"
  echo "Debian packages: $(dpkg-query -W -f='${Package} ${Version}; ' libopenblas-dev libxsmm-dev libdnnl-dev libeigen3-dev)"
  echo "environment: OPENBLAS_CORETYPE=SkylakeX (0.3.21 does not know this CPU model and would pick its SSE3 Prescott kernels), OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 (single-threaded)"
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$out_dir/gemm_compare" "${1:-9}"
} 2>&1 | tee "$result"
echo "wrote $result"
