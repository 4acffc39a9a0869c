// RebuildPadding's contract (docs/ops.md#rebuildpadding): scatters packed tokens back to the padded
// layout, padding exactly zero. Every back end validates its inputs here.
#pragma once

#include <cstdint>
#include <limits>

#include "common/contract.h"
#include "common/op_dims.h"
#include "common/packed_layout.h"

namespace bytetx::contract {

struct RebuildPadding {
  static constexpr char kName[] = "RebuildPadding";
  static constexpr char kPluginVersion[] = "1";  // TensorRT plugin version; op set version 1 of com.bytetx

  enum Position : int { kPacked, kTokenOffset, kOutput };
  static constexpr int kNumInputs = 2;
  static constexpr int kNumOutputs = 1;
  static constexpr TensorSpec kTensors[] = {
      {"packed", "[T, H]", 2, TypeRule::KernelFloat()},
      {"token_offset", "[B, S]", 2, TypeRule::Exactly(ElementType::kInt32)},
      {"output", "[B, S, H]", 3, TypeRule::SameAs(kPacked)},
  };

  using Dims = RebuildPaddingDims;

  // Ranks, types and shapes; dimensions not known yet are skipped. The entries of token_offset are
  // checked by packed::ValidateTokenOffset where they are on the host (the CPU back end).
  static Status Validate(const TensorDesc* inputs, Backend backend, Dims* dims) {
    BYTETX_RETURN_IF_ERROR(ValidateRanksAndTypes(kTensors, inputs, kNumInputs, backend));
    const TensorDesc& packed = inputs[kPacked];
    const TensorDesc& token_offset = inputs[kTokenOffset];
    *dims = {packed.dims[0], packed.dims[1], token_offset.dims[0], token_offset.dims[1]};
    if (!Known(dims->batch) || !Known(dims->seq_len)) {
      return Status::Ok();
    }
    BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(dims->batch, dims->seq_len, "token_offset"));
    // With T = 0, 'packed' holds no data whatever H it claims: the output size is checked here, not
    // left to overflow in an allocator's or a kernel's arithmetic. 4 bytes: the widest kernel type.
    constexpr int64_t kMaxElements = std::numeric_limits<int64_t>::max() / 4;
    const int64_t slots = dims->batch * dims->seq_len;
    BYTETX_CHECK(!Known(dims->hidden) || dims->hidden == 0 || slots <= kMaxElements / dims->hidden,
                 "output [B, S, H] = [", dims->batch, ", ", dims->seq_len, ", ", dims->hidden,
                 "] (B, S from 'token_offset', H from 'packed') is too large to address");
    BYTETX_CHECK(!Known(dims->num_tokens) || dims->num_tokens <= slots, "there are more packed tokens (T=",
                 dims->num_tokens, ") than padded slots in 'token_offset' (B * S=", slots, ")");
    return Status::Ok();
  }
};

}  // namespace bytetx::contract
