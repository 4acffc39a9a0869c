// C ABI for the kernel tests (tests/kernels/test_emulated_*.py): each emu_* function fills a launcher's
// params struct from plain arguments and calls the real launcher of plugins/kernels/, each cpu_*
// function runs the CPU op of plugins/cpu/ for the reference, through cpu/contract_run.h as the CPU
// shells do. Built twice: for the host emulation (device pointers are host memory) and, on a machine
// with a GPU, by nvcc for the real device (device pointers are CUDA memory; launches go to the legacy
// default stream). Returns are cudaError_t values (emu_*) or 0 / 1 for ok / error (cpu_*).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#ifdef BYTETX_CUDA_EMULATION
#include "bytetx_emulation.h"
#endif
#include "cpu/contract_run.h"
#include "kernels/fused_mha/fused_mha.h"
#include "kernels/fused_mha/fused_mha_launch.cuh"
#include "kernels/rebuild_padding/rebuild_padding.h"
#include "kernels/remove_padding/remove_padding.h"

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using bytetx::cuda::DataType;

// 0: float32, 1: float16, 2: bfloat16 (the order of DataType).
DataType ToDataType(int dtype) {
  return dtype == 1 ? DataType::kFloat16 : dtype == 2 ? DataType::kBFloat16 : DataType::kFloat32;
}

// Which FusedMHA kernel to run: the launcher's own choices, plus the FMA kernel that a device without
// bf16 tensor cores (sm_75) runs for bfloat16, reached through the launcher's per-dtype entry point.
enum MhaChoice { kAuto = 0, kShort = 1, kTiled = 2, kFmaAsOnSm75 = 3 };

template <typename T>
cudaError_t LaunchFmaAsOnSm75(const bytetx::cuda::FusedMHAParams& p) {
  return bytetx::cuda::DispatchHeadSize(p.dims.head_size, cudaErrorInvalidValue, [&](auto head_size) {
    return bytetx::cuda::fused_mha::LaunchTyped<T, decltype(head_size)::value>(
        p, bytetx::cuda::FusedMHAKernel::kTiled, false, nullptr);
  });
}

// The position features of one FusedMHA call: num_buckets 0: no relative position bias (table
// unused); rotary_frequencies nullptr: no rotary embeddings; sliding_window < 0: no window;
// position_span 0: no disentangled terms (position_key and position_query unused, either may be null).
struct MhaPositions {
  const int32_t* positions;
  const void* table;
  int64_t num_buckets;
  int64_t max_distance;
  const float* rotary_frequencies;
  int64_t sliding_window;
  const void* position_key;
  const void* position_query;
  int64_t position_span;
  int64_t position_buckets;
  int64_t max_relative_positions;
};

bytetx::cuda::FusedMHAParams MhaParams(int dtype, const void* qkv, const void* bias, const int32_t* cu_seqlens,
                                       int64_t batch, int64_t seq_len, int64_t num_tokens, int64_t num_heads,
                                       int64_t head_size, float scale, void* context, int kernel,
                                       const MhaPositions& f) {
  bytetx::cuda::FusedMHAParams p;
  p.dtype = ToDataType(dtype);
  p.qkv = qkv;
  p.qkv_bias = bias;
  p.cu_seqlens = cu_seqlens;
  p.dims = {num_tokens, num_heads * head_size, head_size, batch, seq_len, f.num_buckets, f.position_span};
  p.num_heads = num_heads;
  p.scale = scale;
  p.context = context;
  if (f.num_buckets > 0) {
    p.relative_position_bias = f.table;
    p.buckets = bytetx::MakeRelativePositionBuckets(f.num_buckets, f.max_distance);
  }
  p.rotary_frequencies = f.rotary_frequencies;
  p.sliding_window = f.sliding_window;
  if (f.position_span > 0) {
    p.position_key = f.position_key;
    p.position_query = f.position_query;
    p.position_buckets = f.position_buckets;
    p.position_log_base = bytetx::DisentangledLogBase(f.position_buckets, f.max_relative_positions);
  }
  if (f.num_buckets > 0 || f.rotary_frequencies != nullptr || f.sliding_window >= 0 || f.position_span > 0) {
    p.positions = f.positions;
  }
  p.kernel = kernel == kShort   ? bytetx::cuda::FusedMHAKernel::kShort
             : kernel == kTiled ? bytetx::cuda::FusedMHAKernel::kTiled
                                : bytetx::cuda::FusedMHAKernel::kAuto;
  return p;
}

int ToInt(const bytetx::Status& status) { return status.ok() ? 0 : 1; }

}  // namespace

EMU_EXPORT const char* emu_last_launch_error() {
#ifdef BYTETX_CUDA_EMULATION
  return bytetx_emulation::LastLaunchError();
#else
  return cudaGetErrorString(cudaPeekAtLastError());
#endif
}

EMU_EXPORT int emu_remove_padding(int dtype, const void* input, const void* mask, int mask_type, int64_t batch,
                                  int64_t seq_len, int64_t hidden, int64_t packed_rows, void* packed,
                                  int32_t* cu_seqlens, int32_t* token_offset) {
  bytetx::cuda::RemovePaddingParams p;
  p.dtype = ToDataType(dtype);
  p.input = input;
  p.attention_mask = mask;
  p.mask_type = mask_type == 0   ? bytetx::cuda::MaskType::kInt32
                : mask_type == 1 ? bytetx::cuda::MaskType::kInt64
                                 : bytetx::cuda::MaskType::kBits;
  p.dims = {batch, seq_len, hidden};
  p.packed_rows = packed_rows;
  p.packed = packed;
  p.cu_seqlens = cu_seqlens;
  p.token_offset = token_offset;
  return bytetx::cuda::LaunchRemovePadding(p, nullptr);
}

EMU_EXPORT int emu_upload_mask_bits(const uint32_t* host_words, int64_t num_slots, uint32_t* device_words) {
  return bytetx::cuda::UploadMaskBits(host_words, num_slots, device_words, nullptr);
}

EMU_EXPORT int emu_rebuild_padding(int dtype, const void* packed, const int32_t* token_offset, int64_t num_tokens,
                                   int64_t batch, int64_t seq_len, int64_t hidden, void* output) {
  bytetx::cuda::RebuildPaddingParams p;
  p.dtype = ToDataType(dtype);
  p.packed = packed;
  p.token_offset = token_offset;
  p.dims = {num_tokens, hidden, batch, seq_len};
  p.output = output;
  return bytetx::cuda::LaunchRebuildPadding(p, nullptr);
}

EMU_EXPORT int emu_fused_mha(int dtype, const void* qkv, const void* bias, const int32_t* cu_seqlens, int64_t batch,
                             int64_t seq_len, int64_t num_tokens, int64_t num_heads, int64_t head_size, float scale,
                             void* context, int kernel, const int32_t* positions, const void* table,
                             int64_t num_buckets, int64_t max_distance, const float* rotary_frequencies,
                             int64_t sliding_window, const void* position_key, const void* position_query,
                             int64_t position_span, int64_t position_buckets, int64_t max_relative_positions) {
  const bytetx::cuda::FusedMHAParams p = MhaParams(
      dtype, qkv, bias, cu_seqlens, batch, seq_len, num_tokens, num_heads, head_size, scale, context, kernel,
      {positions, table, num_buckets, max_distance, rotary_frequencies, sliding_window, position_key, position_query,
       position_span, position_buckets, max_relative_positions});
  if (kernel != kFmaAsOnSm75) {
    return bytetx::cuda::LaunchFusedMHA(p, nullptr);
  }
  if (bytetx::cuda::CheckFusedMHAParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.dims.num_tokens == 0 || p.dims.batch == 0 || p.dims.seq_len == 0) {
    return cudaSuccess;
  }
  return p.dtype == DataType::kBFloat16 ? LaunchFmaAsOnSm75<__nv_bfloat16>(p)
         : p.dtype == DataType::kFloat32 ? LaunchFmaAsOnSm75<float>(p)
                                         : cudaErrorInvalidValue;  // fp16 always has tensor cores
}

// The kernel the launcher runs for these sizes on the emulated device: 1 short, 2 tiled.
EMU_EXPORT int emu_fused_mha_selected(int dtype, int64_t seq_len, int64_t head_size, int kernel) {
  const bytetx::cuda::FusedMHAParams p =
      MhaParams(dtype, nullptr, nullptr, nullptr, 1, seq_len, 0, 1, head_size, 1.0f, nullptr, kernel,
                {nullptr, nullptr, 0, 0, nullptr, -1, nullptr, nullptr, 0, 0, 0});
  return bytetx::cuda::SelectFusedMHAKernel(p) == bytetx::cuda::FusedMHAKernel::kShort ? kShort : kTiled;
}

EMU_EXPORT int cpu_remove_padding(const float* input, const void* mask, int mask_is_int64, int64_t batch,
                                  int64_t seq_len, int64_t hidden, float* packed, int32_t* cu_seqlens,
                                  int32_t* token_offset) {
  const bytetx::cpu::MaskType mask_type = mask_is_int64 != 0 ? bytetx::cpu::MaskType::kInt64 : bytetx::cpu::MaskType::kInt32;
  return ToInt(bytetx::cpu::RunRemovePadding({batch, seq_len, hidden}, input, mask, mask_type, packed, cu_seqlens,
                                             token_offset, bytetx::ParallelFor::Serial()));
}

// Every sequence is at most T long, the bound its cu_seqlens check gets. The position features as
// MhaPositions says.
EMU_EXPORT int cpu_fused_mha(const float* qkv, const float* bias, const int32_t* cu_seqlens, int64_t batch,
                             int64_t num_tokens, int64_t num_heads, int64_t head_size, float scale, float* context,
                             const int32_t* positions, const float* table, int64_t num_buckets, int64_t max_distance,
                             const float* rotary_frequencies, int64_t sliding_window, const float* position_key,
                             const float* position_query, int64_t position_span, int64_t position_buckets,
                             int64_t max_relative_positions) {
  const bytetx::contract::FusedMHA::Dims dims{num_tokens, num_heads * head_size, head_size, batch, num_tokens,
                                              num_buckets, position_span};
  const bool biased = num_buckets > 0;
  bytetx::contract::FusedMHA::Attributes attributes{
      num_heads, scale, biased ? std::optional<int64_t>(max_distance) : std::nullopt};
  if (rotary_frequencies != nullptr) {
    attributes.rotary_frequencies.assign(rotary_frequencies, rotary_frequencies + head_size / 2);
  }
  if (sliding_window >= 0) {
    attributes.sliding_window = sliding_window;
  }
  const bool disentangled = position_span > 0;
  if (disentangled) {
    attributes.position_buckets = position_buckets;
    attributes.max_relative_positions = max_relative_positions;
  }
  const bool positioned = biased || rotary_frequencies != nullptr || sliding_window >= 0 || disentangled;
  return ToInt(bytetx::cpu::RunFusedMHA(dims, attributes, qkv, bias, cu_seqlens, positioned ? positions : nullptr,
                                        biased ? table : nullptr, disentangled ? position_key : nullptr,
                                        disentangled ? position_query : nullptr, context,
                                        bytetx::ParallelFor::Serial()));
}

EMU_EXPORT int cpu_rebuild_padding(const float* packed, const int32_t* token_offset, int64_t num_tokens, int64_t batch,
                                   int64_t seq_len, int64_t hidden, float* output) {
  return ToInt(bytetx::cpu::RunRebuildPadding({num_tokens, hidden, batch, seq_len}, packed, token_offset, output,
                                              bytetx::ParallelFor::Serial()));
}
