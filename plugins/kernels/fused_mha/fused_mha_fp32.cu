// FusedMHA kernels for float: one instantiation per supported head size.
#include "kernels/fused_mha/fused_mha_launch.cuh"

namespace bytetx::cuda::fused_mha {

template cudaError_t LaunchTyped<float, 32>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<float, 64>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
template cudaError_t LaunchTyped<float, 128>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);

}  // namespace bytetx::cuda::fused_mha
