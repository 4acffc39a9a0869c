#include "ort/cuda_remove_padding_op.h"

#include <cstdint>
#include <vector>

#include "common/packed_layout.h"
#include "kernels/remove_padding/remove_padding.h"
#include "ort/cuda_utils.h"

namespace bytetx::ort {
namespace {

constexpr size_t kMaskIndex = 1;

// The host mask as bits (validated 0/1 values), the form UploadMaskBits sends to the device.
template <typename MaskT>
std::vector<uint32_t> MaskBits(const MaskT* mask, int64_t num_slots) {
  std::vector<uint32_t> words(static_cast<size_t>((num_slots + 31) / 32), 0u);
  for (int64_t i = 0; i < num_slots; ++i) {
    words[static_cast<size_t>(i / 32)] |= static_cast<uint32_t>(mask[i] != 0) << (i % 32);
  }
  return words;
}

}  // namespace

Status CudaRemovePaddingKernel::Compute(OrtKernelContext* context) const {
  const Ort::KernelContext ctx(context);
  const Input input = GetRequiredInput(ctx, 0, "input");
  const Input mask = GetRequiredInput(ctx, kMaskIndex, "attention_mask");

  BYTETX_RETURN_IF_ERROR(input.ExpectType(type_));
  BYTETX_RETURN_IF_ERROR(input.ExpectRank(3, "[B, S, H]"));
  const int64_t batch = input.dim(0);
  const int64_t seq_len = input.dim(1);
  const int64_t hidden = input.dim(2);
  const bool mask_is_int64 = mask.type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  BYTETX_CHECK(mask_is_int64 || mask.type() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32,
               "input 'attention_mask' must be int64 or int32, but it is ", TypeName(mask.type()));
  BYTETX_RETURN_IF_ERROR(mask.ExpectShape({batch, seq_len}, "[B, S]", "(B, S from 'input')"));
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "input"));
  // The mask is on the host (GetInputMemoryType): checked and counted here, without a sync.
  int64_t num_tokens = 0;
  std::vector<uint32_t> bits;
  if (mask_is_int64) {
    BYTETX_RETURN_IF_ERROR(packed::ValidateAttentionMask(mask.Data<int64_t>(), batch, seq_len, &num_tokens));
    bits = MaskBits(mask.Data<int64_t>(), batch * seq_len);
  } else {
    BYTETX_RETURN_IF_ERROR(packed::ValidateAttentionMask(mask.Data<int32_t>(), batch, seq_len, &num_tokens));
    bits = MaskBits(mask.Data<int32_t>(), batch * seq_len);
  }

  cuda::RemovePaddingParams params;
  params.dtype = ToCudaDataType(type_);
  params.input = input.Data<void>();
  params.mask_type = cuda::MaskType::kBits;
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  params.packed_rows = num_tokens;
  params.packed = ctx.GetOutput(0, {num_tokens, hidden}).GetTensorMutableRawData();
  params.cu_seqlens = ctx.GetOutput(1, {batch + 1}).GetTensorMutableData<int32_t>();
  params.token_offset = ctx.GetOutput(2, {batch, seq_len}).GetTensorMutableData<int32_t>();
  const char* unfit = cuda::CheckRemovePaddingParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);

  const cudaStream_t stream = ComputeStream(context);
  const ScratchBuffer mask_words(context, ctx.GetInput(0).GetTensorMemoryInfo(), bits.size() * sizeof(uint32_t));
  params.attention_mask = mask_words.data();
  BYTETX_RETURN_IF_ERROR(CudaStatus(
      cuda::UploadMaskBits(bits.data(), batch * seq_len, static_cast<uint32_t*>(mask_words.data()), stream),
      "uploading the attention mask"));
  return CudaStatus(cuda::LaunchRemovePadding(params, stream), "launching the RemovePadding kernels");
}

OrtStatusPtr CudaRemovePaddingKernel::ComputeV2(OrtKernelContext* context) noexcept {
  return Guarded(CudaRemovePaddingOp::kName, [&] { return Compute(context); });
}

OrtStatusPtr CudaRemovePaddingOp::CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* /*info*/,
                                                 void** kernel) const noexcept {
  return Guarded(kName, [&] {
    *kernel = new CudaRemovePaddingKernel(type_);
    return Status::Ok();
  });
}

const char* CudaRemovePaddingOp::GetExecutionProviderType() const { return kCudaExecutionProvider; }

ONNXTensorElementDataType CudaRemovePaddingOp::GetInputType(size_t index) const {
  // The mask may be int64 or int32: declared open here, checked in Compute.
  return index == 0 ? type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
}

OrtMemType CudaRemovePaddingOp::GetInputMemoryType(size_t index) const {
  return index == kMaskIndex ? OrtMemTypeCPUInput : OrtMemTypeDefault;
}

ONNXTensorElementDataType CudaRemovePaddingOp::GetOutputType(size_t index) const {
  return index == 0 ? type_ : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
}

}  // namespace bytetx::ort
