#include "haste_conv_cuda_op.h"

#include <cstring>
#include <exception>

#include "haste_conv_cuda.cuh"

namespace haste {
namespace {

#define HASTE_CUDA_RETURN_IF_ERROR(expr)    \
  do {                                      \
    OrtStatus* status_ = (expr);            \
    if (status_ != nullptr) return status_; \
  } while (0)

OrtStatus* Error(const std::string& node, const std::string& message) {
  const std::string text = "HasteConv node '" + node + "' (CUDA): " + message;
  return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, text.c_str());
}

bool Ok(OrtStatus* status) {
  if (status == nullptr) return true;
  g_ort->ReleaseStatus(status);
  return false;
}

OrtStatus* ShapeOf(const OrtValue* value, std::vector<int64_t>* shape) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorTypeAndShape(value, &info));
  size_t rank = 0;
  OrtStatus* status = g_ort->GetDimensionsCount(info, &rank);
  if (!status) {
    shape->assign(rank, 0);
    status = g_ort->GetDimensions(info, shape->data(), rank);
  }
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  return status;
}

// Copies the hyperplanes to the host (from wherever they are) and checks their entries.
OrtStatus* CheckHyperplanes(const std::string& node, const OrtValue* h, const std::vector<int64_t>& shape,
                            void* stream) {
  if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0 || shape[0] > kMaxDim || shape[1] > kMaxDim)
    return Error(node, "hyperplanes must have rank 2 [L, pH*pW], got shape " + ShapeToString(shape));
  const float* data = nullptr;
  HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(h), (void**)&data));
  const size_t count = static_cast<size_t>(shape[0] * shape[1]);
  std::vector<float> host(count);
  const OrtMemoryInfo* info = nullptr;
  const char* name = nullptr;
  const bool on_host = Ok(g_ort->GetTensorMemoryInfo(h, &info)) && Ok(g_ort->MemoryInfoGetName(info, &name)) &&
                       name && std::strcmp(name, "Cpu") == 0;
  if (count && on_host) {
    std::memcpy(host.data(), data, count * sizeof(float));
  } else if (count) {
    const std::string problem = HasteCudaCopyToHost(host.data(), data, count * sizeof(float), stream);
    if (!problem.empty()) return Error(node, problem);
  }
  const std::string bad = CheckHyperplaneValues(host.data(), shape[0], shape[1]);
  return bad.empty() ? nullptr : Error(node, bad);
}

}  // namespace

HasteConvCudaOp::HasteConvCudaOp() { OrtCustomOp::InferOutputShapeFn = HasteConvInferOutputShape; }

OrtStatusPtr HasteConvCudaOp::CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
  return NewKernel<HasteConvCudaKernel>(info, kernel, "HasteConv (CUDA)");
}

OrtStatusPtr HasteConvCudaKernel::Init(const OrtKernelInfo* info) {
  size_t size = 0;
  if (Ok(g_ort->KernelInfo_GetNodeName(info, nullptr, &size))) {
    std::string name(size, '\0');
    if (Ok(g_ort->KernelInfo_GetNodeName(info, name.data(), &size))) node_name = name.c_str();
  }
  const std::string problem = ReadKernelAttrs(info, &attrs);
  if (!problem.empty()) return Error(node_name, problem);
  // Constant hyperplanes (on the host or already on the device) are checked now,
  // so that runs need no host synchronisation.
  int is_constant = 0;
  const OrtValue* tensor = nullptr;
  if (Ok(g_ort->KernelInfoGetConstantInput_tensor(info, 3, &is_constant, &tensor)) && is_constant && tensor) {
    HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(tensor, &hyperplane_shape));
    HASTE_CUDA_RETURN_IF_ERROR(CheckHyperplanes(node_name, tensor, hyperplane_shape, nullptr));
    hyperplanes_checked = true;
  }
  return nullptr;
}

OrtStatusPtr HasteConvCudaKernel::ComputeV2(OrtKernelContext* context) {
  try {
    const OrtValue *x = nullptr, *w = nullptr, *b = nullptr, *h = nullptr, *z = nullptr;
    size_t inputs = 0;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInputCount(context, &inputs));
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 0, &x));
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 1, &w));
    if (inputs > 2) HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 2, &b));
    if (inputs > 3) HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 3, &h));
    if (inputs > 4) HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 4, &z));
    if (!x || !w || !h) return Error(node_name, "inputs X, W and hyperplanes are required");

    std::vector<int64_t> x_shape, w_shape, b_shape, h_shape;
    HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(x, &x_shape));
    HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(w, &w_shape));
    HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(h, &h_shape));
    if (b) HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(b, &b_shape));
    ConvGeometry g;
    const std::string problem = ResolveGeometry(attrs, x_shape, w_shape, b ? &b_shape : nullptr, h_shape, &g);
    if (!problem.empty()) return Error(node_name, problem);

    void* stream = nullptr;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetGPUComputeStream(context, &stream));
    // Hyperplanes fed at run time: checked here, the one case that waits for the stream.
    if (!hyperplanes_checked || h_shape != hyperplane_shape)
      HASTE_CUDA_RETURN_IF_ERROR(CheckHyperplanes(node_name, h, h_shape, stream));

    CudaConvArgs args;
    const float* data = nullptr;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(x), (void**)&data));
    args.x = data;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(w), (void**)&data));
    args.w = data;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(h), (void**)&data));
    args.h = data;
    if (b) {
      HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(b), (void**)&data));
      args.b = data;
    }
    const std::vector<int64_t> out_dims = {g.batch, g.out_channels, g.out_h, g.out_w};
    if (z) {
      std::vector<int64_t> z_shape;
      HASTE_CUDA_RETURN_IF_ERROR(ShapeOf(z, &z_shape));
      if (z_shape != out_dims)
        return Error(node_name, "Z must have the output's shape " + ShapeToString(out_dims) + ", got " +
                                    ShapeToString(z_shape));
      HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(z), (void**)&data));
      args.z = data;
    }
    OrtValue* y = nullptr;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetOutput(context, 0, out_dims.data(), 4, &y));
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(y, (void**)&args.y));
    size_t outputs = 0;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetOutputCount(context, &outputs));
    if (outputs > 1) {
      const int64_t stats_dims[1] = {HasteStats::kCount};
      OrtValue* stats = nullptr;
      HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetOutput(context, 1, stats_dims, 1, &stats));
      if (stats) HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMutableData(stats, (void**)&args.stats));
    }

    std::string unsupported;
    const size_t bytes = HasteConvCudaWorkspaceBytes(g, &unsupported);
    if (!unsupported.empty()) return Error(node_name, unsupported);
    // Scratch memory from onnxruntime's allocator for X's device (its arena:
    // no cudaMalloc per run). Freed right after the launches: the arena hands
    // it out again only to work queued behind them on the same stream.
    const OrtMemoryInfo* memory = nullptr;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->GetTensorMemoryInfo(x, &memory));
    OrtAllocator* allocator = nullptr;
    HASTE_CUDA_RETURN_IF_ERROR(g_ort->KernelContext_GetAllocator(context, memory, &allocator));
    void* workspace = bytes ? allocator->Alloc(allocator, bytes) : nullptr;
    if (bytes && !workspace) {
      g_ort->ReleaseAllocator(allocator);
      return Error(node_name, "could not allocate " + std::to_string(bytes) + " bytes of device workspace");
    }
    const std::string launch = HasteConvCudaLaunch(g, args, workspace, bytes, stream);
    if (workspace) allocator->Free(allocator, workspace);
    g_ort->ReleaseAllocator(allocator);
    return launch.empty() ? nullptr : Error(node_name, launch);
  } catch (const std::exception& e) {
    return Error(node_name, std::string("run failed: ") + e.what());
  }
}

}  // namespace haste
