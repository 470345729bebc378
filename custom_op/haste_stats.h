// The counters of HasteConv's optional `stats` output (docs/op_spec.md): the
// one C++ list of their names and order. haste_onnx/op/stats.py's STATS_FIELDS
// is the Python list; tests/test_stats_layout.py checks that both agree.
#pragma once

#include <cstdint>

// X(name, meaning), in the order of the output tensor (index 0 first).
// MACs count only outputs inside the image; ops are additions or multiplies.
#define HASTE_STATS_FIELDS(X)                                   \
  X(dense_macs, "what Conv would do")                           \
  X(haste_macs, "the convolution of merged channels")           \
  X(centering_ops, "channel means and subtraction")             \
  X(hashing_ops, "ternary projections")                         \
  X(merge_ops, "merged inputs and filters")                     \
  X(merged_channels, "sum over tiles of C'")                    \
  X(channels, "sum over tiles of C_in/group")

namespace haste {

// The field's index in `stats`.
enum StatsField : int {
#define HASTE_STATS_ENUM(name, meaning) kStats_##name,
  HASTE_STATS_FIELDS(HASTE_STATS_ENUM)
#undef HASTE_STATS_ENUM
  kStatsFieldEnd
};

// The length of `stats`.
constexpr int kStatsCount = 7;
static_assert(kStatsCount == kStatsFieldEnd, "kStatsCount must equal the number of HASTE_STATS_FIELDS");

// Field names by index.
constexpr const char* kStatsNames[kStatsCount] = {
#define HASTE_STATS_NAME(name, meaning) #name,
    HASTE_STATS_FIELDS(HASTE_STATS_NAME)
#undef HASTE_STATS_NAME
};

// Work counted by the kernel on the real inputs, one member per field.
struct HasteStats {
#define HASTE_STATS_MEMBER(name, meaning) int64_t name = 0;
  HASTE_STATS_FIELDS(HASTE_STATS_MEMBER)
#undef HASTE_STATS_MEMBER
  static constexpr int kCount = kStatsCount;

  void Add(const HasteStats& o) {
#define HASTE_STATS_ADD(name, meaning) name += o.name;
    HASTE_STATS_FIELDS(HASTE_STATS_ADD)
#undef HASTE_STATS_ADD
  }
  // Writes the kCount counters in output order.
  void WriteTo(int64_t* out) const {
#define HASTE_STATS_WRITE(name, meaning) out[kStats_##name] = name;
    HASTE_STATS_FIELDS(HASTE_STATS_WRITE)
#undef HASTE_STATS_WRITE
  }
};

}  // namespace haste
