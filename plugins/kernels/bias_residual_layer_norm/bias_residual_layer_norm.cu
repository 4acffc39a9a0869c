#include "kernels/bias_residual_layer_norm/bias_residual_layer_norm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/bias_residual_layer_norm/bias_residual_layer_norm_kernels.cuh"
#include "kernels/common/launch.cuh"

namespace bytetx::cuda {
namespace {

template <typename T>
cudaError_t LaunchTyped(const BiasResidualLayerNormParams& p, cudaStream_t stream) {
  layer_norm::LayerNormArgs<T> args;
  args.input = static_cast<const T*>(p.input);
  args.bias = static_cast<const T*>(p.bias);
  args.residual = static_cast<const T*>(p.residual);
  args.gamma = static_cast<const T*>(p.gamma);
  args.beta = static_cast<const T*>(p.beta);
  args.output = static_cast<T*>(p.output);
  args.pre_norm_output = static_cast<T*>(p.pre_norm_output);
  args.hidden = static_cast<int32_t>(p.hidden);
  args.epsilon = p.epsilon;
  // A warp per 32 columns up to kMaxThreads: short rows do not idle a large block.
  const int64_t warps = (p.hidden + kWarpSize - 1) / kWarpSize;
  const int threads = static_cast<int>(warps * kWarpSize < layer_norm::kMaxThreads ? warps * kWarpSize
                                                                                    : layer_norm::kMaxThreads);
  return LaunchKernel(layer_norm::BiasResidualLayerNormKernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(threads),
                      static_cast<size_t>(p.hidden) * sizeof(float), stream, args);
}

}  // namespace

const char* CheckBiasResidualLayerNormParams(const BiasResidualLayerNormParams& p) {
  if (p.rows < 0 || p.rows > INT32_MAX) {
    return "rows must lie in [0, 2^31)";
  }
  if (p.hidden < 1 || p.hidden > kLayerNormMaxHidden) {
    return "hidden must lie in [1, kLayerNormMaxHidden (8192)]";
  }
  if (!(p.epsilon >= 0.0f)) {
    return "epsilon must be >= 0";
  }
  if (p.rows > 0 && (p.input == nullptr || p.gamma == nullptr || p.output == nullptr)) {
    return "input, gamma or output is null";
  }
  return nullptr;
}

cudaError_t LaunchBiasResidualLayerNorm(const BiasResidualLayerNormParams& p, cudaStream_t stream) {
  if (CheckBiasResidualLayerNormParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  switch (p.dtype) {
    case DataType::kFloat32:
      return LaunchTyped<float>(p, stream);
    case DataType::kFloat16:
      return LaunchTyped<__half>(p, stream);
    case DataType::kBFloat16:
      return LaunchTyped<__nv_bfloat16>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace bytetx::cuda
