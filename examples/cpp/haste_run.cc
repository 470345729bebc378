// haste_run: runs an ONNX model (for example one rewritten by haste-onnx) with
// onnxruntime's C++ API and, if given, the HasteConv op library; no Python.
//
//   haste_run MODEL [--ops LIB] [--input FILE.npy | --input NAME=FILE.npy]...
//             [--shape 1x1x28x28] [--seed N] [--save DIR] [--runs N] [--warmup N] [--threads N]
//
// Inputs: each --input .npy file (float32) feeds the model's inputs in order,
// or the one named; any other input gets a random tensor, uniform in [-1, 1),
// from --seed (default 0) with the shape from --shape (default: the model's,
// dynamic dimensions 1). The random numbers are the same on every platform.
// Prints each output's name, shape and checksums (sum, sum of |x|), writes
// the outputs as DIR/<name>.npy with --save, and times --runs runs after
// --warmup (median and quartiles, ms).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <onnxruntime_cxx_api.h>

#include "npy.h"

namespace {

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "haste_run: %s\n"
               "usage: haste_run MODEL [--ops LIB] [--input FILE.npy | --input NAME=FILE.npy]... [--shape 1x1x28x28]\n"
               "                 [--seed N] [--save DIR] [--runs N] [--warmup N] [--threads N]\n",
               why.c_str());
  std::exit(2);
}

std::vector<int64_t> ParseShape(const std::string& s) {
  std::vector<int64_t> shape;
  size_t i = 0;
  while (i < s.size()) {
    size_t used = 0;
    const long long d = std::stoll(s.substr(i), &used);
    if (d < 0) Usage("bad --shape " + s);
    shape.push_back(d);
    i += used;
    if (i < s.size() && (s[i] == 'x' || s[i] == ',')) ++i;
  }
  if (shape.empty()) Usage("bad --shape " + s);
  return shape;
}

// splitmix64: the same numbers on every platform and compiler.
struct Random {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float Uniform() { return static_cast<float>(Next() >> 40) * (2.0f / 16777216.0f) - 1.0f; }
};

std::string Shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string FileName(std::string name) {
  for (char& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, ops, save, shape_arg;
  std::vector<std::string> inputs;
  uint64_t seed = 0;
  int runs = 10, warmup = 1, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--ops") ops = value();
    else if (a == "--input") inputs.push_back(value());
    else if (a == "--shape") shape_arg = value();
    else if (a == "--seed") seed = std::stoull(value());
    else if (a == "--save") save = value();
    else if (a == "--runs") runs = std::stoi(value());
    else if (a == "--warmup") warmup = std::stoi(value());
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "-h" || a == "--help") Usage("help");
    else if (!a.empty() && a[0] == '-') Usage("unknown option " + a);
    else if (model.empty()) model = a;
    else Usage("more than one model");
  }
  if (model.empty()) Usage("no model");
  if (runs < 0 || warmup < 0) Usage("--runs and --warmup must be >= 0");

  try {
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "haste_run");
    Ort::SessionOptions options;
    if (threads > 0) options.SetIntraOpNumThreads(threads);
    // The one line that makes HasteConv known to onnxruntime.
    if (!ops.empty()) options.RegisterCustomOpsLibrary(ops.c_str());
    Ort::Session session(env, model.c_str(), options);
    Ort::AllocatorWithDefaultOptions allocator;

    const size_t n_in = session.GetInputCount(), n_out = session.GetOutputCount();
    std::vector<std::string> in_names, out_names;
    for (size_t i = 0; i < n_in; ++i) in_names.push_back(session.GetInputNameAllocated(i, allocator).get());
    for (size_t i = 0; i < n_out; ++i) out_names.push_back(session.GetOutputNameAllocated(i, allocator).get());

    // Inputs: .npy files by name or in order, else random.
    std::map<std::string, npy::Array> arrays;
    size_t next = 0;
    for (const std::string& spec : inputs) {
      const size_t eq = spec.find('=');
      std::string name, path = spec;
      if (eq != std::string::npos && !spec.empty() && std::find(in_names.begin(), in_names.end(), spec.substr(0, eq)) != in_names.end()) {
        name = spec.substr(0, eq);
        path = spec.substr(eq + 1);
      } else {
        while (next < n_in && arrays.count(in_names[next])) ++next;
        if (next >= n_in) Usage("more --input files than model inputs");
        name = in_names[next];
      }
      arrays[name] = npy::Read(path);
    }
    Random rng{seed};
    for (size_t i = 0; i < n_in; ++i) {
      if (arrays.count(in_names[i])) continue;
      const Ort::TypeInfo type = session.GetInputTypeInfo(i);  // owns what `info` views
      auto info = type.GetTensorTypeAndShapeInfo();
      if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
        throw std::runtime_error("input " + in_names[i] + " is not float32; give it as --input");
      npy::Array a;
      if (!shape_arg.empty()) {
        a.shape = ParseShape(shape_arg);
      } else {
        a.shape = info.GetShape();
        for (int64_t& d : a.shape) d = d < 0 ? 1 : d;
      }
      a.data.resize(npy::Count(a.shape));
      for (float& v : a.data) v = rng.Uniform();
      arrays[in_names[i]] = std::move(a);
    }

    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<Ort::Value> feeds;
    std::vector<const char*> in_ptrs, out_ptrs;
    for (size_t i = 0; i < n_in; ++i) {
      npy::Array& a = arrays[in_names[i]];
      std::printf("input %s shape %s\n", in_names[i].c_str(), Shape(a.shape).c_str());
      feeds.push_back(Ort::Value::CreateTensor<float>(memory, a.data.data(), a.data.size(), a.shape.data(), a.shape.size()));
      in_ptrs.push_back(in_names[i].c_str());
    }
    for (const std::string& n : out_names) out_ptrs.push_back(n.c_str());

    auto run = [&]() {
      return session.Run(Ort::RunOptions{nullptr}, in_ptrs.data(), feeds.data(), n_in, out_ptrs.data(), n_out);
    };
    std::vector<Ort::Value> outputs = run();
    for (size_t i = 0; i < n_out; ++i) {
      auto info = outputs[i].GetTensorTypeAndShapeInfo();
      if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        std::printf("output %s (not float32, skipped)\n", out_names[i].c_str());
        continue;
      }
      const std::vector<int64_t> shape = info.GetShape();
      const float* y = outputs[i].GetTensorData<float>();
      double sum = 0, abs_sum = 0;
      for (size_t k = 0, n = info.GetElementCount(); k < n; ++k) sum += y[k], abs_sum += std::fabs(y[k]);
      std::printf("output %s shape %s sum %.9g abs_sum %.9g\n", out_names[i].c_str(), Shape(shape).c_str(), sum, abs_sum);
      if (!save.empty()) npy::Write(save + "/" + FileName(out_names[i]) + ".npy", shape, y);
    }

    for (int i = 0; i < warmup; ++i) run();
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    if (!ms.empty()) {
      std::sort(ms.begin(), ms.end());
      auto q = [&](double p) {  // linear interpolation, as numpy.percentile
        const double pos = p * (ms.size() - 1);
        const size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, ms.size() - 1);
        return ms[lo] + (ms[hi] - ms[lo]) * (pos - lo);
      };
      std::printf("time %d runs: median %.3f ms, quartiles %.3f %.3f ms\n", runs, q(0.5), q(0.25), q(0.75));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "haste_run: %s\n", e.what());
    return 1;
  }
  return 0;
}
