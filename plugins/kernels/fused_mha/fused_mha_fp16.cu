// FusedMHA kernels for __half: one instantiation per supported head size.
#include "kernels/fused_mha/fused_mha_launch.cuh"

namespace bytetx::cuda::fused_mha {

template cudaError_t LaunchTyped<__half, 32>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<__half, 64>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<__half, 128>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);

}  // namespace bytetx::cuda::fused_mha
