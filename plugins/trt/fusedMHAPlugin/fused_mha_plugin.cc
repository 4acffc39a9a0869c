#include "trt/fusedMHAPlugin/fused_mha_plugin.h"

#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "common/packed_layout.h"
#include "kernels/fused_mha/fused_mha.h"

namespace bytetx::trt {
namespace {

using nvinfer1::DataType;

constexpr char kNumHeadsField[] = "num_heads";
constexpr char kScaleField[] = "scale";

bool SupportedHeadSize(int64_t head_size) { return head_size == 32 || head_size == 64 || head_size == 128; }

}  // namespace

FusedMHAPlugin::FusedMHAPlugin(int32_t num_heads, std::optional<float> scale)
    : num_heads_(num_heads), scale_(scale) {}

Status FusedMHAPlugin::CheckWidth(int64_t width) const {
  BYTETX_CHECK(width % 3 == 0 && (width / 3) % num_heads_ == 0, "input 'qkv' must have width 3 * H with H a ",
               "multiple of num_heads=", num_heads_, ", but its width is ", width);
  const int64_t head_size = width / 3 / num_heads_;
  BYTETX_CHECK(SupportedHeadSize(head_size), "the CUDA kernels take head sizes H / num_heads of 32, 64 or 128, but ",
               "it is ", width / 3, " / ", num_heads_, " = ", head_size);
  return Status::Ok();
}

int32_t FusedMHAPlugin::configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t num_inputs,
                                        const nvinfer1::DynamicPluginTensorDesc* /*out*/,
                                        int32_t num_outputs) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kQkv].desc, "qkv", 2, "[T, 3 * H]"));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kQkvBias].desc, "qkv_bias", 1, "[3 * H]"));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kCuSeqlens].desc, "cu_seqlens", 1, "[B + 1]"));
    BYTETX_RETURN_IF_ERROR(ExpectRank(in[kTokenOffset].desc, "token_offset", 2, "[B, S]"));
    const int64_t width = in[kQkv].desc.dims.d[1];
    const int64_t bias_width = in[kQkvBias].desc.dims.d[0];
    if (width >= 0) {
      BYTETX_RETURN_IF_ERROR(CheckWidth(width));
    }
    BYTETX_CHECK(width < 0 || bias_width < 0 || width == bias_width, "input 'qkv_bias' must be [3 * H] = [", width,
                 "] (the width of 'qkv'), but it is [", bias_width, "]");
    return Status::Ok();
  });
}

int32_t FusedMHAPlugin::getOutputDataTypes(DataType* output_types, int32_t num_outputs, const DataType* input_types,
                                           int32_t num_inputs) const noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    BYTETX_CHECK(IsKernelFloatType(input_types[kQkv]), "input 'qkv' must be float32, float16 or bfloat16, but it is ",
                 TypeName(input_types[kQkv]));
    output_types[0] = input_types[kQkv];
    return Status::Ok();
  });
}

int32_t FusedMHAPlugin::getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t num_inputs,
                                        const nvinfer1::DimsExprs* /*shape_inputs*/, int32_t /*num_shape_inputs*/,
                                        nvinfer1::DimsExprs* outputs, int32_t num_outputs,
                                        nvinfer1::IExprBuilder& builder) noexcept {
  return ReportStatus(kName, [&]() -> Status {
    BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, kNumInputs, num_outputs, kNumOutputs));
    const nvinfer1::DimsExprs& qkv = inputs[kQkv];
    BYTETX_CHECK(qkv.nbDims == 2, "input 'qkv' must have rank 2 [T, 3 * H], but it has rank ", qkv.nbDims);
    BYTETX_CHECK(inputs[kQkvBias].nbDims == 1, "input 'qkv_bias' must have rank 1 [3 * H], but it has rank ",
                 inputs[kQkvBias].nbDims);
    BYTETX_CHECK(inputs[kCuSeqlens].nbDims == 1, "input 'cu_seqlens' must have rank 1 [B + 1], but it has rank ",
                 inputs[kCuSeqlens].nbDims);
    BYTETX_CHECK(inputs[kTokenOffset].nbDims == 2, "input 'token_offset' must have rank 2 [B, S], but it has rank ",
                 inputs[kTokenOffset].nbDims);
    if (qkv.d[1]->isConstant()) {  // an unsupported head size fails the build, not the first inference
      BYTETX_RETURN_IF_ERROR(CheckWidth(qkv.d[1]->getConstantValue()));
    }
    const nvinfer1::IDimensionExpr* three = builder.constant(3);
    const nvinfer1::IDimensionExpr* hidden =
        three != nullptr ? builder.operation(nvinfer1::DimensionOperation::kFLOOR_DIV, *qkv.d[1], *three) : nullptr;
    BYTETX_CHECK(hidden != nullptr, "TensorRT refused the expression (3 * H) / 3");
    outputs[0].nbDims = 2;
    outputs[0].d[0] = qkv.d[0];
    outputs[0].d[1] = hidden;
    return Status::Ok();
  });
}

bool FusedMHAPlugin::supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out,
                                               int32_t num_inputs, int32_t num_outputs) noexcept {
  if (num_inputs != kNumInputs || num_outputs != kNumOutputs || pos < 0 || pos >= kNumInputs + kNumOutputs) {
    return false;
  }
  const nvinfer1::PluginTensorDesc& desc = in_out[pos].desc;
  if (desc.format != nvinfer1::TensorFormat::kLINEAR) {
    return false;
  }
  switch (pos) {
    case kQkv:
      return IsKernelFloatType(desc.type);
    case kQkvBias:
    case kContext:
      return desc.type == in_out[kQkv].desc.type;  // one type for qkv, its bias and the context
    case kCuSeqlens:
    case kTokenOffset:
      return desc.type == DataType::kINT32;
    default:
      return false;
  }
}

int32_t FusedMHAPlugin::enqueue(const nvinfer1::PluginTensorDesc* input_desc,
                                const nvinfer1::PluginTensorDesc* /*output_desc*/, const void* const* inputs,
                                void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept {
  return ReportStatus(kName, [&] { return Enqueue(input_desc, inputs, outputs, stream); });
}

Status FusedMHAPlugin::Enqueue(const nvinfer1::PluginTensorDesc* input_desc, const void* const* inputs,
                               void* const* outputs, cudaStream_t stream) const {
  const nvinfer1::PluginTensorDesc& qkv = input_desc[kQkv];
  const nvinfer1::PluginTensorDesc& qkv_bias = input_desc[kQkvBias];
  const nvinfer1::PluginTensorDesc& cu_seqlens = input_desc[kCuSeqlens];
  const nvinfer1::PluginTensorDesc& token_offset = input_desc[kTokenOffset];
  BYTETX_RETURN_IF_ERROR(ExpectRank(qkv, "qkv", 2, "[T, 3 * H]"));
  BYTETX_RETURN_IF_ERROR(ExpectRank(qkv_bias, "qkv_bias", 1, "[3 * H]"));
  BYTETX_RETURN_IF_ERROR(ExpectRank(cu_seqlens, "cu_seqlens", 1, "[B + 1]"));
  BYTETX_RETURN_IF_ERROR(ExpectRank(token_offset, "token_offset", 2, "[B, S]"));
  const std::optional<cuda::DataType> dtype = ToCudaDataType(qkv.type);
  BYTETX_CHECK(dtype.has_value(), "input 'qkv' must be float32, float16 or bfloat16, but it is ", TypeName(qkv.type));
  BYTETX_RETURN_IF_ERROR(ExpectType(qkv_bias, "qkv_bias", qkv.type));
  BYTETX_RETURN_IF_ERROR(ExpectType(cu_seqlens, "cu_seqlens", DataType::kINT32));
  BYTETX_RETURN_IF_ERROR(ExpectType(token_offset, "token_offset", DataType::kINT32));

  const int64_t num_tokens = qkv.dims.d[0];
  const int64_t width = qkv.dims.d[1];
  BYTETX_RETURN_IF_ERROR(CheckWidth(width));
  BYTETX_CHECK(qkv_bias.dims.d[0] == width, "input 'qkv_bias' must be [3 * H] = [", width,
               "] (the width of 'qkv'), but it is ", DimsString(qkv_bias.dims));
  const int64_t batch = token_offset.dims.d[0];
  const int64_t max_seq_len = token_offset.dims.d[1];
  BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(batch, max_seq_len, "token_offset"));
  BYTETX_CHECK(cu_seqlens.dims.d[0] == batch + 1, "input 'cu_seqlens' must be [B + 1] = [", batch + 1,
               "] (B from 'token_offset'), but it is ", DimsString(cu_seqlens.dims));
  BYTETX_CHECK(num_tokens <= batch * max_seq_len, "input 'qkv' has T=", num_tokens, " rows, more than the B * S=",
               batch, " * ", max_seq_len, " padded slots of 'token_offset'");

  const int64_t hidden = width / 3;
  const int64_t head_size = hidden / num_heads_;
  cuda::FusedMHAParams params;
  params.dtype = *dtype;
  params.qkv = inputs[kQkv];
  params.qkv_bias = inputs[kQkvBias];
  params.cu_seqlens = static_cast<const int32_t*>(inputs[kCuSeqlens]);
  params.batch = batch;
  params.max_seq_len = max_seq_len;
  params.num_rows = num_tokens;  // exact: TensorRT sized 'qkv' by the num_tokens size tensor
  params.num_heads = num_heads_;
  params.head_size = head_size;
  params.scale = scale_ ? *scale_ : 1.0f / std::sqrt(static_cast<float>(head_size));
  params.context = outputs[0];
  const char* unfit = cuda::CheckFusedMHAParams(params);
  BYTETX_CHECK(unfit == nullptr, unfit);
  return CudaStatus(cuda::LaunchFusedMHA(params, stream), "launching the FusedMHA kernel");
}

const nvinfer1::PluginFieldCollection* FusedMHAPlugin::getFieldsToSerialize() noexcept {
  return Guarded(kName, static_cast<const nvinfer1::PluginFieldCollection*>(nullptr), [&] {
    std::vector<nvinfer1::PluginField> fields{
        nvinfer1::PluginField(kNumHeadsField, &num_heads_, nvinfer1::PluginFieldType::kINT32, 1)};
    if (scale_) {
      scale_value_ = *scale_;
      fields.emplace_back(kScaleField, &scale_value_, nvinfer1::PluginFieldType::kFLOAT32, 1);
    }
    serialized_ = FieldList(std::move(fields));
    return serialized_.collection();
  });
}

FusedMHAPluginCreator::FusedMHAPluginCreator()
    : CreatorBase({nvinfer1::PluginField(kNumHeadsField, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
                   nvinfer1::PluginField(kScaleField, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1)}) {}

nvinfer1::IPluginV3* FusedMHAPluginCreator::createPlugin(const char* /*name*/,
                                                         const nvinfer1::PluginFieldCollection* fields,
                                                         nvinfer1::TensorRTPhase /*phase*/) noexcept {
  std::optional<int64_t> num_heads;
  std::optional<float> scale;
  const int32_t status = ReportStatus(FusedMHAPlugin::kName, [&]() -> Status {
    const int32_t count = fields != nullptr ? fields->nbFields : 0;
    for (int32_t i = 0; i < count; ++i) {
      const nvinfer1::PluginField& field = fields->fields[i];
      const std::string_view name = FieldName(field);
      if (name == kNumHeadsField) {
        int64_t value = 0;
        BYTETX_RETURN_IF_ERROR(ReadIntField(field, &value));
        num_heads = value;
      } else if (name == kScaleField) {
        float value = 0.0f;
        BYTETX_RETURN_IF_ERROR(ReadFloatField(field, &value));
        scale = value;
      } else {
        return Status::Invalid(StrCat("unknown field '", name, "' (the fields are num_heads and scale)"));
      }
    }
    BYTETX_CHECK(num_heads.has_value(), "field 'num_heads' (int) is required");
    BYTETX_CHECK(*num_heads >= 1 && *num_heads <= INT32_MAX, "field 'num_heads' must be >= 1, but it is ",
                 *num_heads);
    return Status::Ok();
  });
  if (status != kSuccess) {
    return nullptr;
  }
  return Guarded(FusedMHAPlugin::kName, static_cast<nvinfer1::IPluginV3*>(nullptr), [&]() -> nvinfer1::IPluginV3* {
    return new FusedMHAPlugin(static_cast<int32_t>(*num_heads), scale);
  });
}

}  // namespace bytetx::trt
