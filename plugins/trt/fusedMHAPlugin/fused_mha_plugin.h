// TensorRT plugin FusedMHA (README.md beside this file, docs/ops.md): multi-head self-attention over
// the ragged sequences of the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their
// bias on the fly. Fields: the op's attributes num_heads (int, required), scale (float, default
// 1 / sqrt(H / num_heads)), and the optional position features: relative_position_max_distance (int;
// MPNet's bias), rotary_frequencies (floats), sliding_window (int; ModernBERT's), and DeBERTa's
// disentangled terms: pos_att_type (string, which of the terms, so which tables) with position_buckets
// and max_relative_positions (ints). Any of them adds the input positions; the bias adds
// relative_position_bias, the terms their tables. The plugin takes the inputs its fields ask for, in
// the op's order, without gaps: TensorRT hands a plugin no empty inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/fused_mha_contract.h"
#include "trt/common/plugin_base.h"

namespace bytetx::trt {

// DeBERTa's pos_att_type: the disentangled terms the plugin computes, each reading one table. Only
// the field tells which table the plugin has when it has one: both are [2 * span, H].
struct PositionTerms {
  bool c2p = false;  // content to position: the input position_key
  bool p2c = false;  // position to content: the input position_query

  bool any() const { return c2p || p2c; }
};

class FusedMHAPlugin final : public PluginBase<FusedMHAPlugin, contract::FusedMHA> {
 public:
  FusedMHAPlugin(const Contract::Attributes& attributes, PositionTerms terms);

  int32_t NumInputs() const { return static_cast<int32_t>(inputs_.size()); }
  const contract::TensorSpec* Tensors() const { return tensors_.data(); }

  // Validated by the contract, each plugin input at its index there, the others absent.
  Status Validate(const contract::TensorDesc* inputs, Dims* dims) const;
  Status OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                      nvinfer1::IExprBuilder& builder) const;
  Status Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
                void* const* output_data, cudaStream_t stream) const;
  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override;

 private:
  Contract::Attributes attributes_;
  PositionTerms terms_;
  std::vector<int> inputs_;                     // the contract's index of each plugin input
  std::vector<contract::TensorSpec> tensors_;   // the plugin's inputs, then its output
  int32_t num_heads_field_ = 0;                 // what getFieldsToSerialize points at
  float scale_field_ = 0.0f;
  int32_t max_distance_field_ = 0;
  int32_t window_field_ = 0;
  std::string terms_field_;
  int32_t position_buckets_field_ = 0;
  int32_t max_relative_positions_field_ = 0;
  FieldList serialized_;                        // rebuilt by each call, pointing into this object
};

class FusedMHAPluginCreator final : public CreatorBase<FusedMHAPlugin> {
 public:
  FusedMHAPluginCreator();

  nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace bytetx::trt
