#include "kernels/contract_launch.h"

#include "common/cuda_status.h"
#include "kernels/fused_mha/fused_mha.h"
#include "kernels/rebuild_padding/rebuild_padding.h"

// The params structs are filled in their fields' order (kernels/<op>/<op>.h).
namespace bytetx::cuda {

Status RunRemovePadding(const contract::RemovePadding::Dims& dims, DataType dtype, const void* input,
                        const void* attention_mask, MaskType mask_type, int64_t packed_rows, void* packed,
                        int32_t* cu_seqlens, int32_t* token_offset, cudaStream_t stream) {
  const RemovePaddingParams params{dtype,       input,  attention_mask, mask_type,   dims,
                                   packed_rows, packed, cu_seqlens,     token_offset};
  return CheckedLaunch(CheckRemovePaddingParams, LaunchRemovePadding, params, stream,
                       "launching the RemovePadding kernels");
}

Status RunFusedMHA(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                   DataType dtype, const void* qkv, const void* qkv_bias, const int32_t* cu_seqlens,
                   const int32_t* positions, const void* relative_position_bias, const void* position_key,
                   const void* position_query, void* context, cudaStream_t stream) {
  const float scale = contract::FusedMHA::Scale(attributes, dims.head_size);
  const RelativePositionBuckets buckets = contract::FusedMHA::Buckets(attributes, dims);
  const float* rotary_frequencies =
      attributes.rotary_frequencies.empty() ? nullptr : attributes.rotary_frequencies.data();
  const FusedMHAParams params{dtype,
                              qkv,
                              qkv_bias,
                              cu_seqlens,
                              dims,
                              attributes.num_heads,
                              scale,
                              context,
                              positions,
                              relative_position_bias,
                              buckets,
                              rotary_frequencies,
                              attributes.sliding_window.value_or(-1),
                              position_key,
                              position_query,
                              attributes.position_buckets.value_or(0),
                              contract::FusedMHA::PositionLogBase(attributes)};
  return CheckedLaunch(CheckFusedMHAParams, LaunchFusedMHA, params, stream, "launching the FusedMHA kernel");
}

Status RunRebuildPadding(const contract::RebuildPadding::Dims& dims, DataType dtype, const void* packed,
                         const int32_t* token_offset, void* output, cudaStream_t stream) {
  const RebuildPaddingParams params{dtype, packed, token_offset, dims, output};
  return CheckedLaunch(CheckRebuildPaddingParams, LaunchRebuildPadding, params, stream,
                       "launching the RebuildPadding kernel");
}

}  // namespace bytetx::cuda
