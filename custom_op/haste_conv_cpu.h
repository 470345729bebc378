// HasteConv on the CPU, behind a plain C++ interface (no ONNX Runtime types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "haste_common.h"
#include "haste_stats.h"

namespace haste {

// Cache-line aligned storage: vector loads never straddle lines by accident of
// where malloc put a buffer, so timings do not vary from process to process.
template <typename T>
struct LineAllocator {
  using value_type = T;
  LineAllocator() = default;
  template <typename U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U>
  bool operator==(const LineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const LineAllocator<U>&) const { return false; }
};
using Floats = std::vector<float, LineAllocator<float>>;

// An uninitialised cache-line aligned array of a trivial type.
struct LineFree {
  void operator()(void* p) const { ::operator delete(p, std::align_val_t{64}); }
};
template <typename T>
using LineBuffer = std::unique_ptr<T[], LineFree>;
template <typename T>
LineBuffer<T> NewLineBuffer(std::size_t n) {
  return LineBuffer<T>(static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})));
}

// The most floats a call spends on a padded copy of its input (above that it
// gathers patches with bounds checks).
constexpr double kMaxPaddedFloats = 2 << 20;

// Output channels are packed in blocks of kBlock (zero-padded at the end).
constexpr int64_t kBlock = 16;

// W repacked per conv group and block of kBlock output channels as
// [group][block][group_in][kH*kW][kBlock]: a merged filter is a sum of
// contiguous slices, and the GEMM streams through one block's weights in order.
// Blocks are block_stride floats apart: one cache line more than their size,
// so that two blocks read side by side do not alias in 4 KiB (their size is a
// multiple of 4 KiB for 3x3 kernels and channels a multiple of 64).
struct PackedWeights {
  Floats data;
  int64_t groups = 0, group_in = 0, kernel_area = 0, group_out = 0, blocks = 0, block_stride = 0;
  const float* Block(int64_t group, int64_t block, int64_t channel) const {
    return data.data() + (group * blocks + block) * block_stride + channel * kernel_area * kBlock;
  }
};

// Hyperplanes transposed to [d][padded], so one input value updates all L
// projections; rows are padded with zeros to `padded` = L rounded up to 16.
struct PackedHyperplanes {
  std::vector<float> transposed;
  int64_t count = 0, dim = 0, padded = 0;
  int64_t nonzeros = 0;  // additions per hashed channel
  // The same hyperplanes as lists of non-zero entries: hyperplane l's entries are
  // nz_j/nz_sign[nz_start[l] .. nz_start[l + 1]), in increasing j.
  std::vector<int32_t> nz_j, nz_start;
  std::vector<float> nz_sign;
};

void PackWeights(const float* w, int64_t out_channels, int64_t group_in, int64_t kernel_area, int64_t groups,
                 PackedWeights* out);
void PackHyperplanes(const float* h, int64_t count, int64_t dim, PackedHyperplanes* out);

// Runs `fn(i)` for i in [0, total), possibly in parallel. After a failure it
// may run nothing more; the caller then reports that first failure.
using ParallelFor = std::function<void(size_t total, void (*fn)(void*, size_t), void* data)>;

// y = HasteConv(x) for a whole batch; bias and residual (z, y's shape, added
// before the activation) may be null; stats, when not null, receives the work done.
void HasteConvCpu(const ConvGeometry& g, const float* x, const PackedWeights& w, const float* bias, const float* z,
                  const PackedHyperplanes& h, float* y, const ParallelFor& parallel_for, HasteStats* stats);

// The SIMD variant chosen at run time for this CPU ("avx512", "avx2", "neon" or "generic").
const char* CpuKernelIsa();

}  // namespace haste
