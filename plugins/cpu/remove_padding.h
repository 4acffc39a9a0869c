// RemovePadding on the CPU: packs a padded batch into the layout of common/packed_layout.h.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/op_dims.h"
#include "common/parallel_for.h"

namespace bytetx::cpu {

enum class MaskType { kInt32, kInt64 };

struct RemovePaddingParams {
  const float* input = nullptr;           // [B, S, H]
  const void* attention_mask = nullptr;   // [B, S] of mask_type; a slot is a token where it is nonzero
  MaskType mask_type = MaskType::kInt64;
  RemovePaddingDims dims;                // B, S, H; B * S fits int32 (validated)
  float* packed = nullptr;                // [T, H], T = number of nonzero slots
  int32_t* cu_seqlens = nullptr;          // [B + 1]
  int32_t* token_offset = nullptr;        // [B, S]
};

Status RunRemovePadding(const RemovePaddingParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
