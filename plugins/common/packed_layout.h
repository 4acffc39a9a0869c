// The packed (padding-free) layout shared by every op and back end. docs/ops.md#the-packed-layout
// defines it: tokens [T, H], cu_seqlens int32 [B + 1], token_offset int32 [B, S]; a slot is a token
// where the attention mask is nonzero.
//
// The validators below check values that come from outside (graph inputs, other ops) before any
// kernel trusts them; their messages name the contract's input names and the rule broken, and the
// shell prefixes the op name. Plain C++ only, so CUDA launchers can reuse them on host copies.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "common/checks.h"

namespace bytetx::packed {

// token_offset and cu_seqlens hold int32 values, so the padded batch must have at most this many
// slots (B * S).
constexpr int64_t kMaxSlots = std::numeric_limits<int32_t>::max();

// B * S fits the int32 entries of token_offset, and so do B and S on their own: cu_seqlens has B + 1
// entries, and a tensor with a 0 dimension holds no data whatever its other dimension claims, so
// B * S = 0 alone must not let B + 1 overflow or size a huge cu_seqlens. `input` names the tensor
// whose shape gave B and S.
inline Status ValidateSlotCount(int64_t batch, int64_t seq_len, const char* input) {
  BYTETX_CHECK(batch >= 0 && seq_len >= 0, "input '", input, "' has a negative dimension");
  BYTETX_CHECK(batch <= kMaxSlots && seq_len <= kMaxSlots, "input '", input, "' has B=", batch, ", S=",
               seq_len, ": each must be at most ", kMaxSlots, " (int32 token offsets and cu_seqlens)");
  BYTETX_CHECK(seq_len == 0 || batch <= kMaxSlots / seq_len, "input '", input, "' has B * S = ", batch,
               " * ", seq_len, " padded slots, more than int32 token offsets can address (", kMaxSlots,
               ")");
  return Status::Ok();
}

// T, the number of tokens: the mask's nonzero values (as transformers reads a mask).
template <typename MaskT>
int64_t CountTokens(const MaskT* mask, int64_t batch, int64_t seq_len) {
  int64_t count = 0;
  for (int64_t i = 0; i < batch * seq_len; ++i) {
    count += mask[i] != 0;
  }
  return count;
}

// Fills cu_seqlens [B + 1] and token_offset [B, S] from a mask of B * S slots (ValidateSlotCount).
template <typename MaskT>
void BuildPackedLayout(const MaskT* mask, int64_t batch, int64_t seq_len, int32_t* cu_seqlens,
                       int32_t* token_offset) {
  cu_seqlens[0] = 0;
  for (int64_t b = 0; b < batch; ++b) {
    int32_t len = 0;
    for (int64_t s = 0; s < seq_len; ++s) {
      len += mask[b * seq_len + s] != 0;
    }
    cu_seqlens[b + 1] = cu_seqlens[b] + len;
  }
  // Valid slots take entries [0, T) in flat order, padding slots [T, B*S) in flat order.
  int32_t next_token = 0;
  int32_t next_pad = cu_seqlens[batch];
  for (int64_t i = 0; i < batch * seq_len; ++i) {
    token_offset[mask[i] != 0 ? next_token++ : next_pad++] = static_cast<int32_t>(i);
  }
}

// cu_seqlens [B + 1] describes B sequences of lengths in [0, seq_len] covering exactly
// num_tokens packed tokens.
inline Status ValidateCuSeqlens(const int32_t* cu_seqlens, int64_t batch, int64_t seq_len,
                                int64_t num_tokens) {
  BYTETX_CHECK(cu_seqlens[0] == 0, "input 'cu_seqlens' must start at 0, but cu_seqlens[0]=", cu_seqlens[0]);
  for (int64_t b = 0; b < batch; ++b) {
    BYTETX_CHECK(cu_seqlens[b + 1] >= cu_seqlens[b], "input 'cu_seqlens' must be non-decreasing, but ",
                 "cu_seqlens[", b + 1, "]=", cu_seqlens[b + 1], " < cu_seqlens[", b, "]=", cu_seqlens[b]);
    const int64_t len = static_cast<int64_t>(cu_seqlens[b + 1]) - cu_seqlens[b];
    BYTETX_CHECK(len <= seq_len, "input 'cu_seqlens' gives sequence ", b, " length ", len,
                 " (cu_seqlens[", b + 1, "] - cu_seqlens[", b, "]), more than the padded length S=",
                 seq_len, " of 'token_offset'");
  }
  BYTETX_CHECK(cu_seqlens[batch] == num_tokens, "input 'cu_seqlens' must end at the number of packed ",
               "tokens T=", num_tokens, ", but cu_seqlens[", batch, "]=", cu_seqlens[batch]);
  return Status::Ok();
}

// The first num_tokens entries of token_offset are distinct flat positions in [0, num_slots).
inline Status ValidateTokenOffset(const int32_t* token_offset, int64_t num_slots, int64_t num_tokens) {
  BYTETX_CHECK(num_tokens <= num_slots, "there are more packed tokens (T=", num_tokens,
               ") than padded slots in 'token_offset' (B * S=", num_slots, ")");
  std::vector<bool> taken(static_cast<size_t>(num_slots), false);
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int32_t slot = token_offset[t];
    BYTETX_CHECK(slot >= 0 && slot < num_slots, "input 'token_offset' entries t < T must lie in [0, B * S=",
                 num_slots, "), but token_offset[", t, "]=", slot);
    if (taken[static_cast<size_t>(slot)]) {
      int64_t first = 0;
      while (token_offset[first] != slot) {
        ++first;
      }
      return Status::Invalid(StrCat("input 'token_offset' entries t < T must be distinct, but ",
                                    "token_offset[", t, "]=token_offset[", first, "]=", slot));
    }
    taken[static_cast<size_t>(slot)] = true;
  }
  return Status::Ok();
}

}  // namespace bytetx::packed
