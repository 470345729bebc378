// The C entry point of haste_cuda_entry.h: attributes to geometry (as the op
// does), then the same launcher the CUDAExecutionProvider op calls.
#include "haste_cuda_entry.h"

#include <cstring>
#include <string>
#include <vector>

#include "haste_common.h"
#include "haste_conv_cuda.cuh"

namespace {

int Fail(const std::string& message, char* error, size_t size) {
  if (error && size) {
    std::strncpy(error, message.c_str(), size - 1);
    error[size - 1] = '\0';
  }
  return -1;
}

std::string Geometry(const HasteCudaCall* c, haste::ConvGeometry* g) {
  if (!c) return "null call";
  haste::HasteAttrs a;
  const haste::AutoPad modes[4] = {haste::AutoPad::NotSet, haste::AutoPad::Valid, haste::AutoPad::SameUpper,
                                   haste::AutoPad::SameLower};
  if (c->auto_pad < 0 || c->auto_pad > 3) return "auto_pad must be 0..3";
  a.auto_pad = modes[c->auto_pad];
  a.kernel_shape = {c->w_shape[2], c->w_shape[3]};
  a.strides = {c->strides[0], c->strides[1]};
  a.dilations = {c->dilations[0], c->dilations[1]};
  a.pads = {c->pads[0], c->pads[1], c->pads[2], c->pads[3]};
  a.group = c->group;
  a.tile = {c->tile[0], c->tile[1]};
  a.centering = c->centering != 0;
  a.magnitude_split = c->magnitude_split != 0;
  a.merge_project = c->merge_project != 0;
  a.clamp = c->clamp != 0;
  a.out_min = c->out_min;
  a.out_max = c->out_max;
  std::string problem = haste::ValidateAttrs(a);
  if (!problem.empty()) return problem;
  const std::vector<int64_t> x(c->x_shape, c->x_shape + 4), w(c->w_shape, c->w_shape + 4),
      h(c->h_shape, c->h_shape + 2), b = {c->w_shape[0]};
  return haste::ResolveGeometry(a, x, w, c->b ? &b : nullptr, h, g);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int haste_cuda_entry_version(void) {
  return HASTE_CUDA_ENTRY_VERSION;
}

extern "C" __attribute__((visibility("default"))) int haste_cuda_plan(const HasteCudaCall* call, int64_t y_shape[4],
                                                                      size_t* workspace_bytes, char* error,
                                                                      size_t error_size) {
  haste::ConvGeometry g;
  std::string problem = Geometry(call, &g);
  if (!problem.empty()) return Fail(problem, error, error_size);
  const size_t bytes = haste::HasteConvCudaWorkspaceBytes(g, &problem);
  if (!problem.empty()) return Fail(problem, error, error_size);
  if (y_shape) {
    y_shape[0] = g.batch;
    y_shape[1] = g.out_channels;
    y_shape[2] = g.out_h;
    y_shape[3] = g.out_w;
  }
  if (workspace_bytes) *workspace_bytes = bytes;
  return 0;
}

extern "C" __attribute__((visibility("default"))) int haste_cuda_conv(const HasteCudaCall* call, void* workspace,
                                                                      size_t workspace_bytes, void* stream,
                                                                      char* error, size_t error_size) {
  haste::ConvGeometry g;
  const std::string problem = Geometry(call, &g);
  if (!problem.empty()) return Fail(problem, error, error_size);
  haste::CudaConvArgs args;
  args.x = call->x;
  args.w = call->w;
  args.b = call->b;
  args.h = call->h;
  args.z = call->z;
  args.y = call->y;
  args.stats = call->stats;
  const std::string launch = haste::HasteConvCudaLaunch(g, args, workspace, workspace_bytes, stream);
  return launch.empty() ? 0 : Fail(launch, error, error_size);
}

extern "C" __attribute__((visibility("default"))) int haste_cuda_layout(const HasteCudaCall* call, size_t out[5],
                                                                        char* error, size_t error_size) {
  haste::ConvGeometry g;
  const std::string problem = Geometry(call, &g);
  if (!problem.empty()) return Fail(problem, error, error_size);
  haste::HasteConvCudaLayout(g, out);
  return 0;
}
