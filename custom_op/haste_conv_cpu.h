// HasteConv on the CPU, behind a plain C++ interface (no ONNX Runtime types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "haste_common.h"

namespace haste {

// W repacked per conv group as [group_in][kH*kW][group_out], so that a merged
// filter is a sum of contiguous rows and the GEMM reads output channels in a row.
struct PackedWeights {
  std::vector<float> data;
  int64_t groups = 0, group_in = 0, kernel_area = 0, group_out = 0;
  const float* Row(int64_t group, int64_t channel) const {
    return data.data() + ((group * group_in + channel) * kernel_area) * group_out;
  }
};

// Hyperplanes transposed to [d][L], so one input value updates all L projections.
struct PackedHyperplanes {
  std::vector<float> transposed;
  int64_t count = 0, dim = 0;
};

void PackWeights(const float* w, int64_t out_channels, int64_t group_in, int64_t kernel_area, int64_t groups,
                 PackedWeights* out);
void PackHyperplanes(const float* h, int64_t count, int64_t dim, PackedHyperplanes* out);

// Runs `fn(i)` for i in [0, total), possibly in parallel.
using ParallelFor = std::function<void(size_t total, void (*fn)(void*, size_t), void* data)>;

// y = HasteConv(x) for a whole batch; bias may be null.
void HasteConvCpu(const ConvGeometry& g, const float* x, const PackedWeights& w, const float* bias,
                  const PackedHyperplanes& h, float* y, const ParallelFor& parallel_for);

// The SIMD variant chosen at run time for this CPU ("avx512", "avx2" or "generic").
const char* CpuKernelIsa();

}  // namespace haste
