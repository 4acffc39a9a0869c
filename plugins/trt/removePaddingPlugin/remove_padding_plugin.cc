#include "trt/removePaddingPlugin/remove_padding_plugin.h"

#include "common/packed_layout.h"
#include "kernels/remove_padding/remove_padding.h"

namespace bytetx::trt {
namespace {

using nvinfer1::DataType;
using nvinfer1::DimensionOperation;

// The size tensor is written as an int32 T into the low half of a zeroed int64: the same value on
// every little-endian host and device CUDA runs on, without a kernel of its own.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the num_tokens size tensor assumes little-endian");

Status WriteNumTokens(const int32_t* total, int64_t* num_tokens, cudaStream_t stream) {
  BYTETX_RETURN_IF_ERROR(
      CudaStatus(cudaMemsetAsync(num_tokens, 0, sizeof(int64_t), stream), "clearing the num_tokens output"));
  return CudaStatus(cudaMemcpyAsync(num_tokens, total, sizeof(int32_t), cudaMemcpyDeviceToDevice, stream),
                    "copying cu_seqlens[B] to the num_tokens output");
}

// Two build-time dimensions that must agree where both are known (-1 marks a runtime dimension).
bool Compatible(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

}  // namespace

int32_t RemovePaddingPlugin::configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t num_inputs,
                                             const nvinfer1::DynamicPluginTensorDesc* /*out*/,
                                             int32_t num_outputs) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kInput].desc, "input", 3, "[B, S, H]"));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kMask].desc, "attention_mask", 2, "[B, S]"));
    const nvinfer1::Dims& input = in[kInput].desc.dims;
    const nvinfer1::Dims& mask = in[kMask].desc.dims;
    BYTETX_CHECK(Compatible(input.d[0], mask.d[0]) && Compatible(input.d[1], mask.d[1]), "input 'attention_mask' ",
                 DimsString(mask), " must be [B, S] of input 'input' ", DimsString(input));
    return Status::Ok();
  });
}

int32_t RemovePaddingPlugin::getOutputDataTypes(DataType* output_types, int32_t num_outputs,
                                                const DataType* input_types, int32_t num_inputs) const noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_CHECK(IsKernelFloatType(input_types[kInput]),
                 "input 'input' must be float32, float16 or bfloat16, but it is ", TypeName(input_types[kInput]));
    output_types[kPacked - kNumInputs] = input_types[kInput];
    output_types[kCuSeqlens - kNumInputs] = DataType::kINT32;
    output_types[kTokenOffset - kNumInputs] = DataType::kINT32;
    output_types[kNumTokensOutput] = DataType::kINT64;
    return Status::Ok();
  });
}

int32_t RemovePaddingPlugin::getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t num_inputs,
                                             const nvinfer1::DimsExprs* /*shape_inputs*/, int32_t /*num_shape_inputs*/,
                                             nvinfer1::DimsExprs* outputs, int32_t num_outputs,
                                             nvinfer1::IExprBuilder& builder) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    const nvinfer1::DimsExprs& input = inputs[kInput];
    const nvinfer1::DimsExprs& mask = inputs[kMask];
    BYTETX_CHECK(input.nbDims == 3, "input 'input' must have rank 3 [B, S, H], but it has rank ", input.nbDims);
    BYTETX_CHECK(mask.nbDims == 2, "input 'attention_mask' must have rank 2 [B, S], but it has rank ", mask.nbDims);
    for (int32_t axis = 0; axis < 2; ++axis) {
      const bool known = input.d[axis]->isConstant() && mask.d[axis]->isConstant();
      BYTETX_CHECK(!known || input.d[axis]->getConstantValue() == mask.d[axis]->getConstantValue(),
                   "input 'attention_mask' must be [B, S] of input 'input', but dimension ", axis, " is ",
                   mask.d[axis]->getConstantValue(), ", not ", input.d[axis]->getConstantValue());
    }
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

    nvinfer1::DimsExprs& packed = outputs[kPacked - kNumInputs];
    packed.nbDims = 2;
    packed.d[0] = tokens;
    packed.d[1] = input.d[2];
    nvinfer1::DimsExprs& cu_seqlens = outputs[kCuSeqlens - kNumInputs];
    cu_seqlens.nbDims = 1;
    cu_seqlens.d[0] = batch_plus_one;
    nvinfer1::DimsExprs& token_offset = outputs[kTokenOffset - kNumInputs];
    token_offset.nbDims = 2;
    token_offset.d[0] = &batch;
    token_offset.d[1] = &seq_len;
    outputs[kNumTokensOutput].nbDims = 0;  // size tensors are scalars
    return Status::Ok();
  });
}

bool RemovePaddingPlugin::supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out,
                                                    int32_t num_inputs, int32_t num_outputs) noexcept {
  if (num_inputs != kNumInputs || num_outputs != kNumOutputs || pos < 0 || pos >= kNumInputs + kNumOutputs) {
    return false;
  }
  const nvinfer1::PluginTensorDesc& desc = in_out[pos].desc;
  if (desc.format != nvinfer1::TensorFormat::kLINEAR) {
    return false;
  }
  switch (pos) {
    case kInput:
      return IsKernelFloatType(desc.type);
    case kMask:
      return desc.type == DataType::kINT32 || desc.type == DataType::kINT64;
    case kPacked:
      return desc.type == in_out[kInput].desc.type;
    case kCuSeqlens:
    case kTokenOffset:
      return desc.type == DataType::kINT32;
    case kNumTokens:
      return desc.type == DataType::kINT64;
    default:
      return false;
  }
}

int32_t RemovePaddingPlugin::enqueue(const nvinfer1::PluginTensorDesc* input_desc,
                                     const nvinfer1::PluginTensorDesc* /*output_desc*/, const void* const* inputs,
                                     void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
  return ReportStatus(kName, [&] { return Enqueue(input_desc, inputs, outputs, stream); });
}

Status RemovePaddingPlugin::Enqueue(const nvinfer1::PluginTensorDesc* input_desc, const void* const* inputs,
                                    void* const* outputs, cudaStream_t stream) const {
  const nvinfer1::PluginTensorDesc& input = input_desc[kInput];
  const nvinfer1::PluginTensorDesc& mask = input_desc[kMask];
  BYTETX_RETURN_IF_ERROR(ExpectRank(input, "input", 3, "[B, S, H]"));
  BYTETX_RETURN_IF_ERROR(ExpectRank(mask, "attention_mask", 2, "[B, S]"));
  const int64_t batch = input.dims.d[0];
  const int64_t seq_len = input.dims.d[1];
  const int64_t hidden = input.dims.d[2];
  BYTETX_CHECK(mask.dims.d[0] == batch && mask.dims.d[1] == seq_len, "input 'attention_mask' ",
               DimsString(mask.dims), " must be [B, S] of input 'input' ", DimsString(input.dims));
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "input"));
  const std::optional<cuda::DataType> dtype = ToCudaDataType(input.type);
  BYTETX_CHECK(dtype.has_value(), "input 'input' must be float32, float16 or bfloat16, but it is ",
               TypeName(input.type));
  BYTETX_CHECK(mask.type == DataType::kINT32 || mask.type == DataType::kINT64,
               "input 'attention_mask' must be int32 or int64, but it is ", TypeName(mask.type));

  cuda::RemovePaddingParams params;
  params.dtype = *dtype;
  params.input = inputs[kInput];
  params.attention_mask = inputs[kMask];
  params.mask_type = mask.type == DataType::kINT32 ? cuda::MaskType::kInt32 : cuda::MaskType::kInt64;
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  // TensorRT allocated `packed` for the declared bound B * S, and T is only known on the device: the
  // kernels write T rows of tokens and zeros up to the bound; TensorRT then reads num_tokens and runs
  // every later layer on T rows.
  params.packed_rows = batch * seq_len;
  params.packed = outputs[kPacked - kNumInputs];
  params.cu_seqlens = static_cast<int32_t*>(outputs[kCuSeqlens - kNumInputs]);
  params.token_offset = static_cast<int32_t*>(outputs[kTokenOffset - kNumInputs]);
  const char* unfit = cuda::CheckRemovePaddingParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  BYTETX_RETURN_IF_ERROR(
      CudaStatus(cuda::LaunchRemovePadding(params, stream), "launching the RemovePadding kernels"));
  return WriteNumTokens(params.cu_seqlens + batch, static_cast<int64_t*>(outputs[kNumTokensOutput]), stream);
}

RemovePaddingPluginCreator::RemovePaddingPluginCreator() : CreatorBase({}) {}

nvinfer1::IPluginV3* RemovePaddingPluginCreator::createPlugin(const char* /*name*/,
                                                              const nvinfer1::PluginFieldCollection* fields,
                                                              nvinfer1::TensorRTPhase /*phase*/) noexcept {
  return Guarded(RemovePaddingPlugin::kName, static_cast<nvinfer1::IPluginV3*>(nullptr),
                 [&]() -> nvinfer1::IPluginV3* {
                   if (fields != nullptr && fields->nbFields > 0) {
                     LogError(RemovePaddingPlugin::kName,
                              StrCat("the plugin has no fields, but '", FieldName(fields->fields[0]), "' was given"));
                     return nullptr;
                   }
                   return new RemovePaddingPlugin();
                 });
}

}  // namespace bytetx::trt
