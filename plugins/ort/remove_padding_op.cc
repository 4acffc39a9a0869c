#include "ort/remove_padding_op.h"

#include "common/packed_layout.h"
#include "cpu/remove_padding.h"

namespace bytetx::ort {
namespace {

Status Compute(OrtKernelContext* context) {
  const Ort::KernelContext ctx(context);
  const Input input = GetRequiredInput(ctx, 0, "input");
  const Input mask = GetRequiredInput(ctx, 1, "attention_mask");

  BYTETX_RETURN_IF_ERROR(input.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
  BYTETX_RETURN_IF_ERROR(input.ExpectRank(3, "[B, S, H]"));
  const int64_t batch = input.dim(0);
  const int64_t seq_len = input.dim(1);
  const int64_t hidden = input.dim(2);
  const bool mask_is_int64 = mask.type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  BYTETX_CHECK(mask_is_int64 || mask.type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
               "input 'attention_mask' must be int64 or int32, but it is ", TypeName(mask.type()));
  BYTETX_RETURN_IF_ERROR(mask.ExpectShape({batch, seq_len}, "[B, S]", "(B, S from 'input')"));
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "input"));
  int64_t num_tokens = 0;
  cpu::RemovePaddingParams params;
  if (mask_is_int64) {
    params.attention_mask = mask.Data<int64_t>();
    params.mask_type = cpu::MaskType::kInt64;
    BYTETX_RETURN_IF_ERROR(packed::ValidateAttentionMask(mask.Data<int64_t>(), batch, seq_len, &num_tokens));
  } else {
    params.attention_mask = mask.Data<int32_t>();
    params.mask_type = cpu::MaskType::kInt32;
    BYTETX_RETURN_IF_ERROR(packed::ValidateAttentionMask(mask.Data<int32_t>(), batch, seq_len, &num_tokens));
  }

  params.input = input.Data<float>();
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  params.packed = ctx.GetOutput(0, {num_tokens, hidden}).GetTensorMutableData<float>();
  params.cu_seqlens = ctx.GetOutput(1, {batch + 1}).GetTensorMutableData<int32_t>();
  params.token_offset = ctx.GetOutput(2, {batch, seq_len}).GetTensorMutableData<int32_t>();
  return cpu::RunRemovePadding(params, OrtParallelFor(context));
}

}  // namespace

OrtStatusPtr RemovePaddingKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(RemovePaddingOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr RemovePaddingOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* /*info*/,
                                             void** kernel) const noexcept {
  return Guarded(kName, [&] {
    *kernel = new RemovePaddingKernel();
    return Status::Ok();
  });
}

ONNXTensorElementDataType RemovePaddingOp::GetInputType(size_t index) const {
  // The mask may be int64 or int32: declared open here, checked in Compute.
  return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

ONNXTensorElementDataType RemovePaddingOp::GetOutputType(size_t index) const {
  return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

}  // namespace bytetx::ort
