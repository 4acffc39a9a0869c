// ShortMHAKernel (fused_mha.h, docs/kernels.md): fp16/bf16, S <= kFusedMHAShortMaxLen. K, V and the
// block's score rows stay in shared memory; one exact softmax; tensor cores for Q K^T and P V.
// Shared memory (bytes, each region 128-aligned):
//   q       kWmmaBlockM x (D + 8)        T      the block's queries, bias added
//   kv      Lmax x (D + 8)               T      all keys, then all values (Lmax = S rounded up to 16)
//   scores  kWmmaBlockM x (max(Lmax, D) + 4)  float  Q K^T; then P (as T, in place); then P V
//   inv_sum kWmmaBlockM                  float  1 / softmax denominators
#pragma once

#include <cstdint>

#include "kernels/fused_mha/block_tile.cuh"
#include "kernels/fused_mha/fused_mha.h"
#include "kernels/fused_mha/warp_mma.cuh"

namespace bytetx::cuda::fused_mha {

constexpr int kShortMaxCols = static_cast<int>(kFusedMHAShortMaxLen);

struct ShortLayout {
  int max_cols;   // Lmax
  int score_ld;   // floats per score row
  int q_bytes;
  int kv_bytes;
  int score_bytes;
  int total_bytes;
};

__host__ __device__ constexpr ShortLayout MakeShortLayout(int head_size, int seq_len, int element_bytes) {
  ShortLayout l{};
  l.max_cols = RoundUp(seq_len, kWmmaTile);
  l.score_ld = (l.max_cols > head_size ? l.max_cols : head_size) + kFloatSkew;
  l.q_bytes = RoundUp128(kWmmaBlockM * (head_size + kHalfSkew) * element_bytes);
  l.kv_bytes = RoundUp128(l.max_cols * (head_size + kHalfSkew) * element_bytes);
  l.score_bytes = RoundUp128(kWmmaBlockM * l.score_ld * 4);
  l.total_bytes = l.q_bytes + l.kv_bytes + l.score_bytes + kWmmaBlockM * 4;
  return l;
}

template <typename T, int D>
__device__ __forceinline__ void ShortMHABody(const MHAArgs<T>& args) {
  using namespace nvcuda;
  BlockTile tile;
  if (!LocateBlock(args, kWmmaBlockM, &tile)) {
    return;
  }
  constexpr int kLd = D + kHalfSkew;
  const ShortLayout layout = MakeShortLayout(D, args.seq_len, sizeof(T));
  unsigned char* smem = DynamicSharedMemory<unsigned char>();
  T* q_smem = reinterpret_cast<T*>(smem);
  T* kv_smem = reinterpret_cast<T*>(smem + layout.q_bytes);
  float* scores = reinterpret_cast<float*>(smem + layout.q_bytes + layout.kv_bytes);
  float* inv_sum = reinterpret_cast<float*>(smem + layout.q_bytes + layout.kv_bytes + layout.score_bytes);

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int cols = RoundUp(tile.len, kWmmaTile);  // keys, padded with zero rows

  LoadHeadRows<T, T, D, kWmmaThreads>(q_smem, kLd, HeadRows<T, D>(args, tile, 0), tile.q0, kWmmaBlockM,
                                      tile.len - tile.q0, 1.0f);
  LoadHeadRows<T, T, D, kWmmaThreads>(kv_smem, kLd, HeadRows<T, D>(args, tile, 1), 0, cols, tile.len, 1.0f);
  __syncthreads();
  if (args.rotary_pairs > 0) {  // uniform across the block
    RotateHeadRows<T, T, D, kWmmaThreads>(q_smem, kLd, args, tile, tile.q0, kWmmaBlockM, tile.len - tile.q0);
    RotateHeadRows<T, T, D, kWmmaThreads>(kv_smem, kLd, args, tile, 0, cols, tile.len);
    __syncthreads();
  }

  // S = Q K^T for the warp's 16 rows, scaled into base 2.
  const int ld = layout.score_ld;
  float* warp_scores = scores + warp * kWmmaTile * ld;
  const bool warp_active = tile.q0 + warp * kWmmaTile < tile.len;
  if (warp_active) {
    QueryFragments<T, D> q;
    q.Load(q_smem + warp * kWmmaTile * kLd, kLd);
    WarpScores<T, D>(q, kv_smem, kLd, cols / kWmmaTile, args.scale_log2, warp_scores, ld);
    __syncwarp();

    const ScoreTerms<T, D> terms(args, tile);
    if (terms.disentangled()) {  // uniform across the block
      // In shared memory, before the softmax reads the rows: inside its loop the terms spill v.
      for (int r = 0; r < kWmmaTile; ++r) {
        const int query = tile.q0 + warp * kWmmaTile + r;
        for (int j = lane; query < tile.len && j < tile.len; j += kWarpSize) {
          warp_scores[r * ld + j] += terms.Disentangled(query, j, q_smem + (warp * kWmmaTile + r) * kLd,
                                                        args.scale_log2, kv_smem + j * kLd);
        }
      }
      __syncwarp();
    }

    // Softmax of each row; P replaces the row in place as T (all of a row is read before any of it
    // is written).
    constexpr int kPerLane = kShortMaxCols / kWarpSize;
    for (int r = 0; r < kWmmaTile; ++r) {
      float* row = warp_scores + r * ld;
      const int query = tile.q0 + warp * kWmmaTile + r;
      const bool positioned = terms.active() && query < tile.len;
      float v[kPerLane];
      float row_max = -INFINITY;
      for (int i = 0; i < kPerLane; ++i) {
        const int j = lane + i * kWarpSize;
        v[i] = j < tile.len ? row[j] : -INFINITY;
        if (positioned && j < tile.len) {
          v[i] = terms.Apply(query, j, v[i]);
        }
        row_max = fmaxf(row_max, v[i]);
      }
      row_max = WarpMax(row_max);
      float sum = 0.0f;
      for (int i = 0; i < kPerLane; ++i) {
        v[i] = exp2f(v[i] - row_max);  // masked columns: exp2(-inf) = 0
        sum += v[i];
      }
      sum = WarpSum(sum);
      __syncwarp();
      T* p_row = reinterpret_cast<T*>(row);
      for (int i = 0; i < kPerLane; ++i) {
        const int j = lane + i * kWarpSize;
        if (j < cols) {
          p_row[j] = FromFloat<T>(v[i]);
        }
      }
      if (lane == 0) {
        inv_sum[warp * kWmmaTile + r] = 1.0f / sum;
      }
    }
  }
  __syncthreads();  // every warp is done with K

  LoadHeadRows<T, T, D, kWmmaThreads>(kv_smem, kLd, HeadRows<T, D>(args, tile, 2), 0, cols, tile.len, 1.0f);
  __syncthreads();
  if (!warp_active) {
    return;
  }

  // O = P V, then normalized rows out.
  Accumulator out[D / kWmmaTile];
  for (int n = 0; n < D / kWmmaTile; ++n) {
    wmma::fill_fragment(out[n], 0.0f);
  }
  WarpContext(out, reinterpret_cast<const T*>(warp_scores), 2 * ld, kv_smem, kLd, cols / kWmmaTile);
  __syncwarp();  // P is read; its rows take the output
  for (int n = 0; n < D / kWmmaTile; ++n) {
    wmma::store_matrix_sync(warp_scores + n * kWmmaTile, out[n], ld, wmma::mem_row_major);
  }
  __syncwarp();
  StoreWarpRows<T, D>(warp_scores, ld, inv_sum + warp * kWmmaTile, args, tile, tile.q0 + warp * kWmmaTile);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWmmaThreads, kWmmaMinBlocks) ShortMHAKernel(MHAArgs<T> args) {
  if constexpr (kHasWmma<T>) {
    ShortMHABody<T, D>(args);
  }
}

}  // namespace bytetx::cuda::fused_mha
