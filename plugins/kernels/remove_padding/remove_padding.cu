#include "kernels/remove_padding/remove_padding.h"

#include <algorithm>
#include <cstdint>

#include "common/packed_layout.h"
#include "kernels/common/launch.cuh"
#include "kernels/remove_padding/remove_padding_kernels.cuh"

namespace bytetx::cuda {
namespace {

using remove_padding::kRowThreads;
using remove_padding::kScanThreads;



template <typename Mask>
cudaError_t LaunchLayout(const RemovePaddingParams& p, Mask mask, cudaStream_t stream) {
  const auto batch = static_cast<int32_t>(p.dims.batch);
  const auto seq_len = static_cast<int32_t>(p.dims.seq_len);
  // Runs for S = 0 too: it then writes zero lengths for the scan.
  cudaError_t status = LaunchKernel(remove_padding::RowLengthsKernel<Mask>, dim3(batch), dim3(kRowThreads), 0,
                                    stream, mask, seq_len, p.cu_seqlens);
  if (status != cudaSuccess) {
    return status;
  }
  status = LaunchKernel(remove_padding::ScanLengthsKernel, dim3(1), dim3(kScanThreads), 0, stream,
                                    batch, p.cu_seqlens);
  if (status != cudaSuccess || seq_len == 0) {
    return status;
  }
  return LaunchKernel(remove_padding::TokenOffsetKernel<Mask>, dim3(batch), dim3(kRowThreads), 0, stream, mask,
                      batch, seq_len, p.cu_seqlens, p.token_offset);
}

template <typename U>
cudaError_t LaunchGather(const RemovePaddingParams& p, cudaStream_t stream) {
  const int64_t units = p.dims.hidden * static_cast<int64_t>(ElementSize(p.dtype)) / static_cast<int64_t>(sizeof(U));
  const int64_t blocks = (p.packed_rows + kRowsPerMoverBlock - 1) / kRowsPerMoverBlock;
  return LaunchKernel(remove_padding::GatherRowsKernel<U>, dim3(static_cast<unsigned>(blocks)),
                      dim3(kRowMoverThreads), 0, stream, static_cast<const U*>(p.input), p.token_offset,
                      p.cu_seqlens + p.dims.batch, p.packed_rows, units, static_cast<U*>(p.packed));
}

}  // namespace

const char* CheckRemovePaddingParams(const RemovePaddingParams& p) {
  if (p.dims.batch < 0 || p.dims.seq_len < 0 || p.dims.hidden < 0 || p.packed_rows < 0) {
    return "a size is negative";
  }
  if (p.dims.seq_len > 0 && p.dims.batch > packed::kMaxSlots / p.dims.seq_len) {
    return "batch * seq_len exceeds the int32 range of token_offset";
  }
  if (p.packed_rows > p.dims.batch * p.dims.seq_len) {
    return "packed_rows exceeds batch * seq_len";
  }
  if (p.cu_seqlens == nullptr) {
    return "cu_seqlens is null";
  }
  const bool any_slot = p.dims.batch * p.dims.seq_len > 0;
  if (any_slot && (p.attention_mask == nullptr || p.token_offset == nullptr)) {
    return "attention_mask or token_offset is null";
  }
  if (p.packed_rows > 0 && p.dims.hidden > 0 && (p.input == nullptr || p.packed == nullptr)) {
    return "input or packed is null";
  }
  return nullptr;
}

cudaError_t LaunchRemovePadding(const RemovePaddingParams& p, cudaStream_t stream) {
  if (CheckRemovePaddingParams(p) != nullptr) {
    return cudaErrorInvalidValue;
  }
  cudaError_t status = cudaSuccess;
  switch (p.mask_type) {
    case MaskType::kInt32:
      status = LaunchLayout(p, remove_padding::Int32Mask{static_cast<const int32_t*>(p.attention_mask)}, stream);
      break;
    case MaskType::kInt64:
      status = LaunchLayout(p, remove_padding::Int64Mask{static_cast<const int64_t*>(p.attention_mask)}, stream);
      break;
    case MaskType::kBits:
      status = LaunchLayout(p, remove_padding::BitsMask{static_cast<const uint32_t*>(p.attention_mask)}, stream);
      break;
  }
  if (status != cudaSuccess || p.dims.hidden == 0) {
    return status;
  }
  const size_t row_bytes = static_cast<size_t>(p.dims.hidden) * ElementSize(p.dtype);
  return DispatchCopyUnit(row_bytes, p.input, p.packed,
                          [&](auto unit) { return LaunchGather<decltype(unit)>(p, stream); });
}

cudaError_t UploadMaskBits(const uint32_t* host_words, int64_t num_slots, uint32_t* device_words,
                           cudaStream_t stream) {
  if (num_slots < 0 || (num_slots > 0 && (host_words == nullptr || device_words == nullptr))) {
    return cudaErrorInvalidValue;
  }
  const int64_t num_words = (num_slots + 31) / 32;
  for (int64_t first = 0; first < num_words; first += kMaskWordsPerLaunch) {
    const auto count = static_cast<int32_t>(std::min(kMaskWordsPerLaunch, num_words - first));
    remove_padding::MaskWordsChunk chunk{};
    std::copy(host_words + first, host_words + first + count, chunk.words);
    const cudaError_t status = LaunchKernel(remove_padding::StoreMaskWordsKernel, dim3(1), dim3(kRowThreads), 0,
                                            stream, chunk, count, device_words + first);
    if (status != cudaSuccess) {
      return status;
    }
  }
  return cudaSuccess;
}

}  // namespace bytetx::cuda
