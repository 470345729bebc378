// The tile routine compiled for aarch64's Advanced SIMD (NEON): 128-bit vectors
// of 4 floats, and a register tile sized for its 32 vector registers (24 for
// accumulators, against 12 in the generic variant). Built only for aarch64
// (CMakeLists.txt); chosen at run time when the CPU reports ASIMD.
#if !defined(__aarch64__)
#error "haste_conv_cpu_neon.cc is for aarch64 only"
#endif
#define HASTE_ISA neon
#define HASTE_VW 4
#define HASTE_REGS 24
#include "haste_conv_cpu_tile.inc"
