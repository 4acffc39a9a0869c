// The head sizes the CUDA FusedMHA kernels are built for, listed once: the launcher's dispatch
// (DispatchHeadSize), the explicit instantiations and every shell's check (the op contract) read it.
#pragma once

#include <cstdint>
#include <type_traits>

#define BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(X) X(32) X(64) X(128)

namespace bytetx::cuda {

#define BYTETX_HEAD_SIZE_ITEM(D) D,
constexpr int64_t kFusedMHAHeadSizes[] = {BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_HEAD_SIZE_ITEM)};
#undef BYTETX_HEAD_SIZE_ITEM

constexpr int64_t MaxFusedMHAHeadSize() {
  int64_t largest = 0;
  for (const int64_t supported : kFusedMHAHeadSizes) {
    largest = supported > largest ? supported : largest;
  }
  return largest;
}

// Rotary frequencies a kernel takes by value: one per pair of columns of the largest head.
constexpr int kMaxRotaryPairs = static_cast<int>(MaxFusedMHAHeadSize() / 2);

constexpr bool IsFusedMHAHeadSize(int64_t head_size) {
  for (const int64_t supported : kFusedMHAHeadSizes) {
    if (supported == head_size) {
      return true;
    }
  }
  return false;
}

// Calls fn(std::integral_constant<int, D>{}) for the listed D equal to head_size; `otherwise` when none is.
template <typename Result, typename Fn>
Result DispatchHeadSize(int64_t head_size, Result otherwise, const Fn& fn) {
#define BYTETX_HEAD_SIZE_CASE(D) \
  case D:                        \
    return fn(std::integral_constant<int, D>{});
  switch (head_size) {
    BYTETX_FOR_EACH_FUSED_MHA_HEAD_SIZE(BYTETX_HEAD_SIZE_CASE)
    default:
      return otherwise;
  }
#undef BYTETX_HEAD_SIZE_CASE
}

}  // namespace bytetx::cuda
