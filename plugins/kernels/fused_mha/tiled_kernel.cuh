// TiledMHAKernel (fused_mha.h, docs/kernels.md): fp16/bf16, any S. A FlashAttention-style loop over
// key tiles with an online softmax, tensor cores, the output accumulator in shared memory (float).
// Per key tile of kBlockN keys:
//   k, v      kBlockN x (D + 8)        T      the tile's keys and values (the queries before the loop)
//   scores    kWmmaBlockM x (kBlockN + 4)  float  Q K^T of the tile; then P (as T, in place)
//   out       kWmmaBlockM x (D + 4)    float  the running, unnormalized output
//   inv_sum   kWmmaBlockM              float
//   q         kWmmaBlockM x (D + 8)    T      with the disentangled terms only: the queries they read
// Each warp keeps its 16 query rows' Q fragments in registers; each row's running max and sum live
// in the registers of the two lanes that own the row in the softmax.
#pragma once

#include <cstdint>

#include "kernels/fused_mha/block_tile.cuh"
#include "kernels/fused_mha/warp_mma.cuh"

namespace bytetx::cuda::fused_mha {

template <int D>
struct TiledConfig {
  // 128-wide heads take half-size key tiles so that shared memory stays within 64 KiB (sm_75).
  static constexpr int kBlockN = D >= 128 ? 32 : 64;
  static constexpr int kLd = D + kHalfSkew;
  static constexpr int kScoreLd = kBlockN + kFloatSkew;
  static constexpr int kOutLd = D + kFloatSkew;
  static constexpr int kTileBytes = RoundUp128(kBlockN * kLd * 2);
  static constexpr int kScoreBytes = RoundUp128(kWmmaBlockM * kScoreLd * 4);
  static constexpr int kOutBytes = RoundUp128(kWmmaBlockM * kOutLd * 4);
  static constexpr int kSharedBytes = 2 * kTileBytes + kScoreBytes + kOutBytes + kWmmaBlockM * 4;
  static constexpr int kQueryBytes = RoundUp128(kWmmaBlockM * kLd * 2);
  // With the disentangled terms, the queries stay in shared memory after their fragments are loaded.
  static constexpr int kDisentangledSharedBytes = RoundUp128(kSharedBytes) + kQueryBytes;
  static_assert(2 * kTileBytes >= kWmmaBlockM * kLd * 2, "the queries are staged in the K and V tiles");
};

template <typename T, int D>
__device__ __forceinline__ void TiledMHABody(const MHAArgs<T>& args) {
  using namespace nvcuda;
  using Config = TiledConfig<D>;
  constexpr int kBlockN = Config::kBlockN;
  constexpr int kLd = Config::kLd;
  constexpr int kScoreLd = Config::kScoreLd;
  constexpr int kOutLd = Config::kOutLd;
  BlockTile tile;
  if (!LocateBlock(args, kWmmaBlockM, &tile)) {
    return;
  }
  unsigned char* smem = DynamicSharedMemory<unsigned char>();
  T* k_smem = reinterpret_cast<T*>(smem);
  T* v_smem = reinterpret_cast<T*>(smem + Config::kTileBytes);
  float* scores = reinterpret_cast<float*>(smem + 2 * Config::kTileBytes);
  float* out = reinterpret_cast<float*>(smem + 2 * Config::kTileBytes + Config::kScoreBytes);
  float* inv_sum = reinterpret_cast<float*>(smem + 2 * Config::kTileBytes + Config::kScoreBytes + Config::kOutBytes);
  const ScoreTerms<T, D> terms(args, tile);
  T* q_smem = terms.disentangled() ? reinterpret_cast<T*>(smem + RoundUp128(Config::kSharedBytes)) : k_smem;

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const HeadRows<T, D> keys(args, tile, 1);
  const HeadRows<T, D> values(args, tile, 2);

  // Queries, staged through the K/V tiles (or their own region) into registers.
  LoadHeadRows<T, T, D, kWmmaThreads>(q_smem, kLd, HeadRows<T, D>(args, tile, 0), tile.q0, kWmmaBlockM,
                                      tile.len - tile.q0, 1.0f);
  __syncthreads();
  if (args.rotary_pairs > 0) {  // uniform across the block
    RotateHeadRows<T, T, D, kWmmaThreads>(q_smem, kLd, args, tile, tile.q0, kWmmaBlockM, tile.len - tile.q0);
    __syncthreads();
  }
  QueryFragments<T, D> q;
  q.Load(q_smem + warp * kWmmaTile * kLd, kLd);
  float* warp_scores = scores + warp * kWmmaTile * kScoreLd;
  float* warp_out = out + warp * kWmmaTile * kOutLd;
  for (int i = lane; i < kWmmaTile * D; i += kWarpSize) {
    warp_out[(i / D) * kOutLd + i % D] = 0.0f;
  }

  // Lanes 2r and 2r + 1 own row r of the warp: half of its key columns and half of its output.
  const int row = lane / 2;
  const int half = lane % 2;
  const T* q_row = q_smem + (warp * kWmmaTile + row) * kLd;  // read by the disentangled terms only
  const int query = tile.q0 + warp * kWmmaTile + row;
  const bool positioned = terms.active() && query < tile.len;
  float row_max = -INFINITY;
  float row_sum = 0.0f;
  for (int k0 = 0; k0 < tile.len; k0 += kBlockN) {
    __syncthreads();  // the previous tile (or the staged queries) is no longer read
    const int valid = tile.len - k0;
    LoadHeadRows<T, T, D, kWmmaThreads>(k_smem, kLd, keys, k0, kBlockN, valid, 1.0f);
    LoadHeadRows<T, T, D, kWmmaThreads>(v_smem, kLd, values, k0, kBlockN, valid, 1.0f);
    __syncthreads();
    if (args.rotary_pairs > 0) {
      RotateHeadRows<T, T, D, kWmmaThreads>(k_smem, kLd, args, tile, k0, kBlockN, valid);
      __syncthreads();
    }

    WarpScores<T, D>(q, k_smem, kLd, kBlockN / kWmmaTile, args.scale_log2, warp_scores, kScoreLd);
    __syncwarp();

    // Online softmax of row `row`, columns [half * kBlockN / 2, (half + 1) * kBlockN / 2).
    constexpr int kCols = kBlockN / 2;
    float* score_row = warp_scores + row * kScoreLd;
    if (positioned) {
      // Applied in shared memory before p is read: inside p's loop the bucket's logarithm spills p to the stack.
      for (int i = 0; i < kCols; ++i) {
        const int j = half * kCols + i;
        if (j < valid) {
          const float disentangled =
              terms.disentangled() ? terms.Disentangled(query, k0 + j, q_row, args.scale_log2, k_smem + j * kLd) : 0.0f;
          score_row[j] = terms.Apply(query, k0 + j, score_row[j] + disentangled);
        }
      }
    }
    float p[kCols];
    float tile_max = -INFINITY;
    for (int i = 0; i < kCols; ++i) {
      const int j = half * kCols + i;
      p[i] = j < valid ? score_row[j] : -INFINITY;
      tile_max = fmaxf(tile_max, p[i]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));
    const float new_max = fmaxf(row_max, tile_max);  // -inf while the window masks every key so far
    const float shift = SoftmaxShift(new_max);
    const float alpha = exp2f(row_max - shift);      // 0 until a key counts
    float tile_sum = 0.0f;
    for (int i = 0; i < kCols; ++i) {
      p[i] = exp2f(p[i] - shift);
      tile_sum += p[i];
    }
    tile_sum += __shfl_xor_sync(kFullMask, tile_sum, 1);
    row_sum = row_sum * alpha + tile_sum;
    row_max = new_max;
    float* out_row = warp_out + row * kOutLd + half * (D / 2);
    for (int c = 0; c < D / 2; ++c) {
      out_row[c] *= alpha;
    }
    __syncwarp();
    T* p_row = reinterpret_cast<T*>(score_row);
    for (int i = 0; i < kCols; ++i) {
      p_row[half * kCols + i] = FromFloat<T>(p[i]);
    }
    __syncwarp();

    // out += P V
    const T* p_rows = reinterpret_cast<const T*>(warp_scores);
    for (int n = 0; n < D / kWmmaTile; ++n) {
      Accumulator acc[1];
      wmma::load_matrix_sync(acc[0], warp_out + n * kWmmaTile, kOutLd, wmma::mem_row_major);
      WarpContext(acc, p_rows, 2 * kScoreLd, v_smem + n * kWmmaTile, kLd, kBlockN / kWmmaTile);
      wmma::store_matrix_sync(warp_out + n * kWmmaTile, acc[0], kOutLd, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (half == 0) {
    inv_sum[warp * kWmmaTile + row] = 1.0f / row_sum;
  }
  __syncwarp();
  StoreWarpRows<T, D>(warp_out, kOutLd, inv_sum + warp * kWmmaTile, args, tile, tile.q0 + warp * kWmmaTile);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWmmaThreads, kWmmaMinBlocks) TiledMHAKernel(MHAArgs<T> args) {
  if constexpr (kHasWmma<T>) {
    TiledMHABody<T, D>(args);
  }
}

}  // namespace bytetx::cuda::fused_mha
