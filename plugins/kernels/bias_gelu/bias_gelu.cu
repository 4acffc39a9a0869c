#include "kernels/bias_gelu/bias_gelu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/bias_gelu/bias_gelu_kernels.cuh"
#include "kernels/common/launch.cuh"

namespace bytetx::cuda {
namespace {

// Enough blocks to fill any current GPU several times over; the grid-stride loop covers the rest.
constexpr int64_t kMaxBlocks = 4096;

template <typename T, int kVec>
cudaError_t LaunchVectorized(const BiasGeluParams& p, cudaStream_t stream) {
  const int64_t num_vectors = p.rows * p.hidden / kVec;
  int64_t blocks = (num_vectors + bias_gelu::kThreads - 1) / bias_gelu::kThreads;
  blocks = blocks < kMaxBlocks ? blocks : kMaxBlocks;
  return LaunchKernel(bias_gelu::BiasGeluKernel<T, kVec>, dim3(static_cast<unsigned>(blocks)),
                      dim3(bias_gelu::kThreads), 0, stream, static_cast<const T*>(p.input),
                      static_cast<const T*>(p.bias), num_vectors, p.hidden, static_cast<T*>(p.output));
}

template <typename T>
cudaError_t LaunchTyped(const BiasGeluParams& p, cudaStream_t stream) {
  constexpr int kVec = 4;
  constexpr uintptr_t kAlign = kVec * sizeof(T);
  const bool vectorizable = p.hidden % kVec == 0 && reinterpret_cast<uintptr_t>(p.input) % kAlign == 0 &&
                            reinterpret_cast<uintptr_t>(p.output) % kAlign == 0 &&
                            reinterpret_cast<uintptr_t>(p.bias) % kAlign == 0;
  return vectorizable ? LaunchVectorized<T, kVec>(p, stream) : LaunchVectorized<T, 1>(p, stream);
}

}  // namespace

const char* CheckBiasGeluParams(const BiasGeluParams& p) {
  if (p.rows < 0 || p.hidden < 0) {
    return "rows and hidden must be >= 0";
  }
  if (p.rows * p.hidden > 0 && (p.input == nullptr || p.output == nullptr)) {
    return "input or output is null";
  }
  return nullptr;
}

cudaError_t LaunchBiasGelu(const BiasGeluParams& p, cudaStream_t stream) {
  if (CheckBiasGeluParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.rows * p.hidden == 0) {
    return cudaSuccess;
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
