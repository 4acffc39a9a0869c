// Each op's CUDA launch from the sizes and attributes its contract validated: the one place where
// the CUDA shells (ONNX Runtime, TensorRT, the C ABI) fill a launcher's params struct. Host C++.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/checks.h"
#include "common/fused_mha_contract.h"
#include "common/rebuild_padding_contract.h"
#include "common/remove_padding_contract.h"
#include "kernels/common/data_type.h"
#include "kernels/remove_padding/remove_padding.h"

namespace bytetx::cuda {

// packed_rows: T where the caller counted the mask, else the bound B * S (rows from T on become zeros).
Status RunRemovePadding(const contract::RemovePadding::Dims& dims, DataType dtype, const void* input,
                        const void* attention_mask, MaskType mask_type, int64_t packed_rows, void* packed,
                        int32_t* cu_seqlens, int32_t* token_offset, cudaStream_t stream);

// positions: nullptr without a position feature; relative_position_bias, position_key and
// position_query: nullptr where the op does not have that input.
Status RunFusedMHA(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                   DataType dtype, const void* qkv, const void* qkv_bias, const int32_t* cu_seqlens,
                   const int32_t* positions, const void* relative_position_bias, const void* position_key,
                   const void* position_query, void* context, cudaStream_t stream);

Status RunRebuildPadding(const contract::RebuildPadding::Dims& dims, DataType dtype, const void* packed,
                         const int32_t* token_offset, void* output, cudaStream_t stream);

}  // namespace bytetx::cuda
