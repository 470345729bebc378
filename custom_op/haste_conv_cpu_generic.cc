// The tile routine compiled for one instruction set (flags set in CMakeLists.txt).
#define HASTE_ISA generic
#define HASTE_VW 4
#define HASTE_REGS 12
#include "haste_conv_cpu_tile.inc"
