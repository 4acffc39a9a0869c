// TensorRT plugin RemovePadding (README.md beside this file, docs/ops.md): packs a padded batch
// [B, S, H] into the T valid tokens [T, H] plus cu_seqlens and token_offset. T is data dependent, so
// the plugin has a fourth output, the size tensor num_tokens (int64 scalar) that the first output's
// shape is declared with: TensorRT sizes every packed tensor after it by T, not by B * S.
#pragma once

#include "common/remove_padding_contract.h"
#include "trt/common/plugin_base.h"

namespace bytetx::trt {

class RemovePaddingPlugin final : public PluginBase<RemovePaddingPlugin, contract::RemovePadding> {
 public:
  // The op's outputs, then the size tensor.
  static constexpr int32_t kNumOutputs = Contract::kNumOutputs + 1;
  static constexpr int32_t kNumTokens = Contract::kTokenOffset + 1;  // position among inputs and outputs
  static constexpr contract::TensorSpec kTensors[] = {
      Contract::kTensors[Contract::kInput],      Contract::kTensors[Contract::kAttentionMask],
      Contract::kTensors[Contract::kPacked],     Contract::kTensors[Contract::kCuSeqlens],
      Contract::kTensors[Contract::kTokenOffset], {"num_tokens", "[]", 0, contract::TypeRule::Exactly(contract::ElementType::kInt64)},
  };

  Status OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                      nvinfer1::IExprBuilder& builder) const;
  Status Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
                void* const* output_data, cudaStream_t stream) const;
};

using RemovePaddingPluginCreator = FieldlessCreator<RemovePaddingPlugin>;

}  // namespace bytetx::trt
