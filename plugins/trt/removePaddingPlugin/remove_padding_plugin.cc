#include "trt/removePaddingPlugin/remove_padding_plugin.h"

#include "common/cuda_status.h"
#include "kernels/contract_launch.h"

namespace bytetx::trt {
namespace {

using nvinfer1::DimensionOperation;

constexpr int32_t kNumTokensOutput = RemovePaddingPlugin::kNumTokens - RemovePaddingPlugin::kNumInputs;

// The size tensor is written as an int32 T into the low half of a zeroed int64: the same value on
// every little-endian host and device CUDA runs on, without a kernel of its own.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the num_tokens size tensor assumes little-endian");

Status WriteNumTokens(const int32_t* total, int64_t* num_tokens, cudaStream_t stream) {
  BYTETX_RETURN_IF_ERROR(
      CudaStatus(cudaMemsetAsync(num_tokens, 0, sizeof(int64_t), stream), "clearing the num_tokens output"));
  return CudaStatus(cudaMemcpyAsync(num_tokens, total, sizeof(int32_t), cudaMemcpyDeviceToDevice, stream),
                    "copying cu_seqlens[B] to the num_tokens output");
}

}  // namespace

Status RemovePaddingPlugin::OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                                         nvinfer1::IExprBuilder& builder) const {
  const nvinfer1::DimsExprs& input = inputs[Contract::kInput];
  const nvinfer1::IDimensionExpr& batch = *input.d[0];
  const nvinfer1::IDimensionExpr& seq_len = *input.d[1];
  // T lies in [0, B * S]; TensorRT allocates the packed tensors for the bound and tunes the layers
  // after this one for half of it, a typical fill of ragged text batches.
  const nvinfer1::IDimensionExpr* one = builder.constant(1);
  const nvinfer1::IDimensionExpr* two = builder.constant(2);
  const nvinfer1::IDimensionExpr* slots = builder.operation(DimensionOperation::kPROD, batch, seq_len);
  BYTETX_CHECK(one != nullptr && two != nullptr && slots != nullptr, "TensorRT refused the expression B * S");
  const nvinfer1::IDimensionExpr* tuning = builder.operation(DimensionOperation::kCEIL_DIV, *slots, *two);
  BYTETX_CHECK(tuning != nullptr, "TensorRT refused the expression ceil(B * S / 2)");
  const nvinfer1::IDimensionExpr* tokens = builder.declareSizeTensor(kNumTokensOutput, *tuning, *slots);
  const nvinfer1::IDimensionExpr* batch_plus_one = builder.operation(DimensionOperation::kSUM, batch, *one);
  BYTETX_CHECK(tokens != nullptr && batch_plus_one != nullptr,
               "TensorRT refused the size tensor T or the expression B + 1");

  nvinfer1::DimsExprs& packed = outputs[Contract::kPacked - kNumInputs];
  packed.nbDims = 2;
  packed.d[0] = tokens;
  packed.d[1] = input.d[2];
  nvinfer1::DimsExprs& cu_seqlens = outputs[Contract::kCuSeqlens - kNumInputs];
  cu_seqlens.nbDims = 1;
  cu_seqlens.d[0] = batch_plus_one;
  nvinfer1::DimsExprs& token_offset = outputs[Contract::kTokenOffset - kNumInputs];
  token_offset.nbDims = 2;
  token_offset.d[0] = &batch;
  token_offset.d[1] = &seq_len;
  outputs[kNumTokensOutput].nbDims = 0;  // size tensors are scalars
  return Status::Ok();
}

Status RemovePaddingPlugin::Launch(const Dims& dims, const contract::TensorDesc* inputs,
                                   const void* const* input_data, void* const* output_data,
                                   cudaStream_t stream) const {
  const cuda::MaskType mask_type = inputs[Contract::kAttentionMask].type == contract::ElementType::kInt32
                                       ? cuda::MaskType::kInt32
                                       : cuda::MaskType::kInt64;
  auto* cu_seqlens = static_cast<int32_t*>(output_data[Contract::kCuSeqlens - kNumInputs]);
  // TensorRT allocated `packed` for the declared bound B * S, and T is only known on the device: the
  // kernels write T rows of tokens and zeros up to the bound; TensorRT then reads num_tokens and runs
  // every later layer on T rows.
  BYTETX_RETURN_IF_ERROR(cuda::RunRemovePadding(
      dims, *contract::ToKernelDataType(inputs[Contract::kInput].type), input_data[Contract::kInput],
      input_data[Contract::kAttentionMask], mask_type, dims.batch * dims.seq_len,
      output_data[Contract::kPacked - kNumInputs], cu_seqlens,
      static_cast<int32_t*>(output_data[Contract::kTokenOffset - kNumInputs]), stream));
  return WriteNumTokens(cu_seqlens + dims.batch, static_cast<int64_t*>(output_data[kNumTokensOutput]), stream);
}

}  // namespace bytetx::trt
