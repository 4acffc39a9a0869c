// The sizes of each op, as its contract (common/<op>_contract.h) validates them and the kernels'
// params structs (cpu/, kernels/) carry them. Plain C++, no validation: the kernels include this,
// not the contracts.
#pragma once

#include <cstdint>

namespace bytetx {

struct RemovePaddingDims {
  int64_t batch = 0;    // B
  int64_t seq_len = 0;  // S
  int64_t hidden = 0;   // H
};

struct FusedMHADims {
  int64_t num_tokens = 0;  // T
  int64_t hidden = 0;      // H
  int64_t head_size = 0;   // H / num_heads
  int64_t batch = 0;       // B
  int64_t seq_len = 0;     // S: bounds every sequence length
  int64_t num_buckets = 0; // rows of relative_position_bias; 0 without one
  int64_t position_span = 0;  // half the rows of position_key / position_query; 0 without them
};

struct RebuildPaddingDims {
  int64_t num_tokens = 0;  // T
  int64_t hidden = 0;      // H
  int64_t batch = 0;       // B
  int64_t seq_len = 0;     // S
};

}  // namespace bytetx
