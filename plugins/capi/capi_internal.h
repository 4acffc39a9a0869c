// What the C ABI's translation units share: tensors described for the op contracts, and the CUDA
// half of each op (capi_cuda.cc, built where CUDA is), reached with contract-validated sizes.
#pragma once

#include <cstdint>
#include <vector>

#include "capi/bytetx_capi.h"
#include "common/checks.h"
#include "common/contract.h"
#include "common/fused_mha_contract.h"
#include "common/rebuild_padding_contract.h"
#include "common/remove_padding_contract.h"

namespace bytetx::capi {

contract::ElementType ToElementType(int32_t dtype);
contract::TensorDesc Describe(const bytetx_tensor& tensor);
int64_t ElementCount(const bytetx_tensor& tensor);

// The CUDA launches, on `stream`; compiled only with CUDA (bytetx_has_cuda).
Status RemovePaddingCuda(const contract::RemovePadding::Dims& dims, const bytetx_tensor& input,
                         const bytetx_tensor& mask, const bytetx_tensor& packed, const bytetx_tensor& cu_seqlens,
                         const bytetx_tensor& token_offset, void* stream);
// positions and relative_position_bias: NULL without a relative position bias.
Status FusedMHACuda(const contract::FusedMHA::Dims& dims, const contract::FusedMHA::Attributes& attributes,
                    const bytetx_tensor& qkv, const bytetx_tensor& qkv_bias, const bytetx_tensor& cu_seqlens,
                    const bytetx_tensor* positions, const bytetx_tensor* relative_position_bias,
                    const bytetx_tensor& context, void* stream);
Status RebuildPaddingCuda(const contract::RebuildPadding::Dims& dims, const bytetx_tensor& packed,
                          const bytetx_tensor& token_offset, const bytetx_tensor& output, void* stream);

}  // namespace bytetx::capi
