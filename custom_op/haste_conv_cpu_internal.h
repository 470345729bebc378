// Internals shared by the per-ISA tile routines and the CPU driver.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "haste_conv_cpu.h"

namespace haste {

// One work item: a tile of one image and conv group, and a range of blocks of
// kBlock output channels (small feature maps split outputs to use every thread).
struct TileTask {
  int64_t image, group, tile_y, tile_x, block_begin, block_end;
};

// The input with its zero padding written out, so that every patch row is a
// plain copy: [N][C][rows][cols] plus kPaddedSlack floats. data is null when
// the call reads x with bounds checks instead (large inputs).
struct PaddedInput {
  const float* data = nullptr;
  int64_t rows = 0, cols = 0;
};
constexpr int64_t kPaddedSlack = 8;

// A tile after hashing, grouping and im2col: what the GEMM blocks need.
struct PreparedTile {
  float* cols = nullptr;  // [merged][kH*kW][padded pixels]
  int32_t* members = nullptr;      // channels ordered by group
  int32_t* group_start = nullptr;  // merged + 1 offsets into members
  float* scales = nullptr;         // per member (in members' order): its filter slice's weight
  int64_t merged = 0;
  int64_t singles = 0;  // the first `singles` groups have one member each
};

// Per-thread scratch memory, grown to the largest layer seen and then reused.
struct Workspace {
  Floats patch, mean, merged_in, cols, out;
  Floats centred_t;                   // centred patch transposed, [d][channels rounded up to 16]
  std::vector<uint64_t> codes, table_keys;
  std::vector<int32_t> buckets, table_buckets;  // magnitude buckets (0 when not split)
  std::vector<int32_t> table_vals, group_of, members, group_start, fill, order, sizes;
  int64_t singles = 0;  // groups with one member (they come first)
  std::vector<int32_t> prepared_members, prepared_group_start;  // a PreparedTile kept in this workspace
  Floats scales, prepared_scales;
  std::vector<const float*> in_rows, w_rows;  // merged inputs; members' weight rows of one block, in group order
  std::vector<const float*> group_rows;        // per group: its (merged) weight row of one block
  // The second tile of a pair (ComputeBlocks with tile2): its rows, the groups
  // both tiles share, and a second PreparedTile's storage (RunWholeTile).
  std::vector<const float*> w_rows2, group_rows2;
  std::vector<int32_t> first_of, pairs;
  std::vector<uint8_t> skip;
  Floats cols2, prepared_scales2;
  std::vector<int32_t> prepared_members2, prepared_group_start2;
  Floats merged_w;                             // merged filter rows of up to two blocks

  void Reserve(int64_t channels, int64_t d, int64_t kernel_area, int64_t np);
  // Groups channels by (codes, buckets); fills members/group_start (single-member
  // groups first, see `singles`); returns the group count.
  int64_t Group(int64_t channels);
};

// Per instruction set: steps 1-7a of a tile (PrepareTile), and steps 6b-7b for a
// range of output blocks (ComputeBlocks) of one tile, or of two tiles (task2 and
// tile2 not null), whose shared groups then read their weights once for both.
// See haste_conv_cpu_tile.inc.
#define HASTE_DECLARE_TILE(isa)                                                                              \
  namespace isa {                                                                                            \
  void PrepareTile(const ConvGeometry& g, const float* x, const PaddedInput& xp, const PackedHyperplanes& h,   \
                   const TileTask& task, Workspace& ws, PreparedTile* out, HasteStats* stats);                 \
  void ComputeBlocks(const ConvGeometry& g, const PackedWeights& w, const float* bias, const float* z, float* y, \
                     const TileTask& task, const PreparedTile& tile, Workspace& ws, const TileTask* task2,     \
                     const PreparedTile* tile2);                                                              \
  int64_t PaddedTilePixels(int64_t pixels);                                                                  \
  }

HASTE_DECLARE_TILE(generic)
#if defined(__x86_64__)
HASTE_DECLARE_TILE(avx2)
HASTE_DECLARE_TILE(avx512)
#endif
#if defined(__aarch64__)
HASTE_DECLARE_TILE(neon)
#endif

}  // namespace haste
