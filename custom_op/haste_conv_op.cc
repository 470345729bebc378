#include "haste_conv_op.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <exception>

namespace haste {

const OrtApi* g_ort = nullptr;

namespace {

#define HASTE_RETURN_IF_ERROR(expr)  \
  do {                               \
    OrtStatus* status_ = (expr);     \
    if (status_ != nullptr) return status_; \
  } while (0)

// Scratch memory one call may need (WorkspaceBytes); more is refused.
constexpr double kMaxWorkspaceBytes = 4e9;

OrtStatus* Error(const std::string& node, const std::string& message) {
  const std::string text = "HasteConv node '" + node + "': " + message;
  return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, text.c_str());
}

// Reads an optional attribute; a missing one leaves `out` at its default.
template <typename Getter>
bool TryRead(Getter getter) {
  OrtStatus* status = getter();
  if (status == nullptr) return true;
  g_ort->ReleaseStatus(status);
  return false;
}

OrtStatus* ShapeOf(const OrtValue* value, std::vector<int64_t>* shape, ONNXTensorElementDataType* type) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  HASTE_RETURN_IF_ERROR(g_ort->GetTensorTypeAndShape(value, &info));
  size_t rank = 0;
  OrtStatus* status = g_ort->GetDimensionsCount(info, &rank);
  if (!status) {
    shape->assign(rank, 0);
    status = g_ort->GetDimensions(info, shape->data(), rank);
  }
  if (!status && type) status = g_ort->GetTensorElementType(info, type);
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  return status;
}

// Where attributes come from: the kernel's OrtKernelInfo at session creation,
// or the OrtShapeInferContext of output shape inference (C API: the C++ helper
// drops symbolic dimensions). Each getter returns false for a missing
// attribute and then leaves `out` as it was.
class AttrSource {
 public:
  virtual ~AttrSource() = default;
  virtual bool Int(const char* name, int64_t* out) const = 0;
  virtual bool Ints(const char* name, std::vector<int64_t>* out) const = 0;
  virtual bool Floats(const char* name, std::vector<float>* out) const = 0;
  virtual bool String(const char* name, std::string* out) const = 0;
};

class KernelInfoAttrs final : public AttrSource {
 public:
  explicit KernelInfoAttrs(const OrtKernelInfo* info) : info_(info) {}
  bool Int(const char* name, int64_t* out) const override {
    int64_t value = 0;
    if (!TryRead([&] { return g_ort->KernelInfoGetAttribute_int64(info_, name, &value); })) return false;
    *out = value;
    return true;
  }
  bool Ints(const char* name, std::vector<int64_t>* out) const override {
    return Array(name, &OrtApi::KernelInfoGetAttributeArray_int64, out);
  }
  bool Floats(const char* name, std::vector<float>* out) const override {
    return Array(name, &OrtApi::KernelInfoGetAttributeArray_float, out);
  }
  bool String(const char* name, std::string* out) const override {
    size_t size = 0;
    if (!TryRead([&] { return g_ort->KernelInfoGetAttribute_string(info_, name, nullptr, &size); })) return false;
    std::string value(size, '\0');
    if (!TryRead([&] { return g_ort->KernelInfoGetAttribute_string(info_, name, value.data(), &size); })) return false;
    value.resize(std::strlen(value.c_str()));
    *out = value;
    return true;
  }

 private:
  // Through the C API getter for the element type: the size first, then the values.
  template <typename T, typename Getter>
  bool Array(const char* name, Getter get, std::vector<T>* out) const {
    size_t size = 0;
    if (!TryRead([&] { return (g_ort->*get)(info_, name, nullptr, &size); })) return false;
    std::vector<T> values(size);
    if (size && !TryRead([&] { return (g_ort->*get)(info_, name, values.data(), &size); })) return false;
    *out = values;
    return true;
  }
  const OrtKernelInfo* info_;
};

class ShapeInferAttrs final : public AttrSource {
 public:
  explicit ShapeInferAttrs(const OrtShapeInferContext* ctx) : ctx_(ctx) {}
  bool Int(const char* name, int64_t* out) const override {
    const OrtOpAttr* attr = Find(name);
    int64_t value = 0;
    size_t bytes = 0;
    if (!attr || !TryRead([&] { return g_ort->ReadOpAttr(attr, ORT_OP_ATTR_INT, &value, sizeof(value), &bytes); }))
      return false;
    *out = value;
    return true;
  }
  bool Ints(const char* name, std::vector<int64_t>* out) const override { return List(name, ORT_OP_ATTR_INTS, out); }
  bool Floats(const char* name, std::vector<float>* out) const override {
    return List(name, ORT_OP_ATTR_FLOATS, out);
  }
  bool String(const char* name, std::string* out) const override {
    std::string value;
    if (!List(name, ORT_OP_ATTR_STRING, &value)) return false;
    value.resize(std::strlen(value.c_str()));
    *out = value;
    return true;
  }

 private:
  const OrtOpAttr* Find(const char* name) const {
    const OrtOpAttr* attr = nullptr;
    return TryRead([&] { return g_ort->ShapeInferContext_GetAttribute(ctx_, name, &attr); }) ? attr : nullptr;
  }
  // A string or list: its size first (that call fails, but gives the size), then the values.
  template <typename Buffer>
  bool List(const char* name, OrtOpAttrType type, Buffer* out) const {
    const OrtOpAttr* attr = Find(name);
    if (!attr) return false;
    size_t bytes = 0;
    TryRead([&] { return g_ort->ReadOpAttr(attr, type, nullptr, 0, &bytes); });
    Buffer buffer(bytes / sizeof((*out)[0]), {});
    if (bytes && !TryRead([&] { return g_ort->ReadOpAttr(attr, type, &buffer[0], bytes, &bytes); })) return false;
    *out = buffer;
    return true;
  }
  const OrtShapeInferContext* ctx_;
};

// Reads and checks every HasteConv attribute (missing ones keep HasteAttrs'
// defaults): the one reader of shape inference and kernel creation. Returns
// an empty string or the problem.
std::string ReadAttrs(const AttrSource& src, HasteAttrs* a) {
  std::string auto_pad;
  if (src.String("auto_pad", &auto_pad) && !ParseAutoPad(auto_pad, &a->auto_pad))
    return "unknown auto_pad '" + auto_pad + "'";
  src.Ints("kernel_shape", &a->kernel_shape);
  src.Ints("strides", &a->strides);
  src.Ints("dilations", &a->dilations);
  src.Ints("pads", &a->pads);
  src.Ints("tile", &a->tile);
  src.Int("group", &a->group);
  int64_t value = 0;
  if (src.Int("centering", &value)) a->centering = value != 0;
  if (src.Int("magnitude_split", &value)) a->magnitude_split = value != 0;
  std::string merge;
  if (src.String("merge", &merge)) {
    if (merge != "mean" && merge != "project") return "merge must be 'mean' or 'project', got '" + merge + "'";
    a->merge_project = merge == "project";
  }
  std::string activation;
  if (src.String("activation", &activation) && !activation.empty()) {
    std::vector<float> params;
    src.Floats("activation_params", &params);
    if (activation == "Relu") {
      if (!params.empty()) return "activation Relu takes no activation_params";
      a->clamp = true;
      a->out_min = 0.0f;
      a->out_max = std::numeric_limits<float>::infinity();
    } else if (activation == "Clip") {
      if (params.size() != 2)
        return "activation Clip needs activation_params [min, max], got " + std::to_string(params.size()) + " values";
      a->clamp = true;
      a->out_min = params[0];
      a->out_max = params[1];
    } else {
      return "activation must be '', 'Relu' or 'Clip', got '" + activation + "'";
    }
  }
  return ValidateAttrs(*a);
}

struct TypeShape {
  std::vector<int64_t> dims;
  std::vector<std::string> symbols;
};

OrtStatus* InferInputShape(const OrtShapeInferContext* ctx, size_t index, TypeShape* out, bool* known) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  HASTE_RETURN_IF_ERROR(g_ort->ShapeInferContext_GetInputTypeShape(ctx, index, &info));
  *known = info != nullptr;
  if (!info) return nullptr;
  size_t rank = 0;
  OrtStatus* status = g_ort->GetDimensionsCount(info, &rank);
  std::vector<const char*> symbols(rank, nullptr);
  if (!status) {
    out->dims.assign(rank, -1);
    status = g_ort->GetDimensions(info, out->dims.data(), rank);
  }
  if (!status && rank) status = g_ort->GetSymbolicDimensions(info, symbols.data(), rank);
  if (!status)
    for (const char* s : symbols) out->symbols.emplace_back(s ? s : "");
  // Not released: the context owns it (ORT keeps it in a unique_ptr; releasing double-frees).
  return status;
}

OrtStatusPtr InferOutputShape(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  HasteAttrs a;
  const std::string problem = ReadAttrs(ShapeInferAttrs(ctx), &a);
  if (!problem.empty()) return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, ("HasteConv: " + problem).c_str());

  TypeShape x, w;
  bool x_known = false, w_known = false;
  HASTE_RETURN_IF_ERROR(InferInputShape(ctx, 0, &x, &x_known));
  HASTE_RETURN_IF_ERROR(InferInputShape(ctx, 1, &w, &w_known));
  if (!x_known || x.dims.size() != 4) return nullptr;  // nothing to say; checked at run time
  if (w_known && w.dims.size() != 4)
    return g_ort->CreateStatus(ORT_INVALID_ARGUMENT,
                               ("HasteConv: W must have rank 4, got " + ShapeToString(w.dims)).c_str());

  std::vector<int64_t> dims(4, -1);
  std::vector<std::string> symbols(4);
  dims[0] = x.dims[0];
  symbols[0] = x.symbols[0];
  if (w_known) dims[1] = w.dims[0];
  for (int axis = 0; axis < 2; ++axis) {
    int64_t kernel = a.kernel_shape.empty() ? (w_known ? w.dims[2 + axis] : -1) : a.kernel_shape[axis];
    const int64_t size = x.dims[2 + axis];
    if (kernel < 1 || kernel > kMaxAttrValue || size > kMaxDim) continue;  // refused at run time
    if (size >= 0) {
      dims[2 + axis] = OutputSize(a, axis, size, kernel, nullptr);
      continue;
    }
    // A symbolic size keeps its name when the convolution preserves it.
    const int64_t effective = (kernel - 1) * a.dilations[axis] + 1;
    const bool same = a.auto_pad == AutoPad::SameUpper || a.auto_pad == AutoPad::SameLower;
    const int64_t pads = a.auto_pad == AutoPad::Valid ? 0 : a.pads[axis] + a.pads[axis + 2];
    if (a.strides[axis] == 1 && (same || pads == effective - 1)) symbols[2 + axis] = x.symbols[2 + axis];
  }

  OrtTensorTypeAndShapeInfo* info = nullptr;
  HASTE_RETURN_IF_ERROR(g_ort->CreateTensorTypeAndShapeInfo(&info));
  std::vector<const char*> symbol_ptrs;
  // An unknown size needs a fresh symbol: ORT reads -1 with no symbol as a value.
  static std::atomic<uint64_t> fresh{0};
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (dims[i] < 0 && symbols[i].empty()) symbols[i] = "haste_unk__" + std::to_string(fresh++);
    symbol_ptrs.push_back(symbols[i].c_str());
  }
  OrtStatus* status = g_ort->SetTensorElementType(info, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  if (!status) status = g_ort->SetDimensions(info, dims.data(), dims.size());
  if (!status) status = g_ort->SetSymbolicDimensions(info, symbol_ptrs.data(), symbol_ptrs.size());
  if (!status) status = g_ort->ShapeInferContext_SetOutputTypeShape(ctx, 0, info);
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  // The optional stats output keeps no inferred shape: the context cannot tell
  // whether the node has it, and setting a missing output aborts ORT 1.21.
  return status;
}

}  // namespace

std::string ReadKernelAttrs(const OrtKernelInfo* info, HasteAttrs* attrs) {
  return ReadAttrs(KernelInfoAttrs(info), attrs);
}

OrtStatusPtr HasteConvInferOutputShape(const OrtCustomOp* op, OrtShapeInferContext* ctx) {
  return InferOutputShape(op, ctx);
}

HasteConvOp::HasteConvOp() { OrtCustomOp::InferOutputShapeFn = InferOutputShape; }

OrtStatusPtr HasteConvOp::CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
  return NewKernel<HasteConvKernel>(info, kernel, "HasteConv");
}

OrtStatusPtr HasteConvKernel::Init(const OrtKernelInfo* info) {
  size_t size = 0;
  if (TryRead([&] { return g_ort->KernelInfo_GetNodeName(info, nullptr, &size); })) {
    std::string name(size, '\0');
    if (TryRead([&] { return g_ort->KernelInfo_GetNodeName(info, name.data(), &size); }))
      node_name = name.c_str();
  }
  const std::string problem = ReadAttrs(KernelInfoAttrs(info), &attrs);
  if (!problem.empty()) return Error(node_name, problem);

  // Pack constant weights and hyperplanes once, not per run.
  int is_constant = 0;
  const OrtValue* tensor = nullptr;
  if (TryRead([&] { return g_ort->KernelInfoGetConstantInput_tensor(info, 1, &is_constant, &tensor); }) &&
      is_constant && tensor) {
    HASTE_RETURN_IF_ERROR(ShapeOf(tensor, &weight_shape, nullptr));
    if (weight_shape.size() != 4)
      return Error(node_name, "W must have rank 4 [C_out, C_in/group, kH, kW], got shape " + ShapeToString(weight_shape));
    for (int64_t d : weight_shape)
      if (d < 0 || d > kMaxDim) return Error(node_name, "W has an unsupported shape " + ShapeToString(weight_shape));
    if (weight_shape[2] > kMaxAttrValue || weight_shape[3] > kMaxAttrValue)
      return Error(node_name, "W's kernel is larger than " + std::to_string(kMaxAttrValue) + " per side, shape " +
                                  ShapeToString(weight_shape));
    if (weight_shape[0] % attrs.group != 0)
      return Error(node_name, "group " + std::to_string(attrs.group) + " does not divide the " +
                                  std::to_string(weight_shape[0]) + " output channels");
    const float* data = nullptr;
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(tensor), (void**)&data));
    PackWeights(data, weight_shape[0], weight_shape[1], weight_shape[2] * weight_shape[3], attrs.group,
                &packed_weights);
    weights_packed = true;
  }
  if (TryRead([&] { return g_ort->KernelInfoGetConstantInput_tensor(info, 3, &is_constant, &tensor); }) &&
      is_constant && tensor) {
    HASTE_RETURN_IF_ERROR(ShapeOf(tensor, &hyperplane_shape, nullptr));
    if (hyperplane_shape.size() != 2)
      return Error(node_name, "hyperplanes must have rank 2 [L, pH*pW], got shape " + ShapeToString(hyperplane_shape));
    if (hyperplane_shape[0] < 0 || hyperplane_shape[0] > kMaxDim || hyperplane_shape[1] < 0 ||
        hyperplane_shape[1] > kMaxDim)
      return Error(node_name, "hyperplanes has an unsupported shape " + ShapeToString(hyperplane_shape));
    const float* data = nullptr;
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(tensor), (void**)&data));
    const std::string bad = CheckHyperplaneValues(data, hyperplane_shape[0], hyperplane_shape[1]);
    if (!bad.empty()) return Error(node_name, bad);
    PackHyperplanes(data, hyperplane_shape[0], hyperplane_shape[1], &packed_hyperplanes);
    hyperplanes_packed = true;
  }
  return nullptr;
}

OrtStatusPtr HasteConvKernel::ComputeV2(OrtKernelContext* context) {
  try {
    const OrtValue *x = nullptr, *w = nullptr, *b = nullptr, *h = nullptr, *z = nullptr;
    size_t inputs = 0;
    HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInputCount(context, &inputs));
    HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 0, &x));
    HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 1, &w));
    if (inputs > 2) HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 2, &b));
    if (inputs > 3) HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 3, &h));
    if (inputs > 4) HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetInput(context, 4, &z));
    if (!x || !w || !h) return Error(node_name, "inputs X, W and hyperplanes are required");

    std::vector<int64_t> x_shape, w_shape, b_shape, h_shape;
    HASTE_RETURN_IF_ERROR(ShapeOf(x, &x_shape, nullptr));
    HASTE_RETURN_IF_ERROR(ShapeOf(w, &w_shape, nullptr));
    HASTE_RETURN_IF_ERROR(ShapeOf(h, &h_shape, nullptr));
    if (b) HASTE_RETURN_IF_ERROR(ShapeOf(b, &b_shape, nullptr));

    ConvGeometry g;
    const std::string problem = ResolveGeometry(attrs, x_shape, w_shape, b ? &b_shape : nullptr, h_shape, &g);
    if (!problem.empty()) return Error(node_name, problem);

    // Refuse work whose scratch memory could not be allocated sensibly.
    const double scratch = WorkspaceBytes(g);
    if (scratch > kMaxWorkspaceBytes)
      return Error(node_name, "the workspace would need " + std::to_string(static_cast<int64_t>(scratch / 1e6)) +
                                  " MB (limit " + std::to_string(static_cast<int64_t>(kMaxWorkspaceBytes / 1e6)) +
                                  " MB); use a smaller tile or split the layer");

    const float *x_data = nullptr, *w_data = nullptr, *b_data = nullptr, *h_data = nullptr;
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(x), (void**)&x_data));
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(w), (void**)&w_data));
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(h), (void**)&h_data));
    if (b) HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(b), (void**)&b_data));

    const int64_t out_dims[4] = {g.batch, g.out_channels, g.out_h, g.out_w};
    const float* z_data = nullptr;
    if (z) {
      std::vector<int64_t> z_shape;
      HASTE_RETURN_IF_ERROR(ShapeOf(z, &z_shape, nullptr));
      if (z_shape != std::vector<int64_t>(out_dims, out_dims + 4))
        return Error(node_name, "Z must have the output's shape " + ShapeToString(std::vector<int64_t>(out_dims, out_dims + 4)) +
                                    ", got " + ShapeToString(z_shape));
      HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(const_cast<OrtValue*>(z), (void**)&z_data));
    }
    OrtValue* y = nullptr;
    HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetOutput(context, 0, out_dims, 4, &y));
    float* y_data = nullptr;
    HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(y, (void**)&y_data));
    size_t outputs = 0;
    HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetOutputCount(context, &outputs));
    int64_t* stats_data = nullptr;
    if (outputs > 1) {
      const int64_t stats_dims[1] = {HasteStats::kCount};
      OrtValue* stats_value = nullptr;
      HASTE_RETURN_IF_ERROR(g_ort->KernelContext_GetOutput(context, 1, stats_dims, 1, &stats_value));
      if (stats_value) {
        HASTE_RETURN_IF_ERROR(g_ort->GetTensorMutableData(stats_value, (void**)&stats_data));
        std::fill(stats_data, stats_data + HasteStats::kCount, 0);
      }
    }
    if (g.batch == 0 || g.out_channels == 0 || g.out_h == 0 || g.out_w == 0) return nullptr;

    // Weights or hyperplanes that are not constant are packed per run.
    PackedWeights local_w;
    PackedHyperplanes local_h;
    const PackedWeights* pw = &packed_weights;
    const PackedHyperplanes* ph = &packed_hyperplanes;
    if (!weights_packed || weight_shape != w_shape) {
      PackWeights(w_data, g.out_channels, g.group_in, g.kernel_h * g.kernel_w, g.groups, &local_w);
      pw = &local_w;
    }
    if (!hyperplanes_packed || hyperplane_shape != h_shape) {
      const std::string bad = CheckHyperplaneValues(h_data, h_shape[0], h_shape[1]);
      if (!bad.empty()) return Error(node_name, bad);
      PackHyperplanes(h_data, h_shape[0], h_shape[1], &local_h);
      ph = &local_h;
    }

    // The first failure of a parallel loop is the call's result. Later loops
    // read what earlier ones wrote (the padded input, the prepared tiles), so
    // after a failure none runs, and no later status can replace the first.
    // (onnxruntime's ParallelFor fails only on a null context or function, so
    // no test can make it fail; this keeps a failure from being lost or leaked.)
    OrtStatus* parallel_status = nullptr;
    ParallelFor parallel_for = [&](size_t total, void (*fn)(void*, size_t), void* data) {
      if (parallel_status) return;
      parallel_status = g_ort->KernelContext_ParallelFor(context, fn, total, 0, data);
    };
    HasteStats stats;
    HasteConvCpu(g, x_data, *pw, b_data, z_data, *ph, y_data, parallel_for, stats_data ? &stats : nullptr);
    if (stats_data) {
      stats.WriteTo(stats_data);
    }
    return parallel_status;
  } catch (const std::exception& e) {
    return Error(node_name, std::string("run failed: ") + e.what());
  }
}

}  // namespace haste
