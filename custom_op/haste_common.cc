#include "haste_common.h"

#include <cmath>
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

std::string CheckHyperplaneValues(const float* h, int64_t count, int64_t dim) {
  for (int64_t i = 0; i < count * dim; ++i) {
    const float v = h[i];
    if (v != 0.0f && v != 1.0f && v != -1.0f) {
      std::ostringstream os;
      os << "hyperplane entries must be -1, 0 or +1, got " << v << " at [" << i / dim << ", " << i % dim << "]";
      return os.str();
    }
  }
  return "";
}

std::string ValidateAttrs(const HasteAttrs& a) {
  auto positive2 = [](const std::vector<int64_t>& v, const char* name) -> std::string {
    if (v.size() != 2) return std::string(name) + " must have 2 values, got " + ShapeToString(v);
    if (v[0] < 1 || v[1] < 1) return std::string(name) + " must be positive, got " + ShapeToString(v);
    if (v[0] > kMaxAttrValue || v[1] > kMaxAttrValue)
      return std::string(name) + " must be at most " + std::to_string(kMaxAttrValue) + ", got " + ShapeToString(v);
    return "";
  };
  std::string e;
  if (!a.kernel_shape.empty() && !(e = positive2(a.kernel_shape, "kernel_shape")).empty()) return e;
  if (!(e = positive2(a.strides, "strides")).empty()) return e;
  if (!(e = positive2(a.dilations, "dilations")).empty()) return e;
  if (!(e = positive2(a.tile, "tile")).empty()) return e;
  if (a.tile[0] > 256 || a.tile[1] > 256) return "tile must be at most 256 per side, got " + ShapeToString(a.tile);
  if (a.pads.size() != 4) return "pads must have 4 values, got " + ShapeToString(a.pads);
  for (int64_t p : a.pads) {
    if (p < 0) return "pads must not be negative, got " + ShapeToString(a.pads);
    if (p > kMaxAttrValue) return "pads must be at most " + std::to_string(kMaxAttrValue) + ", got " + ShapeToString(a.pads);
  }
  if (a.group < 1) return "group must be positive, got " + std::to_string(a.group);
  if (a.clamp && !(a.out_min <= a.out_max))
    return "Clip's activation_params must be [min, max] with min <= max, got [" + std::to_string(a.out_min) + ", " +
           std::to_string(a.out_max) + "]";
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
  // A tensor with a zero dimension may have any other dimension: bound them all
  // before any arithmetic so that nothing below can overflow.
  const std::pair<const char*, const std::vector<int64_t>*> named[] = {{"X", &x}, {"W", &w}, {"B", b}, {"hyperplanes", &hyper}};
  for (const auto& [name, shape] : named) {
    if (!shape) continue;
    for (int64_t d : *shape)
      if (d < 0 || d > kMaxDim)
        return std::string(name) + " has an unsupported dimension in shape " + ShapeToString(*shape) +
               " (each must be at most " + std::to_string(kMaxDim) + ")";
  }
  if (w[2] > kMaxAttrValue || w[3] > kMaxAttrValue)
    return "W's kernel is larger than " + std::to_string(kMaxAttrValue) + " per side, shape " + ShapeToString(w);
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
  if (g->patch_h > kMaxPatchSize || g->patch_w > kMaxPatchSize || g->patch_h * g->patch_w > kMaxPatchSize)
    return "the input patch of a tile, " + std::to_string(g->patch_h) + "x" + std::to_string(g->patch_w) +
           ", is too large (at most " + std::to_string(kMaxPatchSize) + " values)";
  const long double out_elements =
      static_cast<long double>(g->batch) * g->out_channels * static_cast<long double>(g->out_h) * g->out_w;
  if (out_elements * 4 > static_cast<long double>(INT64_MAX) / 2)
    return "the output [" + std::to_string(g->batch) + ", " + std::to_string(g->out_channels) + ", " +
           std::to_string(g->out_h) + ", " + std::to_string(g->out_w) + "] is too large to allocate";
  g->tiles_y = (g->out_h + g->tile_h - 1) / g->tile_h;
  g->tiles_x = (g->out_w + g->tile_w - 1) / g->tile_w;
  g->centering = a.centering;
  g->magnitude_split = a.magnitude_split;
  g->merge_project = a.merge_project;
  g->clamp = a.clamp;
  g->out_min = a.out_min;
  g->out_max = a.out_max;
  if (hyper.size() != 2 || hyper[1] != g->patch_size() || hyper[0] < 1 || hyper[0] > kMaxHyperplanes)
    return "hyperplanes must have shape [L, " + std::to_string(g->patch_size()) + "] with 1 <= L <= " +
           std::to_string(kMaxHyperplanes) + " (patch " + std::to_string(g->patch_h) + "x" + std::to_string(g->patch_w) +
           "), got " + ShapeToString(hyper);
  g->hyperplanes = hyper[0];
  return "";
}

double WorkspaceBytes(const ConvGeometry& g) {
  const double c = static_cast<double>(g.group_in), d = static_cast<double>(g.patch_size());
  const double ka = static_cast<double>(g.kernel_h) * static_cast<double>(g.kernel_w);
  const double np = std::ceil(static_cast<double>(g.tile_h * g.tile_w) / 16.0) * 16.0;  // widest vectors
  const double halves = std::floor(c / 2) + 1;
  // Per thread (haste_conv_cpu.cc, Workspace::Reserve): patch, mean, the centred patch transposed, merged
  // inputs and filters, im2col, one output block, and small integer tables.
  const double c16 = std::ceil(c / 16.0) * 16.0;
  const double floats = c * d + d + (c16 * d + 16) + halves * d + (3 * c + halves) * ka * 16 + 48 + c * ka * np + 64 * np;
  double bytes = floats * 4 + c * 64 + 256;
  // A call with few tiles keeps every tile's im2col between its two phases.
  const double tiles = static_cast<double>(g.batch) * g.groups * static_cast<double>(g.tiles_y) * g.tiles_x;
  if (tiles < 16) bytes += tiles * (c * ka * np * 4 + c * 8 + 8);
  return bytes;
}

}  // namespace haste
