// Device helpers shared by the kernels: dynamic shared memory, type conversions, warp reductions,
// vector loads. Only the portable subset of CUDA (docs/kernels.md), so the host emulation compiles
// them as well.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

// Before a loop nvcc would otherwise unroll whole, loading every iteration's operands at once: 4 at a
// time keeps the registers of a kernel already at its launch bounds. (The emulation runs loops as
// written.)
#ifdef BYTETX_CUDA_EMULATION
#define BYTETX_UNROLL_4
#else
#define BYTETX_UNROLL_4 _Pragma("unroll 4")
#endif

#ifdef BYTETX_CUDA_EMULATION
namespace bytetx_emulation {
// The current block's dynamic shared memory, at least 128-byte aligned (defined by the emulation).
void* DynamicSharedMemory();
}  // namespace bytetx_emulation
#endif

namespace bytetx::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// The block's dynamic shared memory. 128-byte aligned: the wmma loads need 32 bytes.
template <typename T>
__device__ __forceinline__ T* DynamicSharedMemory() {
#ifdef BYTETX_CUDA_EMULATION
  return static_cast<T*>(bytetx_emulation::DynamicSharedMemory());
#else
  extern __shared__ __align__(128) unsigned char bytetx_dynamic_shared_memory[];
  return reinterpret_cast<T*>(bytetx_dynamic_shared_memory);
#endif
}

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(kFullMask, v, offset);
  }
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  return v;
}

// Inclusive prefix sum over the lanes of a warp.
__device__ __forceinline__ int WarpInclusiveScan(int v) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const int other = __shfl_sync(kFullMask, v, lane >= offset ? lane - offset : lane);
    if (lane >= offset) {
      v += other;
    }
  }
  return v;
}

// N elements of T loaded or stored as one aligned access (16 bytes for 8 halves or 4 floats).
template <typename T, int N>
struct alignas(sizeof(T) * N) Vector {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ Vector<T, N> LoadVector(const T* p) {
  return *reinterpret_cast<const Vector<T, N>*>(p);
}

template <typename T, int N>
__device__ __forceinline__ void StoreVector(T* p, const Vector<T, N>& value) {
  *reinterpret_cast<Vector<T, N>*>(p) = value;
}

// Copy units of the row movers: 16, 4 or 2 bytes, the widest that the row size and pointers allow.
struct alignas(16) Bytes16 {
  uint32_t w[4];
};

}  // namespace bytetx::cuda
