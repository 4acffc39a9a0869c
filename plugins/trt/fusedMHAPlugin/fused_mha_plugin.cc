#include "trt/fusedMHAPlugin/fused_mha_plugin.h"

#include <string_view>
#include <utility>
#include <vector>

#include "kernels/contract_launch.h"

namespace bytetx::trt {
namespace {

constexpr char kNumHeadsField[] = "num_heads";
constexpr char kScaleField[] = "scale";
constexpr char kMaxDistanceField[] = "relative_position_max_distance";
constexpr char kRotaryField[] = "rotary_frequencies";
constexpr char kWindowField[] = "sliding_window";

}  // namespace

Status FusedMHAPlugin::OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                                    nvinfer1::IExprBuilder& builder) const {
  const nvinfer1::DimsExprs& qkv = inputs[Contract::kQkv];
  const nvinfer1::IDimensionExpr* three = builder.constant(3);
  const nvinfer1::IDimensionExpr* hidden =
      three != nullptr ? builder.operation(nvinfer1::DimensionOperation::kFLOOR_DIV, *qkv.d[1], *three) : nullptr;
  BYTETX_CHECK(hidden != nullptr, "TensorRT refused the expression (3 * H) / 3");
  outputs[0].nbDims = 2;
  outputs[0].d[0] = qkv.d[0];
  outputs[0].d[1] = hidden;
  return Status::Ok();
}

Status FusedMHAPlugin::Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
                              void* const* output_data, cudaStream_t stream) const {
  // T exact: TensorRT sized 'qkv' by RemovePadding's num_tokens size tensor.
  return cuda::RunFusedMHA(dims, attributes_, *contract::ToKernelDataType(inputs[Contract::kQkv].type),
                           input_data[Contract::kQkv], input_data[Contract::kQkvBias],
                           static_cast<const int32_t*>(input_data[Contract::kCuSeqlens]),
                           ReadsPositions() ? static_cast<const int32_t*>(input_data[Contract::kPositions]) : nullptr,
                           HasPositionBias() ? input_data[Contract::kRelativePositionBias] : nullptr, output_data[0],
                           stream);
}

const nvinfer1::PluginFieldCollection* FusedMHAPlugin::getFieldsToSerialize() noexcept {
  return Guarded(Name(), static_cast<const nvinfer1::PluginFieldCollection*>(nullptr), [&] {
    num_heads_field_ = static_cast<int32_t>(attributes_.num_heads);
    std::vector<nvinfer1::PluginField> fields{
        nvinfer1::PluginField(kNumHeadsField, &num_heads_field_, nvinfer1::PluginFieldType::kINT32, 1)};
    if (attributes_.scale) {
      scale_field_ = *attributes_.scale;
      fields.emplace_back(kScaleField, &scale_field_, nvinfer1::PluginFieldType::kFLOAT32, 1);
    }
    if (HasPositionBias()) {
      max_distance_field_ = static_cast<int32_t>(*attributes_.relative_position_max_distance);
      fields.emplace_back(kMaxDistanceField, &max_distance_field_, nvinfer1::PluginFieldType::kINT32, 1);
    }
    if (!attributes_.rotary_frequencies.empty()) {
      fields.emplace_back(kRotaryField, attributes_.rotary_frequencies.data(), nvinfer1::PluginFieldType::kFLOAT32,
                          static_cast<int32_t>(attributes_.rotary_frequencies.size()));
    }
    if (attributes_.sliding_window) {
      window_field_ = static_cast<int32_t>(*attributes_.sliding_window);
      fields.emplace_back(kWindowField, &window_field_, nvinfer1::PluginFieldType::kINT32, 1);
    }
    serialized_ = FieldList(std::move(fields));
    return serialized_.collection();
  });
}

FusedMHAPluginCreator::FusedMHAPluginCreator()
    : CreatorBase({nvinfer1::PluginField(kNumHeadsField, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
                   nvinfer1::PluginField(kScaleField, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1),
                   nvinfer1::PluginField(kMaxDistanceField, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
                   nvinfer1::PluginField(kRotaryField, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 0),
                   nvinfer1::PluginField(kWindowField, nullptr, nvinfer1::PluginFieldType::kINT32, 1)}) {}

nvinfer1::IPluginV3* FusedMHAPluginCreator::createPlugin(const char* /*name*/,
                                                         const nvinfer1::PluginFieldCollection* fields,
                                                         nvinfer1::TensorRTPhase /*phase*/) noexcept {
  const char* op = FusedMHAPlugin::Contract::kName;
  FusedMHAPlugin::Contract::Attributes attributes;
  const int32_t status = ReportStatus(op, [&]() -> Status {
    bool have_num_heads = false;
    const int32_t count = fields != nullptr ? fields->nbFields : 0;
    for (int32_t i = 0; i < count; ++i) {
      const nvinfer1::PluginField& field = fields->fields[i];
      const std::string_view name = FieldName(field);
      if (name == kNumHeadsField) {
        BYTETX_RETURN_IF_ERROR(ReadIntField(field, &attributes.num_heads));
        have_num_heads = true;
      } else if (name == kScaleField) {
        float value = 0.0f;
        BYTETX_RETURN_IF_ERROR(ReadFloatField(field, &value));
        attributes.scale = value;
      } else if (name == kMaxDistanceField) {
        int64_t value = 0;
        BYTETX_RETURN_IF_ERROR(ReadIntField(field, &value));
        attributes.relative_position_max_distance = value;
      } else if (name == kRotaryField) {
        BYTETX_RETURN_IF_ERROR(ReadFloatsField(field, &attributes.rotary_frequencies));
      } else if (name == kWindowField) {
        int64_t value = 0;
        BYTETX_RETURN_IF_ERROR(ReadIntField(field, &value));
        attributes.sliding_window = value;
      } else {
        return Status::Invalid(StrCat("unknown field '", name, "' (the fields are num_heads, scale, ",
                                      kMaxDistanceField, ", ", kRotaryField, " and ", kWindowField, ")"));
      }
    }
    BYTETX_CHECK(have_num_heads, "attribute 'num_heads' (int) is required");
    return FusedMHAPlugin::Contract::ValidateAttributes(attributes);
  });
  if (status != kSuccess) {
    return nullptr;
  }
  return Guarded(op, static_cast<nvinfer1::IPluginV3*>(nullptr),
                 [&]() -> nvinfer1::IPluginV3* { return new FusedMHAPlugin(attributes); });
}

}  // namespace bytetx::trt
