#include "ort/cuda_ops.h"

#include <cstdint>
#include <vector>

#include "common/fused_mha_contract.h"
#include "common/packed_layout.h"
#include "common/rebuild_padding_contract.h"
#include "common/remove_padding_contract.h"
#include "kernels/contract_launch.h"
#include "ort/cuda_utils.h"
#include "ort/kernel_utils.h"

namespace bytetx::ort {
namespace {

using contract::Backend;

// The host mask as bits, the form UploadMaskBits sends to the device; T is their count.
template <typename MaskT>
std::vector<uint32_t> MaskBits(const MaskT* mask, int64_t num_slots) {
  std::vector<uint32_t> words(static_cast<size_t>((num_slots + 31) / 32), 0u);
  for (int64_t i = 0; i < num_slots; ++i) {
    words[static_cast<size_t>(i / 32)] |= static_cast<uint32_t>(mask[i] != 0) << (i % 32);
  }
  return words;
}

// The kernels' type of a floating-point tensor that the contract accepted for the CUDA back end.
cuda::DataType KernelType(const contract::TensorDesc& desc) { return *contract::ToKernelDataType(desc.type); }

Status ComputeRemovePadding(OrtKernelContext* context) {
  using Contract = contract::RemovePadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCuda));
  const Contract::Dims& dims = call.dims();
  // The mask is on the host (GetInputMemoryType): counted here, without a sync.
  const int64_t num_slots = dims.batch * dims.seq_len;
  int64_t num_tokens = 0;
  std::vector<uint32_t> bits;
  if (call.desc(Contract::kAttentionMask).type == contract::ElementType::kInt64) {
    num_tokens = packed::CountTokens(call.Data<int64_t>(Contract::kAttentionMask), dims.batch, dims.seq_len);
    bits = MaskBits(call.Data<int64_t>(Contract::kAttentionMask), num_slots);
  } else {
    num_tokens = packed::CountTokens(call.Data<int32_t>(Contract::kAttentionMask), dims.batch, dims.seq_len);
    bits = MaskBits(call.Data<int32_t>(Contract::kAttentionMask), num_slots);
  }

  void* packed = call.RawOutput(0, {num_tokens, dims.hidden});
  int32_t* cu_seqlens = call.Output<int32_t>(1, {dims.batch + 1});
  int32_t* token_offset = call.Output<int32_t>(2, {dims.batch, dims.seq_len});
  const cudaStream_t stream = ComputeStream(context);
  const ScratchBuffer mask_words(context, call.MemoryInfo(Contract::kInput), bits.size() * sizeof(uint32_t));
  BYTETX_RETURN_IF_ERROR(CudaStatus(
      cuda::UploadMaskBits(bits.data(), num_slots, static_cast<uint32_t*>(mask_words.data()), stream),
      "uploading the attention mask"));
  return cuda::RunRemovePadding(dims, KernelType(call.desc(Contract::kInput)), call.RawData(Contract::kInput),
                                mask_words.data(), cuda::MaskType::kBits, num_tokens, packed, cu_seqlens,
                                token_offset, stream);
}

Status ComputeFusedMHA(OrtKernelContext* context, const contract::FusedMHA::Attributes& attributes) {
  using Contract = contract::FusedMHA;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCuda, attributes));
  const Contract::Dims& dims = call.dims();

  return cuda::RunFusedMHA(dims, attributes, KernelType(call.desc(Contract::kQkv)), call.RawData(Contract::kQkv),
                           call.RawData(Contract::kQkvBias), call.Data<int32_t>(Contract::kCuSeqlens),
                           call.Data<int32_t>(Contract::kPositions), call.RawData(Contract::kRelativePositionBias),
                           call.RawData(Contract::kPositionKey), call.RawData(Contract::kPositionQuery),
                           call.RawOutput(0, {dims.num_tokens, dims.hidden}), ComputeStream(context));
}

Status ComputeRebuildPadding(OrtKernelContext* context) {
  using Contract = contract::RebuildPadding;
  ContractCall<Contract> call(context);
  BYTETX_RETURN_IF_ERROR(call.Validate(Backend::kCuda));
  const Contract::Dims& dims = call.dims();

  return cuda::RunRebuildPadding(dims, KernelType(call.desc(Contract::kPacked)), call.RawData(Contract::kPacked),
                                 call.Data<int32_t>(Contract::kTokenOffset),
                                 call.RawOutput(0, {dims.batch, dims.seq_len, dims.hidden}), ComputeStream(context));
}

constexpr const char* kCudaExecutionProvider = "CUDAExecutionProvider";

struct CudaRemovePaddingOp : ContractOp<CudaRemovePaddingOp, contract::RemovePadding,
                                        StatelessKernel<contract::RemovePadding, ComputeRemovePadding>> {
  explicit CudaRemovePaddingOp(ONNXTensorElementDataType type) : ContractOp(type, kCudaExecutionProvider) {}
  // The mask comes from the tokenizer on the host: counted there, so T is known without a sync.
  OrtMemType GetInputMemoryType(size_t index) const {
    return index == contract::RemovePadding::kAttentionMask ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }
};

struct CudaFusedMHAOp : ContractOp<CudaFusedMHAOp, contract::FusedMHA, FusedMHAKernel<ComputeFusedMHA>> {
  explicit CudaFusedMHAOp(ONNXTensorElementDataType type) : ContractOp(type, kCudaExecutionProvider) {}
};

struct CudaRebuildPaddingOp : ContractOp<CudaRebuildPaddingOp, contract::RebuildPadding,
                                         StatelessKernel<contract::RebuildPadding, ComputeRebuildPadding>> {
  explicit CudaRebuildPaddingOp(ONNXTensorElementDataType type) : ContractOp(type, kCudaExecutionProvider) {}
};

// The floating-point types of the CUDA kernels, one registration each.
constexpr ONNXTensorElementDataType kCudaFloatTypes[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                         ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16,
                                                         ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16};

template <typename Op>
void AddForEveryFloatType(std::vector<const OrtCustomOp*>* ops) {
  for (const ONNXTensorElementDataType type : kCudaFloatTypes) {
    ops->push_back(new Op(type));
  }
}

}  // namespace

const std::vector<const OrtCustomOp*>& CudaOps() {
  static const std::vector<const OrtCustomOp*> ops = [] {
    std::vector<const OrtCustomOp*> all;
    AddForEveryFloatType<CudaRemovePaddingOp>(&all);
    AddForEveryFloatType<CudaFusedMHAOp>(&all);
    AddForEveryFloatType<CudaRebuildPaddingOp>(&all);
    return all;
  }();
  return ops;
}

}  // namespace bytetx::ort
