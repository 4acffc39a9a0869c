// Kernel of BiasResidualLayerNorm (bias_residual_layer_norm.h): one block per row. The row's sum
// x + bias + residual is kept in shared memory as float, so the mean and then the variance (two
// passes, no cancellation) read global memory once.
#pragma once

#include <cstdint>

#include "kernels/common/device_utils.cuh"

namespace bytetx::cuda::layer_norm {

constexpr int kMaxThreads = 256;

template <typename T>
struct LayerNormArgs {
  const T* input;
  const T* bias;
  const T* residual;
  const T* gamma;
  const T* beta;
  T* output;
  T* pre_norm_output;
  int32_t hidden;
  float epsilon;
};

template <typename T>
__global__ void __launch_bounds__(kMaxThreads) BiasResidualLayerNormKernel(LayerNormArgs<T> args) {
  __shared__ float reduce_scratch[kWarpSize];
  float* row_values = DynamicSharedMemory<float>();
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * args.hidden;
  const int threads = static_cast<int>(blockDim.x);
  float sum = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < args.hidden; c += threads) {
    float v = ToFloat(args.input[offset + c]);
    if (args.bias != nullptr) {
      v += ToFloat(args.bias[c]);
    }
    if (args.residual != nullptr) {
      v += ToFloat(args.residual[offset + c]);
    }
    if (args.pre_norm_output != nullptr) {
      args.pre_norm_output[offset + c] = FromFloat<T>(v);
    }
    row_values[c] = v;
    sum += v;
  }
  const float mean = BlockSum(sum, reduce_scratch) / static_cast<float>(args.hidden);
  float squares = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < args.hidden; c += threads) {
    const float d = row_values[c] - mean;
    squares += d * d;
  }
  const float variance = BlockSum(squares, reduce_scratch) / static_cast<float>(args.hidden);
  const float inv_std = rsqrtf(variance + args.epsilon);
  for (int c = static_cast<int>(threadIdx.x); c < args.hidden; c += threads) {
    float y = (row_values[c] - mean) * inv_std * ToFloat(args.gamma[c]);
    if (args.beta != nullptr) {
      y += ToFloat(args.beta[c]);
    }
    args.output[offset + c] = FromFloat<T>(y);
  }
}

}  // namespace bytetx::cuda::layer_norm
