#include "kernels/rebuild_padding/rebuild_padding.h"

#include <cstdint>

#include "common/packed_layout.h"
#include "kernels/common/launch.cuh"
#include "kernels/rebuild_padding/rebuild_padding_kernels.cuh"

namespace bytetx::cuda {
namespace {

template <typename U>
cudaError_t LaunchScatter(const RebuildPaddingParams& p, cudaStream_t stream) {
  const int64_t units = p.dims.hidden * static_cast<int64_t>(ElementSize(p.dtype)) / static_cast<int64_t>(sizeof(U));
  const int64_t num_slots = p.dims.batch * p.dims.seq_len;
  const int64_t blocks = (num_slots + kRowsPerMoverBlock - 1) / kRowsPerMoverBlock;
  return LaunchKernel(rebuild_padding::ScatterRowsKernel<U>, dim3(static_cast<unsigned>(blocks)),
                      dim3(kRowMoverThreads), 0, stream, static_cast<const U*>(p.packed), p.token_offset,
                      p.dims.num_tokens, num_slots, units, static_cast<U*>(p.output));
}

}  // namespace

const char* CheckRebuildPaddingParams(const RebuildPaddingParams& p) {
  if (p.dims.batch < 0 || p.dims.seq_len < 0 || p.dims.hidden < 0 || p.dims.num_tokens < 0) {
    return "a size is negative";
  }
  if (p.dims.seq_len > 0 && p.dims.batch > packed::kMaxSlots / p.dims.seq_len) {
    return "batch * seq_len exceeds the int32 range of token_offset";
  }
  if (p.dims.hidden > 0 && p.dims.batch * p.dims.seq_len > INT64_MAX / static_cast<int64_t>(ElementSize(p.dtype)) / p.dims.hidden) {
    return "batch * seq_len * hidden elements exceed the addressable bytes";
  }
  if (p.dims.num_tokens > p.dims.batch * p.dims.seq_len) {
    return "num_tokens exceeds batch * seq_len";
  }
  if (p.dims.batch * p.dims.seq_len > 0 && p.dims.hidden > 0 &&
      (p.token_offset == nullptr || p.output == nullptr || (p.dims.num_tokens > 0 && p.packed == nullptr))) {
    return "packed, token_offset or output is null";
  }
  return nullptr;
}

cudaError_t LaunchRebuildPadding(const RebuildPaddingParams& p, cudaStream_t stream) {
  if (CheckRebuildPaddingParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  if (p.dims.hidden == 0) {
    return cudaSuccess;
  }
  const size_t row_bytes = static_cast<size_t>(p.dims.hidden) * ElementSize(p.dtype);
  return DispatchCopyUnit(row_bytes, p.packed, p.output,
                          [&](auto unit) { return LaunchScatter<decltype(unit)>(p, stream); });
}

}  // namespace bytetx::cuda
