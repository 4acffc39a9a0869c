// FusedMHA kernels for __nv_bfloat16: one instantiation per supported head size.
#include "kernels/fused_mha/fused_mha_launch.cuh"

namespace bytetx::cuda::fused_mha {

template cudaError_t LaunchTyped<__nv_bfloat16, 32>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<__nv_bfloat16, 64>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<__nv_bfloat16, 128>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);

}  // namespace bytetx::cuda::fused_mha
