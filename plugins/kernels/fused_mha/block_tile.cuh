// What every FusedMHA kernel (fused_mha.h) shares: its arguments, where a block's queries lie in the
// packed rows, and the block-cooperative loads and per-warp stores of one head's rows. Every kernel
// runs a grid of (batch * query tiles, heads): block (b * tiles + i, h) owns query rows
// [i * block_m, (i + 1) * block_m) of sequence b, head h, and returns at once when the sequence is
// shorter, so the grid is sized by the host-side bound S and no device value is read on the host.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/relative_position.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/fused_mha/fused_mha_head_sizes.h"

namespace bytetx::cuda::fused_mha {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kWmmaTile = 16;  // the m, n and k of every wmma fragment; a warp owns 16 query rows
constexpr int kHalfSkew = 8;   // 16 bytes of padding per 16-bit row: spreads shared memory banks
constexpr int kFloatSkew = 4;  // 16 bytes per float row

template <typename T>
struct MHAArgs {
  const T* qkv;                 // [num_tokens, 3 * hidden]
  const T* bias;                // [3 * hidden]
  const int32_t* cu_seqlens;    // [batch + 1]
  T* context;                   // [num_tokens, hidden]
  int64_t num_tokens;
  int32_t hidden;
  int32_t seq_len;
  int32_t num_query_tiles;      // per sequence: ceil(seq_len / block M)
  float scale_log2;             // scale * log2(e): softmax in base 2
  // The position features (fused_mha.h): positions nullptr without any, position_bias nullptr
  // without the relative position bias, sliding_window < 0 without a window, rotary_pairs 0 without
  // rotary embeddings (else D / 2 frequencies, by value: no device copy of the attribute).
  const int32_t* positions;     // [num_tokens]
  const T* position_bias;       // [num_buckets, hidden / D]
  RelativePositionBuckets buckets;
  int32_t sliding_window;
  int32_t rotary_pairs;
  float rotary_frequencies[kMaxRotaryPairs];
  // DeBERTa's disentangled terms: position_span 0 without them, a table nullptr without its term.
  const T* position_key;        // [2 * span, hidden]
  const T* position_query;      // [2 * span, hidden]
  int32_t position_span;
  int32_t position_buckets;
  float position_log_base;
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
  len = len < args.seq_len ? len : args.seq_len;
  if (first < 0 || first + len > args.num_tokens) {
    len = 0;
  }
  tile->first = first;
  tile->len = static_cast<int>(len);
  return tile->q0 < tile->len;
}

// What the positions do to the scores of the tile's head, in base 2 like the scaled scores they join:
// the relative position bias, the sliding window and the disentangled terms.
template <typename T, int D>
struct ScoreTerms {
  const int32_t* positions;  // the sequence's first position; nullptr without a bias, window or terms
  const T* column;           // the head's column of the table; nullptr without a bias
  int32_t num_heads;
  RelativePositionBuckets buckets;
  int32_t window;            // < 0: none
  const T* position_key;     // the head's first column of each table; nullptr without its term
  const T* position_query;
  int32_t hidden;
  int32_t span;              // 0 without the disentangled terms
  int32_t position_buckets;
  float position_log_ratio;
  float scale_log2;

  __device__ __forceinline__ ScoreTerms(const MHAArgs<T>& args, const BlockTile& tile)
      : positions(args.positions == nullptr ||
                          (args.position_bias == nullptr && args.sliding_window < 0 && args.position_span == 0)
                      ? nullptr
                      : args.positions + tile.first),
        column(args.position_bias == nullptr ? nullptr : args.position_bias + tile.head),
        num_heads(args.hidden / D),
        buckets(args.buckets),
        window(args.sliding_window),
        position_key(args.position_key == nullptr ? nullptr : args.position_key + tile.head * D),
        position_query(args.position_query == nullptr ? nullptr : args.position_query + tile.head * D),
        hidden(args.hidden),
        span(args.positions == nullptr ? 0 : args.position_span),
        position_buckets(args.position_buckets),
        // The device's own logf, as for the distances (relative_position.h).
        position_log_ratio(args.position_buckets > 0 ? logf(args.position_log_base) : 0.0f),
        scale_log2(args.scale_log2) {}

  __device__ __forceinline__ bool active() const { return positions != nullptr; }
  __device__ __forceinline__ bool disentangled() const { return span > 0; }

  // Where the table rows of the pair's clamped bucket start (the head's columns of both tables).
  __device__ __forceinline__ int64_t DisentangledRow(int q, int k) const {
    const int64_t bucket = DisentangledBucket(static_cast<int64_t>(positions[q]) - positions[k], position_buckets,
                                              position_log_ratio) + span;
    return (bucket < 0 ? 0 : bucket > 2 * span - 1 ? 2 * span - 1 : bucket) * hidden;
  }

  // DeBERTa's terms of query q and key k in base 2: q_row (which q_multiplier brings to base 2) against
  // position_key's row of the pair's bucket, plus position_query's row against k_row. The rows are in
  // shared memory as the kernel loaded them (bias added, rotated where rotary).
  template <typename S>
  __device__ __forceinline__ float Disentangled(int q, int k, const S* q_row, float q_multiplier,
                                                const S* k_row) const {
    const int64_t row = DisentangledRow(q, k);
    float term = 0.0f;
    if (position_key != nullptr) {
      float dot = 0.0f;
      BYTETX_UNROLL_4
      for (int c = 0; c < D; ++c) {
        dot += ToFloat(q_row[c]) * ToFloat(position_key[row + c]);
      }
      term += dot * q_multiplier;
    }
    if (position_query != nullptr) {
      float dot = 0.0f;
      BYTETX_UNROLL_4
      for (int c = 0; c < D; ++c) {
        dot += ToFloat(position_query[row + c]) * ToFloat(k_row[c]);
      }
      term += dot * scale_log2;
    }
    return term;
  }

  // The base-2 score of query q and key k, both sequence rows below the tile's length (the rows
  // positions has): -inf outside the window, else with the bias added.
  __device__ __forceinline__ float Apply(int q, int k, float score) const {
    const int64_t distance = static_cast<int64_t>(positions[q]) - positions[k];
    if (window >= 0 && (distance > window || distance < -window)) {
      return -INFINITY;
    }
    if (column != nullptr) {
      score += ToFloat(column[static_cast<int64_t>(RelativePositionBucket(distance, buckets)) * num_heads]) * kLog2e;
    }
    return score;
  }
};

// The online softmax's shift for a running maximum: 0 while every key so far is masked (-inf), so that
// exp2(score - shift) gives 0, not NaN.
__device__ __forceinline__ float SoftmaxShift(float running_max) {
  return running_max == -INFINITY ? 0.0f : running_max;
}

// The rows of one head that a block reads: Q, K or V (`block` 0, 1, 2) of the tile's sequence.
template <typename T, int D>
struct HeadRows {
  const T* rows;     // the head's first column in the sequence's first row
  const T* bias;     // the head's bias columns of the block
  int64_t stride;    // elements between rows: 3 * hidden

  __device__ __forceinline__ HeadRows(const MHAArgs<T>& args, const BlockTile& tile, int block)
      : rows(args.qkv + tile.first * 3 * static_cast<int64_t>(args.hidden) +
             static_cast<int64_t>(block) * args.hidden + static_cast<int64_t>(tile.head) * D),
        bias(args.bias + static_cast<int64_t>(block) * args.hidden + tile.head * D),
        stride(3 * static_cast<int64_t>(args.hidden)) {}
};

// Block-cooperative copy of `rows` rows starting at sequence row `first_row` into shared memory as S
// (T or float), bias added in float and multiplied by `multiplier`; rows at or after `valid` become
// zeros. D / kVec divides kThreads, so every thread keeps the same columns and loads its bias once.
template <typename T, typename S, int D, int kThreads>
__device__ __forceinline__ void LoadHeadRows(S* __restrict__ dst, int ld, const HeadRows<T, D>& src, int first_row,
                                             int rows, int valid, float multiplier) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kVecsPerRow = D / kVec;
  static_assert(kThreads % kVecsPerRow == 0, "every thread must keep the same columns");
  const int col = (static_cast<int>(threadIdx.x) % kVecsPerRow) * kVec;
  float bias_values[kVec];
  const Vector<T, kVec> b = LoadVector<T, kVec>(src.bias + col);
  for (int i = 0; i < kVec; ++i) {
    bias_values[i] = ToFloat(b.v[i]);
  }
  for (int r = static_cast<int>(threadIdx.x) / kVecsPerRow; r < rows; r += kThreads / kVecsPerRow) {
    S* out = dst + r * ld + col;
    if (r < valid) {
      const Vector<T, kVec> x = LoadVector<T, kVec>(src.rows + (first_row + r) * src.stride + col);
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

// cos and sin of a float angle of any size: reduced to [-pi, pi] in double (within 1e-6 even at 2^31),
// where __cosf and __sinf are accurate to 5e-7; cosf's own reduction of large angles would put an
// array in local memory.
__device__ __forceinline__ void CosSin(float angle, float* cos_a, float* sin_a) {
  constexpr double kTwoPi = 6.283185307179586;
  constexpr double kTwoPiLow = 2.4492935982947064e-16;  // 2 pi - kTwoPi
  const double turns = rint(static_cast<double>(angle) * (1.0 / kTwoPi));
  const float reduced = static_cast<float>(fma(-turns, kTwoPiLow, fma(-turns, kTwoPi, static_cast<double>(angle))));
  *cos_a = __cosf(reduced);
  *sin_a = __sinf(reduced);
}

// Rotates, in shared memory, rows [0, valid) of `rows` loaded by LoadHeadRows from sequence row
// `first_row` on: the pair of columns (c, c + D / 2) of row r by the angle
// positions[first_row + r] * frequency[c], the float32 product as transformers computes it. Needs a
// __syncthreads between the load and this, and after it. Nothing without rotary embeddings.
template <typename T, typename S, int D, int kThreads>
__device__ __forceinline__ void RotateHeadRows(S* __restrict__ rows, int ld, const MHAArgs<T>& args,
                                               const BlockTile& tile, int first_row, int count, int valid) {
  constexpr int kPairs = D / 2;
  const int32_t* positions = args.positions + tile.first + first_row;
  const int limit = (valid < count ? valid : count) * kPairs;
  for (int i = static_cast<int>(threadIdx.x); i < limit; i += kThreads) {
    const int r = i / kPairs;
    const int c = i % kPairs;
    const float angle = static_cast<float>(positions[r]) * args.rotary_frequencies[c];
    float cos_a = 0.0f;
    float sin_a = 0.0f;
    CosSin(angle, &cos_a, &sin_a);
    S* row = rows + r * ld;
    const float x1 = ToFloat(row[c]);
    const float x2 = ToFloat(row[c + kPairs]);
    row[c] = FromFloat<S>(x1 * cos_a - x2 * sin_a);
    row[c + kPairs] = FromFloat<S>(x2 * cos_a + x1 * sin_a);
  }
}

// Writes the 16 rows of a warp's float accumulator `acc` (row stride ld), each multiplied by
// inv_sum[r], to the context rows of queries [q_first, q_first + 16) that lie before the sequence end.
template <typename T, int D>
__device__ __forceinline__ void StoreWarpRows(const float* acc, int ld, const float* inv_sum, const MHAArgs<T>& args,
                                              const BlockTile& tile, int q_first) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kVecsPerRow = D / kVec;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  for (int i = lane; i < kWmmaTile * kVecsPerRow; i += kWarpSize) {
    const int r = i / kVecsPerRow;
    const int col = (i % kVecsPerRow) * kVec;
    if (q_first + r >= tile.len) {
      continue;
    }
    Vector<T, kVec> out;
    for (int k = 0; k < kVec; ++k) {
      out.v[k] = FromFloat<T>(acc[r * ld + col + k] * inv_sum[r]);
    }
    StoreVector<T, kVec>(args.context + (tile.first + q_first + r) * args.hidden +
                             static_cast<int64_t>(tile.head) * D + col,
                         out);
  }
}

}  // namespace bytetx::cuda::fused_mha
