// A tiny reader and writer for NumPy's .npy format, float32 only
// (dtype '<f4', C order, format versions 1.0-3.0 read, 1.0 written).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace npy {

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline int64_t Count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace detail {
inline std::string Field(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw std::runtime_error("npy: header has no '" + key + "'");
  size_t v = header.find(':', k);
  if (v == std::string::npos) throw std::runtime_error("npy: bad header");
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  const char open = header[v];
  const char close = open == '(' ? ')' : open == '\'' ? '\'' : ',';
  const size_t end = header.find(close, v + 1);
  if (end == std::string::npos) throw std::runtime_error("npy: bad header");
  return header.substr(v, end - v + 1);
}
}  // namespace detail

inline Array Read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("npy: cannot open " + path);
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error("npy: not a .npy file: " + path);
  uint32_t len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    f.read(reinterpret_cast<char*>(b), 2);
    len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    f.read(reinterpret_cast<char*>(b), 4);
    len = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  }
  std::string header(len, '\0');
  if (!f.read(&header[0], len)) throw std::runtime_error("npy: truncated header: " + path);
  const std::string descr = detail::Field(header, "descr");
  if (descr != "'<f4'" && descr != "'=f4'")
    throw std::runtime_error("npy: " + path + " has dtype " + descr + "; only float32 ('<f4') is read");
  if (detail::Field(header, "fortran_order").find("True") != std::string::npos)
    throw std::runtime_error("npy: " + path + " is in Fortran order; only C order is read");
  Array a;
  const std::string shape = detail::Field(header, "shape");  // "(1, 2, 3)" or "(5,)" or "()"
  for (size_t i = 1; i < shape.size();) {
    while (i < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i >= shape.size() || shape[i] == ')') break;
    size_t used = 0;
    a.shape.push_back(std::stoll(shape.substr(i), &used));
    i += used;
  }
  a.data.resize(Count(a.shape));
  if (!f.read(reinterpret_cast<char*>(a.data.data()), a.data.size() * sizeof(float)))
    throw std::runtime_error("npy: truncated data: " + path);
  return a;
}

inline void Write(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dims;  // "5," for one dimension, "2,3" for two, "" for a scalar
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? "," : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("npy: cannot write " + path);
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  const char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  f.write(lb, 2);
  f.write(header.data(), header.size());
  f.write(reinterpret_cast<const char*>(data), Count(shape) * sizeof(float));
  if (!f) throw std::runtime_error("npy: cannot write " + path);
}

}  // namespace npy
