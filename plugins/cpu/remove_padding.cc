#include "cpu/remove_padding.h"

#include <algorithm>
#include <cstring>

#include "common/packed_layout.h"

namespace bytetx::cpu {
namespace {

// Rows per parallel task: enough bytes per task that scheduling stays negligible next to copying.
constexpr size_t kMinFloatsPerTask = size_t{1} << 15;

}  // namespace

Status RunRemovePadding(const RemovePaddingParams& p, const ParallelFor& parallel_for) {
  if (p.mask_type == MaskType::kInt64) {
    packed::BuildPackedLayout(static_cast<const int64_t*>(p.attention_mask), p.dims.batch, p.dims.seq_len,
                              p.cu_seqlens, p.token_offset);
  } else {
    packed::BuildPackedLayout(static_cast<const int32_t*>(p.attention_mask), p.dims.batch, p.dims.seq_len,
                              p.cu_seqlens, p.token_offset);
  }
  const auto num_tokens = static_cast<size_t>(p.cu_seqlens[p.dims.batch]);
  const auto hidden = static_cast<size_t>(p.dims.hidden);
  if (num_tokens == 0 || hidden == 0) {
    return Status::Ok();
  }
  const size_t grain = std::max<size_t>(1, kMinFloatsPerTask / hidden);
  return parallel_for.ForRange(num_tokens, grain, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const auto slot = static_cast<size_t>(p.token_offset[t]);
      std::memcpy(p.packed + t * hidden, p.input + slot * hidden, hidden * sizeof(float));
    }
  });
}

}  // namespace bytetx::cpu
