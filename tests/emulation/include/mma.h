// Host emulation of <mma.h>: nvcuda::wmma 16x16x16 fragments of __half or __nv_bfloat16 with float
// accumulators, emulated at tile level. Every lane's fragment holds the whole 16x16 tile (x[i] is
// element (i / 16, i % 16) of the logical matrix, num_elements = 256), so any element-wise uniform
// use (the same operation on every element, as scaling) gives the GPU's result, while code that
// depends on which elements a lane holds is outside what the emulation can reproduce (README).
// Loads read the whole tile in every lane; stores are split across the lanes as the GPU's
// accumulator layout splits them, so they do not race and, as on the GPU, a lane sees the elements
// that other lanes stored only after a __syncwarp. mma_sync multiplies the 16-bit inputs exactly and
// accumulates in float, k in increasing order. Pointers must be 32-byte aligned and leading
// dimensions multiples of 16 bytes, as on the GPU; otherwise the launch fails with
// cudaErrorMisalignedAddress.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation supports 16x16x16 wmma fragments only");
  static_assert(std::is_same_v<Use, accumulator>
                    ? std::is_same_v<T, float> && std::is_void_v<Layout>
                    : (std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>) &&
                          (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) &&
                          (std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>),
                "the emulation supports __half or __nv_bfloat16 matrix_a/matrix_b fragments with a row_major "
                "or col_major layout, and float accumulators");

 public:
  using storage_element_type = T;
  using element_type = T;
  static constexpr int num_elements = 256;  // per lane: the whole tile (the GPU spreads it over the warp)
  T x[num_elements];
};

}  // namespace wmma
}  // namespace nvcuda

namespace bytetx_emulation::detail {

inline void CheckWmmaPointer(const void* pointer, unsigned ldm, size_t element_bytes, const char* function) {
  if (reinterpret_cast<uintptr_t>(pointer) % 32 != 0) {
    Fail(cudaErrorMisalignedAddress, (std::string(function) + ": pointer not 32-byte aligned").c_str());
  }
  if ((static_cast<size_t>(ldm) * element_bytes) % 16 != 0) {
    Fail(cudaErrorMisalignedAddress, (std::string(function) + ": ldm not a multiple of 16 bytes").c_str());
  }
}

// All 65536 half values as floats (runtime.cc): each product converts 512 of them.
const float* HalfToFloatTable();

inline void TileToFloat(const __half* tile, float* out) {
  const float* table = HalfToFloatTable();
  for (int i = 0; i < 256; ++i) {
    out[i] = table[tile[i].__x];
  }
}

inline void TileToFloat(const __nv_bfloat16* tile, float* out) {
  for (int i = 0; i < 256; ++i) {
    out[i] = BFloat16BitsToFloat(tile[i].__x);
  }
}

template <typename T>
void LoadTile(T* tile, const T* source, unsigned ldm, bool row_major) {
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 16; ++c) {
      tile[r * 16 + c] = row_major ? source[r * ldm + c] : source[c * ldm + r];
    }
  }
}

// d = a b + c on logical row-major 16x16 tiles. Products of two 16-bit floats are exact in float;
// the sums are rounded in float, k ascending. d may alias c.
template <typename T>
void ComputeMma(const void* a, const void* b, const float* c, float* d) {
  float a_float[256];
  float b_float[256];
  float out[256];
  TileToFloat(static_cast<const T*>(a), a_float);
  TileToFloat(static_cast<const T*>(b), b_float);
  for (int i = 0; i < 256; ++i) {
    out[i] = c[i];
  }
  for (int m = 0; m < 16; ++m) {
    for (int k = 0; k < 16; ++k) {
      const float a_mk = a_float[m * 16 + k];
      for (int n = 0; n < 16; ++n) {
        out[m * 16 + n] += a_mk * b_float[k * 16 + n];
      }
    }
  }
  for (int i = 0; i < 256; ++i) {
    d[i] = out[i];
  }
}

}  // namespace bytetx_emulation::detail

namespace nvcuda {
namespace wmma {

template <typename Use, typename T, typename Layout, typename V>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& a, const V& value) {
  const T v = static_cast<T>(value);
  for (int i = 0; i < 256; ++i) {
    a.x[i] = v;
  }
}

template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& a, const T* pointer, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "accumulator loads take a layout_t");
  bytetx_emulation::detail::CheckWmmaPointer(pointer, ldm, sizeof(T), "wmma::load_matrix_sync");
  bytetx_emulation::detail::LoadTile(a.x, pointer, ldm, std::is_same_v<Layout, row_major>);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& a, const float* pointer, unsigned ldm,
                             layout_t layout) {
  bytetx_emulation::detail::CheckWmmaPointer(pointer, ldm, sizeof(float), "wmma::load_matrix_sync");
  bytetx_emulation::detail::LoadTile(a.x, pointer, ldm, layout == mem_row_major);
}

inline void store_matrix_sync(float* pointer, const fragment<accumulator, 16, 16, 16, float>& a, unsigned ldm,
                              layout_t layout) {
  bytetx_emulation::detail::CheckWmmaPointer(pointer, ldm, sizeof(float), "wmma::store_matrix_sync");
  const auto& lane = bytetx_emulation::detail::CurrentLane();
  if (lane.warp_lanes != 32) {
    bytetx_emulation::detail::Fail(cudaErrorIllegalInstruction,
                                   "wmma::store_matrix_sync in a warp of fewer than 32 threads");
  }
  // Each lane writes the 8 elements it owns in the GPU's accumulator layout (mma.sync m16n8k16):
  // rows lane / 4 and lane / 4 + 8, columns 2 * (lane % 4) + {0, 1, 8, 9}.
  const int group = lane.lane / 4;
  const int pair = 2 * (lane.lane % 4);
  for (const int r : {group, group + 8}) {
    for (const int c : {pair, pair + 1, pair + 8, pair + 9}) {
      pointer[layout == mem_row_major ? r * ldm + c : c * ldm + r] = a.x[r * 16 + c];
    }
  }
}

template <typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LayoutB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  bytetx_emulation::detail::MmaSync(&bytetx_emulation::detail::ComputeMma<T>, a.x, b.x, sizeof(a.x), c.x, d.x);
}

}  // namespace wmma
}  // namespace nvcuda
