// HasteConv on CUDA behind a plain C++ interface: no ONNX Runtime types and no
// CUDA headers here, so host C++ (the op class, the C entry point) includes it
// and nvcc compiles haste_conv_cuda.cu against it. Steps follow docs/op_spec.md;
// steps 3-4b are computed in the float32 order the spec fixes, with subnormals
// flushed after every operation, so the groups equal the CPU kernel's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "haste_common.h"

namespace haste {

// Device pointers of one call. b, z and stats may be null; stats is int64 [7]
// on the device (haste_stats.h order), zeroed and filled by the call.
struct CudaConvArgs {
  const float* x = nullptr;  // [N, C_in, H, W]
  const float* w = nullptr;  // [C_out, C_in/group, kH, kW], as in the model
  const float* b = nullptr;  // [C_out] or null
  const float* h = nullptr;  // [L, pH*pW], entries -1, 0, +1 (checked by the caller)
  const float* z = nullptr;  // Y's shape or null
  float* y = nullptr;        // [N, C_out, H_out, W_out]
  int64_t* stats = nullptr;  // int64 [7] or null
};

// Bytes of device scratch memory a call with this geometry needs (the work is
// cut into chunks of tiles so that this stays near 256 MiB for large inputs).
// Returns 0 and sets *error for a geometry the CUDA kernel does not support.
size_t HasteConvCudaWorkspaceBytes(const ConvGeometry& g, std::string* error);

// Where tile task t's hash codes (uint64 [C_in/group]) and merged-channel
// count (int32) lie in the workspace after a call whose tasks all fit one
// chunk: out = {tile_bytes, codes_offset, count_offset, tasks_per_chunk, tasks};
// task t = ((n * groups + group) * tiles_y + tile_y) * tiles_x + tile_x. For tests.
void HasteConvCudaLayout(const ConvGeometry& g, size_t out[5]);

// Enqueues the whole call on `stream` (a cudaStream_t; null: the default
// stream) with no host synchronisation. `workspace` holds at least
// HasteConvCudaWorkspaceBytes(g) bytes of device memory. Returns an empty
// string, or the launch error.
std::string HasteConvCudaLaunch(const ConvGeometry& g, const CudaConvArgs& args, void* workspace,
                                size_t workspace_bytes, void* stream);

// Copies `bytes` from device (or host) memory to the host and waits for it:
// used only at session creation, and for hyperplanes fed as a run-time input,
// which must be checked on the host (docs/op_spec.md refuses bad entries).
std::string HasteCudaCopyToHost(void* dst, const void* src, size_t bytes, void* stream);

}  // namespace haste
