// RemovePadding's contract (docs/ops.md#removepadding): packs a padded batch into the layout of
// common/packed_layout.h. Every back end validates its inputs here.
#pragma once

#include <cstdint>

#include "common/contract.h"
#include "common/op_dims.h"
#include "common/packed_layout.h"

namespace bytetx::contract {

struct RemovePadding {
  static constexpr char kName[] = "RemovePadding";
  static constexpr char kPluginVersion[] = "1";  // TensorRT plugin version; op set version 1 of com.bytetx

  enum Position : int { kInput, kAttentionMask, kPacked, kCuSeqlens, kTokenOffset };
  static constexpr int kNumInputs = 2;
  static constexpr int kNumOutputs = 3;
  static constexpr TensorSpec kTensors[] = {
      {"input", "[B, S, H]", 3, TypeRule::KernelFloat()},
      {"attention_mask", "[B, S]", 2, TypeRule::MaskInteger()},
      {"packed", "[T, H]", 2, TypeRule::SameAs(kInput)},
      {"cu_seqlens", "[B + 1]", 1, TypeRule::Exactly(ElementType::kInt32)},
      {"token_offset", "[B, S]", 2, TypeRule::Exactly(ElementType::kInt32)},
  };

  using Dims = RemovePaddingDims;

  // Ranks, types and shapes; dimensions not known yet are skipped. The mask's values (a slot is a
  // token where it is nonzero) need no check: CountTokens counts them where they are on the host.
  static Status Validate(const TensorDesc* inputs, Backend backend, Dims* dims) {
    BYTETX_RETURN_IF_ERROR(ValidateRanksAndTypes(kTensors, inputs, kNumInputs, backend));
    const TensorDesc& input = inputs[kInput];
    const TensorDesc& mask = inputs[kAttentionMask];
    BYTETX_CHECK(Compatible(mask.dims[0], input.dims[0]) && Compatible(mask.dims[1], input.dims[1]),
                 "input 'attention_mask' must have shape [B, S] = ", ShapeString({input.dims[0], input.dims[1]}),
                 " (B, S from 'input'), but its shape is ", ShapeString(mask.dims));
    if (Known(input.dims[0]) && Known(input.dims[1])) {
      BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(input.dims[0], input.dims[1], "input"));
    }
    *dims = {input.dims[0], input.dims[1], input.dims[2]};
    return Status::Ok();
  }
};

}  // namespace bytetx::contract
