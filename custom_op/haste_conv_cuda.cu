// HasteConv float32 kernels (docs/op_spec.md). Two kernels per chunk of tiles:
//   PrepareTiles: one block per (image, conv group, tile): steps 1-6a (patch,
//     centring, hashing, grouping, merged inputs, member scales) into the
//     workspace, and the stats counters;
//   ConvTiles: one block per (tile, block of output channels): step 6b (merged
//     filters, built in shared memory) and step 7 (the convolution of the merged
//     patch, bias, residual Z, activation).
// Compiled with -ftz=true -prec-div=true (cmake/Cuda.cmake); steps 3-4b also
// flush subnormals by hand after every operation, exactly as the numpy
// reference does, so the codes do not depend on compiler flags.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <string>

#include "haste_conv_cuda.cuh"

namespace haste {
namespace {

constexpr int kThreads = 128;         // threads per block of both kernels
constexpr int kOutsPerThread = 8;     // outputs one ConvTiles thread accumulates per pass
constexpr int kMaxOutChannels = 64;   // output channels per ConvTiles block
constexpr int kMaxStageGroups = 8;    // merged channels staged in shared memory at once
constexpr size_t kConvSharedFloats = 10240;  // 40 KiB of shared memory for ConvTiles
constexpr size_t kChunkBudget = size_t{256} << 20;  // workspace bytes aimed at per chunk

size_t Align(size_t v) { return (v + 255) / 256 * 256; }

// Where each tile's arrays lie inside its slice of the workspace.
struct TileLayout {
  size_t patch, merged, mean, codes, buckets, leader, rank, group_of, members, group_start, scales, header, bytes;
};

TileLayout MakeLayout(int64_t cg, int64_t d) {
  TileLayout t{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += Align(bytes);
    return here;
  };
  const size_t c = static_cast<size_t>(cg), dd = static_cast<size_t>(d);
  t.patch = take(c * dd * 4);
  t.merged = take(c * dd * 4);
  t.mean = take(dd * 4);
  t.codes = take(c * 8);
  t.buckets = take(c * 4);
  t.leader = take(c * 4);
  t.rank = take(c * 4);
  t.group_of = take(c * 4);
  t.members = take(c * 4);
  t.group_start = take((c + 1) * 4);
  t.scales = take(c * 4);
  t.header = take(16);  // int32 merged-channel count
  t.bytes = at;
  return t;
}

// The shapes of one ConvTiles launch.
struct ConvPlan {
  int out_block = 1;     // output channels per block
  int stage_groups = 1;  // merged channels staged in shared memory per step
  size_t shared_bytes = 0;
};

ConvPlan MakeConvPlan(const ConvGeometry& g) {
  ConvPlan p;
  const int64_t pixels = g.tile_h * g.tile_w, area = g.kernel_h * g.kernel_w, d = g.patch_size();
  const int64_t per_pass = int64_t{kThreads} * kOutsPerThread;
  p.out_block = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({kMaxOutChannels, g.group_out, per_pass / pixels})));
  while (p.out_block > 1 && static_cast<size_t>(p.out_block * area + d) > kConvSharedFloats) p.out_block /= 2;
  const int64_t per_group = p.out_block * area + d;
  p.stage_groups = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kMaxStageGroups, kConvSharedFloats / per_group)));
  p.shared_bytes = static_cast<size_t>(p.stage_groups * per_group) * sizeof(float);
  return p;
}

struct Params {
  // geometry
  int64_t batch, in_channels, in_h, in_w, out_channels, groups, group_in, group_out;
  int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  int64_t pad_top, pad_left, out_h, out_w;
  int tile_h, tile_w, patch_h, patch_w;
  int64_t tiles_y, tiles_x;
  int hyperplanes;
  bool centering, magnitude_split, merge_project, clamp;
  float out_min, out_max;
  // this chunk
  int64_t first_task;
  TileLayout layout;
  char* workspace;
  ConvPlan plan;
};

__device__ __forceinline__ long long Min64(long long a, long long b) { return a < b ? a : b; }

__device__ __forceinline__ float Flush(float v) { return fabsf(v) < FLT_MIN ? 0.0f : v; }

template <typename T>
__device__ __forceinline__ T* At(const Params& p, int64_t local_task, size_t offset) {
  return reinterpret_cast<T*>(p.workspace + static_cast<size_t>(local_task) * p.layout.bytes + offset);
}

// In-place exclusive prefix sum of n ints by the whole block; returns the total.
__device__ int BlockExclusiveScan(int* data, int n, int* partial) {
  const int t = threadIdx.x;
  const int per = (n + kThreads - 1) / kThreads;
  const int begin = min(n, t * per), end = min(n, begin + per);
  int sum = 0;
  for (int i = begin; i < end; ++i) sum += data[i];
  partial[t] = sum;
  __syncthreads();
  if (t == 0) {
    int run = 0;
    for (int i = 0; i < kThreads; ++i) {
      const int v = partial[i];
      partial[i] = run;
      run += v;
    }
    partial[kThreads] = run;
  }
  __syncthreads();
  int run = partial[t];
  for (int i = begin; i < end; ++i) {
    const int v = data[i];
    data[i] = run;
    run += v;
  }
  const int total = partial[kThreads];
  __syncthreads();
  return total;
}

__global__ void __launch_bounds__(kThreads) PrepareTiles(Params p, const float* __restrict__ x,
                                                         const float* __restrict__ h,
                                                         unsigned long long* __restrict__ stats) {
  __shared__ int partial[kThreads + 1];
  __shared__ int shared_count[2];
  const int64_t local = blockIdx.x, task = p.first_task + local;
  const int64_t tx = task % p.tiles_x, ty = (task / p.tiles_x) % p.tiles_y;
  const int64_t grp = (task / (p.tiles_x * p.tiles_y)) % p.groups, n = task / (p.tiles_x * p.tiles_y * p.groups);
  const int cg = static_cast<int>(p.group_in), d = p.patch_h * p.patch_w, L = p.hyperplanes;
  const int t = threadIdx.x;
  float* patch = At<float>(p, local, p.layout.patch);
  float* merged = At<float>(p, local, p.layout.merged);
  float* mean = At<float>(p, local, p.layout.mean);
  unsigned long long* codes = At<unsigned long long>(p, local, p.layout.codes);
  int* buckets = At<int>(p, local, p.layout.buckets);
  int* leader = At<int>(p, local, p.layout.leader);
  int* rank = At<int>(p, local, p.layout.rank);
  int* group_of = At<int>(p, local, p.layout.group_of);
  int* members = At<int>(p, local, p.layout.members);
  int* group_start = At<int>(p, local, p.layout.group_start);
  float* scales = At<float>(p, local, p.layout.scales);
  int* header = At<int>(p, local, p.layout.header);

  // Steps 1-2: the full-size patch (zeros outside the input), subnormals read as 0.
  const int64_t y0 = ty * p.tile_h * p.stride_h - p.pad_top, x0 = tx * p.tile_w * p.stride_w - p.pad_left;
  const float* xg = x + (n * p.in_channels + grp * p.group_in) * p.in_h * p.in_w;
  for (int64_t i = t; i < int64_t{cg} * d; i += kThreads) {
    const int64_t c = i / d;
    const int j = static_cast<int>(i % d);
    const int64_t iy = y0 + j / p.patch_w, ix = x0 + j % p.patch_w;
    float v = 0.0f;
    if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) v = Flush(xg[(c * p.in_h + iy) * p.in_w + ix]);
    patch[i] = v;
  }
  __syncthreads();

  // Step 3: the channel mean, summed in float32 in channel order.
  for (int j = t; j < d; j += kThreads) {
    float m = 0.0f;
    if (p.centering && cg > 0) {
      for (int c = 0; c < cg; ++c) m = Flush(m + patch[c * d + j]);
      m = Flush(m / static_cast<float>(cg));
    }
    mean[j] = m;
  }
  __syncthreads();

  // Step 4: codes, projections summed in float32 in increasing j (every product
  // is exact); step 4b: magnitude buckets.
  for (int c = t; c < cg; c += kThreads) {
    const float* xc = patch + c * d;
    unsigned long long code = 0;
    for (int l = 0; l < L; ++l) {
      const float* hl = h + l * d;
      float acc = 0.0f;
      for (int j = 0; j < d; ++j) {
        const float v = p.centering ? Flush(__fsub_rn(xc[j], mean[j])) : xc[j];
        acc = Flush(__fadd_rn(acc, __fmul_rn(__ldg(hl + j), v)));
      }
      if (acc > 0.0f) code |= 1ull << l;
    }
    codes[c] = code;
    int bucket = 0;
    if (p.magnitude_split) {
      float s = 0.0f;
      for (int j = 0; j < d; ++j) s = Flush(__fadd_rn(s, Flush(__fmul_rn(xc[j], xc[j]))));
      if (s == 0.0f) {
        bucket = -100000;
      } else if (!(s <= FLT_MAX)) {
        bucket = 100000;
      } else {
        frexpf(s, &bucket);
      }
    }
    buckets[c] = bucket;
  }
  __syncthreads();

  // Step 5: a channel's group is led by the first channel with its code and
  // bucket; groups are numbered in the order of their leaders.
  for (int c = t; c < cg; c += kThreads) {
    const unsigned long long code = codes[c];
    const int bucket = buckets[c];
    int first = c, before = 0;
    for (int o = 0; o < c; ++o) {
      if (codes[o] == code && buckets[o] == bucket) {
        if (before == 0) first = o;
        ++before;
      }
    }
    leader[c] = first;
    rank[c] = before;
    group_of[c] = first == c ? 1 : 0;  // leader flags, scanned into group numbers below
  }
  __syncthreads();
  const int count = BlockExclusiveScan(group_of, cg, partial);  // group_of[leader] = its group number
  for (int c = t; c < cg; c += kThreads) group_start[c] = 0;
  if (t == 0) group_start[cg] = 0;
  __syncthreads();
  // Members per group (only leaders' entries of group_of are read).
  for (int c = t; c < cg; c += kThreads) atomicAdd(&group_start[group_of[leader[c]]], 1);
  __syncthreads();
  BlockExclusiveScan(group_start, count, partial);
  if (t == 0) group_start[count] = cg;
  __syncthreads();
  for (int c = t; c < cg; c += kThreads) members[group_start[group_of[leader[c]]] + rank[c]] = c;
  __syncthreads();

  // Step 6a: merged inputs (the mean of the members, in member order).
  for (int64_t i = t; i < int64_t{count} * d; i += kThreads) {
    const int gi = static_cast<int>(i / d), j = static_cast<int>(i % d);
    const int begin = group_start[gi], end = group_start[gi + 1];
    float s = 0.0f;
    for (int m = begin; m < end; ++m) s += patch[members[m] * d + j];
    merged[i] = s / static_cast<float>(end - begin);
  }
  __syncthreads();
  // The weight of each member's filter slice, in member order.
  for (int m = t; m < cg; m += kThreads) {
    float scale = 1.0f;
    if (p.merge_project) {
      const int c = members[m];
      const int gi = group_of[leader[c]];
      if (group_start[gi + 1] - group_start[gi] > 1) {
        const float* u = merged + gi * d;
        const float* xc = patch + c * d;
        float dot = 0.0f, norm = 0.0f;
        for (int j = 0; j < d; ++j) {
          dot += xc[j] * u[j];
          norm += u[j] * u[j];
        }
        scale = norm > 0.0f ? dot / norm : 0.0f;
      }
    }
    scales[m] = scale;
  }
  if (t == 0) header[0] = count;

  // The stats output (docs/op_spec.md), counted like the reference.
  if (stats) {
    if (t == 0) {
      shared_count[0] = 0;
      shared_count[1] = 0;
    }
    __syncthreads();
    int nonzero = 0, multi = 0;
    for (int i = t; i < L * d; i += kThreads) nonzero += h[i] != 0.0f;
    for (int gi = t; gi < count; gi += kThreads) multi += group_start[gi + 1] - group_start[gi] > 1;
    atomicAdd(&shared_count[0], nonzero);
    atomicAdd(&shared_count[1], multi);
    __syncthreads();
    if (t == 0) {
      const long long rows = Min64(p.tile_h, p.out_h - ty * p.tile_h);
      const long long cols = Min64(p.tile_w, p.out_w - tx * p.tile_w);
      const long long area = p.kernel_h * p.kernel_w, outs = p.group_out;
      const long long per = rows * cols * outs * area;
      const long long groups_multi = shared_count[1];
      const long long in_multi = cg - (count - groups_multi);
      long long merge_ops = static_cast<long long>(cg - count) * (d + area * outs) + groups_multi * d;
      if (p.merge_project) merge_ops += (in_multi + groups_multi) * d;
      atomicAdd(stats + 0, static_cast<unsigned long long>(per * cg));
      atomicAdd(stats + 1, static_cast<unsigned long long>(per * count));
      atomicAdd(stats + 2, static_cast<unsigned long long>(p.centering ? 2LL * cg * d : 0));
      atomicAdd(stats + 3, static_cast<unsigned long long>(static_cast<long long>(cg) * shared_count[0]));
      atomicAdd(stats + 4, static_cast<unsigned long long>(merge_ops));
      atomicAdd(stats + 5, static_cast<unsigned long long>(count));
      atomicAdd(stats + 6, static_cast<unsigned long long>(cg));
    }
  }
}

__global__ void __launch_bounds__(kThreads) ConvTiles(Params p, const float* __restrict__ w,
                                                      const float* __restrict__ b, const float* __restrict__ z,
                                                      float* __restrict__ y) {
  extern __shared__ float shared[];
  const int64_t local = blockIdx.x, task = p.first_task + local;
  const int64_t tx = task % p.tiles_x, ty = (task / p.tiles_x) % p.tiles_y;
  const int64_t grp = (task / (p.tiles_x * p.tiles_y)) % p.groups, n = task / (p.tiles_x * p.tiles_y * p.groups);
  const int t = threadIdx.x;
  const int cg = static_cast<int>(p.group_in), d = p.patch_h * p.patch_w;
  const int area = p.kernel_h * p.kernel_w, pixels = p.tile_h * p.tile_w;
  const int ob = p.plan.out_block, sg = p.plan.stage_groups;
  const int64_t o0 = static_cast<int64_t>(blockIdx.y) * ob;  // first output channel within the conv group
  const int outs_here = static_cast<int>(Min64(ob, p.group_out - o0));
  const float* merged = At<const float>(p, local, p.layout.merged);
  const int* members = At<const int>(p, local, p.layout.members);
  const int* group_start = At<const int>(p, local, p.layout.group_start);
  const float* scales = At<const float>(p, local, p.layout.scales);
  const int count = *At<const int>(p, local, p.layout.header);
  float* sw = shared;                       // [sg][ob][area] merged filters
  float* su = shared + sg * ob * area;      // [sg][d] merged inputs
  // W of this conv group's output channel o0 + o and input channel c: wg + (o * cg + c) * area.
  const float* wg = w + (grp * p.group_out + o0) * cg * area;
  const int total = outs_here * pixels;

  for (int base = 0; base < total; base += kThreads * kOutsPerThread) {
    float acc[kOutsPerThread];
#pragma unroll
    for (int r = 0; r < kOutsPerThread; ++r) acc[r] = 0.0f;
    for (int g0 = 0; g0 < count; g0 += sg) {
      const int staged = min(sg, count - g0);
      // Step 6b: merged filters of the staged groups for this block's outputs.
      for (int i = t; i < staged * ob * area; i += kThreads) {
        const int gi = i / (ob * area), o = (i / area) % ob, k = i % area;
        float s = 0.0f;
        if (o < outs_here) {
          const int begin = group_start[g0 + gi], end = group_start[g0 + gi + 1];
          for (int m = begin; m < end; ++m) s += scales[m] * __ldg(wg + (static_cast<int64_t>(o) * cg + members[m]) * area + k);
        }
        sw[i] = s;
      }
      for (int i = t; i < staged * d; i += kThreads) su[i] = merged[static_cast<int64_t>(g0) * d + i];
      __syncthreads();
      // Step 7: the valid convolution of the merged patch with the merged filters.
#pragma unroll
      for (int r = 0; r < kOutsPerThread; ++r) {
        const int i = base + r * kThreads + t;
        if (i >= total) break;
        const int o = i / pixels, px = i % pixels;
        const int py = px / p.tile_w, pxx = px % p.tile_w;
        float a = acc[r];
        for (int gi = 0; gi < staged; ++gi) {
          const float* fw = sw + (gi * ob + o) * area;
          const float* fu = su + gi * d;
          for (int ky = 0; ky < p.kernel_h; ++ky) {
            const float* row = fu + (py * p.stride_h + ky * p.dilation_h) * p.patch_w + pxx * p.stride_w;
            for (int kx = 0; kx < p.kernel_w; ++kx) a += fw[ky * p.kernel_w + kx] * row[kx * p.dilation_w];
          }
        }
        acc[r] = a;
      }
      __syncthreads();
    }
    // Bias, residual, activation; only outputs inside the image are written.
#pragma unroll
    for (int r = 0; r < kOutsPerThread; ++r) {
      const int i = base + r * kThreads + t;
      if (i >= total) break;
      const int o = i / pixels, px = i % pixels;
      const int64_t oy = ty * p.tile_h + px / p.tile_w, ox = tx * p.tile_w + px % p.tile_w;
      if (oy >= p.out_h || ox >= p.out_w) continue;
      const int64_t channel = grp * p.group_out + o0 + o;
      const int64_t at = ((n * p.out_channels + channel) * p.out_h + oy) * p.out_w + ox;
      float v = acc[r];
      if (b) v += __ldg(b + channel);
      if (z) v += __ldg(z + at);
      if (p.clamp) v = v < p.out_min ? p.out_min : (v > p.out_max ? p.out_max : v);
      y[at] = v;
    }
  }
}

std::string Unsupported(const ConvGeometry& g) {
  const ConvPlan plan = MakeConvPlan(g);
  if (static_cast<size_t>(plan.out_block * g.kernel_h * g.kernel_w + g.patch_size()) > kConvSharedFloats)
    return "the CUDA kernel supports patches and kernels of up to " + std::to_string(kConvSharedFloats) +
           " floats together (this node: patch " + std::to_string(g.patch_size()) + ", kernel " +
           std::to_string(g.kernel_h * g.kernel_w) + "); use a smaller tile";
  if (g.group_in > (int64_t{1} << 24)) return "the CUDA kernel supports at most 2^24 input channels per group";
  if ((g.group_out + plan.out_block - 1) / plan.out_block > 65535)
    return "the CUDA kernel supports at most 65535 blocks of output channels";
  if (g.patch_size() * g.group_in > (int64_t{1} << 31) - 1) return "a patch of the CUDA kernel must fit int32 indices";
  return "";
}

int64_t TotalTasks(const ConvGeometry& g) { return g.batch * g.groups * g.tiles_y * g.tiles_x; }

int64_t ChunkTasks(const ConvGeometry& g, const TileLayout& layout) {
  const int64_t total = TotalTasks(g);
  const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(kChunkBudget / layout.bytes));
  return std::max<int64_t>(1, std::min<int64_t>({total, fit, int64_t{1} << 30}));
}

}  // namespace

size_t HasteConvCudaWorkspaceBytes(const ConvGeometry& g, std::string* error) {
  const std::string problem = Unsupported(g);
  if (!problem.empty()) {
    if (error) *error = problem;
    return 0;
  }
  const TileLayout layout = MakeLayout(g.group_in, g.patch_size());
  return static_cast<size_t>(ChunkTasks(g, layout)) * layout.bytes;
}

void HasteConvCudaLayout(const ConvGeometry& g, size_t out[5]) {
  const TileLayout layout = MakeLayout(g.group_in, g.patch_size());
  out[0] = layout.bytes;
  out[1] = layout.codes;
  out[2] = layout.header;
  out[3] = static_cast<size_t>(ChunkTasks(g, layout));
  out[4] = static_cast<size_t>(TotalTasks(g));
}

std::string HasteConvCudaLaunch(const ConvGeometry& g, const CudaConvArgs& a, void* workspace,
                                size_t workspace_bytes, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  std::string problem;
  const size_t need = HasteConvCudaWorkspaceBytes(g, &problem);
  if (!problem.empty()) return problem;
  if (workspace_bytes < need)
    return "the workspace holds " + std::to_string(workspace_bytes) + " bytes, " + std::to_string(need) + " needed";
  if (a.stats) {
    const cudaError_t e = cudaMemsetAsync(a.stats, 0, 7 * sizeof(int64_t), stream);
    if (e != cudaSuccess) return std::string("cudaMemsetAsync: ") + cudaGetErrorString(e);
  }
  if (g.batch == 0 || g.out_channels == 0 || g.out_h == 0 || g.out_w == 0) return "";

  Params p{};
  p.batch = g.batch;
  p.in_channels = g.in_channels;
  p.in_h = g.in_h;
  p.in_w = g.in_w;
  p.out_channels = g.out_channels;
  p.groups = g.groups;
  p.group_in = g.group_in;
  p.group_out = g.group_out;
  p.kernel_h = static_cast<int>(g.kernel_h);
  p.kernel_w = static_cast<int>(g.kernel_w);
  p.stride_h = static_cast<int>(g.stride_h);
  p.stride_w = static_cast<int>(g.stride_w);
  p.dilation_h = static_cast<int>(g.dilation_h);
  p.dilation_w = static_cast<int>(g.dilation_w);
  p.pad_top = g.pad_top;
  p.pad_left = g.pad_left;
  p.out_h = g.out_h;
  p.out_w = g.out_w;
  p.tile_h = static_cast<int>(g.tile_h);
  p.tile_w = static_cast<int>(g.tile_w);
  p.patch_h = static_cast<int>(g.patch_h);
  p.patch_w = static_cast<int>(g.patch_w);
  p.tiles_y = g.tiles_y;
  p.tiles_x = g.tiles_x;
  p.hyperplanes = static_cast<int>(g.hyperplanes);
  p.centering = g.centering;
  p.magnitude_split = g.magnitude_split;
  p.merge_project = g.merge_project;
  p.clamp = g.clamp;
  p.out_min = g.out_min;
  p.out_max = g.out_max;
  p.layout = MakeLayout(g.group_in, g.patch_size());
  p.workspace = static_cast<char*>(workspace);
  p.plan = MakeConvPlan(g);

  const int64_t total = TotalTasks(g), chunk = ChunkTasks(g, p.layout);
  const unsigned out_blocks = static_cast<unsigned>((g.group_out + p.plan.out_block - 1) / p.plan.out_block);
  for (int64_t first = 0; first < total; first += chunk) {
    p.first_task = first;
    const unsigned tasks = static_cast<unsigned>(std::min<int64_t>(chunk, total - first));
    PrepareTiles<<<tasks, kThreads, 0, stream>>>(p, a.x, a.h, reinterpret_cast<unsigned long long*>(a.stats));
    ConvTiles<<<dim3(tasks, out_blocks), kThreads, p.plan.shared_bytes, stream>>>(p, a.w, a.b, a.z, a.y);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return std::string("HasteConv CUDA launch: ") + cudaGetErrorString(e);
  }
  return "";
}

std::string HasteCudaCopyToHost(void* dst, const void* src, size_t bytes, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  return e == cudaSuccess ? "" : std::string("copy to host: ") + cudaGetErrorString(e);
}

}  // namespace haste
