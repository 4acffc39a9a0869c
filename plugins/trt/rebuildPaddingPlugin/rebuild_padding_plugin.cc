#include "trt/rebuildPaddingPlugin/rebuild_padding_plugin.h"

#include "common/packed_layout.h"
#include "kernels/rebuild_padding/rebuild_padding.h"

namespace bytetx::trt {
using nvinfer1::DataType;

int32_t RebuildPaddingPlugin::configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t num_inputs,
                                              const nvinfer1::DynamicPluginTensorDesc* /*out*/,
                                              int32_t num_outputs) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kPacked].desc, "packed", 2, "[T, H]"));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kTokenOffset].desc, "token_offset", 2, "[B, S]"));
    return Status::Ok();
  });
}

int32_t RebuildPaddingPlugin::getOutputDataTypes(DataType* output_types, int32_t num_outputs,
                                                 const DataType* input_types, int32_t num_inputs) const noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_CHECK(IsKernelFloatType(input_types[kPacked]),
                 "input 'packed' must be float32, float16 or bfloat16, but it is ", TypeName(input_types[kPacked]));
    output_types[0] = input_types[kPacked];
    return Status::Ok();
  });
}

int32_t RebuildPaddingPlugin::getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t num_inputs,
                                              const nvinfer1::DimsExprs* /*shape_inputs*/, int32_t /*num_shape_inputs*/,
                                              nvinfer1::DimsExprs* outputs, int32_t num_outputs,
                                              nvinfer1::IExprBuilder& /*builder*/) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    const nvinfer1::DimsExprs& packed = inputs[kPacked];
    const nvinfer1::DimsExprs& token_offset = inputs[kTokenOffset];
    BYTETX_CHECK(packed.nbDims == 2, "input 'packed' must have rank 2 [T, H], but it has rank ", packed.nbDims);
    BYTETX_CHECK(token_offset.nbDims == 2, "input 'token_offset' must have rank 2 [B, S], but it has rank ",
                 token_offset.nbDims);
    outputs[0].nbDims = 3;
    outputs[0].d[0] = token_offset.d[0];
    outputs[0].d[1] = token_offset.d[1];
    outputs[0].d[2] = packed.d[1];
    return Status::Ok();
  });
}

bool RebuildPaddingPlugin::supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out,
                                                     int32_t num_inputs, int32_t num_outputs) noexcept {
  if (num_inputs != kNumInputs || num_outputs != kNumOutputs || pos < 0 || pos >= kNumInputs + kNumOutputs) {
    return false;
  }
  const nvinfer1::PluginTensorDesc& desc = in_out[pos].desc;
  if (desc.format != nvinfer1::TensorFormat::kLINEAR) {
    return false;
  }
  switch (pos) {
    case kPacked:
      return IsKernelFloatType(desc.type);
    case kTokenOffset:
      return desc.type == DataType::kINT32;
    case kOutput:
      return desc.type == in_out[kPacked].desc.type;
    default:
      return false;
  }
}

int32_t RebuildPaddingPlugin::enqueue(const nvinfer1::PluginTensorDesc* input_desc,
                                      const nvinfer1::PluginTensorDesc* /*output_desc*/, const void* const* inputs,
                                      void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
  return ReportStatus(kName, [&] { return Enqueue(input_desc, inputs, outputs, stream); });
}

Status RebuildPaddingPlugin::Enqueue(const nvinfer1::PluginTensorDesc* input_desc, const void* const* inputs,
                                     void* const* outputs, cudaStream_t stream) const {
  const nvinfer1::PluginTensorDesc& packed_tokens = input_desc[kPacked];
  const nvinfer1::PluginTensorDesc& token_offset = input_desc[kTokenOffset];
  BYTETX_RETURN_IF_ERROR(ExpectRank(packed_tokens, "packed", 2, "[T, H]"));
  BYTETX_RETURN_IF_ERROR(ExpectRank(token_offset, "token_offset", 2, "[B, S]"));
  const std::optional<cuda::DataType> dtype = ToCudaDataType(packed_tokens.type);
  BYTETX_CHECK(dtype.has_value(), "input 'packed' must be float32, float16 or bfloat16, but it is ",
               TypeName(packed_tokens.type));
  BYTETX_RETURN_IF_ERROR(ExpectType(token_offset, "token_offset", DataType::kINT32));
  const int64_t num_tokens = packed_tokens.dims.d[0];
  const int64_t hidden = packed_tokens.dims.d[1];
  const int64_t batch = token_offset.dims.d[0];
  const int64_t seq_len = token_offset.dims.d[1];
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, seq_len, "token_offset"));
  BYTETX_CHECK(num_tokens <= batch * seq_len, "there are more packed tokens (T=", num_tokens,
               ") than padded slots in 'token_offset' (B * S=", batch * seq_len, ")");

  cuda::RebuildPaddingParams params;
  params.dtype = *dtype;
  params.packed = inputs[kPacked];
  params.token_offset = static_cast<const int32_t*>(inputs[kTokenOffset]);
  params.num_tokens = num_tokens;  // exact: TensorRT sized 'packed' by RemovePadding's num_tokens
  params.batch = batch;
  params.seq_len = seq_len;
  params.hidden = hidden;
  params.output = outputs[0];
  const char* unfit = cuda::CheckRebuildPaddingParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  return CudaStatus(cuda::LaunchRebuildPadding(params, stream), "launching the RebuildPadding kernel");
}

RebuildPaddingPluginCreator::RebuildPaddingPluginCreator() : CreatorBase({}) {}

nvinfer1::IPluginV3* RebuildPaddingPluginCreator::createPlugin(const char* /*name*/,
                                                               const nvinfer1::PluginFieldCollection* fields,
                                                               nvinfer1::TensorRTPhase /*phase*/) noexcept {
  return Guarded(RebuildPaddingPlugin::kName, static_cast<nvinfer1::IPluginV3*>(nullptr),
                 [&]() -> nvinfer1::IPluginV3* {
                   if (fields != nullptr && fields->nbFields > 0) {
                     LogError(RebuildPaddingPlugin::kName,
                              StrCat("the plugin has no fields, but '", FieldName(fields->fields[0]), "' was given"));
                     return nullptr;
                   }
                   return new RebuildPaddingPlugin();
                 });
}

}  // namespace bytetx::trt
