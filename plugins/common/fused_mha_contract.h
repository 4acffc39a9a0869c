// FusedMHA's contract (docs/ops.md#fusedmha): multi-head self-attention over the ragged sequences of
// the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their bias on the fly. Every
// back end validates its attributes and inputs here.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "common/contract.h"
#include "common/op_dims.h"
#include "common/packed_layout.h"
#include "kernels/fused_mha/fused_mha_head_sizes.h"

namespace bytetx::contract {

struct FusedMHA {
  static constexpr char kName[] = "FusedMHA";
  static constexpr char kPluginVersion[] = "1";  // TensorRT plugin version; op set version 1 of com.bytetx

  enum Position : int { kQkv, kQkvBias, kCuSeqlens, kTokenOffset, kContext };
  static constexpr int kNumInputs = 4;
  static constexpr int kNumOutputs = 1;
  static constexpr TensorSpec kTensors[] = {
      {"qkv", "[T, 3 * H]", 2, TypeRule::KernelFloat()},
      {"qkv_bias", "[3 * H]", 1, TypeRule::SameAs(kQkv)},
      {"cu_seqlens", "[B + 1]", 1, TypeRule::Exactly(ElementType::kInt32)},
      {"token_offset", "[B, S]", 2, TypeRule::Exactly(ElementType::kInt32)},
      {"context", "[T, H]", 2, TypeRule::SameAs(kQkv)},
  };

  struct Attributes {
    int64_t num_heads = 0;
    std::optional<float> scale;  // absent: 1 / sqrt(head_size)
  };

  using Dims = FusedMHADims;

  static Status ValidateAttributes(const Attributes& attributes) {
    BYTETX_CHECK(attributes.num_heads >= 1, "attribute 'num_heads' must be >= 1, but it is ", attributes.num_heads);
    BYTETX_CHECK(attributes.num_heads <= INT32_MAX, "attribute 'num_heads' must fit int32, but it is ",
                 attributes.num_heads);
    return Status::Ok();
  }

  static float Scale(const Attributes& attributes, int64_t head_size) {
    return attributes.scale ? *attributes.scale : 1.0f / std::sqrt(static_cast<float>(head_size));
  }

  // Ranks, types and shapes; dimensions not known yet are skipped. The values of cu_seqlens are
  // checked by packed::ValidateCuSeqlens where they are on the host (the CPU back end).
  static Status Validate(const TensorDesc* inputs, const Attributes& attributes, Backend backend, Dims* dims) {
    BYTETX_RETURN_IF_ERROR(ValidateRanksAndTypes(kTensors, inputs, kNumInputs, backend));
    const TensorDesc& qkv = inputs[kQkv];
    const TensorDesc& cu_seqlens = inputs[kCuSeqlens];
    const TensorDesc& token_offset = inputs[kTokenOffset];
    const int64_t num_heads = attributes.num_heads;
    const int64_t width = qkv.dims[1];
    *dims = {qkv.dims[0], kUnknownDim, kUnknownDim, token_offset.dims[0], token_offset.dims[1]};
    if (Known(width)) {
      BYTETX_CHECK(width % 3 == 0 && (width / 3) % num_heads == 0, "input 'qkv' must have width 3 * H with H a ",
                   "multiple of num_heads=", num_heads, ", but its shape is ", ShapeString(qkv.dims));
      dims->hidden = width / 3;
      dims->head_size = dims->hidden / num_heads;
      if (backend == Backend::kCuda) {
        BYTETX_CHECK(cuda::IsFusedMHAHeadSize(dims->head_size), "the CUDA kernels take head sizes H / num_heads of ",
                     CudaHeadSizesText(), ", but it is ", dims->hidden, " / ", num_heads, " = ", dims->head_size);
      }
    }
    BYTETX_CHECK(Compatible(inputs[kQkvBias].dims[0], width), "input 'qkv_bias' must have shape [3 * H] = ",
                 ShapeString({width}), " (the width of 'qkv'), but its shape is ", ShapeString(inputs[kQkvBias].dims));
    if (!Known(dims->batch) || !Known(dims->seq_len)) {
      return Status::Ok();
    }
    BYTETX_RETURN_IF_ERROR(packed::ValidateSlotCount(dims->batch, dims->seq_len, "token_offset"));
    BYTETX_CHECK(Compatible(cu_seqlens.dims[0], dims->batch + 1), "input 'cu_seqlens' must have shape [B + 1] = ",
                 ShapeString({dims->batch + 1}), " (B from 'token_offset'), but its shape is ",
                 ShapeString(cu_seqlens.dims));
    // cu_seqlens[B] = T with every length <= S implies T <= B * S: what the shapes tell where the values
    // stay on the device (the CPU back end checks the values themselves).
    BYTETX_CHECK(backend == Backend::kCpu || !Known(dims->num_tokens) || dims->num_tokens <= dims->batch * dims->seq_len,
                 "input 'qkv' has T=",
                 dims->num_tokens, " rows, more than the B * S=", dims->batch, " * ", dims->seq_len,
                 " padded slots of 'token_offset'");
    return Status::Ok();
  }

  // "32, 64 or 128": the head sizes of cuda::kFusedMHAHeadSizes.
  static std::string CudaHeadSizesText() {
    std::string text;
    constexpr size_t kCount = sizeof(cuda::kFusedMHAHeadSizes) / sizeof(cuda::kFusedMHAHeadSizes[0]);
    for (size_t i = 0; i < kCount; ++i) {
      text += (i == 0 ? "" : i + 1 == kCount ? " or " : ", ") + std::to_string(cuda::kFusedMHAHeadSizes[i]);
    }
    return text;
  }
};

}  // namespace bytetx::contract
