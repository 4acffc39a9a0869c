// Kernel of RebuildPadding (rebuild_padding.h): one warp per entry t of token_offset writes padded
// row token_offset[t], copying packed row t for a token (t < T) and zeros for a padding slot. The
// layout makes token_offset a permutation of the B * S slots, so every output row is written once.
#pragma once

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/common/row_copy.cuh"

namespace bytetx::cuda::rebuild_padding {

template <typename U>
__global__ void __launch_bounds__(kRowMoverThreads)
    ScatterRowsKernel(const U* __restrict__ packed, const int32_t* __restrict__ token_offset, int64_t num_tokens,
                      int64_t num_slots, int64_t units_per_row, U* __restrict__ output) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRowsPerMoverBlock + threadIdx.x / kWarpSize;
  if (t >= num_slots) {
    return;
  }
  const int64_t slot = token_offset[t];
  if (slot < 0 || slot >= num_slots) {
    return;  // not a layout made by RemovePadding; skipping keeps the writes in bounds
  }
  WarpCopyRow(output + slot * units_per_row, t < num_tokens ? packed + t * units_per_row : nullptr, units_per_row);
}

}  // namespace bytetx::cuda::rebuild_padding
