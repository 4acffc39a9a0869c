// The only places that launch kernels and query the device. Every launcher goes through them, so
// the host emulation (tests/emulation, BYTETX_CUDA_EMULATION) can run the same kernel sources on
// the CPU: there, LaunchKernel hands the kernel to bytetx_emulation::Launch and the device queries
// answer for a generous emulated device.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#ifdef BYTETX_CUDA_EMULATION
#include "bytetx_emulation.h"
#endif

namespace bytetx::cuda {

// The default dynamic shared memory limit; kernels asking for more must opt in first.
constexpr size_t kDefaultSharedMemoryPerBlock = 48 * 1024;

// kernel<<<grid, block, shared_bytes, stream>>>(args...). An empty grid launches nothing and succeeds,
// so launchers need not special-case empty tensors.
template <typename... Params, typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                         cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) {
    return cudaSuccess;
  }
#ifdef BYTETX_CUDA_EMULATION
  return bytetx_emulation::Launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  return cudaGetLastError();
#endif
}

// Lets `kernel` use `bytes` of dynamic shared memory (a no-op up to the default 48 KiB).
template <typename... Params>
cudaError_t AllowDynamicSharedMemory(void (*kernel)(Params...), size_t bytes) {
#ifdef BYTETX_CUDA_EMULATION
  static_cast<void>(kernel);
  static_cast<void>(bytes);
  return cudaSuccess;
#else
  if (bytes <= kDefaultSharedMemoryPerBlock) {
    return cudaSuccess;
  }
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
#endif
}

// What the emulation reports: the largest current part (sm_90) so every kernel variant can run.
constexpr size_t kEmulatedSharedMemoryPerBlock = 227 * 1024;
constexpr int kEmulatedComputeCapability = 90;

#ifndef BYTETX_CUDA_EMULATION
// `attribute` of the current device, or `fallback` where it cannot be read (the launch itself will
// report the broken device).
inline int CurrentDeviceAttribute(cudaDeviceAttr attribute, int fallback) {
  int device = 0;
  int value = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&value, attribute, device) != cudaSuccess) {
    return fallback;
  }
  return value;
}
#endif

// The most dynamic shared memory one block of the current device may opt in to.
inline size_t MaxSharedMemoryPerBlock() {
#ifdef BYTETX_CUDA_EMULATION
  return kEmulatedSharedMemoryPerBlock;
#else
  return static_cast<size_t>(CurrentDeviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                                    static_cast<int>(kDefaultSharedMemoryPerBlock)));
#endif
}

// 10 * major + minor of the current device (75 for sm_75), 0 if it cannot be read.
inline int ComputeCapability() {
#ifdef BYTETX_CUDA_EMULATION
  return kEmulatedComputeCapability;
#else
  const int major = CurrentDeviceAttribute(cudaDevAttrComputeCapabilityMajor, -1);
  const int minor = CurrentDeviceAttribute(cudaDevAttrComputeCapabilityMinor, -1);
  return major < 0 || minor < 0 ? 0 : 10 * major + minor;
#endif
}

}  // namespace bytetx::cuda
