// Each op's CPU run from the sizes and attributes its contract validated: the one place where the CPU
// shells (ONNX Runtime, the C ABI) check the packed layout's values and fill a kernel's params struct,
// as kernels/contract_launch.h is for the CUDA shells.
#pragma once

#include <cstdint>

#include "common/checks.h"
#include "common/contract.h"
#include "common/fused_mha_contract.h"
#include "common/parallel_for.h"
#include "common/rebuild_padding_contract.h"
#include "common/remove_padding_contract.h"
#include "cpu/fused_mha.h"
#include "cpu/rebuild_padding.h"
#include "cpu/remove_padding.h"

namespace bytetx::cpu {

// The kernel's mask type for a mask the contract accepted on the CPU (int32 or int64).
MaskType MaskTypeOf(contract::ElementType type);

// T: the mask's nonzero slots, which size the packed output.
int64_t CountTokens(const contract::RemovePadding::Dims& dims, const void* attention_mask, MaskType mask_type);

// packed has CountTokens rows.
Status RunRemovePadding(const contract::RemovePadding::Dims& dims, const float* input, const void* attention_mask,
                        MaskType mask_type, float* packed, int32_t* cu_seqlens, int32_t* token_offset,
                        const ParallelFor& parallel_for);

// Checks cu_seqlens' values (packed::ValidateCuSeqlens) before reading anything through them.
// positions: nullptr without the position features; relative_position_bias: nullptr without the bias.
Status RunFusedMHA(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                   const float* qkv, const float* qkv_bias, const int32_t* cu_seqlens, const int32_t* positions,
                   const float* relative_position_bias, const float* position_key, const float* position_query,
                   float* context, const ParallelFor& parallel_for);

// Checks token_offset's values (packed::ValidateTokenOffset) before scattering through them.
Status RunRebuildPadding(const contract::RebuildPadding::Dims& dims, const float* packed, const int32_t* token_offset,
                         float* output, const ParallelFor& parallel_for);

}  // namespace bytetx::cpu
