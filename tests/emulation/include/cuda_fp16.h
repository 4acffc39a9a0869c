// Host emulation of <cuda_fp16.h>: __half with IEEE binary16 conversions, float to half rounding to
// nearest even (as __float2half does on the GPU), half to float exact.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace bytetx_emulation::detail {

inline uint16_t FloatToHalfBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    return 0x7fff;  // NaN: the GPU's canonical half NaN
  }
  if (magnitude >= 0x477ff000u) {
    return sign | 0x7c00u;  // 65520 and above round to infinity
  }
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half (2^-14): a multiple of 2^-24. Scaling by 2^24 is exact, and
    // nearbyint rounds to nearest even; 1024 becomes the smallest normal's encoding by itself.
    float magnitude_float;
    std::memcpy(&magnitude_float, &magnitude, sizeof(magnitude_float));
    return sign | static_cast<uint16_t>(std::nearbyint(magnitude_float * 16777216.0f));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even;
  // a carry out of the mantissa correctly bumps the exponent.
  const uint32_t rounded = magnitude + 0x0fffu + ((magnitude >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded >> 13) - (112u << 10));
}

inline float HalfBitsToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24, exact
    std::memcpy(&bits, &magnitude, sizeof(bits));
    bits |= sign;
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace bytetx_emulation::detail

struct __half_raw {
  unsigned short x;
};

struct __align__(2) __half {
  unsigned short __x;

  __half() = default;
  __half(float value) : __x(bytetx_emulation::detail::FloatToHalfBits(value)) {}
  __half(__half_raw raw) : __x(raw.x) {}
  operator float() const { return bytetx_emulation::detail::HalfBitsToFloat(__x); }
  operator __half_raw() const { return __half_raw{__x}; }
};
typedef __half half;

struct __align__(4) __half2 {
  __half x;
  __half y;
};
typedef __half2 half2;

inline __half __float2half(float value) { return __half(value); }
inline __half __float2half_rn(float value) { return __half(value); }
inline float __half2float(__half value) { return static_cast<float>(value); }
inline float __low2float(__half2 value) { return __half2float(value.x); }
inline float __high2float(__half2 value) { return __half2float(value.y); }
inline __half2 __floats2half2_rn(float x, float y) { return __half2{__half(x), __half(y)}; }
inline __half2 __float2half2_rn(float value) { return __half2{__half(value), __half(value)}; }
inline float2 __half22float2(__half2 value) { return float2{__half2float(value.x), __half2float(value.y)}; }
inline bool __hisnan(__half value) { return (value.__x & 0x7fffu) > 0x7c00u; }
