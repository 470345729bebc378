// Per-tile GEMM of HasteConv: our micro-kernel (MergeFilters + GemmBlocks from
// custom_op/haste_conv_cpu_tile.inc, AVX-512 variant) against GEMM libraries on
// the same problem. See docs/gemm_compare.md; run with benchmarks/gemm_compare/run.sh.
//
// One tile: 16 output pixels, a 3x3 kernel, C input channels grouped into C'
// groups (single members first), M output channels.
//   out[p][o] = sum over groups m, positions k of a[m][k][p] * Wm[k][o]
// a is the tile's im2col [C'][9][16]; Wm is the group's filter row (a single
// member's packed row, or the sum of its members' rows times their scales).
//
// Approaches, each over the same 64 tiles (own grouping and im2col each):
//   ours            MergeFilters + GemmBlocks per pair of 16-output blocks, as
//                   ComputeBlocks does (without writing the output tensor).
//   openblas        pack B = merged weights [C'*9][M] (singles copied, groups
//                   summed), then one cblas_sgemm 16 x M x C'*9.
//   libxsmm         same packing, then one JIT kernel (dispatched per tile, since
//                   C' differs from tile to tile).
//   onednn          same packing, then dnnl_sgemm.
//   eigen           same packing, then an Eigen matrix product.
//   ours+xsmm-brgemm  our MergeFilters, then libxsmm's batch-reduce GEMM
//                   (16 x 16 x 9 per group, summed over the C' groups) per block
//                   instead of GemmBlocks: the micro-kernel alone swapped.
//   ours 16px x 1 block  our code with GemmBlocks' narrow register pass (16
//                   pixels x 1 block, the shape of libxsmm's kernel) for each block.
//   ..., blocks outer  ours and the two above, in the order of HasteConvCpu's two-phase
//                   mode (weights over 1 MiB): block pairs outer, tiles inner.
//   pack B only     the packing the library approaches do, alone.
// Timed per pass over the 64 tiles; ns per tile = pass time / 64.

#define HASTE_ISA avx512
#define HASTE_VW 16
#define HASTE_REGS 24
#include "haste_conv_cpu_tile.inc"

#include <cblas.h>
#include <dnnl.h>
#include <libxsmm.h>
#include <xmmintrin.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>

extern "C" {
void openblas_set_num_threads(int);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace {

using haste::Floats;
using haste::kBlock;
using haste::PackedWeights;
namespace ours = haste::avx512;

typedef float v16 __attribute__((vector_size(64), aligned(4)));
inline v16 Ld(const float* p) { return *reinterpret_cast<const v16*>(p); }
inline void St(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

constexpr int kTiles = 64;  // distinct tiles per case
constexpr int kPx = 16;     // pixels per 4x4 tile
constexpr int kKa = 9;      // 3x3 kernel positions

struct Tile {
  std::vector<int32_t> members, group_start;
  Floats scales, cols;  // cols: im2col [merged][9][16]
  int64_t merged = 0, singles = 0;
};

// A realistic grouping with C' = round(ratio*C) groups: half of the channels
// that disappear by merging go in pairs, the rest in groups of 3-6 members.
// Channels are assigned at random; inside a group in channel order, single
// members first, the other groups in order of their first member (as
// Workspace::Group orders them).
void MakeGrouping(int64_t C, double ratio, std::mt19937& rng, Tile& t) {
  const int64_t target = std::llround(ratio * C);
  int64_t removed = C - target;
  std::vector<int64_t> sizes;
  const int64_t pairs = removed / 2;
  for (int64_t i = 0; i < pairs; ++i) sizes.push_back(2);
  int64_t rest = removed - pairs;
  std::uniform_int_distribution<int> big(3, 6);
  while (rest > 0) {
    int64_t s = std::min<int64_t>(big(rng), rest + 1);
    sizes.push_back(s);
    rest -= s - 1;
  }
  std::shuffle(sizes.begin(), sizes.end(), rng);
  std::vector<int32_t> perm(C);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<std::vector<int32_t>> groups;
  size_t next = 0;
  for (int64_t s : sizes) {
    std::vector<int32_t> g(perm.begin() + next, perm.begin() + next + s);
    next += s;
    std::sort(g.begin(), g.end());
    groups.push_back(g);
  }
  if (next > perm.size()) std::abort();
  std::vector<int32_t> singles(perm.begin() + next, perm.end());
  std::sort(singles.begin(), singles.end());
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a[0] < b[0]; });
  t.members.clear();
  t.group_start.assign(1, 0);
  for (int32_t c : singles) {
    t.members.push_back(c);
    t.group_start.push_back(static_cast<int32_t>(t.members.size()));
  }
  for (const auto& g : groups) {
    t.members.insert(t.members.end(), g.begin(), g.end());
    t.group_start.push_back(static_cast<int32_t>(t.members.size()));
  }
  t.singles = static_cast<int64_t>(singles.size());
  t.merged = static_cast<int64_t>(singles.size() + groups.size());
  if (t.merged != target || static_cast<int64_t>(t.members.size()) != C) std::abort();
  t.scales.assign(C, 1.0f);  // merge="mean" (the default): every member's weight is 1
}

// Scratch that a real implementation keeps per thread and reuses.
struct Scratch {
  std::vector<const float*> member_rows, group_rows, a_ptrs, b_ptrs;
  Floats merged_w, out_pair, packed_b, out;
};

// ---- (a) ours: ComputeBlocks' steps 6b-7b for all blocks of one tile. ----
template <bool kCollect>
__attribute__((noinline)) void RunOursBlocks(const PackedWeights& w, const Tile& t, Scratch& s, float* full,
                                             int64_t block_begin, int64_t block_end) {
  const float** member_rows = s.member_rows.data();
  const float** group_rows = s.group_rows.data();
  const int64_t C = w.group_in, ka = kKa, np = kPx, block_stride = w.block_stride;
  float* out = s.out_pair.data();
  for (int64_t b = block_begin; b < block_end;) {
    const bool wide = b + ours::kBlocksPerPass <= block_end;
    const int64_t nb = wide ? ours::kBlocksPerPass : 1;
    for (int64_t m = 0; m < t.singles; ++m) group_rows[m] = w.Block(0, b, t.members[m]);
    for (int64_t i = t.singles; i < C; ++i) member_rows[i] = w.Block(0, b, t.members[i]);
    if (wide && ours::kBlocksPerPass > 1)
      ours::MergeFilters<ours::kBlocksPerPass>(member_rows, t.group_start.data(), t.scales.data(), t.singles, t.merged,
                                               ka, block_stride, s.merged_w.data(), group_rows);
    else
      ours::MergeFilters<1>(member_rows, t.group_start.data(), t.scales.data(), t.singles, t.merged, ka, block_stride,
                            s.merged_w.data(), group_rows);
    ours::GemmBlocks(group_rows, t.merged, ka, block_stride, t.cols.data(), np, nb, false, out);
    if (kCollect) {  // out is [pixel][nb*16]
      const int64_t M = w.group_out;
      for (int64_t p = 0; p < np; ++p)
        for (int64_t o = 0; o < nb * kBlock; ++o) full[p * M + b * kBlock + o] = out[p * nb * kBlock + o];
    }
    b += nb;
  }
}

// ComputeBlocks' step 6b for the blocks b and b + 1: s.group_rows gets every
// group's row (single members in place, merged rows in s.merged_w).
void MergePair(const PackedWeights& w, const Tile& t, Scratch& s, int64_t b) {
  const float** member_rows = s.member_rows.data();
  for (int64_t m = 0; m < t.singles; ++m) s.group_rows[m] = w.Block(0, b, t.members[m]);
  for (int64_t i = t.singles; i < w.group_in; ++i) member_rows[i] = w.Block(0, b, t.members[i]);
  ours::MergeFilters<2>(member_rows, t.group_start.data(), t.scales.data(), t.singles, t.merged, kKa, w.block_stride,
                        s.merged_w.data(), s.group_rows.data());
}

// Our code with the other register tile GemmBlocks has: 16 pixels x 1 block
// (the shape of libxsmm's 16 x 16 kernel below) instead of 8 pixels x 2 blocks.
__attribute__((noinline)) void RunOursNarrowBlocks(const PackedWeights& w, const Tile& t, Scratch& s, float* full,
                                                   int64_t block_begin, int64_t block_end) {
  const float** group_rows = s.group_rows.data();
  const float** rows_j = s.a_ptrs.data();
  const int64_t block_stride = w.block_stride;
  float* out = s.out_pair.data();  // [block j][16 px][16 outputs]
  for (int64_t b = block_begin; b < block_end; b += 2) {  // M is a multiple of 32 here
    MergePair(w, t, s, b);
    for (int j = 0; j < 2; ++j) {
      for (int64_t m = 0; m < t.merged; ++m) rows_j[m] = group_rows[m] + j * block_stride;
      ours::GemmBlocks(rows_j, t.merged, kKa, block_stride, t.cols.data(), kPx, 1, false, out + j * kPx * kBlock);
    }
    if (full) {
      const int64_t M = w.group_out;
      for (int j = 0; j < 2; ++j)
        for (int64_t p = 0; p < kPx; ++p)
          for (int64_t o = 0; o < kBlock; ++o)
            full[p * M + (b + j) * kBlock + o] = out[(j * kPx + p) * kBlock + o];
    }
  }
}

void RunOursNarrow(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  RunOursNarrowBlocks(w, t, s, full, 0, w.blocks);
}

void RunOurs(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  full ? RunOursBlocks<true>(w, t, s, full, 0, w.blocks) : RunOursBlocks<false>(w, t, s, nullptr, 0, w.blocks);
}

// ---- The packing every library approach needs: B [C'*9][M], row-major. ----
// Block by block (the packed weights are read in order, as ours reads them);
// single members copied, groups summed with their scales (like MergeSteps).
__attribute__((noinline)) void PackMergedB(const PackedWeights& w, const Tile& t, float* B) {
  const int64_t M = w.group_out;
  for (int64_t b = 0; b < w.blocks; ++b) {
    float* col = B + b * kBlock;
    for (int64_t m = 0; m < t.singles; ++m) {
      const float* src = w.Block(0, b, t.members[m]);
      float* dst = col + m * kKa * M;
#pragma GCC unroll 9
      for (int k = 0; k < kKa; ++k) St(dst + k * M, Ld(src + k * kBlock));
    }
    for (int64_t m = t.singles; m < t.merged; ++m) {
      const int32_t first = t.group_start[m], last = t.group_start[m + 1];
      v16 acc[kKa];
      {
        const float sc = t.scales[first];
        const float* src = w.Block(0, b, t.members[first]);
#pragma GCC unroll 9
        for (int k = 0; k < kKa; ++k) acc[k] = sc * Ld(src + k * kBlock);
      }
      for (int32_t i = first + 1; i < last; ++i) {
        const float sc = t.scales[i];
        const float* src = w.Block(0, b, t.members[i]);
#pragma GCC unroll 9
        for (int k = 0; k < kKa; ++k) acc[k] += sc * Ld(src + k * kBlock);
      }
      float* dst = col + m * kKa * M;
#pragma GCC unroll 9
      for (int k = 0; k < kKa; ++k) St(dst + k * M, acc[k]);
    }
  }
}

// ---- (b) OpenBLAS ----
__attribute__((noinline)) void RunOpenBlas(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  const int M = static_cast<int>(w.group_out), K = static_cast<int>(t.merged * kKa);
  PackMergedB(w, t, s.packed_b.data());
  // out [16][M] = a^T b, where a is stored [K][16].
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kPx, M, K, 1.0f, t.cols.data(), kPx, s.packed_b.data(), M, 0.0f,
              full ? full : s.out.data(), M);
}

// ---- (c) libxsmm, one JIT GEMM per tile ----
__attribute__((noinline)) void RunXsmm(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  const libxsmm_blasint M = w.group_out, K = t.merged * kKa, N = kPx;
  PackMergedB(w, t, s.packed_b.data());
  // Column-major: out^T (M x 16, ld M) = B^T (M x K, ld M) * a (K x 16), a stored
  // transposed (16 x K, ld 16). K changes per tile: dispatch (a hash look-up
  // after the first JIT of that shape) is part of every call.
  const float alpha = 1.0f, beta = 0.0f;
  const int flags = LIBXSMM_GEMM_FLAG_TRANS_B;
  const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
  const libxsmm_smmfunction kernel = libxsmm_smmdispatch(M, N, K, &M, &N, &M, &alpha, &beta, &flags, &prefetch);
  if (!kernel) std::abort();
  kernel(s.packed_b.data(), t.cols.data(), full ? full : s.out.data());
}

// ---- (c') oneDNN ----
__attribute__((noinline)) void RunOneDnn(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  const dnnl_dim_t M = w.group_out, K = t.merged * kKa;
  PackMergedB(w, t, s.packed_b.data());
  if (dnnl_sgemm('T', 'N', kPx, M, K, 1.0f, t.cols.data(), kPx, s.packed_b.data(), M, 0.0f, full ? full : s.out.data(),
                 M) != dnnl_success)
    std::abort();
}

// ---- (c'') Eigen ----
__attribute__((noinline)) void RunEigen(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Index M = w.group_out, K = t.merged * kKa;
  PackMergedB(w, t, s.packed_b.data());
  Eigen::Map<const RowMajor> a(t.cols.data(), K, kPx), b(s.packed_b.data(), K, M);
  Eigen::Map<RowMajor> out(full ? full : s.out.data(), kPx, M);
  out.noalias() = a.transpose() * b;
}

// ---- (d) our MergeFilters, libxsmm batch-reduce GEMM as the micro-kernel ----
libxsmm_smmfunction_reducebatch_addr g_brgemm = nullptr;
volatile float g_sink;  // keeps results observable

__attribute__((noinline)) void RunOursBrgemmBlocks(const PackedWeights& w, const Tile& t, Scratch& s, float* full,
                                                   int64_t block_begin, int64_t block_end) {
  const float** group_rows = s.group_rows.data();
  const float** a_ptrs = s.a_ptrs.data();
  const float** b_ptrs = s.b_ptrs.data();
  const int64_t block_stride = w.block_stride;
  const unsigned long long count = static_cast<unsigned long long>(t.merged);
  float* out = s.out_pair.data();  // [16 px][32 outputs], like ours
  for (int64_t b = block_begin; b < block_end; b += 2) {  // M is a multiple of 32 here
    MergePair(w, t, s, b);
    for (int j = 0; j < 2; ++j) {
      // The kernel advances the pointers of b_ptrs in place (libxsmm 1.17, seen
      // here): both lists are written before every call.
      for (int64_t m = 0; m < t.merged; ++m) {
        a_ptrs[m] = group_rows[m] + j * block_stride;
        b_ptrs[m] = t.cols.data() + m * kKa * kPx;
      }
      // Column-major: out^T block (16 o x 16 px, ld 32) = sum_m W_m (16 o x 9, ld 16) * a_m (9 x 16 px), a_m transposed.
      g_brgemm(a_ptrs, b_ptrs, out + j * kBlock, &count);
    }
    if (full) {
      const int64_t M = w.group_out;
      for (int64_t p = 0; p < kPx; ++p)
        for (int64_t o = 0; o < 2 * kBlock; ++o) full[p * M + b * kBlock + o] = out[p * 2 * kBlock + o];
    }
  }
}

void RunOursBrgemm(const PackedWeights& w, const Tile& t, Scratch& s, float* full) {
  RunOursBrgemmBlocks(w, t, s, full, 0, w.blocks);
}

void RunPackOnly(const PackedWeights& w, const Tile& t, Scratch& s, float*) { PackMergedB(w, t, s.packed_b.data()); }

// The order HasteConvCpu uses when a conv group's weights exceed 1 MiB (its
// two-phase mode): for each pair of output blocks, every prepared tile, so that
// the pair's weights stay in cache from tile to tile.
template <void (*kRange)(const PackedWeights&, const Tile&, Scratch&, float*, int64_t, int64_t)>
void PassBlocksOuter(const PackedWeights& w, const std::vector<Tile>& tiles, Scratch& s) {
  for (int64_t b = 0; b < w.blocks; b += 2)
    for (const Tile& t : tiles) kRange(w, t, s, nullptr, b, std::min<int64_t>(b + 2, w.blocks));
}

using TileFn = void (*)(const PackedWeights&, const Tile&, Scratch&, float*);
using PassFn = void (*)(const PackedWeights&, const std::vector<Tile>&, Scratch&);

struct Approach {
  const char* name;
  TileFn run;             // one tile, all blocks; writes out[16][M] to full when not null
  PassFn pass = nullptr;  // all tiles (when null: run on each tile in turn)
  bool checked = true;    // false: produces no output to check
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1) + 0.5)];
}

// out[p][o] in double, straight from the raw weights [M][C][9] and the grouping.
void Reference(const std::vector<float>& wraw, int64_t C, int64_t M, const Tile& t, std::vector<double>& out) {
  out.assign(kPx * M, 0.0);
  std::vector<double> wm(kKa);
  for (int64_t o = 0; o < M; ++o)
    for (int64_t m = 0; m < t.merged; ++m) {
      std::fill(wm.begin(), wm.end(), 0.0);
      for (int32_t i = t.group_start[m]; i < t.group_start[m + 1]; ++i)
        for (int k = 0; k < kKa; ++k) wm[k] += double(t.scales[i]) * wraw[(o * C + t.members[i]) * kKa + k];
      for (int k = 0; k < kKa; ++k)
        for (int p = 0; p < kPx; ++p) out[p * M + o] += double(t.cols[(m * kKa + k) * kPx + p]) * wm[k];
    }
}

}  // namespace

int main(int argc, char** argv) {
  const double budget_s = argc > 1 ? std::atof(argv[1]) : 9.0;  // timed seconds per case, all approaches
  _mm_setcsr(_mm_getcsr() | 0x8040u);  // FTZ | DAZ, as the kernel runs
  openblas_set_num_threads(1);
  libxsmm_init();

  const dnnl_version_t* dv = dnnl_version();
  std::printf("OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
  std::printf("libxsmm: %s, JIT target %s\n", LIBXSMM_VERSION, libxsmm_get_target_arch());
  std::printf("oneDNN: %d.%d.%d (cpu runtime %u: 1 sequential, 2 OpenMP; effective isa 0x%x)\n", dv->major, dv->minor,
              dv->patch, dv->cpu_runtime, static_cast<unsigned>(dnnl_get_effective_cpu_isa()));
  std::printf("Eigen: %d.%d.%d (SIMD: %s)\n", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION,
              Eigen::SimdInstructionSetsInUse());
  std::printf("ours: haste::avx512 (HASTE_VW 16, HASTE_REGS 24), %d pixels x %d blocks per register pass\n",
              ours::kPixelsPerWidePass, ours::kBlocksPerPass);
  std::printf("tiles per case: %d; timed budget per case: %.1f s\n\n", kTiles, budget_s);

  const std::vector<Approach> approaches = {
      {"ours", RunOurs},
      {"openblas", RunOpenBlas},
      {"libxsmm", RunXsmm},
      {"onednn", RunOneDnn},
      {"eigen", RunEigen},
      {"ours+xsmm-brgemm", RunOursBrgemm},
      {"ours 16px x 1 block", RunOursNarrow},
      {"ours, blocks outer", RunOurs, PassBlocksOuter<RunOursBlocks<false>>},
      {"ours 16px x 1 block, blocks outer", RunOursNarrow, PassBlocksOuter<RunOursNarrowBlocks>},
      {"ours+xsmm-brgemm, blocks outer", RunOursBrgemm, PassBlocksOuter<RunOursBrgemmBlocks>},
      {"pack B only", RunPackOnly, nullptr, false},
  };
  const size_t na = approaches.size();

  struct Row {
    int64_t C, merged;
    double ratio;
    std::vector<double> ns, q25, q75;
  };
  std::vector<Row> rows;
  std::mt19937 rng(20240611);
  for (int64_t C : {64, 128, 256, 512})
    for (double ratio : {1.0, 0.7, 0.45}) {
      const int64_t M = C;
      std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
      std::vector<float> wraw(M * C * kKa);
      for (float& v : wraw) v = uni(rng);
      PackedWeights w;
      haste::PackWeights(wraw.data(), M, C, kKa, 1, &w);
      std::vector<Tile> tiles(kTiles);
      for (Tile& t : tiles) {
        MakeGrouping(C, ratio, rng, t);
        t.cols.resize(t.merged * kKa * kPx);
        for (float& v : t.cols) v = uni(rng);
      }
      Scratch s;
      s.member_rows.resize(C);
      s.group_rows.resize(C);
      s.a_ptrs.resize(C);
      s.b_ptrs.resize(C);
      s.merged_w.resize((C + C / 2) * kKa * kBlock + kBlock);  // as Workspace::Reserve
      s.out_pair.resize(2 * kBlock * kPx);
      s.packed_b.resize(C * kKa * M);
      s.out.resize(kPx * M);
      {
        const float alpha = 1.0f, beta = 0.0f;
        const int flags = LIBXSMM_GEMM_FLAG_TRANS_B;
        const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
        const libxsmm_blasint m = kBlock, n = kPx, k = kKa, lda = kBlock, ldb = kPx, ldc = 2 * kBlock;
        g_brgemm = libxsmm_smmdispatch_reducebatch_addr(m, n, k, &lda, &ldb, &ldc, &alpha, &beta, &flags, &prefetch);
        if (!g_brgemm) std::abort();
      }

      // Agreement with a double-precision reference on 3 tiles, before the timing
      // and again after it (state a library keeps between calls shows up there).
      std::printf("C=M=%-4ld C'/C=%.2f (C'=%ld)\n", (long)C, ratio, (long)tiles[0].merged);
      std::vector<std::vector<double>> refs(3);
      for (int ti = 0; ti < 3; ++ti) Reference(wraw, C, M, tiles[ti], refs[ti]);
      auto check = [&](const char* when) {
        std::printf("  check %s: max |diff| / max |reference|:", when);
        std::vector<float> full(kPx * M);
        bool ok = true;
        for (size_t ai = 0; ai < na; ++ai) {
          if (!approaches[ai].checked || approaches[ai].pass) continue;  // a pass computes what run does
          double worst = 0.0;
          for (int ti = 0; ti < 3; ++ti) {
            const std::vector<double>& ref = refs[ti];
            std::fill(full.begin(), full.end(), std::nanf(""));
            approaches[ai].run(w, tiles[ti], s, full.data());
            double diff = 0.0, mag = 0.0;
            for (int64_t i = 0; i < kPx * M; ++i) {
              const double d = std::fabs(full[i] - ref[i]);
              diff = std::isnan(d) ? INFINITY : std::max(diff, d);
              mag = std::max(mag, std::fabs(ref[i]));
            }
            worst = std::max(worst, diff / mag);
          }
          ok &= worst < 1e-4;
          std::printf(" %s %.1e%s", approaches[ai].name, worst, worst < 1e-4 ? "" : " FAIL");
        }
        std::printf("\n");
        return ok;
      };
      if (!check("before")) return 1;

      // Warm-up (also JITs libxsmm's kernels for every C' seen), and the pass time.
      std::vector<double> pass_s(na);
      float sink = 0.0f;
      auto pass = [&](const Approach& a) {
        if (a.pass)
          a.pass(w, tiles, s);
        else
          for (const Tile& t : tiles) a.run(w, t, s, nullptr);
      };
      for (int round = 0; round < 2; ++round)
        for (size_t ai = 0; ai < na; ++ai) {
          const auto t0 = std::chrono::steady_clock::now();
          pass(approaches[ai]);
          pass_s[ai] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          sink += s.out[0] + s.out_pair[0] + s.packed_b[0];
        }
      const double rep_s = std::accumulate(pass_s.begin(), pass_s.end(), 0.0);
      const int reps = static_cast<int>(std::clamp(budget_s / rep_s, 7.0, 1001.0));

      // Timed: every repetition runs each approach over all tiles, approaches in
      // a rotating order; one sample = pass time / tiles.
      std::vector<std::vector<double>> samples(na);
      for (int r = 0; r < reps; ++r)
        for (size_t j = 0; j < na; ++j) {
          const size_t ai = (j + r) % na;
          const auto t0 = std::chrono::steady_clock::now();
          pass(approaches[ai]);
          const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
          samples[ai].push_back(ns / kTiles);
          sink += s.out[0] + s.out_pair[0] + s.packed_b[0];
        }
      Row row{C, tiles[0].merged, ratio, {}, {}, {}};
      for (size_t ai = 0; ai < na; ++ai) {
        row.ns.push_back(Median(samples[ai]));
        row.q25.push_back(Quantile(samples[ai], 0.25));
        row.q75.push_back(Quantile(samples[ai], 0.75));
      }
      g_sink = sink;
      std::printf("  timed: %d repetitions x %d tiles per approach\n", reps, kTiles);
      if (!check("after")) return 1;
      rows.push_back(row);
      std::fflush(stdout);
    }

  std::printf("\nns/tile: median over repetitions of (time for %d tiles)/%d; IQR: interquartile range of those\n"
              "samples, in %% of the median. GFLOP/s counts 2*16*M*C'*9 per tile. vs ours: ns/tile over ours' ns/tile\n"
              "(above 1 is slower than ours).\n\n",
              kTiles, kTiles);
  std::printf("| C=M | C'/C | C' | approach | ns/tile | IQR %% | GFLOP/s | vs ours |\n");
  std::printf("|---:|---:|---:|---|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const double flops = 2.0 * kPx * r.C * r.merged * kKa;
    for (size_t ai = 0; ai < na; ++ai) {
      char gflops[32] = "-";
      if (approaches[ai].checked) std::snprintf(gflops, sizeof gflops, "%.1f", flops / r.ns[ai]);
      std::printf("| %ld | %.2f | %ld | %s | %.0f | %.0f | %s | %.2f |\n", (long)r.C, r.ratio, (long)r.merged,
                  approaches[ai].name, r.ns[ai], 100.0 * (r.q75[ai] - r.q25[ai]) / r.ns[ai], gflops,
                  r.ns[ai] / r.ns[0]);
    }
  }
  return 0;
}
