// TensorRT plugin RebuildPadding (README.md beside this file, docs/ops.md): scatters packed tokens
// [T, H] back to the padded layout [B, S, H]; padding positions are exactly zero.
#pragma once

#include "common/rebuild_padding_contract.h"
#include "trt/common/plugin_base.h"

namespace bytetx::trt {

class RebuildPaddingPlugin final : public PluginBase<RebuildPaddingPlugin, contract::RebuildPadding> {
 public:
  // Output [B, S, H]: B, S of token_offset, H of packed.
  Status OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                      nvinfer1::IExprBuilder& builder) const;
  Status Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
                void* const* output_data, cudaStream_t stream) const;
};

using RebuildPaddingPluginCreator = FieldlessCreator<RebuildPaddingPlugin>;

}  // namespace bytetx::trt
