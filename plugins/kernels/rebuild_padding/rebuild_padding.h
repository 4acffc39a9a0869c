// RebuildPadding on CUDA (docs/ops.md): scatters packed tokens back to the padded layout, padding
// exactly zero. One pass over token_offset writes every padded row once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/op_dims.h"
#include "kernels/common/data_type.h"

namespace bytetx::cuda {

struct RebuildPaddingParams {
  DataType dtype = DataType::kFloat32;
  const void* packed = nullptr;           // [num_tokens, hidden] of dtype
  const int32_t* token_offset = nullptr;  // [batch, seq_len], the packed layout's permutation
  RebuildPaddingDims dims;                // T (rows of packed) <= B * S <= INT32_MAX, H, B, S
  void* output = nullptr;                 // [batch, seq_len, hidden] of dtype
};

cudaError_t LaunchRebuildPadding(const RebuildPaddingParams& params, cudaStream_t stream);

// nullptr when LaunchRebuildPadding accepts `params`, else why not.
const char* CheckRebuildPaddingParams(const RebuildPaddingParams& params);

}  // namespace bytetx::cuda
