// FusedMHA on the CPU: multi-head self-attention over the ragged sequences of the packed layout
// (common/packed_layout.h), reading Q, K and V from one [T, 3H] tensor and adding their bias on the fly.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/parallel_for.h"

namespace bytetx::cpu {

struct FusedMHAParams {
  // hidden = num_heads * head_size; head h uses columns [h * head_size, (h + 1) * head_size) of a block.
  const float* qkv = nullptr;           // [num_tokens, 3 * hidden]: Q, K, V blocks
  const float* qkv_bias = nullptr;      // [3 * hidden]
  const int32_t* cu_seqlens = nullptr;  // [batch + 1], passed packed::ValidateCuSeqlens
  int64_t batch = 0;
  int64_t num_tokens = 0;               // T
  int64_t num_heads = 0;
  int64_t head_size = 0;
  float scale = 0.0f;                   // multiplies Q K^T before the softmax
  float* context = nullptr;             // [num_tokens, hidden]
};

// Each sequence's output depends only on that sequence: not on the batch around it, the thread
// count or the scheduling.
Status RunFusedMHA(const FusedMHAParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
