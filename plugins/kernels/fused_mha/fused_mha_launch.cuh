// LaunchTyped<T, D>: fills the kernel arguments and launches the kernel the host picked. Included by
// the per-dtype translation units (fused_mha_<dtype>.cu), which instantiate it per head size, so the
// three dtypes compile in parallel.
#pragma once

#include <cstdint>

#include "kernels/common/launch.cuh"
#include "kernels/common/row_copy.cuh"
#include "kernels/fused_mha/fused_mha_kernels.cuh"

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
  args.num_rows = p.num_rows;
  args.hidden = static_cast<int32_t>(p.num_heads * D);
  args.max_seq_len = static_cast<int32_t>(p.max_seq_len);
  args.num_query_tiles = static_cast<int32_t>((p.max_seq_len + block_m - 1) / block_m);
  args.scale_log2 = p.scale * kLog2e;
  const cudaError_t status = AllowDynamicSharedMemory(kernel, shared_bytes);
  if (status != cudaSuccess) {
    return status;
  }
  const dim3 grid(static_cast<unsigned>(p.batch * args.num_query_tiles), static_cast<unsigned>(p.num_heads));
  return LaunchKernel(kernel, grid, dim3(threads), shared_bytes, stream, args);
}

template <int kUnitBytes>
cudaError_t LaunchZeroTail(const FusedMHAParams& p, cudaStream_t stream) {
  using U = typename CopyUnitOf<kUnitBytes>::Type;
  const int64_t units = p.num_heads * p.head_size * static_cast<int64_t>(ElementSize(p.dtype)) / kUnitBytes;
  const int64_t blocks = (p.num_rows + kRowsPerMoverBlock - 1) / kRowsPerMoverBlock;
  return LaunchKernel(ZeroTailRowsKernel<U>, dim3(static_cast<unsigned>(blocks)), dim3(kRowMoverThreads), 0, stream,
                      p.cu_seqlens + p.batch, p.num_rows, units, static_cast<U*>(p.context));
}

template <typename T, int D>
cudaError_t LaunchTyped(const FusedMHAParams& p, FusedMHAKernel kernel, bool tensor_cores, cudaStream_t stream) {
  cudaError_t status = cudaSuccess;
  if constexpr (kIsFloat<T>) {
    static_cast<void>(kernel);
    static_cast<void>(tensor_cores);
    status = LaunchAttention<T, D>(FmaMHAKernel<T, D>, p, kFmaBlockM, kFmaThreads, FmaConfig<D>::kSharedBytes, stream);
  } else {
    if (kernel == FusedMHAKernel::kShort) {
      const ShortLayout layout = MakeShortLayout(D, static_cast<int>(p.max_seq_len), sizeof(T));
      status = LaunchAttention<T, D>(ShortMHAKernel<T, D>, p, kWmmaBlockM, kWmmaThreads,
                                     static_cast<size_t>(layout.total_bytes), stream);
    } else if (tensor_cores) {
      status = LaunchAttention<T, D>(TiledMHAKernel<T, D>, p, kWmmaBlockM, kWmmaThreads, TiledConfig<D>::kSharedBytes,
                                     stream);
    } else if constexpr (kNeedsFma<T>) {
      status = LaunchAttention<T, D>(FmaMHAKernel<T, D>, p, kFmaBlockM, kFmaThreads, FmaConfig<D>::kSharedBytes,
                                     stream);
    } else {
      status = cudaErrorInvalidValue;  // unreachable: HasTensorCores(kFloat16) holds on every device
    }
  }
  if (status != cudaSuccess || !p.rows_upper_bound) {
    return status;
  }
  const size_t row_bytes = static_cast<size_t>(p.num_heads * p.head_size) * sizeof(T);
  switch (RowCopyUnitBytes(row_bytes, p.context, p.context)) {
    case 16:
      return LaunchZeroTail<16>(p, stream);
    case 4:
      return LaunchZeroTail<4>(p, stream);
    default:
      return LaunchZeroTail<2>(p, stream);
  }
}

}  // namespace bytetx::cuda::fused_mha
