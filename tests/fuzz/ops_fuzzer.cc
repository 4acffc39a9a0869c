// Fuzz harness over the com.bytetx CPU ops: the validators of plugins/common/packed_layout.h and the
// kernels of bytetx_cpu_kernels, called in the order the ONNX Runtime shells (plugins/ort/*_op.cc)
// call them. Built two ways by tests/fuzz/build.sh:
//   libfuzzer   clang, -fsanitize=fuzzer,address,undefined (LeakSanitizer included): LLVMFuzzerTestOneInput
//               is driven by libFuzzer.
//   standalone  the production compiler and flags (-O3, GCC's target clones) plus standalone_main.cc, a
//               main() that replays files and seeded random inputs; run under valgrind --leak-check.
//
// What a fuzz input means (tests/fuzz/make_seeds.py writes seeds in this format):
//   byte 0      case: 0 RemovePadding, 1 FusedMHA, 2 RebuildPadding, 3 RemovePadding -> FusedMHA ->
//               RebuildPadding, 4 the validators alone on raw 64-bit dimensions (modulo 5)
//   then        the case's dimensions, attribute values, mask values, cu_seqlens / token_offset contents
//               and corruption choices, one or a few bytes each (see each Fuzz* function)
//   once the input is used up, further bytes come from a generator seeded by the whole input, so a
//   short input still describes complete tensors.
//
// Every tensor the shells would receive is allocated with exactly as many elements as its shape
// claims (ONNX Runtime's guarantee), so AddressSanitizer flags any read or write outside it; a shape
// that claims data the harness cannot hold (more than kMaxElements) is skipped, as a client could not
// send it. The harness aborts (a finding) when
//   - a validator's verdict differs from an independent statement of the rule (docs/ops.md), in
//     either direction, or its error message does not name an input,
//   - a kernel's output breaks the op's contract: RemovePadding's layout, RebuildPadding's scatter and
//     zero padding, FusedMHA against a float64 reference (and exactly v + bias for length-1
//     sequences), or the outputs of RemovePadding are not accepted by the validators of the next ops,
//   - running the parallel tasks in reverse order changes any output bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/checks.h"
#include "common/packed_layout.h"
#include "common/parallel_for.h"
#include "cpu/fused_mha.h"
#include "cpu/rebuild_padding.h"
#include "cpu/remove_padding.h"

namespace {

using bytetx::ParallelFor;
using bytetx::Status;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
// The most elements one tensor may hold in the harness (inputs and outputs alike).
constexpr int64_t kMaxElements = int64_t{1} << 16;

#define FUZZ_ASSERT(cond, ...)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "FUZZ INVARIANT BROKEN at %s:%d: %s: %s\n", __FILE__, __LINE__, #cond, \
                   ::bytetx::StrCat(__VA_ARGS__).c_str());                                  \
      std::abort();                                                                         \
    }                                                                                       \
  } while (false)

// Reads the fuzz input front to back; past its end, bytes from a generator seeded by the input.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size;
    for (size_t i = 0; i < size; ++i) {
      h = (h ^ data[i]) * 0x100000001B3ull;
    }
    state_ = h;
  }

  uint8_t Byte() {
    if (pos_ < size_) {
      return data_[pos_++];
    }
    return static_cast<uint8_t>(Next() >> 56);
  }

  uint32_t U32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      v = v << 8 | Byte();
    }
    return v;
  }

  int64_t I64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
      v = v << 8 | Byte();
    }
    return static_cast<int64_t>(v);
  }

  // A tensor dimension: mostly small (exercising tiles, blocks of 64 rows and remainders), sometimes
  // one that only an empty tensor can claim.
  int64_t Dim() {
    static constexpr int64_t kLarge[] = {kInt32Max, kInt32Max + 1, int64_t{1} << 32, int64_t{1} << 40,
                                         46341,     65536,         kInt64Max / 4,    kInt64Max};
    const uint8_t b = Byte();
    if (b < 0xB0) {
      return b % 12;
    }
    if (b < 0xF0) {
      return b % 150;
    }
    return kLarge[b % 8];
  }

 private:
  uint64_t Next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t state_;
};

// Elements of a tensor of this shape; -1 when the harness cannot hold it (negative or too many).
int64_t ElementCount(const std::vector<int64_t>& shape) {
  __int128 n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return -1;
    }
    n *= d;
    if (n == 0) {
      return 0;  // an empty tensor may claim any other dimension
    }
    if (n > kMaxElements) {
      return -1;
    }
  }
  return static_cast<int64_t>(n);
}

// A tensor as a shell receives it: its shape and exactly that many elements (new T[0] for none, a
// distinct allocation that AddressSanitizer guards like any other).
template <typename T>
struct Tensor {
  std::vector<int64_t> shape;
  int64_t size = 0;
  std::unique_ptr<T[]> data;

  // False when the harness cannot hold the tensor.
  bool Allocate(std::vector<int64_t> dims) {
    shape = std::move(dims);
    size = ElementCount(shape);
    if (size < 0) {
      return false;
    }
    data.reset(new T[static_cast<size_t>(size)]);
    return true;
  }
  T* get() const { return data.get(); }
};

Status RunReversed(void* /*context*/, size_t total, ParallelFor::Body body, void* body_context) {
  for (size_t i = total; i-- > 0;) {
    body(body_context, i);
  }
  return Status::Ok();
}

const ParallelFor kSerial = ParallelFor::Serial();
const ParallelFor kReversed(&RunReversed, nullptr);

// A failed validation: it must be an input error whose message names an input.
void ExpectNamedError(const Status& status) {
  FUZZ_ASSERT(status.code() == Status::Code::kInvalid, "code ", static_cast<int>(status.code()), ": ",
              status.message());
  FUZZ_ASSERT(status.message().find('\'') != std::string::npos, "message names no input: ", status.message());
}

// ---- independent statements of the rules (docs/ops.md) ------------------------------------------

bool SlotCountOk(int64_t batch, int64_t seq_len) {
  return batch >= 0 && seq_len >= 0 && batch <= kInt32Max && seq_len <= kInt32Max &&
         static_cast<__int128>(batch) * seq_len <= kInt32Max;
}

bool CuSeqlensOk(const int32_t* cu, int64_t batch, int64_t max_seq_len, int64_t num_tokens) {
  if (cu[0] != 0) {
    return false;
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (cu[b + 1] < cu[b] || int64_t{cu[b + 1]} - cu[b] > max_seq_len) {
      return false;
    }
  }
  return cu[batch] == num_tokens;
}

bool TokenOffsetOk(const int32_t* offsets, int64_t num_slots, int64_t num_tokens) {
  if (num_tokens > num_slots) {
    return false;
  }
  std::vector<int64_t> seen(offsets, offsets + num_tokens);
  std::sort(seen.begin(), seen.end());
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (seen[t] < 0 || seen[t] >= num_slots || (t > 0 && seen[t] == seen[t - 1])) {
      return false;
    }
  }
  return true;
}

// ---- values ---------------------------------------------------------------------------------------

// A mask value: mostly 0 or 1, sometimes one a client might send by mistake.
int64_t MaskValue(Reader& in, uint8_t density) {
  static constexpr int64_t kBad[] = {2, -1, (int64_t{1} << 32) + 1, kInt64Min};
  const uint8_t b = in.Byte();
  if (b >= 0xFC) {
    return kBad[b & 3];
  }
  return b < density ? 1 : 0;
}

// Float data: small multiples of 1/64 (so the float64 reference is a meaningful check), or with
// `special` also NaN, infinities and huge values.
float Value(Reader& in, bool special) {
  static constexpr float kSpecial[] = {std::numeric_limits<float>::quiet_NaN(),
                                       std::numeric_limits<float>::infinity(),
                                       -std::numeric_limits<float>::infinity(), 3e38f, -3e38f, 1e-40f};
  const uint8_t b = in.Byte();
  if (special && b >= 0xF8) {
    return kSpecial[b % 6];
  }
  return static_cast<float>(static_cast<int8_t>(b)) / 64.0f;
}

// Finite and small enough that float32 products cannot overflow: where the float64 reference applies.
bool AllModerate(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!(std::fabs(x[i]) <= 64.0f)) {
      return false;
    }
  }
  return true;
}

// ---- RemovePadding ---------------------------------------------------------------------------------

struct Packed {
  Tensor<float> packed;        // [T, H]
  Tensor<int32_t> cu_seqlens;  // [B + 1]
  Tensor<int32_t> token_offset;  // [B, S]
  int64_t num_tokens = 0;
};

// remove_padding_op.cc's Compute on input [B, S, H] and an int64 (or int32) mask; false when the
// shell would fail (its message checked) or the outputs would not fit the harness.
template <typename MaskT>
bool RemovePaddingShell(const Tensor<float>& input, const Tensor<MaskT>& mask, Packed* out) {
  const int64_t batch = input.shape[0];
  const int64_t seq_len = input.shape[1];
  const int64_t hidden = input.shape[2];
  if (mask.shape != std::vector<int64_t>{batch, seq_len}) {
    return false;  // ExpectShape: a plain comparison
  }
  const Status slots = bytetx::packed::ValidateSlotCount(batch, seq_len, "input");
  FUZZ_ASSERT(slots.ok() == SlotCountOk(batch, seq_len), "ValidateSlotCount(", batch, ", ", seq_len, ")");
  if (!slots.ok()) {
    ExpectNamedError(slots);
    return false;
  }
  const int64_t num_tokens = bytetx::packed::CountTokens(mask.get(), batch, seq_len);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < mask.size; ++i) {
    nonzero += mask.get()[i] != 0;
  }
  FUZZ_ASSERT(num_tokens == nonzero, "T=", num_tokens, " but the mask has ", nonzero, " nonzero values");
  if (!out->packed.Allocate({num_tokens, hidden}) || !out->cu_seqlens.Allocate({batch + 1}) ||
      !out->token_offset.Allocate({batch, seq_len})) {
    return false;  // ONNX Runtime's allocation would fail
  }
  out->num_tokens = num_tokens;
  bytetx::cpu::RemovePaddingParams params;
  params.input = input.get();
  params.attention_mask = mask.get();
  params.mask_type = sizeof(MaskT) == 8 ? bytetx::cpu::MaskType::kInt64 : bytetx::cpu::MaskType::kInt32;
  params.dims = {batch, seq_len, hidden};
  params.packed = out->packed.get();
  params.cu_seqlens = out->cu_seqlens.get();
  params.token_offset = out->token_offset.get();
  const Status run = bytetx::cpu::RunRemovePadding(params, kSerial);
  FUZZ_ASSERT(run.ok(), run.message());

  // The layout of docs/ops.md, and what the next ops' validators must accept.
  const int32_t* cu = out->cu_seqlens.get();
  const int32_t* offsets = out->token_offset.get();
  FUZZ_ASSERT(cu[0] == 0, "cu_seqlens[0]=", cu[0]);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t len = 0;
    for (int64_t s = 0; s < seq_len; ++s) {
      len += mask.get()[b * seq_len + s] != 0;
    }
    FUZZ_ASSERT(cu[b + 1] - cu[b] == len, "row ", b);
  }
  int64_t next_token = 0;
  int64_t next_pad = num_tokens;
  for (int64_t i = 0; i < batch * seq_len; ++i) {
    const int64_t at = mask.get()[i] != 0 ? next_token++ : next_pad++;
    FUZZ_ASSERT(offsets[at] == i, "token_offset[", at, "]=", offsets[at], ", expected ", i);
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    FUZZ_ASSERT(std::memcmp(out->packed.get() + t * hidden, input.get() + int64_t{offsets[t]} * hidden,
                            static_cast<size_t>(hidden) * sizeof(float)) == 0,
                "packed row ", t);
  }
  FUZZ_ASSERT(bytetx::packed::ValidateCuSeqlens(cu, batch, seq_len, num_tokens).ok(), "own cu_seqlens refused");
  FUZZ_ASSERT(bytetx::packed::ValidateTokenOffset(offsets, batch * seq_len, num_tokens).ok(),
              "own token_offset refused");
  return true;
}

template <typename MaskT>
void FuzzRemovePaddingTyped(Reader& in, int64_t batch, int64_t seq_len, int64_t hidden) {
  Tensor<float> input;
  if (!input.Allocate({batch, seq_len, hidden})) {
    return;
  }
  for (int64_t i = 0; i < input.size; ++i) {
    input.get()[i] = static_cast<float>(i);  // distinct rows: a wrong copy shows
  }
  const uint8_t shape_choice = in.Byte();
  std::vector<int64_t> mask_shape = {batch, seq_len};
  if (shape_choice >= 0xF0) {
    mask_shape = {in.Dim(), in.Dim()};
  }
  Tensor<MaskT> mask;
  if (!mask.Allocate(mask_shape)) {
    return;
  }
  const uint8_t density = in.Byte();
  for (int64_t i = 0; i < mask.size; ++i) {
    mask.get()[i] = static_cast<MaskT>(MaskValue(in, density));
  }
  Packed packed;
  if (!RemovePaddingShell(input, mask, &packed)) {
    return;
  }
  // Round trip through RebuildPadding: valid tokens back in place, padding exactly +0.0.
  Tensor<float> output;
  if (!output.Allocate({batch, seq_len, hidden})) {
    return;
  }
  bytetx::cpu::RebuildPaddingParams params;
  params.packed = packed.packed.get();
  params.token_offset = packed.token_offset.get();
  params.dims = {packed.num_tokens, hidden, batch, seq_len};
  params.output = output.get();
  FUZZ_ASSERT(bytetx::cpu::RunRebuildPadding(params, kReversed).ok(), "round trip");
  for (int64_t i = 0; i < batch * seq_len; ++i) {
    for (int64_t c = 0; c < hidden; ++c) {
      const float got = output.get()[i * hidden + c];
      if (mask.get()[i] != 0) {
        FUZZ_ASSERT(got == input.get()[i * hidden + c], "round trip slot ", i);
      } else {
        FUZZ_ASSERT(got == 0.0f && !std::signbit(got), "padding slot ", i, " not +0");
      }
    }
  }
}

void FuzzRemovePadding(Reader& in) {
  const int64_t batch = in.Dim();
  const int64_t seq_len = in.Dim();
  const int64_t hidden = in.Byte() % 20;
  if (in.Byte() & 1) {
    FuzzRemovePaddingTyped<int64_t>(in, batch, seq_len, hidden);
  } else {
    FuzzRemovePaddingTyped<int32_t>(in, batch, seq_len, hidden);
  }
}

// ---- FusedMHA --------------------------------------------------------------------------------------

// Self-attention of every sequence in float64, from float32 inputs; docs/ops.md's formula.
std::vector<double> ReferenceAttention(const float* qkv, const float* bias, const int32_t* cu, int64_t batch,
                                       int64_t num_heads, int64_t head_size, float scale) {
  const int64_t hidden = num_heads * head_size;
  const int64_t num_tokens = cu[batch];
  std::vector<double> context(static_cast<size_t>(num_tokens * hidden), 0.0);
  auto at = [&](int64_t token, int64_t block, int64_t column) {
    const int64_t index = block * hidden + column;
    return static_cast<double>(qkv[token * 3 * hidden + index]) + (bias ? bias[index] : 0.0);
  };
  std::vector<double> weights;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t first = cu[b];
    const int64_t len = cu[b + 1] - first;
    weights.assign(static_cast<size_t>(len), 0.0);
    for (int64_t h = 0; h < num_heads; ++h) {
      for (int64_t i = 0; i < len; ++i) {
        double max = -INFINITY;
        for (int64_t j = 0; j < len; ++j) {
          double dot = 0.0;
          for (int64_t c = 0; c < head_size; ++c) {
            dot += at(first + i, 0, h * head_size + c) * at(first + j, 1, h * head_size + c);
          }
          weights[j] = scale * dot;
          max = std::max(max, weights[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < len; ++j) {
          weights[j] = std::exp(weights[j] - max);
          sum += weights[j];
        }
        for (int64_t c = 0; c < head_size; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j < len; ++j) {
            acc += weights[j] * at(first + j, 2, h * head_size + c);
          }
          context[(first + i) * hidden + h * head_size + c] = acc / sum;
        }
      }
    }
  }
  return context;
}

struct MhaInputs {
  int64_t num_heads = 1;
  std::optional<float> scale;
  Tensor<float> qkv;             // [T, W]
  std::optional<Tensor<float>> bias;  // [W] when present
  Tensor<int32_t> cu_seqlens;    // [B + 1] when well formed
  std::vector<int64_t> token_offset_shape;  // [B, S]; FusedMHA reads only the shape
  bool special_values = false;
};

// fused_mha_op.cc's CreateKernel and Compute; checks the output when the shell accepts.
void FusedMHAShell(const MhaInputs& x) {
  if (x.num_heads < 1) {
    return;  // ReadAttributes refuses the session (tests/ort/test_bad_inputs.py covers the message)
  }
  const int64_t num_tokens = x.qkv.shape[0];
  const int64_t width = x.qkv.shape[1];
  if (width % 3 != 0 || (width / 3) % x.num_heads != 0) {
    return;
  }
  const int64_t hidden = width / 3;
  if (!x.bias || x.bias->shape != std::vector<int64_t>{width}) {
    return;  // qkv_bias is required, of width 3 * H
  }
  const int64_t batch = x.token_offset_shape[0];
  const int64_t max_seq_len = x.token_offset_shape[1];
  const Status slots = bytetx::packed::ValidateSlotCount(batch, max_seq_len, "token_offset");
  FUZZ_ASSERT(slots.ok() == SlotCountOk(batch, max_seq_len), "ValidateSlotCount(", batch, ", ", max_seq_len, ")");
  if (!slots.ok()) {
    ExpectNamedError(slots);
    return;
  }
  if (x.cu_seqlens.shape != std::vector<int64_t>{batch + 1}) {
    return;
  }
  const int32_t* cu = x.cu_seqlens.get();
  const Status valid = bytetx::packed::ValidateCuSeqlens(cu, batch, max_seq_len, num_tokens);
  FUZZ_ASSERT(valid.ok() == CuSeqlensOk(cu, batch, max_seq_len, num_tokens), "ValidateCuSeqlens verdict: ",
              valid.message());
  if (!valid.ok()) {
    ExpectNamedError(valid);
    return;
  }
  Tensor<float> context;
  Tensor<float> context_reversed;
  if (!context.Allocate({num_tokens, hidden}) || !context_reversed.Allocate({num_tokens, hidden})) {
    return;
  }
  bytetx::cpu::FusedMHAParams params;
  params.qkv = x.qkv.get();
  params.qkv_bias = x.bias->get();
  params.cu_seqlens = cu;
  params.dims = {num_tokens, hidden, hidden / x.num_heads, batch, max_seq_len};
  params.num_heads = x.num_heads;
  params.scale = x.scale ? *x.scale : 1.0f / std::sqrt(static_cast<float>(params.dims.head_size));
  params.context = context.get();
  const Status run = bytetx::cpu::RunFusedMHA(params, kSerial);
  FUZZ_ASSERT(run.ok(), run.message());
  params.context = context_reversed.get();
  FUZZ_ASSERT(bytetx::cpu::RunFusedMHA(params, kReversed).ok(), "reversed run");
  FUZZ_ASSERT(std::memcmp(context.get(), context_reversed.get(), static_cast<size_t>(context.size) * sizeof(float)) == 0,
              "the task order changed the output");

  const bool moderate = AllModerate(x.qkv.get(), x.qkv.size) &&
                        AllModerate(x.bias->get(), x.bias->size) && std::fabs(params.scale) <= 4.0f;
  if (!moderate || params.dims.head_size == 0) {
    return;  // NaN, infinities or float32 overflow in, anything out: only memory safety is checked
  }
  const std::vector<double> expected =
      ReferenceAttention(x.qkv.get(), params.qkv_bias, cu, batch, x.num_heads, params.dims.head_size, params.scale);
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t c = 0; c < hidden; ++c) {
      const double got = context.get()[t * hidden + c];
      const double want = expected[static_cast<size_t>(t * hidden + c)];
      FUZZ_ASSERT(std::fabs(got - want) <= 1e-3 + 1e-3 * std::fabs(want), "context[", t, ", ", c, "]=", got,
                  ", reference ", want);
    }
  }
  for (int64_t b = 0; b < batch; ++b) {
    if (cu[b + 1] - cu[b] != 1) {
      continue;
    }
    const int64_t t = cu[b];
    for (int64_t c = 0; c < hidden; ++c) {  // length 1: exactly v + bias
      const float v = x.qkv.get()[t * width + 2 * hidden + c] + (x.bias ? x.bias->get()[2 * hidden + c] : 0.0f);
      FUZZ_ASSERT(context.get()[t * hidden + c] == v, "length-1 sequence ", b, " column ", c);
    }
  }
}

void FuzzFusedMHA(Reader& in) {
  static constexpr int64_t kBadHeads[] = {0, -1, kInt64Max, int64_t{1} << 40};
  static constexpr float kScales[] = {0.0f, -1.0f, 1e30f, 3.0f, std::numeric_limits<float>::infinity(),
                                      std::numeric_limits<float>::quiet_NaN(), 1e-30f, 0.5f};
  MhaInputs x;
  const uint8_t heads = in.Byte();
  x.num_heads = heads < 0xF0 ? 1 + heads % 4 : kBadHeads[heads % 4];
  const int64_t head_size = in.Byte() % 70;
  const uint8_t scale = in.Byte();
  if (scale >= 0xE0) {
    x.scale = kScales[scale % 8];
  }
  const uint8_t width_choice = in.Byte();
  const bool few_heads = x.num_heads >= 1 && x.num_heads <= 4;
  const int64_t width = width_choice < 0xF0 && few_heads ? 3 * x.num_heads * head_size : in.Dim();
  const int64_t batch = in.Dim();
  const int64_t max_seq_len = in.Dim();
  x.token_offset_shape = {batch, max_seq_len};
  if (ElementCount(x.token_offset_shape) < 0) {
    return;  // token_offset [B, S] holds B * S int32 the client would have to send
  }

  // cu_seqlens: consistent with random lengths in [0, S] (then T follows), or broken in one entry,
  // or raw, or of another length.
  const uint8_t mode = in.Byte();
  int64_t cu_size = batch < kMaxElements ? batch + 1 : in.Dim();
  if (mode >= 0xF8) {
    cu_size = in.Dim();
  }
  if (cu_size == 0 || !x.cu_seqlens.Allocate({cu_size})) {
    return;  // an empty cu_seqlens never has shape [B + 1]; the shell refuses it by shape alone
  }
  int32_t* cu = x.cu_seqlens.get();
  // Running sums of random lengths in [0, min(S, 255)] for the B sequences; T is the last entry.
  const auto fill_consistent = [&] {
    int64_t total = 0;
    for (int64_t i = 0; i < cu_size; ++i) {
      cu[i] = static_cast<int32_t>(total);
      if (i < batch) {
        total += max_seq_len == 0 ? 0 : in.Byte() % (std::min<int64_t>(max_seq_len, 255) + 1);
      }
    }
    return static_cast<int64_t>(cu[cu_size - 1]);
  };
  int64_t num_tokens = 0;
  if (mode < 0xE0 || mode >= 0xF8) {
    num_tokens = fill_consistent();
  } else if (mode < 0xF0) {
    num_tokens = in.Dim();
    for (int64_t i = 0; i < cu_size; ++i) {
      cu[i] = static_cast<int32_t>(in.U32());
    }
  } else {
    static constexpr int64_t kDeltas[] = {-1, 1, kInt32Max, -kInt32Max - 1, 1 << 16, -(1 << 16), 2, -2};
    num_tokens = fill_consistent();
    const int64_t victim = in.Byte() % cu_size;
    cu[victim] = static_cast<int32_t>(static_cast<uint32_t>(cu[victim]) +
                                      static_cast<uint32_t>(kDeltas[in.Byte() % 8]));
    if (in.Byte() & 1) {
      num_tokens += 1 - 2 * (in.Byte() & 1);  // T off by one as well
    }
  }
  if (num_tokens < 0) {
    return;
  }
  if (!x.qkv.Allocate({num_tokens, width})) {
    return;
  }
  x.special_values = in.Byte() >= 0xF0;
  for (int64_t i = 0; i < x.qkv.size; ++i) {
    x.qkv.get()[i] = Value(in, x.special_values);
  }
  const uint8_t bias = in.Byte();
  if (bias < 0xC0) {
    x.bias.emplace();
    if (!x.bias->Allocate({bias < 0xB8 ? width : in.Dim()})) {
      return;
    }
    for (int64_t i = 0; i < x.bias->size; ++i) {
      x.bias->get()[i] = Value(in, x.special_values);
    }
  }
  FusedMHAShell(x);
}

// ---- RebuildPadding --------------------------------------------------------------------------------

// rebuild_padding_op.cc's Compute; checks the output when the shell accepts.
void RebuildPaddingShell(const Tensor<float>& packed, const Tensor<int32_t>& token_offset) {
  const int64_t num_tokens = packed.shape[0];
  const int64_t hidden = packed.shape[1];
  const int64_t batch = token_offset.shape[0];
  const int64_t seq_len = token_offset.shape[1];
  const Status slots = bytetx::packed::ValidateSlotCount(batch, seq_len, "token_offset");
  FUZZ_ASSERT(slots.ok() == SlotCountOk(batch, seq_len), "ValidateSlotCount(", batch, ", ", seq_len, ")");
  if (!slots.ok()) {
    ExpectNamedError(slots);
    return;
  }
  if (hidden != 0 && batch * seq_len > kInt64Max / 4 / hidden) {
    return;  // the shell's output size rule
  }
  const int64_t num_slots = batch * seq_len;
  const Status valid = bytetx::packed::ValidateTokenOffset(token_offset.get(), num_slots, num_tokens);
  FUZZ_ASSERT(valid.ok() == TokenOffsetOk(token_offset.get(), num_slots, num_tokens),
              "ValidateTokenOffset verdict: ", valid.message());
  if (!valid.ok()) {
    ExpectNamedError(valid);
    return;
  }
  Tensor<float> output;
  if (!output.Allocate({batch, seq_len, hidden})) {
    return;  // ONNX Runtime's allocation would fail
  }
  std::fill(output.get(), output.get() + output.size, -7.0f);  // stale memory must not survive
  bytetx::cpu::RebuildPaddingParams params;
  params.packed = packed.get();
  params.token_offset = token_offset.get();
  params.dims = {num_tokens, hidden, batch, seq_len};
  params.output = output.get();
  FUZZ_ASSERT(bytetx::cpu::RunRebuildPadding(params, kReversed).ok(), "RunRebuildPadding");
  std::vector<int64_t> owner(static_cast<size_t>(num_slots), -1);
  for (int64_t t = 0; t < num_tokens; ++t) {
    owner[static_cast<size_t>(token_offset.get()[t])] = t;
  }
  for (int64_t slot = 0; slot < num_slots; ++slot) {
    const int64_t t = owner[static_cast<size_t>(slot)];
    for (int64_t c = 0; c < hidden; ++c) {
      const float got = output.get()[slot * hidden + c];
      if (t >= 0) {
        FUZZ_ASSERT(std::memcmp(&got, packed.get() + t * hidden + c, sizeof(float)) == 0, "slot ", slot);
      } else {
        FUZZ_ASSERT(got == 0.0f && !std::signbit(got), "padding slot ", slot, " not +0");
      }
    }
  }
}

void FuzzRebuildPadding(Reader& in) {
  const int64_t batch = in.Dim();
  const int64_t seq_len = in.Dim();
  Tensor<int32_t> token_offset;
  if (!token_offset.Allocate({batch, seq_len})) {
    return;
  }
  int32_t* offsets = token_offset.get();
  const int64_t num_slots = token_offset.size;
  // Contents: the layout RemovePadding would build for a random mask (T its number of ones), then
  // maybe one entry broken, a T that disagrees, or raw entries.
  const uint8_t density = in.Byte();
  std::vector<int32_t> valid_slots;
  std::vector<int32_t> pad_slots;
  for (int64_t i = 0; i < num_slots; ++i) {
    (in.Byte() < density ? valid_slots : pad_slots).push_back(static_cast<int32_t>(i));
  }
  std::copy(valid_slots.begin(), valid_slots.end(), offsets);
  std::copy(pad_slots.begin(), pad_slots.end(), offsets + valid_slots.size());
  int64_t num_tokens = static_cast<int64_t>(valid_slots.size());
  const uint8_t mode = in.Byte();
  if (mode >= 0xC0 && num_slots > 0) {
    const int64_t victim = in.Byte() % num_slots;
    const int64_t kBad[] = {-1, num_slots, num_slots + 7, kInt32Max, -kInt32Max - 1, offsets[in.Byte() % num_slots]};
    offsets[victim] = static_cast<int32_t>(kBad[in.Byte() % 6]);
  }
  if (mode >= 0xE0 && mode < 0xF0) {
    num_tokens = in.Dim();
  }
  if (mode >= 0xF0) {
    for (int64_t i = 0; i < num_slots; ++i) {
      offsets[i] = static_cast<int32_t>(in.U32() % static_cast<uint32_t>(num_slots + 2)) - 1;
    }
  }
  const uint8_t hidden_choice = in.Byte();
  const int64_t hidden = hidden_choice < 0xF0 ? hidden_choice % 24 : in.Dim();
  Tensor<float> packed;
  if (!packed.Allocate({num_tokens, hidden})) {
    return;
  }
  for (int64_t i = 0; i < packed.size; ++i) {
    packed.get()[i] = static_cast<float>(i + 1);
  }
  RebuildPaddingShell(packed, token_offset);
}

// ---- the three ops in a row ------------------------------------------------------------------------

void FuzzPipeline(Reader& in) {
  const int64_t batch = in.Byte() % 5;
  const int64_t seq_len = in.Byte() % 80;
  const int64_t num_heads = 1 + in.Byte() % 2;
  const int64_t head_size = 1 + in.Byte() % 32;
  const int64_t width = 3 * num_heads * head_size;
  Tensor<float> qkv;
  Tensor<int64_t> mask;
  if (!qkv.Allocate({batch, seq_len, width}) || !mask.Allocate({batch, seq_len})) {
    return;
  }
  for (int64_t i = 0; i < qkv.size; ++i) {
    qkv.get()[i] = Value(in, false);
  }
  const uint8_t density = in.Byte();
  for (int64_t i = 0; i < mask.size; ++i) {
    mask.get()[i] = in.Byte() < density ? 1 : 0;
  }
  Packed packed;
  FUZZ_ASSERT(RemovePaddingShell(qkv, mask, &packed), "a valid batch was refused");
  MhaInputs x;
  x.num_heads = num_heads;
  x.qkv.shape = packed.packed.shape;
  x.qkv.size = packed.packed.size;
  x.qkv.data = std::move(packed.packed.data);
  x.cu_seqlens.shape = packed.cu_seqlens.shape;
  x.cu_seqlens.size = packed.cu_seqlens.size;
  x.cu_seqlens.data = std::move(packed.cu_seqlens.data);
  x.token_offset_shape = {batch, seq_len};
  FusedMHAShell(x);
}

// ---- the validators on raw 64-bit dimensions -------------------------------------------------------

void FuzzValidators(Reader& in) {
  const int64_t a = in.I64();
  const int64_t b = in.I64();
  const Status slots = bytetx::packed::ValidateSlotCount(a, b, "input");
  FUZZ_ASSERT(slots.ok() == SlotCountOk(a, b), "ValidateSlotCount(", a, ", ", b, ")");
  if (!slots.ok()) {
    ExpectNamedError(slots);
  }
  // cu_seqlens with raw entries against raw S and T.
  const int64_t batch = in.Byte() % 16;
  std::unique_ptr<int32_t[]> cu(new int32_t[static_cast<size_t>(batch + 1)]);
  for (int64_t i = 0; i <= batch; ++i) {
    cu[i] = static_cast<int32_t>(in.U32());
  }
  const int64_t max_seq_len = in.Byte() < 0x80 ? in.I64() : in.Byte();
  const int64_t num_tokens = in.Byte() < 0x80 ? in.I64() : cu[batch];
  const Status valid = bytetx::packed::ValidateCuSeqlens(cu.get(), batch, max_seq_len, num_tokens);
  FUZZ_ASSERT(valid.ok() == CuSeqlensOk(cu.get(), batch, max_seq_len, num_tokens), "ValidateCuSeqlens verdict");
  if (!valid.ok()) {
    ExpectNamedError(valid);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  switch (in.Byte() % 5) {
    case 0: FuzzRemovePadding(in); break;
    case 1: FuzzFusedMHA(in); break;
    case 2: FuzzRebuildPadding(in); break;
    case 3: FuzzPipeline(in); break;
    default: FuzzValidators(in); break;
  }
  return 0;
}
