// FusedMHA's kernels for one dtype, instantiated for every head size of fused_mha_head_sizes.h.
#include "kernels/fused_mha/fused_mha_launch.cuh"

namespace bytetx::cuda::fused_mha {
BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_FUSED_MHA_INSTANTIATE_FP16)
}  // namespace bytetx::cuda::fused_mha
