// The library's only exported symbol: RegisterCustomOps, called by ONNX Runtime
// when a session's options load this library.
#include <mutex>
#include <string>
#include <vector>

#include "haste_conv_op.h"
#include "haste_level_op.h"
#ifdef HASTE_WITH_CUDA
#include "haste_conv_cuda_op.h"
#endif

namespace {

constexpr const char* kDomain = "haste";
constexpr const char* kMinRuntime = "1.21";

// Domains must outlive every session that uses them: kept for the process's life.
std::mutex g_domains_mutex;
std::vector<OrtCustomOpDomain*> g_domains;

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // This runtime is older than the headers we were built with; API 1 always exists.
    const OrtApi* oldest = api_base->GetApi(1);
    const std::string message = std::string("the haste-onnx op library needs onnxruntime >= ") + kMinRuntime +
                                " (ORT API " + std::to_string(ORT_API_VERSION) + "); this onnxruntime is " +
                                api_base->GetVersionString();
    return oldest ? oldest->CreateStatus(ORT_FAIL, message.c_str()) : nullptr;
  }
  Ort::InitApi(api);
  haste::g_ort = api;

  static haste::HasteConvOp haste_conv_cpu;
  static haste::HasteLevelOp haste_level;

  std::lock_guard<std::mutex> lock(g_domains_mutex);
  OrtCustomOpDomain* domain = nullptr;
  if (OrtStatus* status = api->CreateCustomOpDomain(kDomain, &domain)) return status;
  g_domains.push_back(domain);
  if (OrtStatus* status = api->CustomOpDomain_Add(domain, &haste_conv_cpu)) return status;
  // The level of a steerable model (docs/steerable.md): CPU only, read on the CPU with every provider.
  if (OrtStatus* status = api->CustomOpDomain_Add(domain, &haste_level)) return status;
#ifdef HASTE_WITH_CUDA
  // The same op for the CUDAExecutionProvider; a CPU-only onnxruntime never uses it.
  static haste::HasteConvCudaOp haste_conv_cuda;
  if (OrtStatus* status = api->CustomOpDomain_Add(domain, &haste_conv_cuda)) return status;
#endif
  return api->AddCustomOpDomain(options, domain);
}
