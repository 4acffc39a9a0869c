// TensorRT plugin RemovePadding (README.md beside this file, docs/ops.md): packs a padded batch
// [B, S, H] into the T valid tokens [T, H] plus cu_seqlens and token_offset. T is data dependent, so
// the plugin has a fourth output, the size tensor num_tokens (int64 scalar) that the first output's
// shape is declared with: TensorRT sizes every packed tensor after it by T, not by B * S.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "trt/common/plugin_base.h"

namespace bytetx::trt {

class RemovePaddingPlugin final : public PluginBase<RemovePaddingPlugin> {
 public:
  static constexpr char kName[] = "RemovePadding";
  static constexpr int32_t kNumInputs = 2;
  static constexpr int32_t kNumOutputs = 4;
  // Positions in supportsFormatCombination's inOut: inputs, then outputs.
  enum Position : int32_t { kInput, kMask, kPacked, kCuSeqlens, kTokenOffset, kNumTokens };
  // Index of the size tensor among the outputs.
  static constexpr int32_t kNumTokensOutput = kNumTokens - kNumInputs;

  RemovePaddingPlugin() = default;

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
  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override { return fields_.collection(); }

 private:
  Status Enqueue(const nvinfer1::PluginTensorDesc* input_desc, const void* const* inputs, void* const* outputs,
                 cudaStream_t stream) const;

  FieldList fields_;  // no attributes
};

class RemovePaddingPluginCreator final : public CreatorBase {
 public:
  RemovePaddingPluginCreator();

  const char* getPluginName() const noexcept override { return RemovePaddingPlugin::kName; }
  nvinfer1::IPluginV3* createPlugin(const char* name, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
};

}  // namespace bytetx::trt
