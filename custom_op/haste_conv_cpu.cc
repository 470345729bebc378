// CPU driver: repacking, run-time ISA dispatch, and the parallel loop over tiles.
#include "haste_conv_cpu.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>  // getauxval(AT_HWCAP): HWCAP_ASIMD
#endif

#include "haste_conv_cpu_internal.h"

namespace haste {

void Workspace::Reserve(int64_t channels, int64_t d, int64_t kernel_area, int64_t np) {
  auto grow = [](auto& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  };
  grow(patch, channels * d + 16);  // slack for whole-vector row copies and reads
  grow(mean, d + 16);
  grow(centred_t, d * ((channels + 15) / 16 * 16) + 16);
  grow(codes, channels);
  grow(buckets, channels);
  // At most channels/2 groups have two or more members and need scratch.
  grow(merged_in, (channels / 2 + 1) * d);
  grow(cols, channels * kernel_area * np);
  grow(out, 4 * kBlock * np);  // up to four blocks per GEMM call
  grow(group_of, channels);
  grow(members, channels);
  grow(group_start, channels + 1);
  grow(prepared_members, channels);
  grow(prepared_group_start, channels + 1);
  grow(scales, channels);
  grow(prepared_scales, channels);
  grow(fill, channels);
  grow(order, channels);
  grow(sizes, channels);
  grow(in_rows, channels);
  grow(w_rows, channels);
  grow(group_rows, channels);
  grow(w_rows2, channels);
  grow(group_rows2, channels);
  grow(first_of, channels);
  grow(pairs, 2 * channels);
  grow(skip, 2 * channels);
  grow(cols2, channels * kernel_area * np);
  grow(prepared_members2, channels);
  grow(prepared_group_start2, channels + 1);
  grow(prepared_scales2, channels);
  // Up to four blocks of merged rows, each a block stride (channels rows and one more line) after the last.
  grow(merged_w, (3 * channels + channels / 2) * kernel_area * kBlock + 3 * kBlock);
  int64_t table = 16;
  while (table < 2 * channels) table *= 2;
  grow(table_keys, table);
  grow(table_buckets, table);
  grow(table_vals, table);
}

int64_t Workspace::Group(int64_t channels) {
  int64_t table = 16;
  while (table < 2 * channels) table *= 2;
  const uint64_t mask = static_cast<uint64_t>(table - 1);
  std::fill(table_vals.begin(), table_vals.begin() + table, -1);
  int64_t groups = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const uint64_t code = codes[c];
    const int32_t bucket = buckets[c];
    uint64_t slot = ((code ^ static_cast<uint64_t>(static_cast<uint32_t>(bucket)) << 32) * 0x9E3779B97F4A7C15ull) >> 40 &
                    mask;
    while (table_vals[slot] >= 0 && (table_keys[slot] != code || table_buckets[slot] != bucket))
      slot = (slot + 1) & mask;
    if (table_vals[slot] < 0) {
      table_keys[slot] = code;
      table_buckets[slot] = bucket;
      table_vals[slot] = static_cast<int32_t>(groups);
      fill[groups++] = 0;
    }
    group_of[c] = table_vals[slot];
    ++fill[group_of[c]];
  }
  // Counting sort of channels by group, keeping channel order inside a group,
  // after renumbering the groups: single members first, then the others, each
  // in order of first member.
  singles = 0;
  for (int64_t m = 0; m < groups; ++m) singles += fill[m] == 1;
  int32_t next_single = 0, next_multi = static_cast<int32_t>(singles);
  for (int64_t m = 0; m < groups; ++m) order[m] = fill[m] == 1 ? next_single++ : next_multi++;
  for (int64_t m = 0; m < groups; ++m) sizes[order[m]] = fill[m];
  group_start[0] = 0;
  for (int64_t m = 0; m < groups; ++m) group_start[m + 1] = group_start[m] + sizes[m];
  for (int64_t m = 0; m < groups; ++m) fill[m] = group_start[m];
  for (int64_t c = 0; c < channels; ++c) members[fill[order[group_of[c]]]++] = static_cast<int32_t>(c);
  return groups;
}

void PackWeights(const float* w, int64_t out_channels, int64_t group_in, int64_t kernel_area, int64_t groups,
                 PackedWeights* out) {
  const int64_t group_out = out_channels / groups;
  out->groups = groups;
  out->group_in = group_in;
  out->kernel_area = kernel_area;
  out->group_out = group_out;
  out->blocks = (group_out + kBlock - 1) / kBlock;
  out->block_stride = group_in * kernel_area * kBlock + kBlock;
  out->data.assign(groups * out->blocks * out->block_stride, 0.0f);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < group_out; ++o)
      for (int64_t c = 0; c < group_in; ++c) {
        const float* src = w + ((grp * group_out + o) * group_in + c) * kernel_area;
        float* dst = const_cast<float*>(out->Block(grp, o / kBlock, c)) + o % kBlock;
        for (int64_t k = 0; k < kernel_area; ++k) dst[k * kBlock] = src[k];
      }
}

void PackHyperplanes(const float* h, int64_t count, int64_t dim, PackedHyperplanes* out) {
  out->count = count;
  out->dim = dim;
  out->padded = (count + 15) / 16 * 16;
  out->transposed.assign(out->padded * dim, 0.0f);
  out->nonzeros = 0;
  out->nz_j.clear();
  out->nz_sign.clear();
  out->nz_start.assign(1, 0);
  for (int64_t l = 0; l < count; ++l) {
    for (int64_t j = 0; j < dim; ++j) {
      const float v = h[l * dim + j];
      out->transposed[j * out->padded + l] = v;
      if (v != 0.0f) {
        out->nz_j.push_back(static_cast<int32_t>(j));
        out->nz_sign.push_back(v);
      }
    }
    out->nz_start.push_back(static_cast<int32_t>(out->nz_j.size()));
  }
  out->nonzeros = static_cast<int64_t>(out->nz_j.size());
}

namespace {

// Sets flush-to-zero and denormals-are-zero for its lifetime (x86; elsewhere a
// no-op), as the spec fixes: subnormal arithmetic is about 100 times slower.
struct FlushSubnormals {
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved = _mm_getcsr();
  FlushSubnormals() { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~FlushSubnormals() { _mm_setcsr(saved); }
#elif defined(__aarch64__)
  unsigned long saved = __builtin_aarch64_get_fpcr();
  FlushSubnormals() { __builtin_aarch64_set_fpcr(saved | (1ul << 24)); }  // FPCR.FZ
  ~FlushSubnormals() { __builtin_aarch64_set_fpcr(saved); }
#endif
};

struct Isa {
  decltype(&generic::PrepareTile) prepare;
  decltype(&generic::ComputeBlocks) compute;
  decltype(&generic::PaddedTilePixels) padded_pixels;
  const char* name;
};

// The best variant this CPU runs. HASTE_ONNX_ISA=avx2 or generic asks for a
// lesser one (it can only pick code of this library), so tests cover every variant.
Isa ChooseIsa() {
  const char* wanted = std::getenv("HASTE_ONNX_ISA");
  const std::string ask = wanted ? wanted : "";
#if defined(__x86_64__) && defined(HASTE_HAVE_AVX512)
  __builtin_cpu_init();
  if (ask != "generic" && ask != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return {avx512::PrepareTile, avx512::ComputeBlocks, avx512::PaddedTilePixels, "avx512"};
  if (ask != "generic" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {avx2::PrepareTile, avx2::ComputeBlocks, avx2::PaddedTilePixels, "avx2"};
#endif
#if defined(__aarch64__) && defined(HASTE_HAVE_NEON)
  if (ask != "generic" && (getauxval(AT_HWCAP) & HWCAP_ASIMD))
    return {neon::PrepareTile, neon::ComputeBlocks, neon::PaddedTilePixels, "neon"};
#endif
  return {generic::PrepareTile, generic::ComputeBlocks, generic::PaddedTilePixels, "generic"};
}

const Isa& CurrentIsa() {
  static const Isa isa = ChooseIsa();
  static const bool reported = std::getenv("HASTE_ONNX_ISA_REPORT") &&  // says which variant runs (a board, qemu)
                               std::fprintf(stderr, "haste-onnx: kernel variant %s\n", isa.name) > 0;
  (void)reported;
  return isa;
}

struct Job {
  const ConvGeometry* g;
  const float* x;
  const PackedWeights* w;
  const float* bias;
  const float* z;  // residual added before the activation, or null
  const PackedHyperplanes* h;
  float* y;
  Isa isa;
  HasteStats* tile_stats;  // one per tile, or null
  PaddedInput padded;
  // Two-phase mode: a run of prepared tiles [first, first + count) kept between
  // the phases, then computed kItemBlocks blocks at a time in tile_ranges ranges of tiles.
  int64_t first = 0, count = 0, tile_ranges = 1;
  // Tile-by-tile mode: work items of two tiles each (pairs), of `tiles` in all.
  bool pairs = false;
  int64_t tiles = 0;
  // Uninitialised buffers (every element is written before it is read).
  std::vector<PreparedTile> prepared;
  LineBuffer<float> cols, scales;
  LineBuffer<int32_t> members, group_start;
};

TileTask TaskOf(const ConvGeometry& g, int64_t tile) {
  TileTask task;
  task.tile_x = tile % g.tiles_x;
  tile /= g.tiles_x;
  task.tile_y = tile % g.tiles_y;
  tile /= g.tiles_y;
  task.group = tile % g.groups;
  task.image = tile / g.groups;
  return task;
}

thread_local Workspace tls_workspace;

// Output blocks per work item of the two-phase mode: two share each input load
// in the GEMM (ComputeBlocks' wide pass).
constexpr int64_t kItemBlocks = 2;

// One tile, all output blocks; with job.pairs, tiles 2*index and 2*index + 1
// (ComputeBlocks then merges the groups they share in one pass).
void RunWholeTile(void* data, size_t index) {
  const FlushSubnormals flush;
  Job& job = *static_cast<Job*>(data);
  Workspace& ws = tls_workspace;
  const ConvGeometry& g = *job.g;
  const int64_t first = job.pairs ? 2 * static_cast<int64_t>(index) : static_cast<int64_t>(index);
  const int64_t count = job.pairs ? std::min<int64_t>(2, job.tiles - first) : 1;
  const int64_t np = job.isa.padded_pixels(g.tile_h * g.tile_w);
  ws.Reserve(g.group_in, g.patch_size(), g.kernel_h * g.kernel_w, np);
  TileTask tasks[2];
  PreparedTile tiles[2] = {{ws.cols.data(), ws.prepared_members.data(), ws.prepared_group_start.data(),
                            ws.prepared_scales.data(), 0},
                           {ws.cols2.data(), ws.prepared_members2.data(), ws.prepared_group_start2.data(),
                            ws.prepared_scales2.data(), 0}};
  for (int64_t i = 0; i < count; ++i) {
    tasks[i] = TaskOf(g, first + i);
    tasks[i].block_begin = 0;
    tasks[i].block_end = job.w->blocks;
    job.isa.prepare(g, job.x, job.padded, *job.h, tasks[i], ws, &tiles[i],
                    job.tile_stats ? job.tile_stats + first + i : nullptr);
  }
  job.isa.compute(g, *job.w, job.bias, job.z, job.y, tasks[0], tiles[0], ws, count > 1 ? &tasks[1] : nullptr,
                  count > 1 ? &tiles[1] : nullptr);
}

// Two-phase mode, phase 1: hash, group and im2col one tile of the run.
void PrepareOnly(void* data, size_t index) {
  const FlushSubnormals flush;
  Job& job = *static_cast<Job*>(data);
  const int64_t tile = job.first + static_cast<int64_t>(index);
  job.isa.prepare(*job.g, job.x, job.padded, *job.h, TaskOf(*job.g, tile), tls_workspace, &job.prepared[index],
                  job.tile_stats ? job.tile_stats + tile : nullptr);
}

// Two-phase mode, phase 2: kItemBlocks blocks of output channels for a range of the
// run's tiles, so that the blocks' weights are read from cache, not memory.
void ComputeOnly(void* data, size_t index) {
  const FlushSubnormals flush;
  Job& job = *static_cast<Job*>(data);
  const int64_t block = static_cast<int64_t>(index) / job.tile_ranges * kItemBlocks;
  const int64_t range = static_cast<int64_t>(index) % job.tile_ranges;
  const int64_t begin = range * job.count / job.tile_ranges, end = (range + 1) * job.count / job.tile_ranges;
  for (int64_t t = begin; t < end; t += 2) {  // two tiles at a time (see RunWholeTile)
    TileTask tasks[2];
    const int64_t count = std::min<int64_t>(2, end - t);
    for (int64_t i = 0; i < count; ++i) {
      tasks[i] = TaskOf(*job.g, job.first + t + i);
      tasks[i].block_begin = block;
      tasks[i].block_end = std::min(block + kItemBlocks, job.w->blocks);
    }
    job.isa.compute(*job.g, *job.w, job.bias, job.z, job.y, tasks[0], job.prepared[t], tls_workspace,
                    count > 1 ? &tasks[1] : nullptr, count > 1 ? &job.prepared[t + 1] : nullptr);
  }
}

// Writes one padded plane (image n, channel c = index) of job.padded.
void PadPlane(void* data, size_t index) {
  Job& job = *static_cast<Job*>(data);
  const ConvGeometry& g = *job.g;
  const PaddedInput& xp = job.padded;
  const float* src = job.x + static_cast<int64_t>(index) * g.in_h * g.in_w;
  float* dst = const_cast<float*>(xp.data) + static_cast<int64_t>(index) * xp.rows * xp.cols;
  const int64_t col_lo = std::min(g.pad_left, xp.cols), col_hi = std::min(g.pad_left + g.in_w, xp.cols);
  for (int64_t r = 0; r < xp.rows; ++r, dst += xp.cols) {
    const int64_t iy = r - g.pad_top;
    if (iy < 0 || iy >= g.in_h || col_lo >= col_hi) {
      std::fill(dst, dst + xp.cols, 0.0f);
      continue;
    }
    std::fill(dst, dst + col_lo, 0.0f);
    std::memcpy(dst + col_lo, src + iy * g.in_w, (col_hi - col_lo) * sizeof(float));
    std::fill(dst + col_hi, dst + xp.cols, 0.0f);
  }
}

}  // namespace

const char* CpuKernelIsa() { return CurrentIsa().name; }

void HasteConvCpu(const ConvGeometry& g, const float* x, const PackedWeights& w, const float* bias, const float* z,
                  const PackedHyperplanes& h, float* y, const ParallelFor& parallel_for, HasteStats* stats) {
  const int64_t tiles = g.batch * g.groups * g.tiles_per_image();
  if (tiles == 0) return;
  // Counters per tile, summed afterwards: no atomics on the hot path.
  std::vector<HasteStats> tile_stats(stats ? tiles : 0);
  Job job{&g, x, &w, bias, z, &h, y, CurrentIsa(), stats ? tile_stats.data() : nullptr};
  // Writing the padding out once makes every patch a plain copy (patches overlap,
  // so this is also less copying); skipped when it would take much memory.
  LineBuffer<float> padded;
  const int64_t rows = (g.tiles_y - 1) * g.tile_h * g.stride_h + g.patch_h;
  const int64_t cols = (g.tiles_x - 1) * g.tile_w * g.stride_w + g.patch_w;
  if (static_cast<double>(g.batch) * g.in_channels * rows * cols <= kMaxPaddedFloats) {
    const int64_t size = g.batch * g.in_channels * rows * cols;
    padded = NewLineBuffer<float>(size + kPaddedSlack);
    std::fill(padded.get() + size, padded.get() + size + kPaddedSlack, 0.0f);
    job.padded = PaddedInput{padded.get(), rows, cols};
    parallel_for(static_cast<size_t>(g.batch * g.in_channels), PadPlane, &job);
  }
  // Tile by tile (each tile, all its output blocks) keeps everything in cache
  // when a conv group's weights are small. Large weights would then stream from
  // memory once per tile, and few tiles leave threads idle: then prepare a run
  // of tiles first, and compute it block by block (two phases).
  constexpr int64_t kMinItems = 16;
  constexpr double kCachedWeightBytes = 1 << 20;
  constexpr int64_t kRunBytes = 64 << 20;  // prepared tiles kept at once
  const double weight_bytes = 4.0 * g.group_in * g.kernel_h * g.kernel_w * g.group_out;
  if (w.blocks == 1 || (tiles >= kMinItems && weight_bytes <= kCachedWeightBytes)) {
    // Pairs of tiles (neighbours often share groups), where enough work items remain.
    job.tiles = tiles;
    job.pairs = tiles >= 2 * kMinItems;
    parallel_for(static_cast<size_t>(job.pairs ? (tiles + 1) / 2 : tiles), RunWholeTile, &job);
  } else {
    const int64_t np = job.isa.padded_pixels(g.tile_h * g.tile_w);
    const int64_t cols_per_tile = g.group_in * g.kernel_h * g.kernel_w * np;
    const int64_t run = std::max<int64_t>(1, std::min<int64_t>(tiles, kRunBytes / (4 * cols_per_tile)));
    job.cols = NewLineBuffer<float>(run * cols_per_tile);
    job.members = NewLineBuffer<int32_t>(run * g.group_in);
    job.group_start = NewLineBuffer<int32_t>(run * (g.group_in + 1));
    job.scales = NewLineBuffer<float>(run * g.group_in);
    job.prepared.resize(run);
    for (int64_t t = 0; t < run; ++t)
      job.prepared[t] = PreparedTile{job.cols.get() + t * cols_per_tile, job.members.get() + t * g.group_in,
                                     job.group_start.get() + t * (g.group_in + 1), job.scales.get() + t * g.group_in,
                                     0};
    for (job.first = 0; job.first < tiles; job.first += run) {
      job.count = std::min(run, tiles - job.first);
      const int64_t items = (w.blocks + kItemBlocks - 1) / kItemBlocks;
      job.tile_ranges = std::min<int64_t>(job.count, (kMinItems + items - 1) / items);
      parallel_for(static_cast<size_t>(job.count), PrepareOnly, &job);
      parallel_for(static_cast<size_t>(items * job.tile_ranges), ComputeOnly, &job);
    }
  }
  for (const HasteStats& t : tile_stats) stats->Add(t);
}

}  // namespace haste
