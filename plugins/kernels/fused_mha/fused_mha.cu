// LaunchFusedMHA: checks the parameters, picks the kernel (docs/kernels.md) and dispatches on dtype and
// head size to the instantiations of fused_mha_<dtype>.cu.
#include "kernels/fused_mha/fused_mha.h"

#include <cstdint>

#include "kernels/common/launch.cuh"
#include "kernels/fused_mha/fused_mha_head_sizes.h"
#include "kernels/fused_mha/fused_mha_launch.cuh"

namespace bytetx::cuda {
namespace {

using fused_mha::LaunchTyped;

constexpr int64_t kMaxGridX = INT32_MAX;
constexpr int64_t kMaxGridY = 65535;
constexpr int kBFloat16WmmaCapability = 80;

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Tensor-core kernels exist for fp16 everywhere and for bf16 from sm_80 on.
bool HasTensorCores(DataType dtype) {
  return dtype == DataType::kFloat16 || (dtype == DataType::kBFloat16 && ComputeCapability() >= kBFloat16WmmaCapability);
}

// nullptr when the short-sequence kernel can run `p` on the current device, else why not.
const char* ShortKernelUnfit(const FusedMHAParams& p) {
  if (!HasTensorCores(p.dtype)) {
    return "the short-sequence kernel needs fp16, or bf16 on sm_80 or newer";
  }
  if (p.dims.seq_len > kFusedMHAShortMaxLen) {
    return "the short-sequence kernel takes seq_len <= kFusedMHAShortMaxLen (128)";
  }
  const fused_mha::ShortLayout layout =
      fused_mha::MakeShortLayout(static_cast<int>(p.dims.head_size), static_cast<int>(p.dims.seq_len), 2);
  if (static_cast<size_t>(layout.total_bytes) > MaxSharedMemoryPerBlock()) {
    return "the short-sequence kernel needs more shared memory than this device has per block";
  }
  return nullptr;
}

// nullptr when the tiled kernel, with the queries the disentangled terms keep in shared memory, fits
// the current device's shared memory per block (not with head size 128 on sm_75), else why not.
const char* DisentangledTiledKernelUnfit(const FusedMHAParams& p) {
  const size_t bytes = DispatchHeadSize(p.dims.head_size, size_t{0}, [](auto head_size) {
    return static_cast<size_t>(fused_mha::TiledConfig<decltype(head_size)::value>::kDisentangledSharedBytes);
  });
  return bytes > MaxSharedMemoryPerBlock()
             ? "the tiled kernel with the disentangled terms needs more shared memory than this device has per block"
             : nullptr;
}

template <typename T>
cudaError_t Dispatch(const FusedMHAParams& p, FusedMHAKernel kernel, bool tensor_cores, cudaStream_t stream) {
  return DispatchHeadSize(p.dims.head_size, cudaErrorInvalidValue, [&](auto head_size) {
    return LaunchTyped<T, decltype(head_size)::value>(p, kernel, tensor_cores, stream);
  });
}

}  // namespace

namespace fused_mha {
BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_FUSED_MHA_DECLARE_FP32)
BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_FUSED_MHA_DECLARE_FP16)
BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_FUSED_MHA_DECLARE_BF16)
}  // namespace fused_mha

const char* CheckFusedMHAParams(const FusedMHAParams& p) {
  if (p.dtype != DataType::kFloat32 && p.dtype != DataType::kFloat16 && p.dtype != DataType::kBFloat16) {
    return "dtype must be float32, float16 or bfloat16";
  }
  if (!IsFusedMHAHeadSize(p.dims.head_size)) {
    return "head_size is not one of kFusedMHAHeadSizes";
  }
  if (p.dims.batch < 0 || p.dims.seq_len < 0 || p.dims.num_tokens < 0 || p.num_heads < 1) {
    return "batch, seq_len and num_tokens must be >= 0 and num_heads >= 1";
  }
  if (p.num_heads > kMaxGridY) {
    return "num_heads exceeds 65535";
  }
  if (3 * p.num_heads * p.dims.head_size > INT32_MAX || p.dims.seq_len > INT32_MAX) {
    return "3 * hidden or seq_len exceeds the int32 range";
  }
  const int64_t tiles = (p.dims.seq_len + fused_mha::kFmaBlockM - 1) / fused_mha::kFmaBlockM;
  if (p.dims.batch > 0 && tiles > kMaxGridX / p.dims.batch) {
    return "batch * seq_len is too large for one grid";
  }
  if (p.dims.num_buckets != 0) {
    if (p.dims.num_buckets < 4 || p.dims.num_buckets % 2 != 0 || p.dims.num_buckets > INT32_MAX ||
        p.buckets.num_buckets != p.dims.num_buckets || p.buckets.max_distance <= p.dims.num_buckets / 4 ||
        !(p.buckets.log_ratio > 0.0f)) {
      return "the relative position bias needs an even num_buckets >= 4 and buckets made for it";
    }
    if (p.dims.num_tokens > 0 && (p.positions == nullptr || p.relative_position_bias == nullptr)) {
      return "positions or relative_position_bias is null";
    }
  }
  if (p.sliding_window < -1 || p.sliding_window > INT32_MAX) {
    return "sliding_window must be -1 (none) or in [0, 2^31 - 1]";
  }
  if (p.dims.num_tokens > 0 && (p.rotary_frequencies != nullptr || p.sliding_window >= 0) && p.positions == nullptr) {
    return "rotary embeddings and the sliding window need positions";
  }
  if (p.dims.position_span != 0) {
    if (p.dims.position_span < 1 || p.dims.position_span > INT32_MAX / 2 ||
        (p.position_buckets != 0 && (p.position_buckets < 4 || p.position_buckets % 2 != 0 ||
                                     p.position_buckets > INT32_MAX || !(p.position_log_base > 1.0f)))) {
      return "the disentangled terms need 1 <= span <= 2^30 - 1 and position_buckets 0, or even in [4, 2^31 - 1] "
             "with a log base above 1";
    }
    if (p.dims.num_tokens > 0 &&
        (p.positions == nullptr || (p.position_key == nullptr && p.position_query == nullptr))) {
      return "the disentangled terms need positions and position_key or position_query";
    }
  }
  if (p.cu_seqlens == nullptr || p.qkv_bias == nullptr) {
    return "cu_seqlens or qkv_bias is null";
  }
  if (p.dims.num_tokens > 0 && (p.qkv == nullptr || p.context == nullptr)) {
    return "qkv or context is null";
  }
  if (!Aligned16(p.qkv) || !Aligned16(p.qkv_bias) || !Aligned16(p.context)) {
    return "qkv, qkv_bias and context must be 16-byte aligned";
  }
  if (p.kernel == FusedMHAKernel::kShort) {
    return ShortKernelUnfit(p);
  }
  if (p.dims.position_span > 0 && HasTensorCores(p.dtype) && SelectFusedMHAKernel(p) == FusedMHAKernel::kTiled) {
    return DisentangledTiledKernelUnfit(p);
  }
  return nullptr;
}

FusedMHAKernel SelectFusedMHAKernel(const FusedMHAParams& p) {
  if (p.kernel != FusedMHAKernel::kAuto) {
    return p.kernel;
  }
  return ShortKernelUnfit(p) == nullptr ? FusedMHAKernel::kShort : FusedMHAKernel::kTiled;
}

cudaError_t LaunchFusedMHA(const FusedMHAParams& p, cudaStream_t stream) {
  if (CheckFusedMHAParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.dims.num_tokens == 0 || p.dims.batch == 0 || p.dims.seq_len == 0) {
    return cudaSuccess;  // no token
  }
  const FusedMHAKernel kernel = SelectFusedMHAKernel(p);
  const bool tensor_cores = HasTensorCores(p.dtype);
  switch (p.dtype) {
    case DataType::kFloat16:
      return Dispatch<__half>(p, kernel, tensor_cores, stream);
    case DataType::kBFloat16:
      return Dispatch<__nv_bfloat16>(p, kernel, tensor_cores, stream);
    case DataType::kFloat32:
      return Dispatch<float>(p, kernel, tensor_cores, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace bytetx::cuda
