// The CUDA half of the C ABI: the contract launches of plugins/kernels/ on the caller's stream.
#include <cuda_runtime.h>

#include "capi/capi_internal.h"
#include "kernels/contract_launch.h"

namespace bytetx::capi {
namespace {

cuda::DataType KernelType(const bytetx_tensor& tensor) { return *contract::ToKernelDataType(ToElementType(tensor.dtype)); }

}  // namespace

Status RemovePaddingCuda(const contract::RemovePadding::Dims& dims, const bytetx_tensor& input,
                         const bytetx_tensor& mask, const bytetx_tensor& packed, const bytetx_tensor& cu_seqlens,
                         const bytetx_tensor& token_offset, void* stream) {
  const cuda::MaskType mask_type = mask.dtype == BYTETX_INT32 ? cuda::MaskType::kInt32 : cuda::MaskType::kInt64;
  // packed's rows: T, or the bound B * S, as the caller chose (T itself is known only on the device).
  return cuda::RunRemovePadding(dims, KernelType(input), input.data, mask.data, mask_type, packed.dims[0], packed.data,
                                static_cast<int32_t*>(cu_seqlens.data), static_cast<int32_t*>(token_offset.data),
                                static_cast<cudaStream_t>(stream));
}

Status FusedMHACuda(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                    const bytetx_tensor& qkv, const bytetx_tensor& qkv_bias, const bytetx_tensor& cu_seqlens,
                    const bytetx_tensor* positions, const bytetx_tensor* relative_position_bias,
                    const bytetx_tensor& context, void* stream) {
  return cuda::RunFusedMHA(dims, attributes, KernelType(qkv), qkv.data, qkv_bias.data,
                           static_cast<const int32_t*>(cu_seqlens.data),
                           positions ? static_cast<const int32_t*>(positions->data) : nullptr,
                           relative_position_bias ? relative_position_bias->data : nullptr,
                           /*position_key=*/nullptr, /*position_query=*/nullptr, context.data,
                           static_cast<cudaStream_t>(stream));
}

Status RebuildPaddingCuda(const contract::RebuildPadding::Dims& dims, const bytetx_tensor& packed,
                          const bytetx_tensor& token_offset, const bytetx_tensor& output, void* stream) {
  return cuda::RunRebuildPadding(dims, KernelType(packed), packed.data, static_cast<const int32_t*>(token_offset.data),
                                 output.data, static_cast<cudaStream_t>(stream));
}

}  // namespace bytetx::capi
