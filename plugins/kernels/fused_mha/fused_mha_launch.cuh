// LaunchTyped<T, D>: fills the kernel arguments and launches the kernel the host picked. Included by
// the per-dtype translation units (fused_mha_<dtype>.cu), which instantiate it for every head size of
// fused_mha_head_sizes.h, so the three dtypes compile in parallel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/common/launch.cuh"
#include "kernels/fused_mha/fma_kernel.cuh"
#include "kernels/fused_mha/fused_mha_head_sizes.h"
#include "kernels/fused_mha/short_kernel.cuh"
#include "kernels/fused_mha/tiled_kernel.cuh"

namespace bytetx::cuda::fused_mha {

template <typename T>
constexpr bool kIsFloat = false;
template <>
constexpr bool kIsFloat<float> = true;
// fp16 always has tensor cores (sm_70 on), so its FMA kernel is never built.
template <typename T>
constexpr bool kNeedsFma = true;
template <>
constexpr bool kNeedsFma<__half> = false;

template <typename T, int D, typename Kernel>
cudaError_t LaunchAttention(Kernel kernel, const FusedMHAParams& p, int block_m, int threads, size_t shared_bytes,
                            cudaStream_t stream) {
  MHAArgs<T> args;
  args.qkv = static_cast<const T*>(p.qkv);
  args.bias = static_cast<const T*>(p.qkv_bias);
  args.cu_seqlens = p.cu_seqlens;
  args.context = static_cast<T*>(p.context);
  args.num_tokens = p.dims.num_tokens;
  args.hidden = static_cast<int32_t>(p.num_heads * D);
  args.seq_len = static_cast<int32_t>(p.dims.seq_len);
  args.num_query_tiles = static_cast<int32_t>((p.dims.seq_len + block_m - 1) / block_m);
  args.scale_log2 = p.scale * kLog2e;
  const bool rotary = p.rotary_frequencies != nullptr;
  const bool disentangled = p.dims.position_span > 0;
  const bool reads_positions = p.dims.num_buckets > 0 || rotary || p.sliding_window >= 0 || disentangled;
  args.positions = reads_positions ? p.positions : nullptr;
  args.position_bias = p.dims.num_buckets > 0 ? static_cast<const T*>(p.relative_position_bias) : nullptr;
  args.buckets = p.buckets;
  args.sliding_window = static_cast<int32_t>(p.sliding_window);
  args.rotary_pairs = rotary ? D / 2 : 0;
  for (int c = 0; c < kMaxRotaryPairs; ++c) {
    args.rotary_frequencies[c] = rotary && c < D / 2 ? p.rotary_frequencies[c] : 0.0f;
  }
  args.position_key = disentangled ? static_cast<const T*>(p.position_key) : nullptr;
  args.position_query = disentangled ? static_cast<const T*>(p.position_query) : nullptr;
  args.position_span = disentangled ? static_cast<int32_t>(p.dims.position_span) : 0;
  args.position_buckets = static_cast<int32_t>(p.position_buckets);
  args.position_log_base = p.position_log_base;
  const cudaError_t status = AllowDynamicSharedMemory(kernel, shared_bytes);
  if (status != cudaSuccess) {
    return status;
  }
  const dim3 grid(static_cast<unsigned>(p.dims.batch * args.num_query_tiles), static_cast<unsigned>(p.num_heads));
  return LaunchKernel(kernel, grid, dim3(threads), shared_bytes, stream, args);
}

// The FMA kernel, its disentangled instance where the params have the terms.
template <typename T, int D>
cudaError_t LaunchFma(const FusedMHAParams& p, cudaStream_t stream) {
  if (p.dims.position_span > 0) {
    return LaunchAttention<T, D>(FmaMHAKernel<T, D, true>, p, kFmaBlockM, kFmaThreads,
                                 FmaConfig<D>::kDisentangledSharedBytes, stream);
  }
  return LaunchAttention<T, D>(FmaMHAKernel<T, D, false>, p, kFmaBlockM, kFmaThreads, FmaConfig<D>::kSharedBytes,
                               stream);
}

// The kernel `kernel` (kShort or kTiled, as SelectFusedMHAKernel chose) for dtype T and head size D;
// the tiled choice runs the FMA kernel where the device has no tensor cores for T.
template <typename T, int D>
cudaError_t LaunchTyped(const FusedMHAParams& p, FusedMHAKernel kernel, bool tensor_cores, cudaStream_t stream) {
  if constexpr (kIsFloat<T>) {
    static_cast<void>(kernel);
    static_cast<void>(tensor_cores);
    return LaunchFma<T, D>(p, stream);
  } else {
    if (kernel == FusedMHAKernel::kShort) {
      const ShortLayout layout = MakeShortLayout(D, static_cast<int>(p.dims.seq_len), sizeof(T));
      return LaunchAttention<T, D>(ShortMHAKernel<T, D>, p, kWmmaBlockM, kWmmaThreads,
                                   static_cast<size_t>(layout.total_bytes), stream);
    }
    if (tensor_cores) {
      return LaunchAttention<T, D>(TiledMHAKernel<T, D>, p, kWmmaBlockM, kWmmaThreads,
                                   p.dims.position_span > 0 ? TiledConfig<D>::kDisentangledSharedBytes
                                                            : TiledConfig<D>::kSharedBytes,
                                   stream);
    }
    if constexpr (kNeedsFma<T>) {
      return LaunchFma<T, D>(p, stream);
    }
    return cudaErrorInvalidValue;  // unreachable: HasTensorCores(kFloat16) holds on every device
  }
}

}  // namespace bytetx::cuda::fused_mha

// Declares (extern, in fused_mha.cu) or defines (in fused_mha_<dtype>.cu) LaunchTyped<T, D> for every
// listed head size.
#define BYTETX_LAUNCH_TYPED(T, D) \
  cudaError_t LaunchTyped<T, D>(const FusedMHAParams&, FusedMHAKernel, bool, cudaStream_t);
#define BYTETX_FUSED_MHA_INSTANTIATE_FP32(D) template BYTETX_LAUNCH_TYPED(float, D)
#define BYTETX_FUSED_MHA_INSTANTIATE_FP16(D) template BYTETX_LAUNCH_TYPED(__half, D)
#define BYTETX_FUSED_MHA_INSTANTIATE_BF16(D) template BYTETX_LAUNCH_TYPED(__nv_bfloat16, D)
#define BYTETX_FUSED_MHA_DECLARE_FP32(D) extern template BYTETX_LAUNCH_TYPED(float, D)
#define BYTETX_FUSED_MHA_DECLARE_FP16(D) extern template BYTETX_LAUNCH_TYPED(__half, D)
#define BYTETX_FUSED_MHA_DECLARE_BF16(D) extern template BYTETX_LAUNCH_TYPED(__nv_bfloat16, D)
