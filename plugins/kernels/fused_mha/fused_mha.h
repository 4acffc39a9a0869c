// FusedMHA on CUDA (docs/ops.md): multi-head self-attention over the ragged sequences of the packed
// layout, reading Q, K, V from one [T, 3H] tensor and adding their bias on the fly. Two kernels
// (docs/kernels.md): a short-sequence kernel keeping a head's scores in shared memory, and a tiled
// online-softmax kernel for any length; the host-side bound seq_len picks one. The head sizes it
// takes are those of fused_mha_head_sizes.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/op_dims.h"
#include "common/relative_position.h"
#include "kernels/common/data_type.h"

namespace bytetx::cuda {

enum class FusedMHAKernel {
  kAuto,   // short kernel when seq_len <= kFusedMHAShortMaxLen and it fits, else tiled
  kShort,  // force the short-sequence kernel (fp16/bf16 only; an error where it does not apply)
  kTiled,  // force the tiled online-softmax kernel
};

// Longest padded length S for which kAuto picks the short-sequence kernel.
constexpr int64_t kFusedMHAShortMaxLen = 128;

struct FusedMHAParams {
  DataType dtype = DataType::kFloat16;
  // hidden = num_heads * head_size; head h uses columns [h * head_size, (h + 1) * head_size) of a block.
  const void* qkv = nullptr;            // [num_tokens, 3 * hidden] of dtype: Q, K, V blocks
  const void* qkv_bias = nullptr;       // [3 * hidden] of dtype
  const int32_t* cu_seqlens = nullptr;  // [batch + 1] on the device; lengths <= seq_len
  FusedMHADims dims;                    // T (rows of qkv and context), H, head size (one of
                                        // kFusedMHAHeadSizes), B, S (host-side bound on every length)
  int64_t num_heads = 0;
  float scale = 0.0f;                   // multiplies Q K^T before the softmax
  void* context = nullptr;              // [num_tokens, hidden] of dtype
  // The relative position bias (dims.num_buckets > 0): every kernel adds
  // relative_position_bias[RelativePositionBucket(positions[i] - positions[j]), h] to head h's scaled
  // score of query i and key j, as the CPU kernel does. Ignored with num_buckets 0.
  const int32_t* positions = nullptr;             // [num_tokens] on the device, any values
  const void* relative_position_bias = nullptr;   // [num_buckets, num_heads] of dtype
  RelativePositionBuckets buckets;
  // Non-null: rotary embeddings of Q and K, the host array of head_size / 2 frequencies of
  // docs/ops.md#fusedmha (copied into the launch). sliding_window >= 0: query i attends key j only
  // where |positions[i] - positions[j]| <= sliding_window. Both read positions.
  const float* rotary_frequencies = nullptr;
  int64_t sliding_window = -1;
  // DeBERTa's disentangled terms (dims.position_span > 0), as the CPU kernel adds them: head h's score
  // of query i and key j gets scale * (q_i . position_key[r] + k_j . position_query[r]) over head h's
  // columns (each table where non-null, not both null), r = clamp(DisentangledBucket(positions[i] -
  // positions[j]) + span, 0, 2 span - 1). They read positions.
  const void* position_key = nullptr;    // [2 * span, hidden] of dtype
  const void* position_query = nullptr;  // [2 * span, hidden] of dtype
  int64_t position_buckets = 0;          // 0: the distances themselves
  float position_log_base = 0.0f;        // DisentangledLogBase
  FusedMHAKernel kernel = FusedMHAKernel::kAuto;
};

cudaError_t LaunchFusedMHA(const FusedMHAParams& params, cudaStream_t stream);

// nullptr when LaunchFusedMHA accepts `params` (head size, alignment, sizes), else why not.
const char* CheckFusedMHAParams(const FusedMHAParams& params);

// The kernel kAuto (or the forced choice) runs for `params` on the current device.
FusedMHAKernel SelectFusedMHAKernel(const FusedMHAParams& params);

}  // namespace bytetx::cuda
