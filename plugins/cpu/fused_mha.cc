#include "cpu/fused_mha.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace bytetx::cpu {
namespace {

// The hot loops use GCC vector types of 16 floats: each target clone lowers them to what the CPU
// has (one zmm, two ymm or four xmm registers), picked at load time rather than by -march.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BYTETX_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BYTETX_TARGET_CLONES
#endif
#define BYTETX_ALWAYS_INLINE inline __attribute__((always_inline))
// Vectors cross only always-inline helpers of this file, never an ABI boundary, so GCC's note that
// their calling convention differs between ISAs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

constexpr int64_t kLanes = 16;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IntVec __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef uint32_t UintVec __attribute__((vector_size(kLanes * sizeof(uint32_t))));

// Query rows that share every load of K or V in the matrix products.
constexpr int kTileRows = 4;
// Query rows per task: long sequences split into several tasks so that even batch 1 keeps all
// threads busy, while each task still amortizes gathering its sequence's K and V.
constexpr int64_t kMaxChunkRows = 64;

BYTETX_ALWAYS_INLINE Vec Load(const float* src) {
  Vec v;
  std::memcpy(&v, src, sizeof(v));
  return v;
}

BYTETX_ALWAYS_INLINE void Store(float* dst, const Vec& v) { std::memcpy(dst, &v, sizeof(v)); }

BYTETX_ALWAYS_INLINE Vec Splat(float x) { return Vec{} + x; }

int64_t RoundUp(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Row stride for rows of `padded` floats (a multiple of kLanes): an odd number of 64-byte lines, so
// walking down a column visits every L1 set instead of the few a power-of-two stride would.
int64_t RowStride(int64_t padded) { return padded / kLanes % 2 == 0 ? padded + kLanes : padded; }

// exp(x) = 2^n * exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2, where the degree-7 Taylor
// polynomial of exp(r) is accurate to ~1e-8 relative. Inputs below -87 give 0: softmax weights
// that small (relative to the row maximum) are below float's normal range anyway.
BYTETX_ALWAYS_INLINE Vec Exp(const Vec& in) {
  constexpr float kMin = -87.0f;
  constexpr float kMax = 88.0f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 split so that n * kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kRoundMagic = 12582912.0f;    // 1.5 * 2^23: adding it rounds to an integer
  const auto underflow = in < Splat(kMin);
  Vec x = underflow ? Splat(kMin) : in;
  x = x > Splat(kMax) ? Splat(kMax) : x;
  const Vec n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  const Vec r = (x - n * kLn2Hi) - n * kLn2Lo;
  Vec poly = Splat(1.0f / 5040);
  poly = poly * r + 1.0f / 720;
  poly = poly * r + 1.0f / 120;
  poly = poly * r + 1.0f / 24;
  poly = poly * r + 1.0f / 6;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  // n + 127 lies in [1, 254], a valid biased exponent, so this is exactly 2^n.
  const UintVec exponent = (UintVec)(__builtin_convertvector(n, IntVec) + 127) << 23;
  return underflow ? Splat(0.0f) : poly * (Vec)exponent;
}

// c[i, j..j+16) = sum_k a[i, k] * b[k, j..j+16) for the R rows i of one tile. Every row goes
// through the same operations in the same order whatever R is, so tiling never changes results.
template <int R>
BYTETX_ALWAYS_INLINE void GemmTile(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t depth,
                                   float* c, int64_t ldc) {
  Vec acc[R] = {};
  for (int64_t k = 0; k < depth; ++k) {
    const Vec bk = Load(b + k * ldb);
    for (int r = 0; r < R; ++r) {
      acc[r] += a[r * lda + k] * bk;
    }
  }
  for (int r = 0; r < R; ++r) {
    Store(c + r * ldc, acc[r]);
  }
}

// c[rows, cols] = a[rows, depth] * b[depth, cols], row-major with leading dimensions; cols is a
// multiple of kLanes. Column strips outermost so each strip of b stays in L1 across all rows.
BYTETX_TARGET_CLONES
void Gemm(int64_t rows, int64_t cols, int64_t depth, const float* a, int64_t lda, const float* b, int64_t ldb,
          float* c, int64_t ldc) {
  for (int64_t j = 0; j < cols; j += kLanes) {
    int64_t i = 0;
    for (; i + kTileRows <= rows; i += kTileRows) {
      GemmTile<kTileRows>(a + i * lda, lda, b + j, ldb, depth, c + i * ldc + j, ldc);
    }
    switch (rows - i) {
      case 3:
        GemmTile<3>(a + i * lda, lda, b + j, ldb, depth, c + i * ldc + j, ldc);
        break;
      case 2:
        GemmTile<2>(a + i * lda, lda, b + j, ldb, depth, c + i * ldc + j, ldc);
        break;
      case 1:
        GemmTile<1>(a + i * lda, lda, b + j, ldb, depth, c + i * ldc + j, ldc);
        break;
      default:
        break;
    }
  }
}

// Replaces scores[0, len) by exp(score - max) and scores[len, padded_len) by 0; returns their sum.
// padded_len is a multiple of kLanes and len >= 1.
BYTETX_TARGET_CLONES
float SoftmaxNumerator(float* scores, int64_t len, int64_t padded_len) {
  for (int64_t j = len; j < padded_len; ++j) {
    scores[j] = -std::numeric_limits<float>::infinity();
  }
  Vec max = Load(scores);
  for (int64_t j = kLanes; j < padded_len; j += kLanes) {
    const Vec s = Load(scores + j);
    max = s > max ? s : max;
  }
  float row_max = max[0];
  for (int lane = 1; lane < kLanes; ++lane) {
    row_max = max[lane] > row_max ? max[lane] : row_max;
  }
  Vec sum = {};
  for (int64_t j = 0; j < padded_len; j += kLanes) {
    const Vec e = Exp(Load(scores + j) - row_max);
    Store(scores + j, e);
    sum += e;
  }
  float row_sum = 0.0f;
  for (int lane = 0; lane < kLanes; ++lane) {
    row_sum += sum[lane];
  }
  return row_sum;
}

// One unit of parallel work: query rows [row_begin, row_end) of one head of one sequence.
struct Task {
  int64_t sequence;
  int64_t head;
  int64_t row_begin;
  int64_t row_end;
};

// Per-thread buffers, grown on demand and reused across tasks and calls.
struct Scratch {
  std::vector<float> q;        // [rows, d], bias added and scaled
  std::vector<float> k_t;      // [d, padded_len], row stride len_stride: K transposed, so that
                               // scores come out a row at a time
  std::vector<float> v;        // [len, padded_d], row stride d_stride
  std::vector<float> scores;   // [rows, padded_len], row stride len_stride
  std::vector<float> out;      // [rows, padded_d], row stride d_stride; not yet normalized
  std::vector<float> sums;     // [rows] softmax denominators

  static float* Grow(std::vector<float>& buffer, int64_t size) {
    if (buffer.size() < static_cast<size_t>(size)) {
      buffer.resize(static_cast<size_t>(size));
    }
    return buffer.data();
  }
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

void RunTask(const FusedMHAParams& p, const float* bias, const Task& task) {
  const int64_t d = p.head_size;
  const int64_t hidden = p.num_heads * d;
  const int64_t first = p.cu_seqlens[task.sequence];
  const int64_t len = p.cu_seqlens[task.sequence + 1] - first;
  const int64_t rows = task.row_end - task.row_begin;
  const int64_t padded_len = RoundUp(len, kLanes);
  const int64_t padded_d = RoundUp(d, kLanes);
  const int64_t len_stride = RowStride(padded_len);
  const int64_t d_stride = RowStride(padded_d);
  const float* bias_q = bias + task.head * d;
  const float* bias_k = bias_q + hidden;
  const float* bias_v = bias_k + hidden;
  const float* seq_q = p.qkv + first * 3 * hidden + task.head * d;

  Scratch& s = ThreadScratch();
  float* q = Scratch::Grow(s.q, rows * d);
  float* k_t = Scratch::Grow(s.k_t, d * len_stride);
  float* v = Scratch::Grow(s.v, len * d_stride);
  float* scores = Scratch::Grow(s.scores, rows * len_stride);
  float* out = Scratch::Grow(s.out, rows * d_stride);
  float* sums = Scratch::Grow(s.sums, rows);

  for (int64_t i = 0; i < rows; ++i) {
    const float* src = seq_q + (task.row_begin + i) * 3 * hidden;
    for (int64_t c = 0; c < d; ++c) {
      q[i * d + c] = (src[c] + bias_q[c]) * p.scale;
    }
  }
  for (int64_t j = 0; j < len; ++j) {
    const float* src_k = seq_q + j * 3 * hidden + hidden;
    const float* src_v = src_k + hidden;
    for (int64_t c = 0; c < d; ++c) {
      k_t[c * len_stride + j] = src_k[c] + bias_k[c];
      v[j * d_stride + c] = src_v[c] + bias_v[c];
    }
    std::fill(v + j * d_stride + d, v + j * d_stride + padded_d, 0.0f);
  }
  for (int64_t c = 0; c < d; ++c) {
    std::fill(k_t + c * len_stride + len, k_t + c * len_stride + padded_len, 0.0f);
  }

  Gemm(rows, padded_len, d, q, d, k_t, len_stride, scores, len_stride);
  for (int64_t i = 0; i < rows; ++i) {
    sums[i] = SoftmaxNumerator(scores + i * len_stride, len, padded_len);
  }
  Gemm(rows, padded_d, len, scores, len_stride, v, d_stride, out, d_stride);

  for (int64_t i = 0; i < rows; ++i) {
    float* dst = p.context + (first + task.row_begin + i) * hidden + task.head * d;
    for (int64_t c = 0; c < d; ++c) {
      dst[c] = out[i * d_stride + c] / sums[i];
    }
  }
}

}  // namespace

Status RunFusedMHA(const FusedMHAParams& p, const ParallelFor& parallel_for) {
  if (p.num_tokens == 0 || p.head_size == 0) {
    return Status::Ok();
  }
  std::vector<Task> tasks;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t len = p.cu_seqlens[b + 1] - p.cu_seqlens[b];
    if (len == 0) {
      continue;
    }
    // Even chunks, a function of len only, so a sequence is computed the same way in any batch.
    const int64_t num_chunks = (len + kMaxChunkRows - 1) / kMaxChunkRows;
    const int64_t chunk_rows = (len + num_chunks - 1) / num_chunks;
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t row = 0; row < len; row += chunk_rows) {
        tasks.push_back({b, h, row, std::min(len, row + chunk_rows)});
      }
    }
  }
  std::vector<float> zero_bias;
  const float* bias = p.qkv_bias;
  if (bias == nullptr) {
    zero_bias.assign(static_cast<size_t>(3 * p.num_heads * p.head_size), 0.0f);
    bias = zero_bias.data();
  }
  return parallel_for(tasks.size(), [&](size_t index) { RunTask(p, bias, tasks[index]); });
}

}  // namespace bytetx::cpu
