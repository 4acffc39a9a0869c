#include "cpu/contract_run.h"

#include "common/packed_layout.h"

// The params structs are filled in their fields' order (cpu/<op>.h).
namespace bytetx::cpu {

MaskType MaskTypeOf(contract::ElementType type) {
  return type == contract::ElementType::kInt64 ? MaskType::kInt64 : MaskType::kInt32;
}

int64_t CountTokens(const contract::RemovePadding::Dims& dims, const void* attention_mask, MaskType mask_type) {
  return mask_type == MaskType::kInt64
             ? packed::CountTokens(static_cast<const int64_t*>(attention_mask), dims.batch, dims.seq_len)
             : packed::CountTokens(static_cast<const int32_t*>(attention_mask), dims.batch, dims.seq_len);
}

Status RunRemovePadding(const contract::RemovePadding::Dims& dims, const float* input, const void* attention_mask,
                        MaskType mask_type, float* packed, int32_t* cu_seqlens, int32_t* token_offset,
                        const ParallelFor& parallel_for) {
  return RunRemovePadding({input, attention_mask, mask_type, dims, packed, cu_seqlens, token_offset}, parallel_for);
}

Status RunFusedMHA(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                   const float* qkv, const float* qkv_bias, const int32_t* cu_seqlens, const int32_t* positions,
                   const float* relative_position_bias, const float* position_key, const float* position_query,
                   float* context, const ParallelFor& parallel_for) {
  BYTETX_RETURN_IF_ERROR(packed::ValidateCuSeqlens(cu_seqlens, dims.batch, dims.seq_len, dims.num_tokens));
  const float scale = contract::FusedMHA::Scale(attributes, dims.head_size);
  const RelativePositionBuckets buckets = contract::FusedMHA::Buckets(attributes, dims);
  return RunFusedMHA({qkv, qkv_bias, cu_seqlens, dims, attributes.num_heads, scale, context, positions,
                      relative_position_bias, buckets,
                      attributes.rotary_frequencies.empty() ? nullptr : attributes.rotary_frequencies.data(),
                      attributes.sliding_window.value_or(-1), position_key, position_query,
                      attributes.position_buckets.value_or(0), contract::FusedMHA::PositionLogBase(attributes)},
                     parallel_for);
}

Status RunRebuildPadding(const contract::RebuildPadding::Dims& dims, const float* packed, const int32_t* token_offset,
                         float* output, const ParallelFor& parallel_for) {
  BYTETX_RETURN_IF_ERROR(packed::ValidateTokenOffset(token_offset, dims.batch * dims.seq_len, dims.num_tokens));
  return RunRebuildPadding({packed, token_offset, dims, output}, parallel_for);
}

}  // namespace bytetx::cpu
