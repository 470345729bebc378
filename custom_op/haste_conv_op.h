// The HasteConv op as ONNX Runtime sees it: attributes, validation, output
// shape inference and the CPU kernel object. ORT types live here and in
// register.cc only; the math is in haste_conv_cpu.* and haste_common.*.
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <exception>
#include <string>
#include <vector>

#include "haste_common.h"
#include "haste_conv_cpu.h"

namespace haste {

// Set by RegisterCustomOps before any op is used.
extern const OrtApi* g_ort;

// Shared with the CUDA op (haste_conv_cuda_op.cc): the attribute reader of
// kernel creation (empty string or the problem) and output shape inference.
std::string ReadKernelAttrs(const OrtKernelInfo* info, HasteAttrs* attrs);
OrtStatusPtr HasteConvInferOutputShape(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// CreateKernelV2 of both ops: a new Kernel, initialised from `info`; an exception
// becomes a status that names the op (`label`).
template <class Kernel>
OrtStatusPtr NewKernel(const OrtKernelInfo* info, void** kernel, const char* label) {
  try {
    auto* k = new Kernel();
    OrtStatus* status = k->Init(info);
    if (status) {
      delete k;
      return status;
    }
    *kernel = k;
    return nullptr;
  } catch (const std::exception& e) {
    return g_ort->CreateStatus(ORT_FAIL, (std::string(label) + ": kernel creation failed: " + e.what()).c_str());
  }
}

struct HasteConvKernel {
  std::string node_name;
  HasteAttrs attrs;
  // Weights and hyperplanes packed at session creation when they are constant.
  bool weights_packed = false, hyperplanes_packed = false;
  std::vector<int64_t> weight_shape, hyperplane_shape;
  PackedWeights packed_weights;
  PackedHyperplanes packed_hyperplanes;

  OrtStatusPtr Init(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct HasteConvOp : Ort::CustomOpBase<HasteConvOp, HasteConvKernel, /*WithStatus=*/true> {
  HasteConvOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return "HasteConv"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  // Inputs X, W, B (optional), hyperplanes, Z (optional: added before the activation).
  size_t GetInputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 || index == 4 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  // Output 1, `stats`, is optional: int64 [kStatsCount] counters of the work done (haste_stats.h).
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
    return index == 1 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace haste
