// RemovePadding on CUDA (docs/ops.md): packs a padded batch into the layout of
// common/packed_layout.h with a prefix sum over the mask on the device. Neither the launcher nor
// the kernels synchronize with the host or allocate.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/op_dims.h"
#include "kernels/common/data_type.h"

namespace bytetx::cuda {

enum class MaskType {
  kInt32,  // int32_t per slot
  kInt64,  // int64_t per slot
  kBits,   // uint32_t words, slot i is bit (i % 32) of word i / 32 (UploadMaskBits fills them)
};

struct RemovePaddingParams {
  DataType dtype = DataType::kFloat32;
  const void* input = nullptr;           // [batch, seq_len, hidden] of dtype
  const void* attention_mask = nullptr;  // [batch, seq_len] of mask_type; nonzero counts as 1
  MaskType mask_type = MaskType::kInt64;
  RemovePaddingDims dims;                // B, S, H; B * S <= INT32_MAX (the caller checks)
  // Rows of `packed`, an upper bound on T known on the host: T itself when the host knows it, else
  // batch * seq_len. Rows [T, packed_rows) are written with zeros (T read on the device).
  int64_t packed_rows = 0;
  void* packed = nullptr;                // [packed_rows, hidden] of dtype
  int32_t* cu_seqlens = nullptr;         // [batch + 1]
  int32_t* token_offset = nullptr;       // [batch, seq_len]
};

// Enqueues the packing on `stream`. Returns cudaErrorInvalidValue for inconsistent sizes (see
// CheckRemovePaddingParams), else the launch status.
cudaError_t LaunchRemovePadding(const RemovePaddingParams& params, cudaStream_t stream);

// nullptr when LaunchRemovePadding accepts the sizes and pointers of `params`, else why not.
const char* CheckRemovePaddingParams(const RemovePaddingParams& params);

// A host-resident 0/1 mask reaches the device without a copy from pageable memory (which may block
// the host): its bits travel inside kernel parameters, kMaskBitsPerLaunch at a time, and each launch
// writes them to `device_words` ([ceil(num_slots / 32)] uint32_t, e.g. scratch of the stream).
constexpr int64_t kMaskWordsPerLaunch = 960;
constexpr int64_t kMaskBitsPerLaunch = kMaskWordsPerLaunch * 32;
cudaError_t UploadMaskBits(const uint32_t* host_words, int64_t num_slots, uint32_t* device_words,
                           cudaStream_t stream);

}  // namespace bytetx::cuda
