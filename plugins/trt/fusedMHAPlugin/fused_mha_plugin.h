// TensorRT plugin FusedMHA (README.md beside this file, docs/ops.md): multi-head self-attention over
// the ragged sequences of the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their
// bias on the fly. Fields: the op's attributes num_heads (int, required), scale (float, default
// 1 / sqrt(H / num_heads)) and relative_position_max_distance (int, optional): with it the plugin
// takes the op's two optional inputs too, positions and relative_position_bias (MPNet's bias).
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

  // With relative_position_max_distance, all of the op's inputs, in its order.
  bool HasPositionBias() const { return attributes_.relative_position_max_distance.has_value(); }
  int32_t NumInputs() const { return HasPositionBias() ? Contract::kNumInputs : kNumInputs; }
  const contract::TensorSpec* Tensors() const { return HasPositionBias() ? Contract::kTensors : kTensors; }

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
  FieldList serialized_;         // rebuilt by each call, pointing into this object
};

class FusedMHAPluginCreator final : public CreatorBase<FusedMHAPlugin> {
 public:
  FusedMHAPluginCreator();

  nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace bytetx::trt
