// Tile geometry and attribute checks of HasteConv, shared by the CPU kernel
// and the op class. No ONNX Runtime types here (docs/op_spec.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace haste {

constexpr int kMaxHyperplanes = 64;

// Bounds that keep every size computation far from int64 overflow. Nothing a
// real model needs comes near them; larger values are refused with a message.
constexpr int64_t kMaxAttrValue = int64_t{1} << 24;  // strides, dilations, pads, kernel sides
constexpr int64_t kMaxDim = int64_t{1} << 40;        // any dimension of X, W, B or the hyperplanes
constexpr int64_t kMaxPatchSize = int64_t{1} << 31;  // pH*pW, the length of a hashed vector

enum class AutoPad { NotSet, Valid, SameUpper, SameLower };

// The node's attributes, as written in the model.
struct HasteAttrs {
  AutoPad auto_pad = AutoPad::NotSet;
  std::vector<int64_t> kernel_shape;  // empty: taken from W
  std::vector<int64_t> strides{1, 1};
  std::vector<int64_t> dilations{1, 1};
  std::vector<int64_t> pads{0, 0, 0, 0};  // top, left, bottom, right
  int64_t group = 1;
  std::vector<int64_t> tile{4, 4};
  bool centering = true;
  bool magnitude_split = false;
  bool merge_project = false;  // merge="project": members' filter slices scaled by least squares
  // A fused activation: outputs clamped to [out_min, out_max] (Relu: [0, inf)).
  bool clamp = false;
  float out_min = 0.0f, out_max = 0.0f;
};

// Everything a kernel needs for one call, resolved from attributes and shapes.
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, groups = 1, group_in = 0, group_out = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t tile_h = 4, tile_w = 4, patch_h = 0, patch_w = 0;
  int64_t tiles_y = 0, tiles_x = 0;
  int64_t hyperplanes = 0;  // L
  bool centering = true;
  bool magnitude_split = false;
  bool merge_project = false;
  bool clamp = false;  // the fused activation (HasteAttrs)
  float out_min = 0.0f, out_max = 0.0f;

  int64_t patch_size() const { return patch_h * patch_w; }
  int64_t tiles_per_image() const { return tiles_y * tiles_x; }
};

// Checks the attributes alone; returns an empty string or the problem.
std::string ValidateAttrs(const HasteAttrs& a);

// Parses Conv's auto_pad string.
bool ParseAutoPad(const std::string& s, AutoPad* out);

// Output size of one spatial axis, or -1 where it cannot be known (size < 0).
// pad_begin receives the padding before the first input element.
int64_t OutputSize(const HasteAttrs& a, int axis, int64_t in_size, int64_t kernel, int64_t* pad_begin);

// Resolves the geometry of a call. Shapes are [N,C,H,W], [M,C/g,kH,kW] and
// [L, pH*pW]; returns an empty string or a message naming expected and actual.
std::string ResolveGeometry(const HasteAttrs& a, const std::vector<int64_t>& x_shape,
                            const std::vector<int64_t>& w_shape, const std::vector<int64_t>* b_shape,
                            const std::vector<int64_t>& hyper_shape, ConvGeometry* g);

std::string ShapeToString(const std::vector<int64_t>& shape);

// Checks that every hyperplane entry is -1, 0 or +1 (docs/op_spec.md: hashing
// is exact only then); returns an empty string or the first bad entry.
std::string CheckHyperplaneValues(const float* h, int64_t count, int64_t dim);

// Bytes of scratch memory one call needs beyond its inputs and output (per
// thread, plus what a call with few tiles keeps between its two phases).
double WorkspaceBytes(const ConvGeometry& g);

}  // namespace haste
