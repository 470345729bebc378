// Internals shared by the per-ISA tile routines and the CPU driver.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "haste_conv_cpu.h"

namespace haste {

// Per-thread scratch memory, grown to the largest layer seen and then reused.
struct Workspace {
  std::vector<float> patch, mean, proj, merged_in, merged_w, cols, out;
  std::vector<uint64_t> codes, table_keys;
  std::vector<int32_t> table_vals, group_of, members, group_start, fill;
  std::vector<const float*> in_rows, w_rows;

  void Reserve(int64_t channels, int64_t d, int64_t L, int64_t kernel_area, int64_t group_out, int64_t np);
  // Groups channels by ws.codes; fills members/group_start; returns the group count.
  int64_t Group(int64_t channels);
};

#define HASTE_DECLARE_TILE(isa)                                                                            \
  namespace isa {                                                                                          \
  void RunTile(const ConvGeometry& g, const float* x, const PackedWeights& w, const float* bias,            \
               const PackedHyperplanes& h, float* y, int64_t n, int64_t grp, int64_t ty, int64_t tx,        \
               Workspace& ws, HasteStats* stats);                                                          \
  }

HASTE_DECLARE_TILE(generic)
#if defined(__x86_64__)
HASTE_DECLARE_TILE(avx2)
HASTE_DECLARE_TILE(avx512)
#endif

}  // namespace haste
