// BiasGelu on CUDA (docs/ops.md): out = gelu(x + bias) with the exact (erf) GELU, computed in float32.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/data_type.h"

namespace bytetx::cuda {

struct BiasGeluParams {
  DataType dtype = DataType::kFloat32;  // of every tensor below
  const void* input = nullptr;          // [rows, hidden]
  const void* bias = nullptr;           // [hidden], or nullptr
  int64_t rows = 0;
  int64_t hidden = 0;
  void* output = nullptr;               // [rows, hidden]; may equal input (in place)
};

cudaError_t LaunchBiasGelu(const BiasGeluParams& params, cudaStream_t stream);

// nullptr when LaunchBiasGelu accepts `params`, else why not.
const char* CheckBiasGeluParams(const BiasGeluParams& params);

}  // namespace bytetx::cuda
