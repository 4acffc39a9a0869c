#include "trt/fusedMHAPlugin/fused_mha_plugin.h"

#include <algorithm>
#include <string>
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
constexpr char kTermsField[] = "pos_att_type";
constexpr char kPositionBucketsField[] = "position_buckets";
constexpr char kMaxRelativePositionsField[] = "max_relative_positions";
constexpr char kContentToPosition[] = "c2p";
constexpr char kPositionToContent[] = "p2c";

// pos_att_type as DeBERTa's config spells it: "c2p", "p2c" or both, joined by '|' in either order.
Status ParsePositionTerms(std::string_view text, PositionTerms* terms) {
  const Status invalid = Status::Invalid(
      StrCat("field '", kTermsField, "' must name the disentangled terms: '", kContentToPosition,
             "' (the input position_key), '", kPositionToContent, "' (position_query) or both, joined by '|', but it is '",
             text, "'"));
  *terms = {};
  for (size_t begin = 0; begin <= text.size();) {
    const size_t end = std::min(text.find('|', begin), text.size());
    const std::string_view term = text.substr(begin, end - begin);
    bool* seen = term == kContentToPosition ? &terms->c2p : term == kPositionToContent ? &terms->p2c : nullptr;
    if (seen == nullptr || *seen) {
      return invalid;
    }
    *seen = true;
    begin = end + 1;
  }
  return Status::Ok();
}

std::string PositionTermsText(PositionTerms terms) {
  return terms.c2p && terms.p2c ? StrCat(kContentToPosition, "|", kPositionToContent)
         : terms.c2p            ? kContentToPosition
                                : kPositionToContent;
}

}  // namespace

FusedMHAPlugin::FusedMHAPlugin(const Contract::Attributes& attributes, PositionTerms terms)
    : attributes_(attributes), terms_(terms) {
  inputs_ = {Contract::kQkv, Contract::kQkvBias, Contract::kCuSeqlens, Contract::kTokenOffset};
  const bool bias = attributes.relative_position_max_distance.has_value();
  if (bias || terms.any() || !attributes.rotary_frequencies.empty() || attributes.sliding_window) {
    inputs_.push_back(Contract::kPositions);
  }
  if (bias) {
    inputs_.push_back(Contract::kRelativePositionBias);
  }
  if (terms.c2p) {
    inputs_.push_back(Contract::kPositionKey);
  }
  if (terms.p2c) {
    inputs_.push_back(Contract::kPositionQuery);
  }
  for (const int input : inputs_) {
    tensors_.push_back(Contract::kTensors[input]);
  }
  tensors_.push_back(Contract::kTensors[Contract::kContext]);
}

Status FusedMHAPlugin::Validate(const contract::TensorDesc* inputs, Dims* dims) const {
  std::vector<contract::TensorDesc> all(Contract::kNumInputs,
                                        contract::TensorDesc{contract::ElementType::kUnknown, {}, /*present=*/false});
  for (size_t i = 0; i < inputs_.size(); ++i) {
    all[inputs_[i]] = inputs[i];
  }
  return Contract::Validate(all.data(), attributes_, contract::Backend::kCuda, dims);
}

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
  // By the contract's index; nullptr for the inputs the plugin does not take.
  const void* data[Contract::kNumInputs] = {};
  for (size_t i = 0; i < inputs_.size(); ++i) {
    data[inputs_[i]] = input_data[i];
  }
  // T exact: TensorRT sized 'qkv' by RemovePadding's num_tokens size tensor.
  return cuda::RunFusedMHA(dims, attributes_, *contract::ToKernelDataType(inputs[Contract::kQkv].type),
                           data[Contract::kQkv], data[Contract::kQkvBias],
                           static_cast<const int32_t*>(data[Contract::kCuSeqlens]),
                           static_cast<const int32_t*>(data[Contract::kPositions]),
                           data[Contract::kRelativePositionBias], data[Contract::kPositionKey],
                           data[Contract::kPositionQuery], output_data[0], stream);
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
    if (attributes_.relative_position_max_distance) {
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
    if (terms_.any()) {
      terms_field_ = PositionTermsText(terms_);  // without a NUL, as TensorRT's own plugins serialize strings
      position_buckets_field_ = static_cast<int32_t>(*attributes_.position_buckets);
      max_relative_positions_field_ = static_cast<int32_t>(*attributes_.max_relative_positions);
      fields.emplace_back(kTermsField, terms_field_.data(), nvinfer1::PluginFieldType::kCHAR,
                          static_cast<int32_t>(terms_field_.size()));
      fields.emplace_back(kPositionBucketsField, &position_buckets_field_, nvinfer1::PluginFieldType::kINT32, 1);
      fields.emplace_back(kMaxRelativePositionsField, &max_relative_positions_field_,
                          nvinfer1::PluginFieldType::kINT32, 1);
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
                   nvinfer1::PluginField(kWindowField, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
                   nvinfer1::PluginField(kTermsField, nullptr, nvinfer1::PluginFieldType::kCHAR, 0),
                   nvinfer1::PluginField(kPositionBucketsField, nullptr, nvinfer1::PluginFieldType::kINT32, 1),
                   nvinfer1::PluginField(kMaxRelativePositionsField, nullptr, nvinfer1::PluginFieldType::kINT32, 1)}) {}

nvinfer1::IPluginV3* FusedMHAPluginCreator::createPlugin(const char* /*name*/,
                                                         const nvinfer1::PluginFieldCollection* fields,
                                                         nvinfer1::TensorRTPhase /*phase*/) noexcept {
  const char* op = FusedMHAPlugin::Contract::kName;
  FusedMHAPlugin::Contract::Attributes attributes;
  PositionTerms terms;
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
        BYTETX_RETURN_IF_ERROR(ReadOptionalIntField(field, &attributes.relative_position_max_distance));
      } else if (name == kRotaryField) {
        BYTETX_RETURN_IF_ERROR(ReadFloatsField(field, &attributes.rotary_frequencies));
      } else if (name == kWindowField) {
        BYTETX_RETURN_IF_ERROR(ReadOptionalIntField(field, &attributes.sliding_window));
      } else if (name == kTermsField) {
        std::string text;
        BYTETX_RETURN_IF_ERROR(ReadStringField(field, &text));
        BYTETX_RETURN_IF_ERROR(ParsePositionTerms(text, &terms));
      } else if (name == kPositionBucketsField) {
        BYTETX_RETURN_IF_ERROR(ReadOptionalIntField(field, &attributes.position_buckets));
      } else if (name == kMaxRelativePositionsField) {
        BYTETX_RETURN_IF_ERROR(ReadOptionalIntField(field, &attributes.max_relative_positions));
      } else {
        return Status::Invalid(StrCat("unknown field '", name, "' (the fields are num_heads, scale, ",
                                      kMaxDistanceField, ", ", kRotaryField, ", ", kWindowField, ", ", kTermsField,
                                      ", ", kPositionBucketsField, " and ", kMaxRelativePositionsField, ")"));
      }
    }
    BYTETX_CHECK(have_num_heads, "attribute 'num_heads' (int) is required");
    BYTETX_RETURN_IF_ERROR(FusedMHAPlugin::Contract::ValidateAttributes(attributes));
    // The op tells the tables apart by their input positions; the plugin's gap-free inputs need the field.
    BYTETX_CHECK(terms.any() == attributes.position_buckets.has_value(),
                 terms.any() ? StrCat("field '", kTermsField, "' needs the fields '", kPositionBucketsField, "' and '",
                                      kMaxRelativePositionsField, "'")
                             : StrCat("fields '", kPositionBucketsField, "' and '", kMaxRelativePositionsField,
                                      "' need the field '", kTermsField, "' naming the tables the plugin takes: '",
                                      kContentToPosition, "' (position_key), '", kPositionToContent,
                                      "' (position_query) or both"));
    return Status::Ok();
  });
  if (status != kSuccess) {
    return nullptr;
  }
  return Guarded(op, static_cast<nvinfer1::IPluginV3*>(nullptr),
                 [&]() -> nvinfer1::IPluginV3* { return new FusedMHAPlugin(attributes, terms); });
}

}  // namespace bytetx::trt
