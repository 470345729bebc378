// The tile routine compiled for one instruction set (flags set in CMakeLists.txt).
#define HASTE_ISA avx512
#define HASTE_VW 16
#define HASTE_REGS 24
#include "haste_conv_cpu_tile.inc"
