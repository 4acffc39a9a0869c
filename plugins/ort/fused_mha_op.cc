#include "ort/fused_mha_op.h"

#include <cmath>

#include "common/packed_layout.h"
#include "cpu/fused_mha.h"

namespace bytetx::ort {
namespace {

constexpr size_t kQkvBiasIndex = 1;

}  // namespace

Status FusedMHAKernel::Compute(OrtKernelContext* context) const {
  const Ort::KernelContext ctx(context);
  const Input qkv = GetRequiredInput(ctx, 0, "qkv");
  const std::optional<Input> qkv_bias = Input::Get(ctx, kQkvBiasIndex, "qkv_bias");
  const Input cu_seqlens = GetRequiredInput(ctx, 2, "cu_seqlens");
  const Input token_offset = GetRequiredInput(ctx, 3, "token_offset");

  BYTETX_RETURN_IF_ERROR(qkv.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
  BYTETX_RETURN_IF_ERROR(qkv.ExpectRank(2, "[T, 3 * H]"));
  const int64_t num_tokens = qkv.dim(0);
  const int64_t width = qkv.dim(1);
  BYTETX_CHECK(width % 3 == 0 && (width / 3) % num_heads_ == 0, "input 'qkv' must have width 3 * H with H a ",
               "multiple of num_heads=", num_heads_, ", but its shape is ", ShapeString(qkv.shape()));
  const int64_t hidden = width / 3;
  if (qkv_bias) {
    BYTETX_RETURN_IF_ERROR(qkv_bias->ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
    BYTETX_RETURN_IF_ERROR(qkv_bias->ExpectShape({width}, "[3 * H]", "(the width of 'qkv')"));
  }
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectRank(2, "[B, S]"));
  const int64_t batch = token_offset.dim(0);
  const int64_t max_seq_len = token_offset.dim(1);
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, max_seq_len, "token_offset"));  // B + 1 below
  BYTETX_RETURN_IF_ERROR(cu_seqlens.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(cu_seqlens.ExpectShape({batch + 1}, "[B + 1]", "(B from 'token_offset')"));
  BYTETX_RETURN_IF_ERROR(
      packed::ValidateCuSeqlens(cu_seqlens.Data<int32_t>(), batch, max_seq_len, num_tokens));

  cpu::FusedMHAParams params;
  params.qkv = qkv.Data<float>();
  params.qkv_bias = qkv_bias ? qkv_bias->Data<float>() : nullptr;
  params.cu_seqlens = cu_seqlens.Data<int32_t>();
  params.batch = batch;
  params.num_tokens = num_tokens;
  params.num_heads = num_heads_;
  params.head_size = hidden / num_heads_;
  params.scale = scale_ ? *scale_ : 1.0f / std::sqrt(static_cast<float>(params.head_size));
  params.context = ctx.GetOutput(0, {num_tokens, hidden}).GetTensorMutableData<float>();
  return cpu::RunFusedMHA(params, OrtParallelFor(context));
}

OrtStatusPtr FusedMHAKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(FusedMHAOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr FusedMHAOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                        void** kernel) const noexcept {
  return Guarded(kName, [&] {
    int64_t num_heads = 0;
    std::optional<float> scale;
    BYTETX_RETURN_IF_ERROR(ReadFusedMHAAttributes(api, info, &num_heads, &scale));
    *kernel = new FusedMHAKernel(num_heads, scale);
    return Status::Ok();
  });
}

ONNXTensorElementDataType FusedMHAOp::GetInputType(size_t index) const {
  return index <= kQkvBiasIndex ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

OrtCustomOpInputOutputCharacteristic FusedMHAOp::GetInputCharacteristic(size_t index) const {
  return index == kQkvBiasIndex ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
}

ONNXTensorElementDataType FusedMHAOp::GetOutputType(size_t /*index*/) const {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

}  // namespace bytetx::ort
