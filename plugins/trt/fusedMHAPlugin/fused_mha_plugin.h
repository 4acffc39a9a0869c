// TensorRT plugin FusedMHA (README.md beside this file, docs/ops.md): multi-head self-attention over
// the ragged sequences of the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their
// bias on the fly. Fields: num_heads (int, required) and scale (float, default 1 / sqrt(H / num_heads)).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "trt/common/plugin_base.h"

namespace bytetx::trt {

class FusedMHAPlugin final : public PluginBase<FusedMHAPlugin> {
 public:
  static constexpr char kName[] = "FusedMHA";
  static constexpr int32_t kNumInputs = 4;
  static constexpr int32_t kNumOutputs = 1;
  enum Position : int32_t { kQkv, kQkvBias, kCuSeqlens, kTokenOffset, kContext };

  FusedMHAPlugin(int32_t num_heads, std::optional<float> scale);

  // Build capability.
  int32_t configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t num_inputs,
                          const nvinfer1::DynamicPluginTensorDesc* out, int32_t num_outputs) noexcept override;
  int32_t getOutputDataTypes(nvinfer1::DataType* output_types, int32_t num_outputs,
                             const nvinfer1::DataType* input_types, int32_t num_inputs) const noexcept override;
  int32_t getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t num_inputs, const nvinfer1::DimsExprs* shape_inputs,
                          int32_t num_shape_inputs, nvinfer1::DimsExprs* outputs, int32_t num_outputs,
                          nvinfer1::IExprBuilder& builder) noexcept override;
  bool supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out, int32_t num_inputs,
                                 int32_t num_outputs) noexcept override;

  // Runtime capability.
  int32_t enqueue(const nvinfer1::PluginTensorDesc* input_desc, const nvinfer1::PluginTensorDesc* output_desc,
                  const void* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;
  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override;

 private:
  // The width 3H of 'qkv' splits into num_heads heads of a size the kernels take (32, 64 or 128).
  Status CheckWidth(int64_t width) const;
  Status Enqueue(const nvinfer1::PluginTensorDesc* input_desc, const void* const* inputs, void* const* outputs,
                 cudaStream_t stream) const;

  int32_t num_heads_;
  std::optional<float> scale_;
  float scale_value_ = 0.0f;  // what getFieldsToSerialize points at
  FieldList serialized_;     // rebuilt by each call, pointing into this object
};

class FusedMHAPluginCreator final : public CreatorBase {
 public:
  FusedMHAPluginCreator();

  const char* getPluginName() const noexcept override { return FusedMHAPlugin::kName; }
  nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace bytetx::trt
