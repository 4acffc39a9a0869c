// Moving whole rows between tensors (pack, unpack, zero), byte-wise in the widest unit that the row
// size and the pointers allow, one warp per row so every access is coalesced.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/device_utils.cuh"

namespace bytetx::cuda {

// Rows moved by one block of kRowMoverThreads threads: one per warp.
constexpr int kRowMoverThreads = 256;
constexpr int kRowsPerMoverBlock = kRowMoverThreads / kWarpSize;

// 16, 4 or 2: the widest unit dividing the row size and the alignment of every pointer given.
inline int RowCopyUnitBytes(size_t row_bytes, const void* a, const void* b) {
  const auto fits = [&](size_t unit) {
    return row_bytes % unit == 0 && reinterpret_cast<uintptr_t>(a) % unit == 0 &&
           reinterpret_cast<uintptr_t>(b) % unit == 0;
  };
  return fits(16) ? 16 : fits(4) ? 4 : 2;
}

// Returns fn(U{}) for U the copy unit of RowCopyUnitBytes(row_bytes, a, b): Bytes16, uint32_t or uint16_t.
template <typename Fn>
auto DispatchCopyUnit(size_t row_bytes, const void* a, const void* b, const Fn& fn) {
  switch (RowCopyUnitBytes(row_bytes, a, b)) {
    case 16:
      return fn(Bytes16{});
    case 4:
      return fn(uint32_t{});
    default:
      return fn(uint16_t{});
  }
}

// The calling warp copies `units` units from src to dst (or writes zeros when src is nullptr).
template <typename U>
__device__ __forceinline__ void WarpCopyRow(U* __restrict__ dst, const U* __restrict__ src, int64_t units) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  if (src == nullptr) {
    const U zero{};
    for (int64_t i = lane; i < units; i += kWarpSize) {
      dst[i] = zero;
    }
    return;
  }
  for (int64_t i = lane; i < units; i += kWarpSize) {
    dst[i] = src[i];
  }
}

}  // namespace bytetx::cuda
