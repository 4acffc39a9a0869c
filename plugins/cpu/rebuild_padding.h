// RebuildPadding on the CPU: scatters packed tokens back to the padded layout, padding exactly zero.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/parallel_for.h"

namespace bytetx::cpu {

struct RebuildPaddingParams {
  const float* packed = nullptr;         // [num_tokens, hidden]
  const int32_t* token_offset = nullptr; // [batch, seq_len]; entries t < num_tokens distinct, in range
  int64_t num_tokens = 0;                // <= batch * seq_len
  int64_t batch = 0;
  int64_t seq_len = 0;
  int64_t hidden = 0;
  float* output = nullptr;               // [batch, seq_len, hidden]
};

Status RunRebuildPadding(const RebuildPaddingParams& p, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
