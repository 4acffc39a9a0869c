#include "ort/cpu_ops.h"

#include "common/fused_mha_contract.h"
#include "common/packed_layout.h"
#include "common/rebuild_padding_contract.h"
#include "common/remove_padding_contract.h"
#include "cpu/fused_mha.h"
#include "cpu/rebuild_padding.h"
#include "cpu/remove_padding.h"
#include "ort/kernel_utils.h"

namespace bytetx::ort {
namespace {

using contract::Backend;

Status ComputeRemovePadding(OrtKernelContext* context) {
  using Contract = contract::RemovePadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu));
  const Contract::Dims& dims = call.dims();

  cpu::RemovePaddingParams params;
  int64_t num_tokens = 0;
  if (call.desc(Contract::kAttentionMask).type == contract::ElementType::kInt64) {
    params.mask_type = cpu::MaskType::kInt64;
    num_tokens = packed::CountTokens(call.Data<int64_t>(Contract::kAttentionMask), dims.batch, dims.seq_len);
  } else {
    params.mask_type = cpu::MaskType::kInt32;
    num_tokens = packed::CountTokens(call.Data<int32_t>(Contract::kAttentionMask), dims.batch, dims.seq_len);
  }
  params.input = call.Data<float>(Contract::kInput);
  params.attention_mask = call.RawData(Contract::kAttentionMask);
  params.batch = dims.batch;
  params.seq_len = dims.seq_len;
  params.hidden = dims.hidden;
  params.packed = call.Output<float>(0, {num_tokens, dims.hidden});
  params.cu_seqlens = call.Output<int32_t>(1, {dims.batch + 1});
  params.token_offset = call.Output<int32_t>(2, {dims.batch, dims.seq_len});
  return cpu::RunRemovePadding(params, OrtParallelFor(context));
}

Status ComputeFusedMHA(OrtKernelContext* context, const contract::FusedMHA::Attributes& attributes) {
  using Contract = contract::FusedMHA;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu, attributes));
  const Contract::Dims& dims = call.dims();
  const int32_t* cu_seqlens = call.Data<int32_t>(Contract::kCuSeqlens);
  BYTETX_RETURN_IF_ERROR(packed::ValidateCuSeqlens(cu_seqlens, dims.batch, dims.seq_len, dims.num_tokens));

  cpu::FusedMHAParams params;
  params.qkv = call.Data<float>(Contract::kQkv);
  params.qkv_bias = call.Data<float>(Contract::kQkvBias);
  params.cu_seqlens = cu_seqlens;
  params.batch = dims.batch;
  params.num_tokens = dims.num_tokens;
  params.num_heads = attributes.num_heads;
  params.head_size = dims.head_size;
  params.scale = Contract::Scale(attributes, dims.head_size);
  params.context = call.Output<float>(0, {dims.num_tokens, dims.hidden});
  return cpu::RunFusedMHA(params, OrtParallelFor(context));
}

Status ComputeRebuildPadding(OrtKernelContext* context) {
  using Contract = contract::RebuildPadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu));
  const Contract::Dims& dims = call.dims();
  const int32_t* token_offset = call.Data<int32_t>(Contract::kTokenOffset);
  BYTETX_RETURN_IF_ERROR(packed::ValidateTokenOffset(token_offset, dims.batch * dims.seq_len, dims.num_tokens));

  cpu::RebuildPaddingParams params;
  params.packed = call.Data<float>(Contract::kPacked);
  params.token_offset = token_offset;
  params.num_tokens = dims.num_tokens;
  params.batch = dims.batch;
  params.seq_len = dims.seq_len;
  params.hidden = dims.hidden;
  params.output = call.Output<float>(0, {dims.batch, dims.seq_len, dims.hidden});
  return cpu::RunRebuildPadding(params, OrtParallelFor(context));
}

struct RemovePaddingOp
    : ContractOp<RemovePaddingOp, contract::RemovePadding, StatelessKernel<contract::RemovePadding, ComputeRemovePadding>> {
  RemovePaddingOp() : ContractOp(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, nullptr) {}
};

struct FusedMHAOp : ContractOp<FusedMHAOp, contract::FusedMHA, FusedMHAKernel<ComputeFusedMHA>> {
  FusedMHAOp() : ContractOp(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, nullptr) {}
};

struct RebuildPaddingOp : ContractOp<RebuildPaddingOp, contract::RebuildPadding,
                                     StatelessKernel<contract::RebuildPadding, ComputeRebuildPadding>> {
  RebuildPaddingOp() : ContractOp(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, nullptr) {}
};

}  // namespace

const std::vector<const OrtCustomOp*>& CpuOps() {
  static const RemovePaddingOp remove_padding;
  static const FusedMHAOp fused_mha;
  static const RebuildPaddingOp rebuild_padding;
  static const std::vector<const OrtCustomOp*> ops = {&remove_padding, &fused_mha, &rebuild_padding};
  return ops;
}

}  // namespace bytetx::ort
