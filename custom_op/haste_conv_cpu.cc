// CPU driver: repacking, run-time ISA dispatch, and the parallel loop over tiles.
#include "haste_conv_cpu.h"

#include <cstring>

#include "haste_conv_cpu_internal.h"

namespace haste {

void Workspace::Reserve(int64_t channels, int64_t d, int64_t L, int64_t kernel_area, int64_t group_out, int64_t np) {
  auto grow = [](auto& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  };
  grow(patch, channels * d);
  grow(mean, d);
  grow(proj, L);
  grow(codes, channels);
  // At most channels/2 groups have two or more members and need scratch.
  grow(merged_in, (channels / 2 + 1) * d);
  grow(merged_w, (channels / 2 + 1) * kernel_area * group_out);
  grow(cols, channels * kernel_area * np);
  grow(out, group_out * np);
  grow(group_of, channels);
  grow(members, channels);
  grow(group_start, channels + 1);
  grow(fill, channels);
  grow(in_rows, channels);
  grow(w_rows, channels);
  int64_t table = 16;
  while (table < 2 * channels) table *= 2;
  grow(table_keys, table);
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
    uint64_t slot = (code * 0x9E3779B97F4A7C15ull) >> 40 & mask;
    while (table_vals[slot] >= 0 && table_keys[slot] != code) slot = (slot + 1) & mask;
    if (table_vals[slot] < 0) {
      table_keys[slot] = code;
      table_vals[slot] = static_cast<int32_t>(groups);
      fill[groups++] = 0;
    }
    group_of[c] = table_vals[slot];
    ++fill[group_of[c]];
  }
  // Counting sort of channels by group, keeping channel order inside a group.
  group_start[0] = 0;
  for (int64_t m = 0; m < groups; ++m) group_start[m + 1] = group_start[m] + fill[m];
  for (int64_t m = 0; m < groups; ++m) fill[m] = group_start[m];
  for (int64_t c = 0; c < channels; ++c) members[fill[group_of[c]]++] = static_cast<int32_t>(c);
  return groups;
}

void PackWeights(const float* w, int64_t out_channels, int64_t group_in, int64_t kernel_area, int64_t groups,
                 PackedWeights* out) {
  const int64_t group_out = out_channels / groups;
  out->groups = groups;
  out->group_in = group_in;
  out->kernel_area = kernel_area;
  out->group_out = group_out;
  out->data.resize(out_channels * group_in * kernel_area);
  for (int64_t grp = 0; grp < groups; ++grp)
    for (int64_t o = 0; o < group_out; ++o)
      for (int64_t c = 0; c < group_in; ++c) {
        const float* src = w + ((grp * group_out + o) * group_in + c) * kernel_area;
        float* dst = out->data.data() + ((grp * group_in + c) * kernel_area) * group_out + o;
        for (int64_t k = 0; k < kernel_area; ++k) dst[k * group_out] = src[k];
      }
}

void PackHyperplanes(const float* h, int64_t count, int64_t dim, PackedHyperplanes* out) {
  out->count = count;
  out->dim = dim;
  out->transposed.resize(count * dim);
  out->nonzeros = 0;
  for (int64_t l = 0; l < count; ++l)
    for (int64_t j = 0; j < dim; ++j) {
      out->transposed[j * count + l] = h[l * dim + j];
      out->nonzeros += h[l * dim + j] != 0.0f;
    }
}

namespace {

using TileFn = void (*)(const ConvGeometry&, const float*, const PackedWeights&, const float*,
                        const PackedHyperplanes&, float*, int64_t, int64_t, int64_t, int64_t, Workspace&,
                        HasteStats*);

struct Dispatch {
  TileFn fn;
  const char* name;
};

Dispatch ChooseIsa() {
#if defined(__x86_64__) && defined(HASTE_HAVE_AVX512)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
    return {avx512::RunTile, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {avx2::RunTile, "avx2"};
#endif
  return {generic::RunTile, "generic"};
}

const Dispatch& Isa() {
  static const Dispatch d = ChooseIsa();
  return d;
}

struct Job {
  const ConvGeometry* g;
  const float* x;
  const PackedWeights* w;
  const float* bias;
  const PackedHyperplanes* h;
  float* y;
  TileFn fn;
  HasteStats* tile_stats;  // one per work item, or null
};

void RunJob(void* data, size_t index) {
  const Job& job = *static_cast<const Job*>(data);
  const ConvGeometry& g = *job.g;
  thread_local Workspace ws;
  int64_t i = static_cast<int64_t>(index);
  const int64_t tx = i % g.tiles_x;
  i /= g.tiles_x;
  const int64_t ty = i % g.tiles_y;
  i /= g.tiles_y;
  const int64_t grp = i % g.groups;
  const int64_t n = i / g.groups;
  job.fn(g, job.x, *job.w, job.bias, *job.h, job.y, n, grp, ty, tx, ws,
         job.tile_stats ? job.tile_stats + index : nullptr);
}

}  // namespace

const char* CpuKernelIsa() { return Isa().name; }

void HasteConvCpu(const ConvGeometry& g, const float* x, const PackedWeights& w, const float* bias,
                  const PackedHyperplanes& h, float* y, const ParallelFor& parallel_for, HasteStats* stats) {
  const int64_t total = g.batch * g.groups * g.tiles_per_image();
  if (total == 0) return;
  // Counters per work item, summed afterwards: no atomics on the hot path.
  std::vector<HasteStats> tile_stats(stats ? total : 0);
  Job job{&g, x, &w, bias, &h, y, Isa().fn, stats ? tile_stats.data() : nullptr};
  parallel_for(static_cast<size_t>(total), RunJob, &job);
  for (const HasteStats& t : tile_stats) stats->Add(t);
}

}  // namespace haste
