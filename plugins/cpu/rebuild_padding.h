// RebuildPadding on the CPU: scatters packed tokens back to the padded layout, padding exactly zero.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/op_dims.h"
#include "common/parallel_for.h"

namespace bytetx::cpu {

struct RebuildPaddingParams {
  const float* packed = nullptr;         // [T, H]
  const int32_t* token_offset = nullptr; // [B, S]; entries t < T distinct, in range (ValidateTokenOffset)
  RebuildPaddingDims dims;               // T <= B * S, H, B, S
  float* output = nullptr;               // [B, S, H]
};

Status RunRebuildPadding(const RebuildPaddingParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
