#include "ort/cpu_ops.h"

#include "cpu/contract_run.h"
#include "ort/kernel_utils.h"

namespace bytetx::ort {
namespace {

using contract::Backend;

Status ComputeRemovePadding(OrtKernelContext* context) {
  using Contract = contract::RemovePadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu));
  const Contract::Dims& dims = call.dims();
  const cpu::MaskType mask_type = cpu::MaskTypeOf(call.desc(Contract::kAttentionMask).type);
  const void* mask = call.RawData(Contract::kAttentionMask);
  const int64_t num_tokens = cpu::CountTokens(dims, mask, mask_type);
  return cpu::RunRemovePadding(dims, call.Data<float>(Contract::kInput), mask, mask_type,
                               call.Output<float>(0, {num_tokens, dims.hidden}),
                               call.Output<int32_t>(1, {dims.batch + 1}),
                               call.Output<int32_t>(2, {dims.batch, dims.seq_len}), OrtParallelFor(context));
}

Status ComputeFusedMHA(OrtKernelContext* context, const contract::FusedMHA::Attributes& attributes) {
  using Contract = contract::FusedMHA;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu, attributes));
  const Contract::Dims& dims = call.dims();
  return cpu::RunFusedMHA(dims, attributes, call.Data<float>(Contract::kQkv), call.Data<float>(Contract::kQkvBias),
                          call.Data<int32_t>(Contract::kCuSeqlens), call.Data<int32_t>(Contract::kPositions),
                          call.Data<float>(Contract::kRelativePositionBias), call.Data<float>(Contract::kPositionKey),
                          call.Data<float>(Contract::kPositionQuery),
                          call.Output<float>(0, {dims.num_tokens, dims.hidden}), OrtParallelFor(context));
}

Status ComputeRebuildPadding(OrtKernelContext* context) {
  using Contract = contract::RebuildPadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCpu));
  const Contract::Dims& dims = call.dims();
  return cpu::RunRebuildPadding(dims, call.Data<float>(Contract::kPacked), call.Data<int32_t>(Contract::kTokenOffset),
                                call.Output<float>(0, {dims.batch, dims.seq_len, dims.hidden}), OrtParallelFor(context));
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
