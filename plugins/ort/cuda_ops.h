// The CUDA execution provider's ops (one per op and float type), added to the registration table by
// register_ops.cc in libbytetx_ort_cuda.so.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <vector>

namespace bytetx::ort {

// Static objects: ORT keeps pointers to them for as long as sessions use them.
const std::vector<const OrtCustomOp*>& CudaOps();

}  // namespace bytetx::ort
