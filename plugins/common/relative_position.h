// FusedMHA's relative position buckets (docs/ops.md#fusedmha), shared by the CPU and CUDA kernels so
// that both pick the same bucket for every distance. Plain C++ that nvcc also compiles for the device.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define BYTETX_HOST_DEVICE __host__ __device__
#else
#define BYTETX_HOST_DEVICE
#endif

namespace bytetx {

// The bucketing of relative positions: bucket count, max distance, and log(max_distance / exact
// distances) rounded to float, as transformers divides by it (computed once, on the host).
struct RelativePositionBuckets {
  int32_t num_buckets = 0;
  int32_t max_distance = 0;
  float log_ratio = 0.0f;
};

// Needs num_buckets even >= 4 and max_distance > num_buckets / 4, as the contract checks.
inline RelativePositionBuckets MakeRelativePositionBuckets(int64_t num_buckets, int64_t max_distance) {
  const double max_exact = static_cast<double>(num_buckets / 4);
  return {static_cast<int32_t>(num_buckets), static_cast<int32_t>(max_distance),
          static_cast<float>(std::log(static_cast<double>(max_distance) / max_exact))};
}

// The bidirectional T5 bucket of MPNet (transformers' MPNetEncoder.relative_position_bucket) for
// n = position of the query - position of the key: half of the buckets per direction (the second
// half for keys after the query), the first half of each exact distances, the rest logarithmic up to
// max_distance, beyond which distances share the direction's last bucket. Computed in float32 with
// the same operations as transformers (n / max_exact, log, divided by log_ratio, times the
// logarithmic bucket count, truncated), so the buckets agree at their boundaries (powers of two,
// exact in float).
BYTETX_HOST_DEVICE inline int32_t RelativePositionBucket(int64_t n, const RelativePositionBuckets& buckets) {
  const int32_t half = buckets.num_buckets / 2;
  const int32_t direction = n < 0 ? half : 0;
  const int64_t distance = n < 0 ? -n : n;
  const int32_t max_exact = half / 2;
  if (distance < max_exact) {
    return direction + static_cast<int32_t>(distance);
  }
  if (distance >= buckets.max_distance) {
    return direction + half - 1;
  }
  const float scaled = logf(static_cast<float>(distance) / static_cast<float>(max_exact)) / buckets.log_ratio *
                       static_cast<float>(half - max_exact);
  const int32_t bucket = max_exact + static_cast<int32_t>(scaled);
  return direction + (bucket < half - 1 ? bucket : half - 1);
}

// DeBERTa's log bucket of n = position of the query - position of the key (transformers'
// make_log_bucket_position): distances below buckets / 2 as they are, longer ones at
// buckets / 2 + ceil(log(|n| / mid) / log((max_positions - 1) / mid) * (mid - 1)) with their sign,
// mid = buckets / 2, in float32 as transformers computes it; n itself where buckets is 0.
// log_ratio is logf(DisentangledLogBase(buckets, max_positions)), taken with the same logf as the
// distances' (each back end its own), so that |n| = max_positions - 1 gets exactly mid - 1 log buckets
// (transformers' log(x) / log(x)) on every device.
BYTETX_HOST_DEVICE inline int64_t DisentangledBucket(int64_t n, int64_t buckets, float log_ratio) {
  const int64_t mid = buckets / 2;
  const int64_t distance = n < 0 ? -n : n;
  if (buckets == 0 || distance <= mid) {
    return n;
  }
  const float scaled = ceilf(logf(static_cast<float>(distance) / static_cast<float>(mid)) / log_ratio *
                             static_cast<float>(mid - 1)) + static_cast<float>(mid);
  return n < 0 ? -static_cast<int64_t>(scaled) : static_cast<int64_t>(scaled);
}

// (max_positions - 1) / mid in float, as DisentangledBucket divides distance max_positions - 1.
inline float DisentangledLogBase(int64_t buckets, int64_t max_positions) {
  return buckets == 0 ? 0.0f : static_cast<float>(max_positions - 1) / static_cast<float>(buckets / 2);
}

}  // namespace bytetx
