// FmaMHAKernel (fused_mha.h, docs/kernels.md): any dtype (fp32; bf16 before sm_80), any S: the online
// softmax of the tiled kernel with plain float FMAs, one key per lane. Shared memory:
//   q   kFmaBlockM x D         float   queries, bias added, times scale * log2(e)
//   k   kFmaBlockN x (D + 1)   float   one key per lane (the +1 keeps lanes on distinct banks)
//   v   kFmaBlockN x D         float
//   t   kFmaBlockM x kFmaBlockN  float   with the disentangled terms only: the tile's terms
// Warp w owns query rows [4w, 4w + 4); lane j scores key j of the tile and owns output columns
// j, j + 32, ...
#pragma once

#include <cstdint>

#include "kernels/fused_mha/block_tile.cuh"

namespace bytetx::cuda::fused_mha {

constexpr int kFmaThreads = 128;  // 4 warps, 4 query rows each
constexpr int kFmaRowsPerWarp = 4;
constexpr int kFmaBlockM = kFmaRowsPerWarp * kFmaThreads / kWarpSize;
constexpr int kFmaBlockN = kWarpSize;  // one key per lane
// Minimum resident blocks per SM in __launch_bounds__: leaves the kernel up to 128 registers, so it
// does not spill; with the disentangled terms (their own instance) up to 168, which their state needs.
constexpr int kFmaMinBlocks = 4;
constexpr int kFmaDisentangledMinBlocks = 3;

template <int D>
struct FmaConfig {
  static constexpr int kKLd = D + 1;
  static constexpr int kSharedBytes = (kFmaBlockM * D + kFmaBlockN * kKLd + kFmaBlockN * D) * 4;
  static constexpr int kDisentangledSharedBytes = kSharedBytes + kFmaBlockM * kFmaBlockN * 4;
};

// kDisentangled: the instance that adds DeBERTa's terms (launched only with them).
template <typename T, int D, bool kDisentangled>
__global__ void __launch_bounds__(kFmaThreads, kDisentangled ? kFmaDisentangledMinBlocks : kFmaMinBlocks)
    FmaMHAKernel(MHAArgs<T> args) {
  using Config = FmaConfig<D>;
  constexpr int kCols = D / kWarpSize;  // output columns per lane
  BlockTile tile;
  if (!LocateBlock(args, kFmaBlockM, &tile)) {
    return;
  }
  float* q_smem = DynamicSharedMemory<float>();
  float* k_smem = q_smem + kFmaBlockM * D;
  float* v_smem = k_smem + kFmaBlockN * Config::kKLd;

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const HeadRows<T, D> keys(args, tile, 1);
  const HeadRows<T, D> values(args, tile, 2);

  LoadHeadRows<T, float, D, kFmaThreads>(q_smem, D, HeadRows<T, D>(args, tile, 0), tile.q0, kFmaBlockM,
                                         tile.len - tile.q0, args.scale_log2);
  if (args.rotary_pairs > 0) {  // uniform; the key loop's first __syncthreads publishes the rotation
    __syncthreads();
    RotateHeadRows<T, float, D, kFmaThreads>(q_smem, D, args, tile, tile.q0, kFmaBlockM, tile.len - tile.q0);
  }
  float acc[kFmaRowsPerWarp][kCols];
  float row_max[kFmaRowsPerWarp];
  float row_sum[kFmaRowsPerWarp];
  for (int r = 0; r < kFmaRowsPerWarp; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
    for (int c = 0; c < kCols; ++c) {
      acc[r][c] = 0.0f;
    }
  }
  const float* my_q = q_smem + warp * kFmaRowsPerWarp * D;
  const ScoreTerms<T, D> terms(args, tile);
  for (int k0 = 0; k0 < tile.len; k0 += kFmaBlockN) {
    __syncthreads();  // the previous tile is no longer read
    const int valid = tile.len - k0;
    LoadHeadRows<T, float, D, kFmaThreads>(k_smem, Config::kKLd, keys, k0, kFmaBlockN, valid, 1.0f);
    LoadHeadRows<T, float, D, kFmaThreads>(v_smem, D, values, k0, kFmaBlockN, valid, 1.0f);
    __syncthreads();
    if (args.rotary_pairs > 0) {  // uniform across the block
      RotateHeadRows<T, float, D, kFmaThreads>(k_smem, Config::kKLd, args, tile, k0, kFmaBlockN, valid);
      __syncthreads();
    }

    float s[kFmaRowsPerWarp];
    for (int r = 0; r < kFmaRowsPerWarp; ++r) {
      s[r] = 0.0f;
    }
    const float* my_k = k_smem + lane * Config::kKLd;
    for (int d = 0; d < D; ++d) {
      const float k = my_k[d];
      for (int r = 0; r < kFmaRowsPerWarp; ++r) {
        s[r] += my_q[r * D + d] * k;
      }
    }
    if (kDisentangled && terms.disentangled()) {  // uniform across the block; the queries are in base 2
      // Through shared memory, each lane its own entries: in registers, the row loop around the
      // products would not be unrolled and s would go to local memory.
      float* warp_terms = v_smem + kFmaBlockN * D + warp * kFmaRowsPerWarp * kFmaBlockN;
      for (int r = 0; r < kFmaRowsPerWarp; ++r) {
        const int query = tile.q0 + warp * kFmaRowsPerWarp + r;
        warp_terms[r * kFmaBlockN + lane] =
            lane < valid && query < tile.len ? terms.Disentangled(query, k0 + lane, my_q + r * D, 1.0f, my_k) : 0.0f;
      }
      for (int r = 0; r < kFmaRowsPerWarp; ++r) {
        s[r] += warp_terms[r * kFmaBlockN + lane];
      }
    }
    for (int r = 0; r < kFmaRowsPerWarp; ++r) {
      const int query = tile.q0 + warp * kFmaRowsPerWarp + r;
      float score = lane < valid ? s[r] : -INFINITY;
      if (terms.active() && lane < valid && query < tile.len) {
        score = terms.Apply(query, k0 + lane, score);
      }
      const float new_max = fmaxf(row_max[r], WarpMax(score));  // -inf while the window masks every key
      const float shift = SoftmaxShift(new_max);
      const float alpha = exp2f(row_max[r] - shift);
      s[r] = exp2f(score - shift);
      row_sum[r] = row_sum[r] * alpha + WarpSum(s[r]);
      row_max[r] = new_max;
      for (int c = 0; c < kCols; ++c) {
        acc[r][c] *= alpha;
      }
    }
    const int keys_in_tile = valid < kFmaBlockN ? valid : kFmaBlockN;
    for (int j = 0; j < keys_in_tile; ++j) {
      const float* v_row = v_smem + j * D;
      for (int r = 0; r < kFmaRowsPerWarp; ++r) {
        const float p = __shfl_sync(kFullMask, s[r], j);
        for (int c = 0; c < kCols; ++c) {
          acc[r][c] += p * v_row[lane + c * kWarpSize];
        }
      }
    }
  }

  for (int r = 0; r < kFmaRowsPerWarp; ++r) {
    const int q = tile.q0 + warp * kFmaRowsPerWarp + r;
    if (q < tile.len) {
      const float inv = 1.0f / row_sum[r];
      T* dst = args.context + (tile.first + q) * args.hidden + static_cast<int64_t>(tile.head) * D;
      for (int c = 0; c < kCols; ++c) {
        dst[lane + c * kWarpSize] = FromFloat<T>(acc[r][c] * inv);
      }
    }
  }
}

}  // namespace bytetx::cuda::fused_mha
