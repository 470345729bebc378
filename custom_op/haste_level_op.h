// haste::HasteLevel: the level input of a steerable model (docs/steerable.md)
// checked and turned into the index of the branch that runs. The If nodes of
// the graph choose on that index; this op is only what can fail a Run with a
// clear message when the level is NaN or outside [0, 1].
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <string>
#include <vector>

namespace haste {

// The index of the largest entry of `levels` (ascending, first 0) at most
// `level`; -1 and `problem` set when the level is not a number in [0, 1].
int64_t ChooseLevel(float level, const std::vector<float>& levels, std::string* problem);

struct HasteLevelKernel {
  std::string node_name;
  std::vector<float> levels;

  OrtStatusPtr Init(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct HasteLevelOp : Ort::CustomOpBase<HasteLevelOp, HasteLevelKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return "HasteLevel"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  // Input: the level, a float32 tensor of one element. Output: int64 scalar, the level's index.
  size_t GetInputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64; }
  // Read on the CPU even when the session's other nodes run on a GPU.
  OrtMemType GetInputMemoryType(size_t) const { return OrtMemTypeCPUInput; }
};

}  // namespace haste
