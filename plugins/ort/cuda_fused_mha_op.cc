#include "ort/cuda_fused_mha_op.h"

#include <cmath>

#include "common/packed_layout.h"
#include "kernels/fused_mha/fused_mha.h"
#include "ort/cuda_utils.h"

namespace bytetx::ort {
namespace {

constexpr size_t kQkvBiasIndex = 1;

}  // namespace

Status CudaFusedMHAKernel::Compute(OrtKernelContext* context) const {
  const Ort::KernelContext ctx(context);
  const Input qkv = GetRequiredInput(ctx, 0, "qkv");
  const std::optional<Input> qkv_bias = Input::Get(ctx, kQkvBiasIndex, "qkv_bias");
  const Input cu_seqlens = GetRequiredInput(ctx, 2, "cu_seqlens");
  const Input token_offset = GetRequiredInput(ctx, 3, "token_offset");

  BYTETX_RETURN_IF_ERROR(qkv.ExpectType(type_));
  BYTETX_RETURN_IF_ERROR(qkv.ExpectRank(2, "[T, 3 * H]"));
  const int64_t num_tokens = qkv.dim(0);
  const int64_t width = qkv.dim(1);
  BYTETX_CHECK(width % 3 == 0 && (width / 3) % num_heads_ == 0, "input 'qkv' must have width 3 * H with H a ",
               "multiple of num_heads=", num_heads_, ", but its shape is ", ShapeString(qkv.shape()));
  const int64_t hidden = width / 3;
  const int64_t head_size = hidden / num_heads_;
  BYTETX_CHECK(head_size == 32 || head_size == 64 || head_size == 128, "the CUDA kernels take head sizes ",
               "H / num_heads of 32, 64 or 128, but it is ", hidden, " / ", num_heads_, " = ", head_size);
  if (qkv_bias) {
    BYTETX_RETURN_IF_ERROR(qkv_bias->ExpectType(type_));
    BYTETX_RETURN_IF_ERROR(qkv_bias->ExpectShape({width}, "[3 * H]", "(the width of 'qkv')"));
  }
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectRank(2, "[B, S]"));
  const int64_t batch = token_offset.dim(0);
  const int64_t max_seq_len = token_offset.dim(1);
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, max_seq_len, "token_offset"));  // B + 1 below
  BYTETX_RETURN_IF_ERROR(cu_seqlens.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(cu_seqlens.ExpectShape({batch + 1}, "[B + 1]", "(B from 'token_offset')"));
  // cu_seqlens[B] = T with every length <= S implies T <= B * S: the part checkable from shapes.
  BYTETX_CHECK(num_tokens <= batch * max_seq_len, "input 'qkv' has T=", num_tokens,
               " rows, more than the B * S=", batch, " * ", max_seq_len, " padded slots of 'token_offset'");

  cuda::FusedMHAParams params;
  params.dtype = ToCudaDataType(type_);
  params.qkv = qkv.Data<void>();
  params.qkv_bias = qkv_bias ? qkv_bias->Data<void>() : nullptr;
  params.cu_seqlens = cu_seqlens.Data<int32_t>();
  params.batch = batch;
  params.max_seq_len = max_seq_len;
  params.num_rows = num_tokens;
  params.num_heads = num_heads_;
  params.head_size = head_size;
  params.scale = scale_ ? *scale_ : 1.0f / std::sqrt(static_cast<float>(head_size));
  params.context = ctx.GetOutput(0, {num_tokens, hidden}).GetTensorMutableRawData();
  const char* unfit = cuda::CheckFusedMHAParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  return CudaStatus(cuda::LaunchFusedMHA(params, ComputeStream(context)), "launching the FusedMHA kernel");
}

OrtStatusPtr CudaFusedMHAKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(CudaFusedMHAOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr CudaFusedMHAOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                            void** kernel) const noexcept {
  return Guarded(kName, [&] {
    int64_t num_heads = 0;
    std::optional<float> scale;
    BYTETX_RETURN_IF_ERROR(ReadFusedMHAAttributes(api, info, &num_heads, &scale));
    *kernel = new CudaFusedMHAKernel(type_, num_heads, scale);
    return Status::Ok();
  });
}

const char* CudaFusedMHAOp::GetExecutionProviderType() const { return kCudaExecutionProvider; }

ONNXTensorElementDataType CudaFusedMHAOp::GetInputType(size_t index) const {
  return index <= kQkvBiasIndex ? type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

OrtCustomOpInputOutputCharacteristic CudaFusedMHAOp::GetInputCharacteristic(size_t index) const {
  return index == kQkvBiasIndex ? OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_OPTIONAL
                                : OrtCustomOpInputOutputCharacteristic::INPUT_OUTPUT_REQUIRED;
}

ONNXTensorElementDataType CudaFusedMHAOp::GetOutputType(size_t /*index*/) const { return type_; }

}  // namespace bytetx::ort
