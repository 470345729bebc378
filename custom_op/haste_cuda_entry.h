/* A plain C entry point to the CUDA HasteConv kernel, exported by the op
 * library when it is built with CUDA (HASTE_ONNX_CUDA, cmake/Cuda.cmake), for
 * callers without onnxruntime-gpu (PyTorch or CuPy through ctypes:
 * tests/cuda_entry.py). All pointers are device memory; nothing is allocated
 * and nothing waits: the call only enqueues work on `stream`. Hyperplane
 * entries are not checked here (they must be -1, 0 or +1). Returns 0, or -1
 * with a message in `error`. */
#ifndef HASTE_CUDA_ENTRY_H_
#define HASTE_CUDA_ENTRY_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HASTE_CUDA_ENTRY_VERSION 1

typedef struct HasteCudaCall {
  int64_t x_shape[4];   /* N, C_in, H, W */
  int64_t w_shape[4];   /* C_out, C_in/group, kH, kW */
  int64_t h_shape[2];   /* L, pH*pW */
  int64_t pads[4];      /* top, left, bottom, right (auto_pad NOTSET) */
  int64_t strides[2];
  int64_t dilations[2];
  int64_t tile[2];
  int64_t group;
  int32_t auto_pad;     /* 0 NOTSET, 1 VALID, 2 SAME_UPPER, 3 SAME_LOWER */
  int32_t centering;
  int32_t magnitude_split;
  int32_t merge_project;
  int32_t clamp;        /* the fused activation: outputs clamped to [out_min, out_max] */
  float out_min, out_max;
  const float* x;
  const float* w;
  const float* b;       /* may be null */
  const float* h;
  const float* z;       /* may be null: residual added before the activation */
  float* y;
  int64_t* stats;       /* may be null: int64 [7] on the device */
} HasteCudaCall;

/* The output shape and the device workspace (bytes) the call needs. */
int haste_cuda_plan(const HasteCudaCall* call, int64_t y_shape[4], size_t* workspace_bytes, char* error,
                    size_t error_size);

/* Enqueues HasteConv on `stream` (a cudaStream_t; null for the default stream). */
int haste_cuda_conv(const HasteCudaCall* call, void* workspace, size_t workspace_bytes, void* stream, char* error,
                    size_t error_size);

/* For tests: out = {tile_bytes, codes_offset, count_offset, tasks_per_chunk, tasks}. After a call whose
 * tasks all fit one chunk, tile task t's uint64 hash codes [C_in/group] are at workspace + t * tile_bytes +
 * codes_offset and its int32 merged-channel count at + count_offset; t = ((n * group + g) * tiles_y + ty) *
 * tiles_x + tx. */
int haste_cuda_layout(const HasteCudaCall* call, size_t out[5], char* error, size_t error_size);

/* HASTE_CUDA_ENTRY_VERSION of the library, so that callers can check the struct. */
int haste_cuda_entry_version(void);

#ifdef __cplusplus
}
#endif

#endif /* HASTE_CUDA_ENTRY_H_ */
