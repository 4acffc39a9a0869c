// Kernels of FusedMHA (fused_mha.h); docs/kernels.md describes their tiling. Every kernel runs a grid
// of (batch * query tiles, heads): block (b * tiles + i, h) owns query rows [i * kBlockM, (i + 1) *
// kBlockM) of sequence b, head h, and returns at once when the sequence is shorter, so the grid is
// sized by the host-side bound S and no device value is read on the host.
//
//   ShortMHAKernel   fp16/bf16, S <= kFusedMHAShortMaxLen: K, V and the block's score rows in shared
//                    memory, one exact softmax, tensor cores (wmma) for Q K^T and P V.
//   TiledMHAKernel   fp16/bf16, any S: FlashAttention-style loop over key tiles with an online
//                    softmax; tensor cores; the output accumulator in shared memory (float).
//   FmaMHAKernel     any dtype (fp32; bf16 before sm_80), any S: the same online softmax with plain
//                    float FMAs, one key per lane.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/common/row_copy.cuh"
#include "kernels/fused_mha/fused_mha.h"

namespace bytetx::cuda::fused_mha {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kWmmaTile = 16;          // the m, n and k of every wmma fragment
constexpr int kWmmaThreads = 128;      // 4 warps, 16 query rows each
// Minimum resident blocks per SM in __launch_bounds__: without one, ptxas caps registers so low that
// the kernels spill; these leave the wmma kernels up to 255 registers and the FMA kernel 128.
constexpr int kWmmaMinBlocks = 2;
constexpr int kFmaMinBlocks = 4;
constexpr int kWmmaBlockM = 64;
constexpr int kHalfSkew = 8;           // 16 bytes of padding per 16-bit row: spreads shared memory banks
constexpr int kFloatSkew = 4;          // 16 bytes per float row
constexpr int kFmaThreads = 128;       // 4 warps, 4 query rows each
constexpr int kFmaRowsPerWarp = 4;
constexpr int kFmaBlockM = kFmaRowsPerWarp * kFmaThreads / kWarpSize;
constexpr int kFmaBlockN = kWarpSize;  // one key per lane

// bf16 fragments need sm_80; before it the host picks FmaMHAKernel for bf16 and the wmma kernels
// compile to nothing.
template <typename T>
constexpr bool kHasWmma = true;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
template <>
constexpr bool kHasWmma<__nv_bfloat16> = false;
#endif

template <typename T>
struct MHAArgs {
  const T* qkv;                 // [num_rows, 3 * hidden]
  const T* bias;                // [3 * hidden] or nullptr
  const int32_t* cu_seqlens;    // [batch + 1]
  T* context;                   // [num_rows, hidden]
  int64_t num_rows;
  int32_t hidden;
  int32_t max_seq_len;
  int32_t num_query_tiles;      // per sequence: ceil(max_seq_len / block M)
  float scale_log2;             // scale * log2(e): softmax in base 2
};

// The part of the grid one block owns.
struct BlockTile {
  int64_t first;  // packed row of the sequence's first token
  int len;        // tokens in the sequence
  int q0;         // first query row of the block, relative to the sequence
  int head;
};

// Lengths are read on the device and cannot be validated on the host: they are clamped to [0, S]
// and to the rows of qkv, so a broken cu_seqlens gives wrong numbers but no stray memory access.
template <typename T>
__device__ __forceinline__ bool LocateBlock(const MHAArgs<T>& args, int block_m, BlockTile* tile) {
  const int b = static_cast<int>(blockIdx.x) / args.num_query_tiles;
  tile->q0 = (static_cast<int>(blockIdx.x) % args.num_query_tiles) * block_m;
  tile->head = static_cast<int>(blockIdx.y);
  const int64_t first = args.cu_seqlens[b];
  int64_t len = static_cast<int64_t>(args.cu_seqlens[b + 1]) - first;
  len = len < args.max_seq_len ? len : args.max_seq_len;
  if (first < 0 || first + len > args.num_rows) {
    len = 0;
  }
  tile->first = first;
  tile->len = static_cast<int>(len);
  return tile->q0 < tile->len;
}

// Block-cooperative copy of `rows` rows of one head's D columns into shared memory as S (T or
// float), bias added in float; rows at or after `valid` become zeros. `src` points at the head's
// first column in the first row; rows are `stride` elements apart. D / kVec divides kThreads, so
// every thread keeps the same columns and loads its bias once.
template <typename T, typename S, int D, int kThreads>
__device__ __forceinline__ void LoadHeadRows(S* __restrict__ dst, int ld, const T* __restrict__ src, int64_t stride,
                                             const T* __restrict__ bias, int rows, int valid, float multiplier) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kVecsPerRow = D / kVec;
  static_assert(kThreads % kVecsPerRow == 0, "every thread must keep the same columns");
  const int col = (static_cast<int>(threadIdx.x) % kVecsPerRow) * kVec;
  float bias_values[kVec];
  for (int i = 0; i < kVec; ++i) {
    bias_values[i] = 0.0f;
  }
  if (bias != nullptr) {
    const Vector<T, kVec> b = LoadVector<T, kVec>(bias + col);
    for (int i = 0; i < kVec; ++i) {
      bias_values[i] = ToFloat(b.v[i]);
    }
  }
  for (int r = static_cast<int>(threadIdx.x) / kVecsPerRow; r < rows; r += kThreads / kVecsPerRow) {
    S* out = dst + r * ld + col;
    if (r < valid) {
      const Vector<T, kVec> x = LoadVector<T, kVec>(src + r * stride + col);
      for (int i = 0; i < kVec; ++i) {
        out[i] = FromFloat<S>((ToFloat(x.v[i]) + bias_values[i]) * multiplier);
      }
    } else {
      for (int i = 0; i < kVec; ++i) {
        out[i] = FromFloat<S>(0.0f);
      }
    }
  }
}

// Writes the 16 rows of a warp's float accumulator `acc` (row stride ld), each multiplied by
// inv_sum[r], to the context rows of queries [q_first, q_first + 16) that lie before len.
template <typename T, int D>
__device__ __forceinline__ void StoreWarpRows(const float* acc, int ld, const float* inv_sum, T* context,
                                              int64_t row0, int hidden, int head, int q_first, int len) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kVecsPerRow = D / kVec;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  for (int i = lane; i < kWmmaTile * kVecsPerRow; i += kWarpSize) {
    const int r = i / kVecsPerRow;
    const int col = (i % kVecsPerRow) * kVec;
    if (q_first + r >= len) {
      continue;
    }
    Vector<T, kVec> out;
    for (int k = 0; k < kVec; ++k) {
      out.v[k] = FromFloat<T>(acc[r * ld + col + k] * inv_sum[r]);
    }
    StoreVector<T, kVec>(context + (row0 + q_first + r) * hidden + static_cast<int64_t>(head) * D + col, out);
  }
}

// ---------------------------------------------------------------------------------------------------
// Short sequences. Shared memory (bytes, each region 128-aligned):
//   q       kWmmaBlockM x (D + 8)        T      the block's queries, bias added
//   kv      Lmax x (D + 8)               T      all keys, then all values (Lmax = S rounded up to 16)
//   scores  kWmmaBlockM x (max(Lmax, D) + 4)  float  Q K^T; then P (as T, in place); then P V
//   inv_sum kWmmaBlockM                  float  1 / softmax denominators
// ---------------------------------------------------------------------------------------------------

constexpr int kShortMaxCols = static_cast<int>(kFusedMHAShortMaxLen);

__host__ __device__ constexpr int RoundUp(int n, int multiple) { return (n + multiple - 1) / multiple * multiple; }
__host__ __device__ constexpr int RoundUp128(int bytes) { return RoundUp(bytes, 128); }

struct ShortLayout {
  int max_cols;   // Lmax
  int score_ld;   // floats per score row
  int q_bytes;
  int kv_bytes;
  int score_bytes;
  int total_bytes;
};

__host__ __device__ constexpr ShortLayout MakeShortLayout(int head_size, int max_seq_len, int element_bytes) {
  ShortLayout l{};
  l.max_cols = RoundUp(max_seq_len, kWmmaTile);
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
  const ShortLayout layout = MakeShortLayout(D, args.max_seq_len, sizeof(T));
  unsigned char* smem = DynamicSharedMemory<unsigned char>();
  T* q_smem = reinterpret_cast<T*>(smem);
  T* kv_smem = reinterpret_cast<T*>(smem + layout.q_bytes);
  float* scores = reinterpret_cast<float*>(smem + layout.q_bytes + layout.kv_bytes);
  float* inv_sum = reinterpret_cast<float*>(smem + layout.q_bytes + layout.kv_bytes + layout.score_bytes);

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int cols = RoundUp(tile.len, kWmmaTile);  // keys, padded with zero rows
  const int64_t stride = 3 * static_cast<int64_t>(args.hidden);
  const T* seq = args.qkv + tile.first * stride + static_cast<int64_t>(tile.head) * D;
  const T* bias = args.bias != nullptr ? args.bias + tile.head * D : nullptr;

  LoadHeadRows<T, T, D, kWmmaThreads>(q_smem, kLd, seq + tile.q0 * stride, stride, bias, kWmmaBlockM,
                                      tile.len - tile.q0, 1.0f);
  LoadHeadRows<T, T, D, kWmmaThreads>(kv_smem, kLd, seq + args.hidden, stride,
                                      bias != nullptr ? bias + args.hidden : nullptr, cols, tile.len, 1.0f);
  __syncthreads();

  // S = Q K^T for the warp's 16 rows, scaled into base 2.
  const int ld = layout.score_ld;
  float* warp_scores = scores + warp * kWmmaTile * ld;
  const bool warp_active = tile.q0 + warp * kWmmaTile < tile.len;
  if (warp_active) {
    wmma::fragment<wmma::matrix_a, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> q_frag[D / kWmmaTile];
    for (int k = 0; k < D / kWmmaTile; ++k) {
      wmma::load_matrix_sync(q_frag[k], q_smem + warp * kWmmaTile * kLd + k * kWmmaTile, kLd);
    }
    for (int n = 0; n < cols / kWmmaTile; ++n) {
      wmma::fragment<wmma::accumulator, kWmmaTile, kWmmaTile, kWmmaTile, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int k = 0; k < D / kWmmaTile; ++k) {
        wmma::fragment<wmma::matrix_b, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::col_major> k_frag;
        wmma::load_matrix_sync(k_frag, kv_smem + n * kWmmaTile * kLd + k * kWmmaTile, kLd);
        wmma::mma_sync(acc, q_frag[k], k_frag, acc);
      }
      for (int i = 0; i < acc.num_elements; ++i) {
        acc.x[i] *= args.scale_log2;
      }
      wmma::store_matrix_sync(warp_scores + n * kWmmaTile, acc, ld, wmma::mem_row_major);
    }
    __syncwarp();

    // Softmax of each row; P replaces the row in place as T (all of a row is read before any of it
    // is written).
    constexpr int kPerLane = kShortMaxCols / kWarpSize;
    for (int r = 0; r < kWmmaTile; ++r) {
      float* row = warp_scores + r * ld;
      float v[kPerLane];
      float row_max = -INFINITY;
      for (int i = 0; i < kPerLane; ++i) {
        const int j = lane + i * kWarpSize;
        v[i] = j < tile.len ? row[j] : -INFINITY;
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

  LoadHeadRows<T, T, D, kWmmaThreads>(kv_smem, kLd, seq + 2 * static_cast<int64_t>(args.hidden), stride,
                                      bias != nullptr ? bias + 2 * args.hidden : nullptr, cols, tile.len, 1.0f);
  __syncthreads();
  if (!warp_active) {
    return;
  }

  // O = P V, then normalized rows out.
  wmma::fragment<wmma::accumulator, kWmmaTile, kWmmaTile, kWmmaTile, float> out[D / kWmmaTile];
  for (int n = 0; n < D / kWmmaTile; ++n) {
    wmma::fill_fragment(out[n], 0.0f);
  }
  const T* p_rows = reinterpret_cast<const T*>(warp_scores);
  for (int k = 0; k < cols / kWmmaTile; ++k) {
    wmma::fragment<wmma::matrix_a, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> p_frag;
    wmma::load_matrix_sync(p_frag, p_rows + k * kWmmaTile, 2 * ld);
    for (int n = 0; n < D / kWmmaTile; ++n) {
      wmma::fragment<wmma::matrix_b, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> v_frag;
      wmma::load_matrix_sync(v_frag, kv_smem + k * kWmmaTile * kLd + n * kWmmaTile, kLd);
      wmma::mma_sync(out[n], p_frag, v_frag, out[n]);
    }
  }
  __syncwarp();  // P is read; its rows take the output
  for (int n = 0; n < D / kWmmaTile; ++n) {
    wmma::store_matrix_sync(warp_scores + n * kWmmaTile, out[n], ld, wmma::mem_row_major);
  }
  __syncwarp();
  StoreWarpRows<T, D>(warp_scores, ld, inv_sum + warp * kWmmaTile, args.context, tile.first, args.hidden, tile.head,
                      tile.q0 + warp * kWmmaTile, tile.len);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWmmaThreads, kWmmaMinBlocks) ShortMHAKernel(MHAArgs<T> args) {
  if constexpr (kHasWmma<T>) {
    ShortMHABody<T, D>(args);
  }
}

// ---------------------------------------------------------------------------------------------------
// Any length, tensor cores. Per key tile of kBlockN keys:
//   k, v      kBlockN x (D + 8)        T      the tile's keys and values (the queries before the loop)
//   scores    kWmmaBlockM x (kBlockN + 4)  float  Q K^T of the tile; then P (as T, in place)
//   out       kWmmaBlockM x (D + 4)    float  the running, unnormalized output
//   inv_sum   kWmmaBlockM              float
// Each warp keeps its 16 query rows' Q fragments in registers; each row's running max and sum live
// in the registers of the two lanes that own the row in the softmax.
// ---------------------------------------------------------------------------------------------------

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

  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t stride = 3 * static_cast<int64_t>(args.hidden);
  const T* seq = args.qkv + tile.first * stride + static_cast<int64_t>(tile.head) * D;
  const T* bias = args.bias != nullptr ? args.bias + tile.head * D : nullptr;
  const T* k_bias = bias != nullptr ? bias + args.hidden : nullptr;
  const T* v_bias = bias != nullptr ? bias + 2 * args.hidden : nullptr;

  // Queries, staged through the K/V tiles into registers.
  LoadHeadRows<T, T, D, kWmmaThreads>(k_smem, kLd, seq + tile.q0 * stride, stride, bias, kWmmaBlockM,
                                      tile.len - tile.q0, 1.0f);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> q_frag[D / kWmmaTile];
  for (int k = 0; k < D / kWmmaTile; ++k) {
    wmma::load_matrix_sync(q_frag[k], k_smem + warp * kWmmaTile * kLd + k * kWmmaTile, kLd);
  }
  float* warp_scores = scores + warp * kWmmaTile * kScoreLd;
  float* warp_out = out + warp * kWmmaTile * kOutLd;
  for (int i = lane; i < kWmmaTile * D; i += kWarpSize) {
    warp_out[(i / D) * kOutLd + i % D] = 0.0f;
  }

  // Lanes 2r and 2r + 1 own row r of the warp: half of its key columns and half of its output.
  const int row = lane / 2;
  const int half = lane % 2;
  float row_max = -INFINITY;
  float row_sum = 0.0f;
  for (int k0 = 0; k0 < tile.len; k0 += kBlockN) {
    __syncthreads();  // the previous tile (or the staged queries) is no longer read
    const int valid = tile.len - k0;
    LoadHeadRows<T, T, D, kWmmaThreads>(k_smem, kLd, seq + args.hidden + k0 * stride, stride, k_bias, kBlockN,
                                        valid, 1.0f);
    LoadHeadRows<T, T, D, kWmmaThreads>(v_smem, kLd, seq + 2 * static_cast<int64_t>(args.hidden) + k0 * stride,
                                        stride, v_bias, kBlockN, valid, 1.0f);
    __syncthreads();

    for (int n = 0; n < kBlockN / kWmmaTile; ++n) {
      wmma::fragment<wmma::accumulator, kWmmaTile, kWmmaTile, kWmmaTile, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int k = 0; k < D / kWmmaTile; ++k) {
        wmma::fragment<wmma::matrix_b, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::col_major> k_frag;
        wmma::load_matrix_sync(k_frag, k_smem + n * kWmmaTile * kLd + k * kWmmaTile, kLd);
        wmma::mma_sync(acc, q_frag[k], k_frag, acc);
      }
      for (int i = 0; i < acc.num_elements; ++i) {
        acc.x[i] *= args.scale_log2;
      }
      wmma::store_matrix_sync(warp_scores + n * kWmmaTile, acc, kScoreLd, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row `row`, columns [half * kBlockN / 2, (half + 1) * kBlockN / 2).
    constexpr int kCols = kBlockN / 2;
    float* score_row = warp_scores + row * kScoreLd;
    float p[kCols];
    float tile_max = -INFINITY;
    for (int i = 0; i < kCols; ++i) {
      const int j = half * kCols + i;
      p[i] = j < valid ? score_row[j] : -INFINITY;
      tile_max = fmaxf(tile_max, p[i]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));
    const float new_max = fmaxf(row_max, tile_max);  // finite: the tile has a valid key
    const float alpha = exp2f(row_max - new_max);    // 0 on the first tile
    float tile_sum = 0.0f;
    for (int i = 0; i < kCols; ++i) {
      p[i] = exp2f(p[i] - new_max);
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
    wmma::fragment<wmma::matrix_a, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> p_frag[kBlockN / kWmmaTile];
    const T* p_rows = reinterpret_cast<const T*>(warp_scores);
    for (int k = 0; k < kBlockN / kWmmaTile; ++k) {
      wmma::load_matrix_sync(p_frag[k], p_rows + k * kWmmaTile, 2 * kScoreLd);
    }
    for (int n = 0; n < D / kWmmaTile; ++n) {
      wmma::fragment<wmma::accumulator, kWmmaTile, kWmmaTile, kWmmaTile, float> acc;
      wmma::load_matrix_sync(acc, warp_out + n * kWmmaTile, kOutLd, wmma::mem_row_major);
      for (int k = 0; k < kBlockN / kWmmaTile; ++k) {
        wmma::fragment<wmma::matrix_b, kWmmaTile, kWmmaTile, kWmmaTile, T, wmma::row_major> v_frag;
        wmma::load_matrix_sync(v_frag, v_smem + k * kWmmaTile * kLd + n * kWmmaTile, kLd);
        wmma::mma_sync(acc, p_frag[k], v_frag, acc);
      }
      wmma::store_matrix_sync(warp_out + n * kWmmaTile, acc, kOutLd, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (half == 0) {
    inv_sum[warp * kWmmaTile + row] = 1.0f / row_sum;
  }
  __syncwarp();
  StoreWarpRows<T, D>(warp_out, kOutLd, inv_sum + warp * kWmmaTile, args.context, tile.first, args.hidden, tile.head,
                      tile.q0 + warp * kWmmaTile, tile.len);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWmmaThreads, kWmmaMinBlocks) TiledMHAKernel(MHAArgs<T> args) {
  if constexpr (kHasWmma<T>) {
    TiledMHABody<T, D>(args);
  }
}

// ---------------------------------------------------------------------------------------------------
// Any length, plain FMAs, float everywhere. Shared memory:
//   q   kFmaBlockM x D         float   queries, bias added, times scale * log2(e)
//   k   kFmaBlockN x (D + 1)   float   one key per lane (the +1 keeps lanes on distinct banks)
//   v   kFmaBlockN x D         float
// Warp w owns query rows [4w, 4w + 4); lane j scores key j of the tile and owns output columns
// j, j + 32, ...
// ---------------------------------------------------------------------------------------------------

template <int D>
struct FmaConfig {
  static constexpr int kKLd = D + 1;
  static constexpr int kSharedBytes = (kFmaBlockM * D + kFmaBlockN * kKLd + kFmaBlockN * D) * 4;
};

template <typename T, int D>
__global__ void __launch_bounds__(kFmaThreads, kFmaMinBlocks) FmaMHAKernel(MHAArgs<T> args) {
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
  const int64_t stride = 3 * static_cast<int64_t>(args.hidden);
  const T* seq = args.qkv + tile.first * stride + static_cast<int64_t>(tile.head) * D;
  const T* bias = args.bias != nullptr ? args.bias + tile.head * D : nullptr;

  LoadHeadRows<T, float, D, kFmaThreads>(q_smem, D, seq + tile.q0 * stride, stride, bias, kFmaBlockM,
                                         tile.len - tile.q0, args.scale_log2);
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
  for (int k0 = 0; k0 < tile.len; k0 += kFmaBlockN) {
    __syncthreads();  // the previous tile is no longer read
    const int valid = tile.len - k0;
    LoadHeadRows<T, float, D, kFmaThreads>(k_smem, Config::kKLd, seq + args.hidden + k0 * stride, stride,
                                           bias != nullptr ? bias + args.hidden : nullptr, kFmaBlockN, valid, 1.0f);
    LoadHeadRows<T, float, D, kFmaThreads>(v_smem, D, seq + 2 * static_cast<int64_t>(args.hidden) + k0 * stride,
                                           stride, bias != nullptr ? bias + 2 * args.hidden : nullptr, kFmaBlockN,
                                           valid, 1.0f);
    __syncthreads();

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
    for (int r = 0; r < kFmaRowsPerWarp; ++r) {
      const float score = lane < valid ? s[r] : -INFINITY;
      const float new_max = fmaxf(row_max[r], WarpMax(score));
      const float alpha = exp2f(row_max[r] - new_max);
      s[r] = exp2f(score - new_max);
      row_sum[r] = row_sum[r] * alpha + WarpSum(s[r]);
      row_max[r] = new_max;
      for (int c = 0; c < kCols; ++c) {
        acc[r][c] *= alpha;
      }
    }
    const int keys = valid < kFmaBlockN ? valid : kFmaBlockN;
    for (int j = 0; j < keys; ++j) {
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

// Rows [cu_seqlens[batch], num_rows) of context, for a num_rows that only bounds T.
template <typename U>
__global__ void __launch_bounds__(kRowMoverThreads)
    ZeroTailRowsKernel(const int32_t* __restrict__ num_tokens, int64_t num_rows, int64_t units_per_row,
                       U* __restrict__ context) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kRowsPerMoverBlock + threadIdx.x / kWarpSize;
  if (t < num_rows && t >= *num_tokens) {
    WarpCopyRow<U>(context + t * units_per_row, nullptr, units_per_row);
  }
}

// The instantiations behind LaunchFusedMHA (fused_mha_<dtype>.cu): one per dtype and head size.
template <typename T, int D>
cudaError_t LaunchTyped(const FusedMHAParams& params, FusedMHAKernel kernel, bool tensor_cores, cudaStream_t stream);

}  // namespace bytetx::cuda::fused_mha
