// Kernels of RemovePadding (remove_padding.h). Four steps, all on the device:
//   RowLengthsKernel   one block per row counts its ones          -> cu_seqlens[b + 1] = len_b
//   ScanLengthsKernel  one block turns the lengths into offsets   -> cu_seqlens
//   TokenOffsetKernel  one block per row ranks its slots          -> token_offset
//   GatherRowsKernel   one warp per packed row copies its token   -> packed (zeros past T)
#pragma once

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/common/row_copy.cuh"
#include "kernels/remove_padding/remove_padding.h"

namespace bytetx::cuda::remove_padding {

constexpr int kRowThreads = 256;
constexpr int kScanThreads = 1024;

// Readers of one mask slot, 1 for a token and 0 for padding.
struct Int32Mask {
  const int32_t* mask;
  __device__ __forceinline__ int operator()(int64_t i) const { return mask[i] != 0 ? 1 : 0; }
};
struct Int64Mask {
  const int64_t* mask;
  __device__ __forceinline__ int operator()(int64_t i) const { return mask[i] != 0 ? 1 : 0; }
};
struct BitsMask {
  const uint32_t* words;
  __device__ __forceinline__ int operator()(int64_t i) const {
    return static_cast<int>((words[i / 32] >> (i % 32)) & 1u);
  }
};

// Exclusive prefix sum over a block of kThreads threads; *total receives the block's sum.
template <int kThreads>
__device__ __forceinline__ int BlockExclusiveScan(int v, int* warp_totals, int* total) {
  constexpr int kWarps = kThreads / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int inclusive = WarpInclusiveScan(v);
  __syncthreads();  // warp_totals may still be read by a previous call
  if (lane == kWarpSize - 1) {
    warp_totals[warp] = inclusive;
  }
  __syncthreads();
  if (warp == 0) {
    const int t = lane < kWarps ? warp_totals[lane] : 0;
    const int scanned = WarpInclusiveScan(t);
    if (lane < kWarps) {
      warp_totals[lane] = scanned - t;  // exclusive offset of each warp
    }
    if (lane == kWarps - 1) {
      warp_totals[kWarps] = scanned;
    }
  }
  __syncthreads();
  *total = warp_totals[kWarps];
  return warp_totals[warp] + inclusive - v;
}

template <typename Mask>
__global__ void __launch_bounds__(kRowThreads)
    RowLengthsKernel(Mask mask, int32_t seq_len, int32_t* __restrict__ cu_seqlens) {
  __shared__ int warp_totals[kRowThreads / kWarpSize + 1];
  const int64_t row = blockIdx.x;
  int count = 0;
  for (int32_t s = static_cast<int32_t>(threadIdx.x); s < seq_len; s += kRowThreads) {
    count += mask(row * seq_len + s);
  }
  int total = 0;
  BlockExclusiveScan<kRowThreads>(count, warp_totals, &total);
  if (threadIdx.x == 0) {
    cu_seqlens[row + 1] = total;
  }
}

// cu_seqlens[1 .. batch] hold the lengths; replaces them by their inclusive prefix sums and sets
// cu_seqlens[0] = 0. One block: the batch is small next to the tokens.
__global__ void __launch_bounds__(kScanThreads) ScanLengthsKernel(int32_t batch, int32_t* __restrict__ cu_seqlens) {
  __shared__ int warp_totals[kScanThreads / kWarpSize + 1];
  int carry = 0;
  for (int32_t base = 0; base < batch; base += kScanThreads) {
    const int32_t b = base + static_cast<int32_t>(threadIdx.x);
    const int len = b < batch ? cu_seqlens[b + 1] : 0;
    int total = 0;
    const int before = BlockExclusiveScan<kScanThreads>(len, warp_totals, &total);
    if (b < batch) {
      cu_seqlens[b + 1] = carry + before + len;
    }
    carry += total;
  }
  if (threadIdx.x == 0) {
    cu_seqlens[0] = 0;
  }
}

// Row b's token at position s goes to entry cu_seqlens[b] + (ones before s in the row); its padding
// slot to T + (zeros before b * S + s in the whole batch), which is
// T + (b * S + s) - (cu_seqlens[b] + ones before s in the row).
template <typename Mask>
__global__ void __launch_bounds__(kRowThreads)
    TokenOffsetKernel(Mask mask, int32_t batch, int32_t seq_len, const int32_t* __restrict__ cu_seqlens,
                      int32_t* __restrict__ token_offset) {
  __shared__ int warp_totals[kRowThreads / kWarpSize + 1];
  const int32_t row = static_cast<int32_t>(blockIdx.x);
  const int32_t first = cu_seqlens[row];
  const int32_t num_tokens = cu_seqlens[batch];
  int ones = 0;  // ones of this row before the current chunk
  for (int32_t base = 0; base < seq_len; base += kRowThreads) {
    const int32_t s = base + static_cast<int32_t>(threadIdx.x);
    const int32_t slot = row * seq_len + s;
    const int m = s < seq_len ? mask(slot) : 0;
    int total = 0;
    const int before = ones + BlockExclusiveScan<kRowThreads>(m, warp_totals, &total);
    if (s < seq_len) {
      const int64_t entry = m != 0 ? first + before : int64_t{num_tokens} + slot - (first + before);
      token_offset[entry] = slot;
    }
    ones += total;
  }
}

// Packed row t (t < packed_rows) is input row token_offset[t] when t < T, else zeros.
template <typename U>
__global__ void __launch_bounds__(kRowMoverThreads)
    GatherRowsKernel(const U* __restrict__ input, const int32_t* __restrict__ token_offset,
                     const int32_t* __restrict__ num_tokens, int64_t packed_rows, int64_t units_per_row,
                     U* __restrict__ packed) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRowsPerMoverBlock + threadIdx.x / kWarpSize;
  if (t >= packed_rows) {
    return;
  }
  const U* src = t < *num_tokens ? input + static_cast<int64_t>(token_offset[t]) * units_per_row : nullptr;
  WarpCopyRow(packed + t * units_per_row, src, units_per_row);
}

// Copies one launch's worth of mask words from the kernel parameters to the device.
struct MaskWordsChunk {
  uint32_t words[kMaskWordsPerLaunch];
};

__global__ void __launch_bounds__(kRowThreads)
    StoreMaskWordsKernel(MaskWordsChunk chunk, int32_t count, uint32_t* __restrict__ device_words) {
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < count; i += kRowThreads) {
    device_words[i] = chunk.words[i];
  }
}

}  // namespace bytetx::cuda::remove_padding
