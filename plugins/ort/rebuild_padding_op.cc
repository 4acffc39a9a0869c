#include "ort/rebuild_padding_op.h"

#include <limits>

#include "common/packed_layout.h"
#include "cpu/rebuild_padding.h"

namespace bytetx::ort {
namespace {

// The most float32 elements whose byte count fits int64.
constexpr int64_t kMaxOutputFloats = std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(float));

Status Compute(OrtKernelContext* context) {
  const Ort::KernelContext ctx(context);
  const Input packed_tokens = GetRequiredInput(ctx, 0, "packed");
  const Input token_offset = GetRequiredInput(ctx, 1, "token_offset");

  BYTETX_RETURN_IF_ERROR(packed_tokens.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT));
  BYTETX_RETURN_IF_ERROR(packed_tokens.ExpectRank(2, "[T, H]"));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectType(ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
  BYTETX_RETURN_IF_ERROR(token_offset.ExpectRank(2, "[B, S]"));
  const int64_t num_tokens = packed_tokens.dim(0);
  const int64_t hidden = packed_tokens.dim(1);
  const int64_t batch = token_offset.dim(0);
  const int64_t seq_len = token_offset.dim(1);
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "token_offset"));
  // With T = 0, 'packed' holds no data whatever H it claims: the output size is checked here, not
  // left to overflow in the allocator's or the kernel's arithmetic.
  BYTETX_CHECK(hidden == 0 || batch * seq_len <= kMaxOutputFloats / hidden, "output [B, S, H] = [", batch,
               ", ", seq_len, ", ", hidden, "] (B, S from 'token_offset', H from 'packed') is too large to ",
               "address");
  BYTETX_RETURN_IF_ERROR(
      packed::ValidateTokenOffset(token_offset.Data<int32_t>(), batch * seq_len, num_tokens));

  cpu::RebuildPaddingParams params;
  params.packed = packed_tokens.Data<float>();
  params.token_offset = token_offset.Data<int32_t>();
  params.num_tokens = num_tokens;
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  params.output = ctx.GetOutput(0, {batch, seq_len, hidden}).GetTensorMutableData<float>();
  return cpu::RunRebuildPadding(params, OrtParallelFor(context));
}

}  // namespace

OrtStatusPtr RebuildPaddingKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(RebuildPaddingOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr RebuildPaddingOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* /*info*/,
                                              void** kernel) const noexcept {
  return Guarded(kName, [&] {
    *kernel = new RebuildPaddingKernel();
    return Status::Ok();
  });
}

ONNXTensorElementDataType RebuildPaddingOp::GetInputType(size_t index) const {
  return index == 0 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

ONNXTensorElementDataType RebuildPaddingOp::GetOutputType(size_t /*index*/) const {
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

}  // namespace bytetx::ort
