// FusedMHA on the CPU: multi-head self-attention over the ragged sequences of the packed layout
// (common/packed_layout.h), reading Q, K and V from one [T, 3H] tensor and adding their bias on the fly,
// with an optional relative position bias on the scores (common/relative_position.h), optional rotary
// embeddings of Q and K, an optional sliding window and optional disentangled position terms, all by
// the tokens' positions.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/op_dims.h"
#include "common/parallel_for.h"
#include "common/relative_position.h"

namespace bytetx::cpu {

struct FusedMHAParams {
  // H = num_heads * head_size; head h uses columns [h * head_size, (h + 1) * head_size) of a block.
  const float* qkv = nullptr;           // [T, 3H]: Q, K, V blocks
  const float* qkv_bias = nullptr;      // [3H]
  const int32_t* cu_seqlens = nullptr;  // [B + 1], passed packed::ValidateCuSeqlens
  FusedMHADims dims;                    // T, H, head size, B, S
  int64_t num_heads = 0;
  float scale = 0.0f;                   // multiplies Q K^T before the softmax
  float* context = nullptr;             // [T, H]
  // With dims.num_buckets > 0: head h's scores of query i and key j get
  // relative_position_bias[RelativePositionBucket(positions[i] - positions[j]), h].
  const int32_t* positions = nullptr;               // [T], any values
  const float* relative_position_bias = nullptr;    // [num_buckets, num_heads]
  RelativePositionBuckets buckets;
  // Non-null: q and k (bias added) of token t rotated by the float32 angles positions[t] *
  // rotary_frequencies[c], pairing columns c and c + head_size / 2.
  const float* rotary_frequencies = nullptr;  // [head_size / 2]
  // With sliding_window >= 0: query i attends key j only where |positions[i] - positions[j]| <= it.
  int64_t sliding_window = -1;
  // With dims.position_span > 0 (DeBERTa's disentangled attention), before the scale: head h's score of
  // query i and key j gets q_i . position_key[r, head h] and k_j . position_query[r, head h] (each
  // where given), r = clamp(DisentangledBucket(positions[i] - positions[j]) + span, 0, 2 span - 1).
  const float* position_key = nullptr;    // [2 span, H]
  const float* position_query = nullptr;  // [2 span, H]
  int64_t position_buckets = 0;           // 0: the distances themselves
  float position_log_base = 0.0f;         // DisentangledLogBase
};

// Each sequence's output depends only on that sequence: not on the batch around it, the thread
// count or the scheduling.
Status RunFusedMHA(const FusedMHAParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
