#include "ort/cuda_rebuild_padding_op.h"

#include <cstdint>
#include <limits>

#include "common/packed_layout.h"
#include "kernels/rebuild_padding/rebuild_padding.h"
#include "ort/cuda_utils.h"

namespace bytetx::ort {

Status CudaRebuildPaddingKernel::Compute(OrtKernelContext* context) const {
  const Ort::KernelContext ctx(context);
  const Input packed_tokens = GetRequiredInput(ctx, 0, "packed");
  const Input token_offset = GetRequiredInput(ctx, 1, "token_offset");

  BYTETX_RETURN_IF_ERROR(packed_tokens.ExpectType(type_));
  BYTETX_RETURN_IF_ERROR(packed_tokens.ExpectRank(2, "[T, H]"));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectRank(2, "[B, S]"));
  const int64_t num_tokens = packed_tokens.dim(0);
  const int64_t hidden = packed_tokens.dim(1);
  const int64_t batch = token_offset.dim(0);
  const int64_t seq_len = token_offset.dim(1);
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "token_offset"));
  // With T = 0, 'packed' holds no data whatever H it claims: the output size is checked here.
  const auto element_bytes = static_cast<int64_t>(cuda::ElementSize(ToCudaDataType(type_)));
  BYTETX_CHECK(hidden == 0 || batch * seq_len <= std::numeric_limits<int64_t>::max() / element_bytes / hidden,
               "output [B, S, H] = [", batch, ", ", seq_len, ", ", hidden, "] (B, S from 'token_offset', H from ",
               "'packed') is too large to address");
  BYTETX_CHECK(num_tokens <= batch * seq_len, "there are more packed tokens (T=", num_tokens,
               ") than padded slots in 'token_offset' (B * S=", batch * seq_len, ")");

  cuda::RebuildPaddingParams params;
  params.dtype = ToCudaDataType(type_);
  params.packed = packed_tokens.Data<void>();
  params.token_offset = token_offset.Data<int32_t>();
  params.num_tokens = num_tokens;
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  params.output = ctx.GetOutput(0, {batch, seq_len, hidden}).GetTensorMutableRawData();
  const char* unfit = cuda::CheckRebuildPaddingParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  return CudaStatus(cuda::LaunchRebuildPadding(params, ComputeStream(context)),
                    "launching the RebuildPadding kernel");
}

OrtStatusPtr CudaRebuildPaddingKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(CudaRebuildPaddingOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr CudaRebuildPaddingOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* /*info*/,
                                                  void** kernel) const noexcept {
  return Guarded(kName, [&] {
    *kernel = new CudaRebuildPaddingKernel(type_);
    return Status::Ok();
  });
}

const char* CudaRebuildPaddingOp::GetExecutionProviderType() const { return kCudaExecutionProvider; }

ONNXTensorElementDataType CudaRebuildPaddingOp::GetInputType(size_t index) const {
  return index == 0 ? type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

ONNXTensorElementDataType CudaRebuildPaddingOp::GetOutputType(size_t /*index*/) const { return type_; }

}  // namespace bytetx::ort
