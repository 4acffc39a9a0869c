// RemovePadding on the CPU: packs a padded batch into the layout of common/packed_layout.h.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/parallel_for.h"

namespace bytetx::cpu {

enum class MaskType { kInt32, kInt64 };

struct RemovePaddingParams {
  const float* input = nullptr;           // [batch, seq_len, hidden]
  const void* attention_mask = nullptr;   // [batch, seq_len] of mask_type, values 0 or 1 (validated)
  MaskType mask_type = MaskType::kInt64;
  int64_t batch = 0;
  int64_t seq_len = 0;                    // batch * seq_len fits int32 (validated)
  int64_t hidden = 0;
  float* packed = nullptr;                // [T, hidden], T = number of ones in the mask
  int32_t* cu_seqlens = nullptr;          // [batch + 1]
  int32_t* token_offset = nullptr;        // [batch, seq_len]
};

Status RunRemovePadding(const RemovePaddingParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
