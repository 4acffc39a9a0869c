// BiasResidualLayerNorm on CUDA (docs/ops.md): out = LayerNorm(x + bias + residual) * gamma + beta,
// statistics in float32, one row per token.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/data_type.h"

namespace bytetx::cuda {

struct BiasResidualLayerNormParams {
  DataType dtype = DataType::kFloat32;    // of every tensor below
  const void* input = nullptr;            // [rows, hidden]
  const void* bias = nullptr;             // [hidden], or nullptr
  const void* residual = nullptr;         // [rows, hidden], or nullptr
  const void* gamma = nullptr;            // [hidden]
  const void* beta = nullptr;             // [hidden], or nullptr
  float epsilon = 1e-12f;
  int64_t rows = 0;
  int64_t hidden = 0;                     // 1 .. kLayerNormMaxHidden
  void* output = nullptr;                 // [rows, hidden]
  void* pre_norm_output = nullptr;        // optional [rows, hidden]: x + bias + residual
};

constexpr int64_t kLayerNormMaxHidden = 8192;

cudaError_t LaunchBiasResidualLayerNorm(const BiasResidualLayerNormParams& params, cudaStream_t stream);

// nullptr when LaunchBiasResidualLayerNorm accepts `params`, else why not.
const char* CheckBiasResidualLayerNormParams(const BiasResidualLayerNormParams& params);

}  // namespace bytetx::cuda
