// TensorRT plugin FusedMHA (README.md beside this file, docs/ops.md): multi-head self-attention over
// the ragged sequences of the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their
// bias on the fly. Fields: the op's attributes num_heads (int, required), scale (float, default
// 1 / sqrt(H / num_heads)), and the optional position features: relative_position_max_distance (int;
// MPNet's bias), rotary_frequencies (floats) and sliding_window (int; ModernBERT's). Any of them adds
// the input positions; the bias also relative_position_bias.
#pragma once

#include <cstdint>
#include <vector>

#include "common/fused_mha_contract.h"
#include "trt/common/plugin_base.h"

namespace bytetx::trt {

class FusedMHAPlugin final : public PluginBase<FusedMHAPlugin, contract::FusedMHA> {
 public:
  // Without a relative position bias, the four required inputs (the op's other inputs absent).
  static constexpr int32_t kNumInputs = Contract::kNumRequiredInputs;
  static constexpr contract::TensorSpec kTensors[] = {
      Contract::kTensors[Contract::kQkv], Contract::kTensors[Contract::kQkvBias],
      Contract::kTensors[Contract::kCuSeqlens], Contract::kTensors[Contract::kTokenOffset],
      Contract::kTensors[Contract::kContext]};

  explicit FusedMHAPlugin(const Contract::Attributes& attributes) : attributes_(attributes) {}

  // With a position feature, positions too; with the bias, all of the op's inputs, in its order.
  static constexpr contract::TensorSpec kPositionTensors[] = {
      Contract::kTensors[Contract::kQkv],        Contract::kTensors[Contract::kQkvBias],
      Contract::kTensors[Contract::kCuSeqlens],  Contract::kTensors[Contract::kTokenOffset],
      Contract::kTensors[Contract::kPositions], Contract::kTensors[Contract::kContext]};
  bool HasPositionBias() const { return attributes_.relative_position_max_distance.has_value(); }
  bool ReadsPositions() const {
    return HasPositionBias() || !attributes_.rotary_frequencies.empty() || attributes_.sliding_window.has_value();
  }
  int32_t NumInputs() const { return kNumInputs + (ReadsPositions() ? 1 : 0) + (HasPositionBias() ? 1 : 0); }
  const contract::TensorSpec* Tensors() const {
    return HasPositionBias() ? Contract::kTensors : ReadsPositions() ? kPositionTensors : kTensors;
  }

  Status Validate(const contract::TensorDesc* inputs, Dims* dims) const {
    std::vector<contract::TensorDesc> all(inputs, inputs + NumInputs());
    all.resize(Contract::kNumInputs, contract::TensorDesc{contract::ElementType::kUnknown, {}, /*present=*/false});
    return Contract::Validate(all.data(), attributes_, contract::Backend::kCuda, dims);
  }
  Status OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                      nvinfer1::IExprBuilder& builder) const;
  Status Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
                void* const* output_data, cudaStream_t stream) const;
  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override;

 private:
  Contract::Attributes attributes_;
  int32_t num_heads_field_ = 0;  // what getFieldsToSerialize points at
  float scale_field_ = 0.0f;
  int32_t max_distance_field_ = 0;
  int32_t window_field_ = 0;
  FieldList serialized_;         // rebuilt by each call, pointing into this object
};

class FusedMHAPluginCreator final : public CreatorBase<FusedMHAPlugin> {
 public:
  FusedMHAPluginCreator();

  nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace bytetx::trt
