// The warp-level matrix products of the tensor-core FusedMHA kernels (short and tiled), on wmma
// fragments of 16 x 16 x 16: a warp's scores S = Q K^T against tiles of keys, and its share of P V. Operands live in shared memory, except Q, which stays in registers for the whole block.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "kernels/fused_mha/block_tile.cuh"

namespace bytetx::cuda::fused_mha {

constexpr int kWmmaThreads = 128;  // 4 warps, 16 query rows each
constexpr int kWmmaBlockM = 64;
// Minimum resident blocks per SM in __launch_bounds__: without one, ptxas caps registers so low that
// the kernels spill; this leaves the wmma kernels up to 255 registers.
constexpr int kWmmaMinBlocks = 2;

__host__ __device__ constexpr int RoundUp(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }
// Shared memory regions start 128-byte aligned.
__host__ __device__ constexpr int RoundUp128(int bytes) { return RoundUp(bytes, 128); }

// bf16 fragments need sm_80; before it the host picks FmaMHAKernel for bf16 and the wmma kernels
// compile to nothing.
template <typename T>
constexpr bool kHasWmma = true;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
template <>
constexpr bool kHasWmma<__nv_bfloat16> = false;
#endif

template <typename T, typename Layout>
using MatrixA = nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, kWmmaTile, kWmmaTile, kWmmaTile, T, Layout>;
template <typename T, typename Layout>
using MatrixB = nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, kWmmaTile, kWmmaTile, kWmmaTile, T, Layout>;
using Accumulator = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, kWmmaTile, kWmmaTile, kWmmaTile, float>;

// A warp's 16 query rows, D columns, as D / 16 fragments.
template <typename T, int D>
struct QueryFragments {
  MatrixA<T, nvcuda::wmma::row_major> tile[D / kWmmaTile];

  // From 16 rows of shared memory, `ld` elements apart.
  __device__ __forceinline__ void Load(const T* rows, int ld) {
    for (int k = 0; k < D / kWmmaTile; ++k) {
      nvcuda::wmma::load_matrix_sync(tile[k], rows + k * kWmmaTile, ld);
    }
  }
};

// scores[16, 16 * key_tiles] = (Q K^T) * scale_log2 for the warp's queries against `key_tiles` tiles
// of 16 keys, the keys as rows of D elements `key_ld` apart; score rows are `score_ld` floats apart.
template <typename T, int D>
__device__ __forceinline__ void WarpScores(const QueryFragments<T, D>& q, const T* keys, int key_ld, int key_tiles,
                                           float scale_log2, float* scores, int score_ld) {
  using namespace nvcuda;
  for (int n = 0; n < key_tiles; ++n) {
    Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < D / kWmmaTile; ++k) {
      MatrixB<T, wmma::col_major> key_frag;
      wmma::load_matrix_sync(key_frag, keys + n * kWmmaTile * key_ld + k * kWmmaTile, key_ld);
      wmma::mma_sync(acc, q.tile[k], key_frag, acc);
    }
    for (int i = 0; i < acc.num_elements; ++i) {
      acc.x[i] *= scale_log2;
    }
    wmma::store_matrix_sync(scores + n * kWmmaTile, acc, score_ld, wmma::mem_row_major);
  }
}

// acc[n] += P V[:, 16n .. 16n + 16) for n < kColumnTiles, over `key_tiles` tiles of 16 keys: P as 16
// rows of T `p_ld` apart, `values` pointing at the first column of the value rows, `value_ld` apart.
// The short kernel passes all D / 16 column tiles at once (accumulators in registers), the tiled
// kernel one at a time (its accumulators live in shared memory between key tiles).
template <typename T, int kColumnTiles>
__device__ __forceinline__ void WarpContext(Accumulator (&acc)[kColumnTiles], const T* p, int p_ld, const T* values,
                                            int value_ld, int key_tiles) {
  using namespace nvcuda;
  for (int k = 0; k < key_tiles; ++k) {
    MatrixA<T, wmma::row_major> p_frag;
    wmma::load_matrix_sync(p_frag, p + k * kWmmaTile, p_ld);
    for (int n = 0; n < kColumnTiles; ++n) {
      MatrixB<T, wmma::row_major> value_frag;
      wmma::load_matrix_sync(value_frag, values + k * kWmmaTile * value_ld + n * kWmmaTile, value_ld);
      wmma::mma_sync(acc[n], p_frag, value_frag, acc[n]);
    }
  }
}

}  // namespace bytetx::cuda::fused_mha
