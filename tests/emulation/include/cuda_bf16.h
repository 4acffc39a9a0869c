// Host emulation of <cuda_bf16.h>: __nv_bfloat16 (the upper 16 bits of a float32), float to bfloat16
// rounding to nearest even (as __float2bfloat16 does on the GPU), bfloat16 to float exact.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace bytetx_emulation::detail {

inline uint16_t FloatToBFloat16Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return 0x7fff;  // NaN: the GPU's canonical bfloat16 NaN
  }
  // Round the 16 dropped bits to nearest even; overflow carries into infinity as it should.
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float BFloat16BitsToFloat(uint16_t bfloat16) {
  const uint32_t bits = static_cast<uint32_t>(bfloat16) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace bytetx_emulation::detail

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct __align__(2) __nv_bfloat16 {
  unsigned short __x;

  __nv_bfloat16() = default;
  __nv_bfloat16(float value) : __x(bytetx_emulation::detail::FloatToBFloat16Bits(value)) {}
  __nv_bfloat16(__nv_bfloat16_raw raw) : __x(raw.x) {}
  operator float() const { return bytetx_emulation::detail::BFloat16BitsToFloat(__x); }
  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
typedef __nv_bfloat16 nv_bfloat16;

struct __align__(4) __nv_bfloat162 {
  __nv_bfloat16 x;
  __nv_bfloat16 y;
};
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __float2bfloat16(float value) { return __nv_bfloat16(value); }
inline __nv_bfloat16 __float2bfloat16_rn(float value) { return __nv_bfloat16(value); }
inline float __bfloat162float(__nv_bfloat16 value) { return static_cast<float>(value); }
inline float __low2float(__nv_bfloat162 value) { return __bfloat162float(value.x); }
inline float __high2float(__nv_bfloat162 value) { return __bfloat162float(value.y); }
inline __nv_bfloat162 __floats2bfloat162_rn(float x, float y) {
  return __nv_bfloat162{__nv_bfloat16(x), __nv_bfloat16(y)};
}
inline float2 __bfloat1622float2(__nv_bfloat162 value) {
  return float2{__bfloat162float(value.x), __bfloat162float(value.y)};
}
inline bool __hisnan(__nv_bfloat16 value) { return (value.__x & 0x7fffu) > 0x7f80u; }
