#include "haste_common.h"

#include <sstream>

namespace haste {

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

bool ParseAutoPad(const std::string& s, AutoPad* out) {
  if (s == "NOTSET" || s.empty()) *out = AutoPad::NotSet;
  else if (s == "VALID") *out = AutoPad::Valid;
  else if (s == "SAME_UPPER") *out = AutoPad::SameUpper;
  else if (s == "SAME_LOWER") *out = AutoPad::SameLower;
  else return false;
  return true;
}

std::string ValidateAttrs(const HasteAttrs& a) {
  auto positive2 = [](const std::vector<int64_t>& v, const char* name) -> std::string {
    if (v.size() != 2) return std::string(name) + " must have 2 values, got " + ShapeToString(v);
    if (v[0] < 1 || v[1] < 1) return std::string(name) + " must be positive, got " + ShapeToString(v);
    return "";
  };
  std::string e;
  if (!a.kernel_shape.empty() && !(e = positive2(a.kernel_shape, "kernel_shape")).empty()) return e;
  if (!(e = positive2(a.strides, "strides")).empty()) return e;
  if (!(e = positive2(a.dilations, "dilations")).empty()) return e;
  if (!(e = positive2(a.tile, "tile")).empty()) return e;
  if (a.tile[0] > 256 || a.tile[1] > 256) return "tile must be at most 256 per side, got " + ShapeToString(a.tile);
  if (a.pads.size() != 4) return "pads must have 4 values, got " + ShapeToString(a.pads);
  for (int64_t p : a.pads)
    if (p < 0) return "pads must not be negative, got " + ShapeToString(a.pads);
  if (a.group < 1) return "group must be positive, got " + std::to_string(a.group);
  return "";
}

int64_t OutputSize(const HasteAttrs& a, int axis, int64_t in_size, int64_t kernel, int64_t* pad_begin) {
  const int64_t stride = a.strides[axis];
  const int64_t effective = (kernel - 1) * a.dilations[axis] + 1;
  if (a.auto_pad == AutoPad::SameUpper || a.auto_pad == AutoPad::SameLower) {
    if (in_size < 0) return -1;
    const int64_t out = (in_size + stride - 1) / stride;
    int64_t total = (out - 1) * stride + effective - in_size;
    if (total < 0) total = 0;
    if (pad_begin) *pad_begin = a.auto_pad == AutoPad::SameUpper ? total / 2 : total - total / 2;
    return out;
  }
  const int64_t pb = a.auto_pad == AutoPad::Valid ? 0 : a.pads[axis];
  const int64_t pe = a.auto_pad == AutoPad::Valid ? 0 : a.pads[axis + 2];
  if (pad_begin) *pad_begin = pb;
  if (in_size < 0) return -1;
  const int64_t span = in_size + pb + pe - effective;
  if (span < 0) return 0;  // flagged by ResolveGeometry
  return span / stride + 1;
}

std::string ResolveGeometry(const HasteAttrs& a, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                            const std::vector<int64_t>* b, const std::vector<int64_t>& hyper, ConvGeometry* g) {
  if (x.size() != 4) return "X must have rank 4 [N, C, H, W], got shape " + ShapeToString(x);
  if (w.size() != 4) return "W must have rank 4 [C_out, C_in/group, kH, kW], got shape " + ShapeToString(w);
  const int64_t groups = a.group;
  if (x[1] % groups != 0)
    return "group " + std::to_string(groups) + " does not divide the " + std::to_string(x[1]) + " input channels";
  if (w[0] % groups != 0)
    return "group " + std::to_string(groups) + " does not divide the " + std::to_string(w[0]) + " output channels";
  if (w[1] != x[1] / groups)
    return "W expects " + std::to_string(w[1] * groups) + " input channels (shape " + ShapeToString(w) +
           ", group " + std::to_string(groups) + "), X has " + std::to_string(x[1]) + " (shape " + ShapeToString(x) + ")";
  if (w[2] < 1 || w[3] < 1) return "W has an empty kernel, shape " + ShapeToString(w);
  if (!a.kernel_shape.empty() && (a.kernel_shape[0] != w[2] || a.kernel_shape[1] != w[3]))
    return "kernel_shape " + ShapeToString(a.kernel_shape) + " does not match W's shape " + ShapeToString(w);
  if (b && (b->size() != 1 || (*b)[0] != w[0]))
    return "B must have shape [" + std::to_string(w[0]) + "], got " + ShapeToString(*b);

  g->batch = x[0];
  g->in_channels = x[1];
  g->in_h = x[2];
  g->in_w = x[3];
  g->out_channels = w[0];
  g->groups = groups;
  g->group_in = w[1];
  g->group_out = w[0] / groups;
  g->kernel_h = w[2];
  g->kernel_w = w[3];
  g->stride_h = a.strides[0];
  g->stride_w = a.strides[1];
  g->dilation_h = a.dilations[0];
  g->dilation_w = a.dilations[1];
  g->out_h = OutputSize(a, 0, x[2], w[2], &g->pad_top);
  g->out_w = OutputSize(a, 1, x[3], w[3], &g->pad_left);
  const int64_t eff_h = (w[2] - 1) * a.dilations[0] + 1, eff_w = (w[3] - 1) * a.dilations[1] + 1;
  if (a.auto_pad != AutoPad::SameUpper && a.auto_pad != AutoPad::SameLower) {
    const int64_t pb_h = a.auto_pad == AutoPad::Valid ? 0 : a.pads[0] + a.pads[2];
    const int64_t pb_w = a.auto_pad == AutoPad::Valid ? 0 : a.pads[1] + a.pads[3];
    if (x[2] + pb_h < eff_h || x[3] + pb_w < eff_w)
      return "the padded input " + ShapeToString(x) + " is smaller than the dilated kernel [" + std::to_string(eff_h) +
             ", " + std::to_string(eff_w) + "]";
  }
  g->tile_h = a.tile[0];
  g->tile_w = a.tile[1];
  g->patch_h = (a.tile[0] - 1) * a.strides[0] + eff_h;
  g->patch_w = (a.tile[1] - 1) * a.strides[1] + eff_w;
  g->tiles_y = (g->out_h + g->tile_h - 1) / g->tile_h;
  g->tiles_x = (g->out_w + g->tile_w - 1) / g->tile_w;
  g->centering = a.centering;
  if (hyper.size() != 2 || hyper[1] != g->patch_size() || hyper[0] < 1 || hyper[0] > kMaxHyperplanes)
    return "hyperplanes must have shape [L, " + std::to_string(g->patch_size()) + "] with 1 <= L <= " +
           std::to_string(kMaxHyperplanes) + " (patch " + std::to_string(g->patch_h) + "x" + std::to_string(g->patch_w) +
           "), got " + ShapeToString(hyper);
  g->hyperplanes = hyper[0];
  return "";
}

}  // namespace haste
