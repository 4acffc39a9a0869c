#include "cpu/rebuild_padding.h"

#include <algorithm>
#include <cstring>

namespace bytetx::cpu {
namespace {

// Rows per parallel task: enough bytes per task that scheduling stays negligible next to copying.
constexpr size_t kMinFloatsPerTask = size_t{1} << 15;

}  // namespace

Status RunRebuildPadding(const RebuildPaddingParams& p, const ParallelFor& parallel_for) {
  const auto num_slots = static_cast<size_t>(p.dims.batch * p.dims.seq_len);
  const auto hidden = static_cast<size_t>(p.dims.hidden);
  if (num_slots == 0 || hidden == 0) {
    return Status::Ok();
  }
  const size_t grain = std::max<size_t>(1, kMinFloatsPerTask / hidden);
  // Zero everything first rather than trusting the padding entries of token_offset (t >= T), which
  // are not validated; then every output element is defined.
  BYTETX_RETURN_IF_ERROR(parallel_for.ForRange(num_slots, grain, [&](size_t begin, size_t end) {
    std::memset(p.output + begin * hidden, 0, (end - begin) * hidden * sizeof(float));
  }));
  return parallel_for.ForRange(static_cast<size_t>(p.dims.num_tokens), grain, [&](size_t begin, size_t end) {
    for (size_t t = begin; t < end; ++t) {
      const auto slot = static_cast<size_t>(p.token_offset[t]);
      std::memcpy(p.output + slot * hidden, p.packed + t * hidden, hidden * sizeof(float));
    }
  });
}

}  // namespace bytetx::cpu
