// The library's only exported symbol: RegisterCustomOps adds the com.bytetx ops to a SessionOptions.
#include <mutex>
#include <vector>

#include "ort/cpu_ops.h"
#include "ort/kernel_utils.h"
#ifdef BYTETX_WITH_CUDA
#include "ort/cuda_ops.h"
#endif

namespace bytetx::ort {
namespace {

constexpr const char* kDomain = "com.bytetx";

// Every op of the library. ORT keeps pointers to them for as long as sessions use them: static.
const std::vector<const OrtCustomOp*>& Ops() {
  static const std::vector<const OrtCustomOp*> ops = [] {
    std::vector<const OrtCustomOp*> all = CpuOps();
#ifdef BYTETX_WITH_CUDA
    // libbytetx_ort_cuda.so: the same names for the CUDA execution provider (docs/ops.md).
    all.insert(all.end(), CudaOps().begin(), CudaOps().end());
#endif
    return all;
  }();
  return ops;
}

Status Register(OrtSessionOptions* options) {
  static std::mutex mutex;
  // The options and every session created from them point at the domain, and ORT never frees it:
  // domains are kept until the process ends (one small object per registration), and a domain is
  // stored before it is handed out so that no failure can leave ORT with a dangling one.
  static std::vector<Ort::CustomOpDomain>* const domains = new std::vector<Ort::CustomOpDomain>();
  const std::lock_guard<std::mutex> lock(mutex);
  domains->emplace_back(kDomain);
  Ort::CustomOpDomain& domain = domains->back();
  for (const OrtCustomOp* op : Ops()) {
    domain.Add(op);
  }
  Ort::UnownedSessionOptions(options).Add(domain);
  return Status::Ok();
}

}  // namespace
}  // namespace bytetx::ort

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) noexcept {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // Every ONNX Runtime still serves API version 1, whose CreateStatus can explain the refusal.
    const OrtApi* oldest = api_base->GetApi(1);
    constexpr const char* kTooOld = "bytetx: this ONNX Runtime is too old; the ops need onnxruntime >= 1.21";
    return oldest == nullptr ? nullptr : oldest->CreateStatus(ORT_FAIL, kTooOld);
  }
  // One ONNX Runtime per process: its API table is set once (thread-safely), before anything that
  // may need it to report an error.
  static const bool api_ready = (Ort::InitApi(api), true);
  static_cast<void>(api_ready);
  return bytetx::ort::Guarded("RegisterCustomOps", [&] { return bytetx::ort::Register(options); });
}
