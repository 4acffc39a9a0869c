// Kernel of BiasGelu (bias_gelu.h): element-wise, grid-stride, kVec elements per thread and step
// (one 8- or 16-byte access when the row length and pointers allow it, else 1).
#pragma once

#include <cstdint>

#include "kernels/common/device_utils.cuh"

namespace bytetx::cuda::bias_gelu {

constexpr int kThreads = 256;
constexpr float kSqrtHalf = 0.70710678118654752f;

__device__ __forceinline__ float GeluErf(float x) { return 0.5f * x * (1.0f + erff(x * kSqrtHalf)); }

// `input` and `output` hold num_vectors vectors of kVec elements; hidden is a multiple of kVec.
template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    BiasGeluKernel(const T* input, const T* __restrict__ bias, int64_t num_vectors, int64_t hidden, T* output) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < num_vectors; i += step) {
    const int64_t col = (i * kVec) % hidden;
    const Vector<T, kVec> x = LoadVector<T, kVec>(input + i * kVec);
    Vector<T, kVec> y;
    if (bias != nullptr) {
      const Vector<T, kVec> b = LoadVector<T, kVec>(bias + col);
      for (int k = 0; k < kVec; ++k) {
        y.v[k] = FromFloat<T>(GeluErf(ToFloat(x.v[k]) + ToFloat(b.v[k])));
      }
    } else {
      for (int k = 0; k < kVec; ++k) {
        y.v[k] = FromFloat<T>(GeluErf(ToFloat(x.v[k])));
      }
    }
    StoreVector<T, kVec>(output + i * kVec, y);
  }
}

}  // namespace bytetx::cuda::bias_gelu
