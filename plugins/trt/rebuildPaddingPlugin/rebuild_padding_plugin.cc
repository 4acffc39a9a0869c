#include "trt/rebuildPaddingPlugin/rebuild_padding_plugin.h"

#include "kernels/contract_launch.h"

namespace bytetx::trt {

Status RebuildPaddingPlugin::OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
                                          nvinfer1::IExprBuilder& /*builder*/) const {
  const nvinfer1::DimsExprs& token_offset = inputs[Contract::kTokenOffset];
  outputs[0].nbDims = 3;
  outputs[0].d[0] = token_offset.d[0];
  outputs[0].d[1] = token_offset.d[1];
  outputs[0].d[2] = inputs[Contract::kPacked].d[1];
  return Status::Ok();
}

Status RebuildPaddingPlugin::Launch(const Dims& dims, const contract::TensorDesc* inputs,
                                    const void* const* input_data, void* const* output_data,
                                    cudaStream_t stream) const {
  // T exact: TensorRT sized 'packed' by RemovePadding's num_tokens size tensor.
  return cuda::RunRebuildPadding(dims, *contract::ToKernelDataType(inputs[Contract::kPacked].type),
                                 input_data[Contract::kPacked], static_cast<const int32_t*>(input_data[Contract::kTokenOffset]),
                                 output_data[0], stream);
}

}  // namespace bytetx::trt
