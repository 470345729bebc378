#include "haste_level_op.h"

#include <cmath>
#include <cstdio>

#include "haste_conv_op.h"  // g_ort, NewKernel

namespace haste {

namespace {

OrtStatus* Error(const std::string& node, const std::string& message) {
  const std::string text = "HasteLevel node '" + node + "': " + message;
  return g_ort->CreateStatus(ORT_INVALID_ARGUMENT, text.c_str());
}

std::string FloatText(float value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[32];
  std::snprintf(text, sizeof(text), "%.9g", static_cast<double>(value));
  return text;
}

}  // namespace

int64_t ChooseLevel(float level, const std::vector<float>& levels, std::string* problem) {
  // NaN fails both comparisons, so it is refused here too.
  if (!(level >= 0.0f && level <= 1.0f)) {
    *problem = "haste_level must be a number in [0, 1], got " + FloatText(level);
    return -1;
  }
  int64_t chosen = 0;
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i] <= level) chosen = static_cast<int64_t>(i);
  return chosen;
}

OrtStatusPtr HasteLevelOp::CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
  return NewKernel<HasteLevelKernel>(info, kernel, "HasteLevel");
}

OrtStatusPtr HasteLevelKernel::Init(const OrtKernelInfo* info) {
  size_t size = 0;
  if (OrtStatus* s = g_ort->KernelInfo_GetNodeName(info, nullptr, &size)) {
    g_ort->ReleaseStatus(s);
  } else {
    std::string name(size, '\0');
    if (OrtStatus* s2 = g_ort->KernelInfo_GetNodeName(info, name.data(), &size)) g_ort->ReleaseStatus(s2);
    else node_name = name.c_str();
  }
  size_t count = 0;
  if (OrtStatus* s = g_ort->KernelInfoGetAttributeArray_float(info, "levels", nullptr, &count)) {
    g_ort->ReleaseStatus(s);
    return Error(node_name, "the attribute 'levels' is required");
  }
  levels.assign(count, 0.0f);
  if (count) {
    if (OrtStatus* s = g_ort->KernelInfoGetAttributeArray_float(info, "levels", levels.data(), &count)) return s;
  }
  if (levels.empty() || levels[0] != 0.0f)
    return Error(node_name, "'levels' must start at 0");
  for (size_t i = 1; i < levels.size(); ++i)
    if (!(levels[i] > levels[i - 1] && levels[i] <= 1.0f))
      return Error(node_name, "'levels' must rise strictly and stay in [0, 1]");
  return nullptr;
}

OrtStatusPtr HasteLevelKernel::ComputeV2(OrtKernelContext* context) {
  const OrtValue* input = nullptr;
  if (OrtStatus* s = g_ort->KernelContext_GetInput(context, 0, &input)) return s;
  if (!input) return Error(node_name, "the level input is required");
  OrtTensorTypeAndShapeInfo* info = nullptr;
  if (OrtStatus* s = g_ort->GetTensorTypeAndShape(input, &info)) return s;
  size_t elements = 0;
  OrtStatus* status = g_ort->GetTensorShapeElementCount(info, &elements);
  g_ort->ReleaseTensorTypeAndShapeInfo(info);
  if (status) return status;
  if (elements != 1)
    return Error(node_name, "haste_level must be one number (a scalar), got " + std::to_string(elements) + " values");
  const float* data = nullptr;
  if (OrtStatus* s = g_ort->GetTensorMutableData(const_cast<OrtValue*>(input), (void**)&data)) return s;
  std::string problem;
  const int64_t index = ChooseLevel(data[0], levels, &problem);
  if (index < 0) return Error(node_name, problem);
  OrtValue* output = nullptr;
  if (OrtStatus* s = g_ort->KernelContext_GetOutput(context, 0, nullptr, 0, &output)) return s;
  int64_t* out = nullptr;
  if (OrtStatus* s = g_ort->GetTensorMutableData(output, (void**)&out)) return s;
  out[0] = index;
  return nullptr;
}

}  // namespace haste
