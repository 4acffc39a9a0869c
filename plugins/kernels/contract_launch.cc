#include "kernels/contract_launch.h"

#include "common/cuda_status.h"
#include "kernels/fused_mha/fused_mha.h"
#include "kernels/rebuild_padding/rebuild_padding.h"

namespace bytetx::cuda {

Status RunRemovePadding(const contract::RemovePadding::Dims& dims, DataType dtype, const void* input,
                        const void* attention_mask, MaskType mask_type, int64_t packed_rows, void* packed,
                        int32_t* cu_seqlens, int32_t* token_offset, cudaStream_t stream) {
  RemovePaddingParams params;
  params.dtype = dtype;
  params.input = input;
  params.attention_mask = attention_mask;
  params.mask_type = mask_type;
  params.batch = dims.batch;
  params.seq_len = dims.seq_len;
  params.hidden = dims.hidden;
  params.packed_rows = packed_rows;
  params.packed = packed;
  params.cu_seqlens = cu_seqlens;
  params.token_offset = token_offset;
  return CheckedLaunch(CheckRemovePaddingParams, LaunchRemovePadding, params, stream,
                       "launching the RemovePadding kernels");
}

Status RunFusedMHA(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                   DataType dtype, const void* qkv, const void* qkv_bias, const int32_t* cu_seqlens, void* context,
                   cudaStream_t stream) {
  FusedMHAParams params;
  params.dtype = dtype;
  params.qkv = qkv;
  params.qkv_bias = qkv_bias;
  params.cu_seqlens = cu_seqlens;
  params.batch = dims.batch;
  params.seq_len = dims.seq_len;
  params.num_tokens = dims.num_tokens;
  params.num_heads = attributes.num_heads;
  params.head_size = dims.head_size;
  params.scale = contract::FusedMHA::Scale(attributes, dims.head_size);
  params.context = context;
  return CheckedLaunch(CheckFusedMHAParams, LaunchFusedMHA, params, stream, "launching the FusedMHA kernel");
}

Status RunRebuildPadding(const contract::RebuildPadding::Dims& dims, DataType dtype, const void* packed,
                         const int32_t* token_offset, void* output, cudaStream_t stream) {
  RebuildPaddingParams params;
  params.dtype = dtype;
  params.packed = packed;
  params.token_offset = token_offset;
  params.num_tokens = dims.num_tokens;
  params.batch = dims.batch;
  params.seq_len = dims.seq_len;
  params.hidden = dims.hidden;
  params.output = output;
  return CheckedLaunch(CheckRebuildPaddingParams, LaunchRebuildPadding, params, stream,
                       "launching the RebuildPadding kernel");
}

}  // namespace bytetx::cuda
