#include "cpu/fused_mha.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace bytetx::cpu {
namespace {

#define BYTETX_ALWAYS_INLINE inline __attribute__((always_inline))
// Vectors cross only always-inline helpers of this file, never an ABI boundary, so GCC's note that
// their calling convention differs between ISAs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// Floats per 64-byte cache line.
constexpr int64_t kLineFloats = 16;
// Query rows whose scores are held at once: a block's scores stay in L2 for the P * V product.
constexpr int64_t kBlockRows = 64;
// Fewer (sequence, head) pairs than this are split into row ranges so that small batches keep every
// thread busy; larger batches give each task a whole head, so K and V are gathered once per head.
constexpr int64_t kMinTasks = 32;

int64_t RoundUp(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Row stride for rows of `padded` floats: an odd number of cache lines, so walking down a column
// visits every L1 set instead of the few a power-of-two stride would.
int64_t RowStride(int64_t padded) {
  const int64_t lines = (padded + kLineFloats - 1) / kLineFloats;
  return (lines % 2 == 0 ? lines + 1 : lines) * kLineFloats;
}

// The relative position bias of each head by key - query distance k in [-reach, reach]: entry
// [h * (2 * reach + 1) + k + reach]. Distances beyond reach share the entries at +-reach: reach is the
// max distance (whose buckets are the last ones), or the largest distance the positions have if
// smaller.
struct OffsetBias {
  std::vector<float> table;
  int64_t reach = 0;

  const float* Head(int64_t head) const { return table.data() + head * (2 * reach + 1); }
};

// Tables longer than this per head (only positions spread wider than this with a max distance beyond
// it) are not built; such calls compute each pair's bucket instead.
constexpr int64_t kMaxOffsetReach = int64_t{1} << 16;

OffsetBias BuildOffsetBias(const FusedMHAParams& p) {
  OffsetBias offsets;
  if (p.dims.num_buckets == 0) {
    return offsets;
  }
  int64_t low = p.positions[0];
  int64_t high = low;
  for (int64_t t = 1; t < p.dims.num_tokens; ++t) {
    low = std::min<int64_t>(low, p.positions[t]);
    high = std::max<int64_t>(high, p.positions[t]);
  }
  offsets.reach = std::min<int64_t>(p.buckets.max_distance, high - low);
  if (offsets.reach > kMaxOffsetReach) {
    offsets.reach = -1;
    return offsets;
  }
  const int64_t width = 2 * offsets.reach + 1;
  offsets.table.resize(static_cast<size_t>(p.num_heads * width));
  for (int64_t k = -offsets.reach; k <= offsets.reach; ++k) {
    const float* row = p.relative_position_bias + RelativePositionBucket(-k, p.buckets) * p.num_heads;
    for (int64_t h = 0; h < p.num_heads; ++h) {
      offsets.table[static_cast<size_t>(h * width + k + offsets.reach)] = row[h];
    }
  }
  return offsets;
}

// Adds the relative position bias to the scores [len] of the query at `row` of a sequence whose
// positions are `positions` [len]; `consecutive`: positions[j] = positions[0] + j, the usual case, where
// the offsets run in order and the loops vectorize.
void AddOffsetBias(const FusedMHAParams& p, const OffsetBias& offsets, int64_t head, const int32_t* positions,
                   bool consecutive, int64_t row, int64_t len, float* scores) {
  if (offsets.reach < 0) {
    const float* table = p.relative_position_bias + head;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t n = static_cast<int64_t>(positions[row]) - positions[j];
      scores[j] += table[RelativePositionBucket(n, p.buckets) * p.num_heads];
    }
    return;
  }
  const int64_t reach = offsets.reach;
  const float* table = offsets.Head(head);
  if (consecutive) {
    const int64_t low = std::clamp<int64_t>(row - reach, 0, len);
    const int64_t high = std::clamp<int64_t>(row + reach + 1, 0, len);
    for (int64_t j = 0; j < low; ++j) {
      scores[j] += table[0];
    }
    const float* centred = table + reach - row;
    for (int64_t j = low; j < high; ++j) {
      scores[j] += centred[j];
    }
    for (int64_t j = high; j < len; ++j) {
      scores[j] += table[2 * reach];
    }
    return;
  }
  for (int64_t j = 0; j < len; ++j) {
    const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(positions[j]) - positions[row], -reach, reach);
    scores[j] += table[k + reach];
  }
}

// cos and sin of the rotary angles of each position: row r holds cos of the head_size / 2 angles, then
// their sin. Rows are by position value from `low` where the positions span no more values than there
// are tokens (slot positions: a row per slot of the padded row), else by token.
struct RotaryTable {
  std::vector<float> rows;
  int64_t half = 0;
  int64_t low = 0;
  bool by_position = false;

  const float* Row(int64_t token, int32_t position) const {
    return rows.data() + (by_position ? position - low : token) * 2 * half;
  }
};

// The angles as transformers computes them, the float32 product position * frequency.
RotaryTable BuildRotaryTable(const FusedMHAParams& p) {
  RotaryTable rotary;
  if (p.rotary_frequencies == nullptr || p.dims.num_tokens == 0) {
    return rotary;
  }
  const int64_t d = p.dims.head_size;
  rotary.half = d / 2;
  const float* frequencies = p.rotary_frequencies;
  const auto [low, high] = std::minmax_element(p.positions, p.positions + p.dims.num_tokens);
  rotary.low = *low;
  rotary.by_position = static_cast<int64_t>(*high) - *low < p.dims.num_tokens;
  const int64_t count = rotary.by_position ? static_cast<int64_t>(*high) - *low + 1 : p.dims.num_tokens;
  rotary.rows.resize(static_cast<size_t>(count * d));
  for (int64_t r = 0; r < count; ++r) {
    const float position = static_cast<float>(rotary.by_position ? rotary.low + r : p.positions[r]);
    float* row = rotary.rows.data() + r * d;
    for (int64_t c = 0; c < rotary.half; ++c) {
      const float angle = position * frequencies[c];
      row[c] = std::cos(angle);
      row[rotary.half + c] = std::sin(angle);
    }
  }
  return rotary;
}

// The clamped disentangled bucket r of each position difference within a sequence, computed once
// per call: index[n + reach] for n in [-reach, reach]. Empty without the disentangled terms, or where
// a sequence's positions spread wider than kMaxOffsetReach (each pair's bucket is computed instead).
struct DisentangledIndex {
  std::vector<int32_t> index;
  int64_t reach = 0;
  float log_ratio = 0.0f;  // logf(position_log_base), as DisentangledBucket takes it

  int64_t Of(const FusedMHAParams& p, int64_t n) const {
    if (!index.empty()) {
      return index[n + reach];
    }
    const int64_t span = p.dims.position_span;
    return std::clamp<int64_t>(DisentangledBucket(n, p.position_buckets, log_ratio) + span, 0, 2 * span - 1);
  }
};

DisentangledIndex BuildDisentangledIndex(const FusedMHAParams& p) {
  DisentangledIndex table;
  if (p.dims.position_span == 0) {
    return table;
  }
  table.log_ratio = p.position_buckets > 0 ? logf(p.position_log_base) : 0.0f;
  int64_t reach = 0;
  for (int64_t b = 0; b < p.dims.batch; ++b) {
    const int32_t* begin = p.positions + p.cu_seqlens[b];
    const int32_t* end = p.positions + p.cu_seqlens[b + 1];
    if (begin != end) {
      const auto [low, high] = std::minmax_element(begin, end);
      reach = std::max<int64_t>(reach, static_cast<int64_t>(*high) - *low);
    }
  }
  if (reach > kMaxOffsetReach) {
    return table;
  }
  table.reach = reach;
  table.index.resize(static_cast<size_t>(2 * reach + 1));
  const int64_t span = p.dims.position_span;
  for (int64_t n = -reach; n <= reach; ++n) {
    table.index[n + reach] = static_cast<int32_t>(
        std::clamp<int64_t>(DisentangledBucket(n, p.position_buckets, table.log_ratio) + span, 0, 2 * span - 1));
  }
  return table;
}

// What every task of a call reads, built once per call.
struct CallTables {
  OffsetBias offsets;
  RotaryTable rotary;
  DisentangledIndex disentangled;
};

// dst[c * stride] for the d columns of one head's q or k row `src` plus `bias`, rotated by `angles`
// (a RotaryTable row) or not (nullptr), times `factor`: x[c] cos - x[c + d/2] sin, x[c + d/2] cos + x[c] sin.
void LoadHeadRow(const float* src, const float* bias, const float* angles, int64_t d, float factor, float* dst,
                 int64_t stride) {
  if (angles == nullptr) {
    for (int64_t c = 0; c < d; ++c) {
      dst[c * stride] = (src[c] + bias[c]) * factor;
    }
    return;
  }
  const int64_t half = d / 2;
  const float* sin = angles + half;
  for (int64_t c = 0; c < half; ++c) {
    const float x1 = src[c] + bias[c];
    const float x2 = src[half + c] + bias[half + c];
    dst[c * stride] = (x1 * angles[c] - x2 * sin[c]) * factor;
    dst[(half + c) * stride] = (x2 * angles[c] + x1 * sin[c]) * factor;
  }
}

// Masks the scores of the query at `row` against keys [key_begin, key_end) (scores[0] is key
// key_begin's) to the keys within the sliding window of its position.
void ApplySlidingWindow(int64_t window, const int32_t* positions, bool consecutive, int64_t row, int64_t key_begin,
                        int64_t key_end, float* scores) {
  constexpr float kMasked = -std::numeric_limits<float>::infinity();
  if (consecutive) {
    const int64_t low = std::clamp<int64_t>(row - window, key_begin, key_end);
    const int64_t high = std::clamp<int64_t>(row + window + 1, key_begin, key_end);
    std::fill(scores, scores + (low - key_begin), kMasked);
    std::fill(scores + (high - key_begin), scores + (key_end - key_begin), kMasked);
    return;
  }
  for (int64_t j = key_begin; j < key_end; ++j) {
    const int64_t distance = static_cast<int64_t>(positions[row]) - positions[j];
    if (distance > window || distance < -window) {
      scores[j - key_begin] = kMasked;
    }
  }
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
  // Disentangled terms over the buckets r_low .. r_low + width - 1 a sequence uses:
  std::vector<float> key_t;    // [d, width], row stride width_stride: position_key transposed
  std::vector<float> c2p;      // [rows, width], row stride width_stride: q . position_key[r]
  std::vector<float> p2c;      // [width, padded_len], row stride len_stride: position_query[r] . k

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

// The vector code, for registers of Lanes floats (16: AVX-512, 8: AVX2, 4: SSE2 and NEON) and
// register tiles of TileRows x 2 vectors. Each ISA gets vectors its registers hold: GCC lowers a vector
// wider than the registers element by element through the stack, many times slower.
template <int Lanes>
struct VectorTypes;

// GCC drops vector_size from a typedef that depends on a template parameter, so each width is
// spelled out.
#define BYTETX_VECTOR_TYPES(lanes)                                                  \
  template <>                                                                       \
  struct VectorTypes<lanes> {                                                       \
    typedef float Float __attribute__((vector_size(lanes * sizeof(float))));       \
    typedef int32_t Int __attribute__((vector_size(lanes * sizeof(int32_t))));     \
    typedef uint32_t Uint __attribute__((vector_size(lanes * sizeof(uint32_t))));  \
  };
BYTETX_VECTOR_TYPES(16)
BYTETX_VECTOR_TYPES(8)
BYTETX_VECTOR_TYPES(4)
#undef BYTETX_VECTOR_TYPES

template <int Lanes, int TileRows>
struct VectorKernels {
  using Vec = typename VectorTypes<Lanes>::Float;
  using IntVec = typename VectorTypes<Lanes>::Int;
  using UintVec = typename VectorTypes<Lanes>::Uint;
  static constexpr int64_t kLanes = Lanes;
  static constexpr int kTileVectors = 2;

  static BYTETX_ALWAYS_INLINE Vec Load(const float* src) {
    Vec v;
    std::memcpy(&v, src, sizeof(v));
    return v;
  }

  static BYTETX_ALWAYS_INLINE void Store(float* dst, const Vec& v) { std::memcpy(dst, &v, sizeof(v)); }

  static BYTETX_ALWAYS_INLINE Vec Splat(float x) { return Vec{} + x; }

  // exp(x) = 2^n * exp(r) with n = round(x / ln 2) and |r| <= ln(2) / 2, where the degree-7 Taylor
  // polynomial of exp(r) is accurate to ~1e-8 relative. Inputs below -87 give 0: softmax weights
  // that small (relative to the row maximum) are below float's normal range anyway.
  static BYTETX_ALWAYS_INLINE Vec Exp(const Vec& in) {
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

  // c[i, j .. j + Lanes * V) = sum_k a[i, k] * b[k, j .. j + Lanes * V) for the R rows i of one tile.
  // Every element goes through the same operations in the same order whatever R and V are, so tiling
  // never changes results.
  template <int R, int V>
  static BYTETX_ALWAYS_INLINE void GemmTile(const float* a, int64_t lda, const float* b, int64_t ldb,
                                            int64_t depth, float* c, int64_t ldc) {
    Vec acc[R][V] = {};
    for (int64_t k = 0; k < depth; ++k) {
      Vec bk[V];
      for (int v = 0; v < V; ++v) {
        bk[v] = Load(b + k * ldb + v * kLanes);
      }
      for (int r = 0; r < R; ++r) {
        const float ar = a[r * lda + k];
        for (int v = 0; v < V; ++v) {
          acc[r][v] += ar * bk[v];
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int v = 0; v < V; ++v) {
        Store(c + r * ldc + v * kLanes, acc[r][v]);
      }
    }
  }

  // The last rows (fewer than TileRows) of a strip: one tile of exactly that many rows.
  template <int R, int V>
  static BYTETX_ALWAYS_INLINE void GemmRest(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                            const float* b, int64_t ldb, float* c, int64_t ldc) {
    if constexpr (R > 0) {
      if (rows == R) {
        GemmTile<R, V>(a, lda, b, ldb, depth, c, ldc);
      } else {
        GemmRest<R - 1, V>(rows, depth, a, lda, b, ldb, c, ldc);
      }
    }
  }

  // All rows of one strip of V vectors of columns: full tiles of TileRows, then the remaining rows.
  template <int V>
  static BYTETX_ALWAYS_INLINE void GemmStrip(int64_t rows, int64_t depth, const float* a, int64_t lda,
                                             const float* b, int64_t ldb, float* c, int64_t ldc) {
    int64_t i = 0;
    for (; i + TileRows <= rows; i += TileRows) {
      GemmTile<TileRows, V>(a + i * lda, lda, b, ldb, depth, c + i * ldc, ldc);
    }
    GemmRest<TileRows - 1, V>(rows - i, depth, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  }

  // c[rows, cols] = a[rows, depth] * b[depth, cols], row-major with leading dimensions; cols is a
  // multiple of kLanes. Column strips outermost so each strip of b stays in L1 across all rows.
  static BYTETX_ALWAYS_INLINE void Gemm(int64_t rows, int64_t cols, int64_t depth, const float* a, int64_t lda,
                                        const float* b, int64_t ldb, float* c, int64_t ldc) {
    constexpr int64_t kStrip = kTileVectors * kLanes;
    int64_t j = 0;
    for (; j + kStrip <= cols; j += kStrip) {
      GemmStrip<kTileVectors>(rows, depth, a, lda, b + j, ldb, c + j, ldc);
    }
    for (; j < cols; j += kLanes) {
      GemmStrip<1>(rows, depth, a, lda, b + j, ldb, c + j, ldc);
    }
  }

  // Replaces scores[0, len) by exp(score - max) and scores[len, padded_len) by 0; returns their sum.
  // padded_len is a multiple of kLanes and len >= 1.
  static BYTETX_ALWAYS_INLINE float SoftmaxNumerator(float* scores, int64_t len, int64_t padded_len) {
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

  static BYTETX_ALWAYS_INLINE void RunTask(const FusedMHAParams& p, const CallTables& tables, const Task& task) {
    const OffsetBias& offsets = tables.offsets;
    const RotaryTable& rotary = tables.rotary;
    const int64_t d = p.dims.head_size;
    const int64_t hidden = p.num_heads * d;
    const int64_t first = p.cu_seqlens[task.sequence];
    const int64_t len = p.cu_seqlens[task.sequence + 1] - first;
    const int64_t block_rows = std::min(kBlockRows, task.row_end - task.row_begin);
    const int64_t padded_len = RoundUp(len, kLanes);
    const int64_t padded_d = RoundUp(d, kLanes);
    const int64_t len_stride = RowStride(padded_len);
    const int64_t d_stride = RowStride(padded_d);
    const float* bias_q = p.qkv_bias + task.head * d;
    const float* bias_k = bias_q + hidden;
    const float* bias_v = bias_k + hidden;
    const float* seq_q = p.qkv + first * 3 * hidden + task.head * d;

    Scratch& s = ThreadScratch();
    float* q = Scratch::Grow(s.q, block_rows * d);
    float* k_t = Scratch::Grow(s.k_t, d * len_stride);
    float* v = Scratch::Grow(s.v, len * d_stride);
    float* scores = Scratch::Grow(s.scores, block_rows * len_stride);
    float* out = Scratch::Grow(s.out, block_rows * d_stride);
    float* sums = Scratch::Grow(s.sums, block_rows);

    const bool rotated = !rotary.rows.empty();
    const int32_t* positions = p.positions != nullptr ? p.positions + first : nullptr;
    for (int64_t j = 0; j < len; ++j) {
      const float* src_k = seq_q + j * 3 * hidden + hidden;
      const float* src_v = src_k + hidden;
      LoadHeadRow(src_k, bias_k, rotated ? rotary.Row(first + j, positions[j]) : nullptr, d, 1.0f, k_t + j,
                  len_stride);
      for (int64_t c = 0; c < d; ++c) {
        v[j * d_stride + c] = src_v[c] + bias_v[c];
      }
      std::fill(v + j * d_stride + d, v + j * d_stride + padded_d, 0.0f);
    }
    for (int64_t c = 0; c < d; ++c) {
      std::fill(k_t + c * len_stride + len, k_t + c * len_stride + padded_len, 0.0f);
    }
    const bool biased = p.dims.num_buckets > 0;
    const bool windowed = p.sliding_window >= 0;
    bool consecutive = true;
    for (int64_t j = 1; (biased || windowed) && j < len; ++j) {
      consecutive = consecutive && positions[j] == static_cast<int64_t>(positions[0]) + j;
    }

    // DeBERTa's disentangled terms, over the buckets r_low .. r_low + width - 1 that the sequence's
    // position differences reach.
    const bool disentangled = p.dims.position_span > 0;
    int64_t r_low = 0;
    int64_t padded_width = 0;
    int64_t width_stride = 0;
    float* key_t = nullptr;
    float* c2p = nullptr;
    float* p2c = nullptr;
    if (disentangled) {
      const auto [low, high] = std::minmax_element(positions, positions + len);
      const int64_t spread = static_cast<int64_t>(*high) - *low;
      r_low = tables.disentangled.Of(p, -spread);
      const int64_t width = tables.disentangled.Of(p, spread) - r_low + 1;
      padded_width = RoundUp(width, kLanes);
      width_stride = RowStride(padded_width);
      if (p.position_key != nullptr) {
        key_t = Scratch::Grow(s.key_t, d * width_stride);
        const float* key_rows = p.position_key + r_low * hidden + task.head * d;
        for (int64_t c = 0; c < d; ++c) {
          for (int64_t r = 0; r < width; ++r) {
            key_t[c * width_stride + r] = key_rows[r * hidden + c];
          }
          std::fill(key_t + c * width_stride + width, key_t + c * width_stride + padded_width, 0.0f);
        }
        c2p = Scratch::Grow(s.c2p, block_rows * width_stride);
      }
      if (p.position_query != nullptr) {
        // p2c[r, j] = position_query[r_low + r] . k_j: the buckets' rows of this head times K transposed.
        p2c = Scratch::Grow(s.p2c, width * len_stride);
        Gemm(width, padded_len, d, p.position_query + r_low * hidden + task.head * d, hidden, k_t, len_stride, p2c,
             len_stride);
      }
    }

    // With consecutive positions (and no bias), a block of rows needs only the keys within the window
    // of its rows. The others' probabilities are exactly 0 and the kept keys start at a multiple of
    // kLanes, so every sum adds the same terms in the same lanes: the result is bitwise the same.
    const bool key_ranged = windowed && consecutive && !biased && !disentangled;
    for (int64_t row_begin = task.row_begin; row_begin < task.row_end; row_begin += block_rows) {
      const int64_t rows = std::min(block_rows, task.row_end - row_begin);
      int64_t key_begin = 0;
      int64_t key_end = len;
      if (key_ranged) {
        key_begin = std::max<int64_t>(0, row_begin - p.sliding_window) / kLanes * kLanes;
        key_end = std::min<int64_t>(len, row_begin + rows + p.sliding_window);
      }
      const int64_t keys = key_end - key_begin;
      const int64_t padded_keys = RoundUp(keys, kLanes);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t row = row_begin + i;
        LoadHeadRow(seq_q + row * 3 * hidden, bias_q, rotated ? rotary.Row(first + row, positions[row]) : nullptr, d,
                    p.scale, q + i * d, 1);
      }
      Gemm(rows, padded_keys, d, q, d, k_t + key_begin, len_stride, scores, len_stride);
      for (int64_t i = 0; biased && i < rows; ++i) {
        AddOffsetBias(p, offsets, task.head, positions, consecutive, row_begin + i, len, scores + i * len_stride);
      }
      if (c2p != nullptr) {
        Gemm(rows, padded_width, d, q, d, key_t, width_stride, c2p, width_stride);  // q is scaled
      }
      for (int64_t i = 0; disentangled && i < rows; ++i) {
        const int64_t row = row_begin + i;
        float* row_scores = scores + i * len_stride;
        for (int64_t j = 0; j < len; ++j) {
          const int64_t r = tables.disentangled.Of(p, static_cast<int64_t>(positions[row]) - positions[j]) - r_low;
          // q is scaled already; the position-to-content term is scaled here, as the scores are.
          row_scores[j] += (c2p != nullptr ? c2p[i * width_stride + r] : 0.0f) +
                           (p2c != nullptr ? p.scale * p2c[r * len_stride + j] : 0.0f);
        }
      }
      for (int64_t i = 0; windowed && i < rows; ++i) {
        ApplySlidingWindow(p.sliding_window, positions, consecutive, row_begin + i, key_begin, key_end,
                           scores + i * len_stride);
      }
      for (int64_t i = 0; i < rows; ++i) {
        sums[i] = SoftmaxNumerator(scores + i * len_stride, keys, padded_keys);
      }
      Gemm(rows, padded_d, keys, scores, len_stride, v + key_begin * d_stride, d_stride, out, d_stride);
      for (int64_t i = 0; i < rows; ++i) {
        float* dst = p.context + (first + row_begin + i) * hidden + task.head * d;
        for (int64_t c = 0; c < d; ++c) {
          dst[c] = out[i * d_stride + c] / sums[i];
        }
      }
    }
  }
};

using RunTaskFn = void (*)(const FusedMHAParams& p, const CallTables& tables, const Task& task);

// One entry point per ISA, each compiled for it; always-inline code takes the ISA of its caller.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BYTETX_X86_ISAS 1
__attribute__((target("arch=x86-64-v4"))) void RunTaskAvx512(const FusedMHAParams& p, const CallTables& tables,
                                                              const Task& task) {
  VectorKernels<16, 8>::RunTask(p, tables, task);  // 8 x 2 zmm accumulators of 32 registers
}

__attribute__((target("arch=x86-64-v3"))) void RunTaskAvx2(const FusedMHAParams& p, const CallTables& tables,
                                                            const Task& task) {
  VectorKernels<8, 6>::RunTask(p, tables, task);  // 6 x 2 ymm accumulators of 16 registers
}
#endif

void RunTaskBaseline(const FusedMHAParams& p, const CallTables& tables, const Task& task) {
  VectorKernels<4, 6>::RunTask(p, tables, task);
}

// The ISA the CPU has, or the one BYTETX_CPU_ISA names (to compare paths, or avoid one).
struct IsaChoice {
  RunTaskFn run_task = nullptr;
  std::string error;
};

IsaChoice ChooseIsa() {
  struct Build {
    const char* name;
    bool supported;
    RunTaskFn run_task;
  };
#ifdef BYTETX_X86_ISAS
  __builtin_cpu_init();
#endif
  const Build builds[] = {  // best first
#ifdef BYTETX_X86_ISAS
      {"x86-64-v4", __builtin_cpu_supports("x86-64-v4") != 0, &RunTaskAvx512},
      {"x86-64-v3", __builtin_cpu_supports("x86-64-v3") != 0, &RunTaskAvx2},
#endif
      {"baseline", true, &RunTaskBaseline},
  };
  const char* requested = std::getenv("BYTETX_CPU_ISA");
  const std::string name = requested != nullptr ? requested : "";
  std::string names;
  for (const Build& build : builds) {
    if (name.empty() ? build.supported : name == build.name) {
      if (!build.supported) {
        return {nullptr, StrCat("BYTETX_CPU_ISA=", name, " but this CPU does not support ", name)};
      }
      return {build.run_task, ""};
    }
    names += names.empty() ? build.name : StrCat(", ", build.name);
  }
  return {nullptr, StrCat("BYTETX_CPU_ISA=", name, " is not one of ", names)};
}

}  // namespace

Status RunFusedMHA(const FusedMHAParams& p, const ParallelFor& parallel_for) {
  static const IsaChoice isa = ChooseIsa();
  if (isa.run_task == nullptr) {
    return Status::Invalid(isa.error);
  }
  if (p.dims.num_tokens == 0 || p.dims.head_size == 0) {
    return Status::Ok();
  }
  int64_t pairs = 0;
  for (int64_t b = 0; b < p.dims.batch; ++b) {
    pairs += p.cu_seqlens[b + 1] > p.cu_seqlens[b] ? p.num_heads : 0;
  }
  // Row ranges change how rows are grouped, never the operations on a row (see GemmTile), so a
  // sequence gives the same result in any batch.
  const int64_t splits = pairs == 0 ? 1 : (kMinTasks + pairs - 1) / pairs;
  std::vector<Task> tasks;
  for (int64_t b = 0; b < p.dims.batch; ++b) {
    const int64_t len = p.cu_seqlens[b + 1] - p.cu_seqlens[b];
    if (len == 0) {
      continue;
    }
    const int64_t num_chunks = std::min(splits, (len + kBlockRows - 1) / kBlockRows);
    const int64_t chunk_rows = (len + num_chunks - 1) / num_chunks;
    for (int64_t h = 0; h < p.num_heads; ++h) {
      for (int64_t row = 0; row < len; row += chunk_rows) {
        tasks.push_back({b, h, row, std::min(len, row + chunk_rows)});
      }
    }
  }
  const CallTables tables{BuildOffsetBias(p), BuildRotaryTable(p), BuildDisentangledIndex(p)};
  return parallel_for(tasks.size(), [&](size_t index) { isa.run_task(p, tables, tasks[index]); });
}

}  // namespace bytetx::cpu
