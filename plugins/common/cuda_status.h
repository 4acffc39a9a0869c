// A CUDA launcher's result as a Status, for the shells that launch (ONNX Runtime CUDA, TensorRT).
#pragma once

#include <cuda_runtime.h>

#include "common/checks.h"

namespace bytetx {

// `what` names the launch for the message.
inline Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) {
    return Status::Ok();
  }
  return Status::Internal(StrCat(what, " failed: ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

// Runs a launcher after its own check of `params`: the check's refusal as an Invalid status, a
// launch failure as an Internal one naming `what`.
template <typename Params>
Status CheckedLaunch(const char* (*check)(const Params&), cudaError_t (*launch)(const Params&, cudaStream_t),
                     const Params& params, cudaStream_t stream, const char* what) {
  const char* unfit = check(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  return CudaStatus(launch(params, stream), what);
}

}  // namespace bytetx
