// HasteConv for onnxruntime's CUDAExecutionProvider (built with
// HASTE_ONNX_CUDA, cmake/Cuda.cmake). Host C++ only: the kernels are behind
// haste_conv_cuda.cuh. Same attributes, inputs and outputs as the CPU op; all
// inputs and outputs (stats too) are device memory.
#pragma once

#include <string>
#include <vector>

#include "haste_conv_op.h"

namespace haste {

struct HasteConvCudaKernel {
  std::string node_name;
  HasteAttrs attrs;
  // Constant hyperplanes are checked once, at session creation.
  bool hyperplanes_checked = false;
  std::vector<int64_t> hyperplane_shape;

  OrtStatusPtr Init(const OrtKernelInfo* info);
  OrtStatusPtr ComputeV2(OrtKernelContext* context);
};

struct HasteConvCudaOp : Ort::CustomOpBase<HasteConvCudaOp, HasteConvCudaKernel, /*WithStatus=*/true> {
  HasteConvCudaOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return "HasteConv"; }
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  size_t GetInputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == 2 || index == 4 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
    return index == 1 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
};

}  // namespace haste
