// FusedMHA's contract (docs/ops.md#fusedmha): multi-head self-attention over the ragged sequences of
// the packed layout, reading Q, K, V from one [T, 3H] tensor and adding their bias on the fly, with
// an optional bucketed relative position bias on the scores (MPNet's), optional rotary embeddings of
// Q and K and an optional sliding window (ModernBERT's), and optional disentangled position terms
// (DeBERTa's), all by the tokens' positions. Every back end validates its attributes and inputs here.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/contract.h"
#include "common/op_dims.h"
#include "common/packed_layout.h"
#include "common/relative_position.h"
#include "kernels/fused_mha/fused_mha_head_sizes.h"

namespace bytetx::contract {

struct FusedMHA {
  static constexpr char kName[] = "FusedMHA";
  static constexpr char kPluginVersion[] = "1";  // TensorRT plugin version; op set version 1 of com.bytetx

  enum Position : int {
    kQkv, kQkvBias, kCuSeqlens, kTokenOffset, kPositions, kRelativePositionBias, kPositionKey, kPositionQuery, kContext
  };
  static constexpr int kNumInputs = 8;
  // Inputs from this position on are optional: positions for any of the position features,
  // relative_position_bias for the bias, position_key and position_query for the disentangled terms.
  static constexpr int kNumRequiredInputs = 4;
  static constexpr int kNumOutputs = 1;
  static constexpr TensorSpec kTensors[] = {
      {"qkv", "[T, 3 * H]", 2, TypeRule::KernelFloat()},
      {"qkv_bias", "[3 * H]", 1, TypeRule::SameAs(kQkv)},
      {"cu_seqlens", "[B + 1]", 1, TypeRule::Exactly(ElementType::kInt32)},
      {"token_offset", "[B, S]", 2, TypeRule::Exactly(ElementType::kInt32)},
      {"positions", "[T]", 1, TypeRule::Exactly(ElementType::kInt32), /*optional=*/true},
      {"relative_position_bias", "[num_buckets, num_heads]", 2, TypeRule::SameAs(kQkv), /*optional=*/true},
      {"position_key", "[2 * span, H]", 2, TypeRule::SameAs(kQkv), /*optional=*/true},
      {"position_query", "[2 * span, H]", 2, TypeRule::SameAs(kQkv), /*optional=*/true},
      {"context", "[T, H]", 2, TypeRule::SameAs(kQkv)},
  };

  struct Attributes {
    int64_t num_heads = 0;
    std::optional<float> scale;  // absent: 1 / sqrt(head_size)
    // With relative_position_bias: distances from this on share the last bucket of their direction.
    std::optional<int64_t> relative_position_max_distance;
    // Non-empty: rotates Q and K of every head by the angles positions[t] * rotary_frequencies[c]
    // (head_size / 2 of them: the model's inverse frequencies, as it computed them).
    std::vector<float> rotary_frequencies;
    // Query i attends key j only where |positions[i] - positions[j]| <= sliding_window.
    std::optional<int64_t> sliding_window;
    // With position_key or position_query: DeBERTa's log buckets of the relative positions (0: the
    // distances themselves), as its config's position_buckets and max_relative_positions.
    std::optional<int64_t> position_buckets;
    std::optional<int64_t> max_relative_positions;
  };

  using Dims = FusedMHADims;

  static Status ValidateAttributes(const Attributes& attributes) {
    BYTETX_CHECK(attributes.num_heads >= 1, "attribute 'num_heads' must be >= 1, but it is ", attributes.num_heads);
    BYTETX_CHECK(attributes.num_heads <= INT32_MAX, "attribute 'num_heads' must fit int32, but it is ",
                 attributes.num_heads);
    if (attributes.relative_position_max_distance) {
      const int64_t max_distance = *attributes.relative_position_max_distance;
      BYTETX_CHECK(max_distance >= 2 && max_distance <= INT32_MAX,
                   "attribute 'relative_position_max_distance' must be in [2, 2^31 - 1], but it is ", max_distance);
    }
    for (const float frequency : attributes.rotary_frequencies) {
      BYTETX_CHECK(std::isfinite(frequency), "attribute 'rotary_frequencies' must hold finite floats, but it holds ",
                   frequency);
    }
    if (attributes.sliding_window) {
      BYTETX_CHECK(*attributes.sliding_window >= 0 && *attributes.sliding_window <= INT32_MAX,
                   "attribute 'sliding_window' must be in [0, 2^31 - 1], but it is ", *attributes.sliding_window);
    }
    BYTETX_CHECK(attributes.position_buckets.has_value() == attributes.max_relative_positions.has_value(),
                 "attributes 'position_buckets' and 'max_relative_positions' go together, but only '",
                 attributes.position_buckets ? "position_buckets" : "max_relative_positions", "' is set");
    if (attributes.position_buckets) {
      const int64_t buckets = *attributes.position_buckets;
      const int64_t max_positions = *attributes.max_relative_positions;
      BYTETX_CHECK(buckets == 0 || (buckets >= 4 && buckets % 2 == 0 && buckets <= INT32_MAX),
                   "attribute 'position_buckets' must be 0 (no buckets) or even, in [4, 2^31 - 1], but it is ", buckets);
      BYTETX_CHECK(max_positions >= 1 && max_positions <= INT32_MAX,
                   "attribute 'max_relative_positions' must be in [1, 2^31 - 1], but it is ", max_positions);
      BYTETX_CHECK(buckets == 0 || max_positions - 1 > buckets / 2,
                   "attribute 'max_relative_positions' must exceed 'position_buckets' / 2 + 1 = ", buckets / 2 + 1,
                   ", but it is ", max_positions);
    }
    return Status::Ok();
  }

  // The kernels' bucketing for validated sizes and attributes; empty (num_buckets 0) without a relative
  // position bias.
  static RelativePositionBuckets Buckets(const Attributes& attributes, const Dims& dims) {
    if (dims.num_buckets <= 0) {
      return {};
    }
    return MakeRelativePositionBuckets(dims.num_buckets, *attributes.relative_position_max_distance);
  }

  // (max_relative_positions - 1) / (position_buckets / 2) in float, whose log DisentangledBucket takes.
  static float PositionLogBase(const Attributes& attributes) {
    return DisentangledLogBase(attributes.position_buckets.value_or(0), attributes.max_relative_positions.value_or(1));
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
    *dims = {qkv.dims[0], kUnknownDim, kUnknownDim, token_offset.dims[0], token_offset.dims[1], 0};
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
    BYTETX_RETURN_IF_ERROR(ValidatePositionFeatures(inputs, attributes, *dims));
    BYTETX_RETURN_IF_ERROR(ValidateRelativePositionBias(inputs, attributes, dims));
    BYTETX_RETURN_IF_ERROR(ValidateDisentangled(inputs, attributes, dims));
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

  // Rotary embeddings and the sliding window read positions; rotary pairs column c with c + d / 2 of
  // a head, with one frequency per pair.
  static Status ValidatePositionFeatures(const TensorDesc* inputs, const Attributes& attributes, const Dims& dims) {
    const bool rotary = !attributes.rotary_frequencies.empty();
    const bool window = attributes.sliding_window.has_value();
    const bool disentangled = inputs[kPositionKey].present || inputs[kPositionQuery].present;
    if (!rotary && !window && !disentangled) {
      return Status::Ok();
    }
    BYTETX_CHECK(inputs[kPositions].present, rotary       ? "the attribute 'rotary_frequencies'"
                                             : window     ? "the attribute 'sliding_window'"
                                             : inputs[kPositionKey].present ? "the input 'position_key'"
                                                                            : "the input 'position_query'",
                 " needs the input 'positions'");
    BYTETX_CHECK(Compatible(inputs[kPositions].dims[0], inputs[kQkv].dims[0]), "input 'positions' must have shape ",
                 "[T] = ", ShapeString({inputs[kQkv].dims[0]}), " (the rows of 'qkv'), but its shape is ",
                 ShapeString(inputs[kPositions].dims));
    const int64_t pairs = static_cast<int64_t>(attributes.rotary_frequencies.size());
    BYTETX_CHECK(!rotary || !Known(dims.head_size) || dims.head_size == 2 * pairs,
                 "the attribute 'rotary_frequencies' must hold head size / 2 floats, one per pair of columns, but it ",
                 "holds ", pairs, " for head size H / num_heads = ", dims.head_size);
    return Status::Ok();
  }

  // positions [T] and relative_position_bias [num_buckets, num_heads] come together with the attribute
  // relative_position_max_distance; num_buckets is even and >= 4 (two directions, each with at least
  // one exact distance), and the max distance lies beyond the exact ones (docs/ops.md#fusedmha).
  static Status ValidateRelativePositionBias(const TensorDesc* inputs, const Attributes& attributes,
                                             Dims* dims) {
    const TensorDesc& positions = inputs[kPositions];
    const TensorDesc& table = inputs[kRelativePositionBias];
    BYTETX_CHECK(positions.present || !table.present, "inputs 'positions' and 'relative_position_bias' go together, ",
                 "but only 'relative_position_bias' is given");
    BYTETX_CHECK(table.present || !positions.present || !attributes.rotary_frequencies.empty() ||
                     attributes.sliding_window || inputs[kPositionKey].present || inputs[kPositionQuery].present,
                 "input 'positions' is given without what reads it: 'relative_position_bias' (with which it goes ",
                 "together), 'position_key', 'position_query', or the attribute 'rotary_frequencies' or ",
                 "'sliding_window'");
    BYTETX_CHECK(table.present == attributes.relative_position_max_distance.has_value(),
                 table.present ? "input 'relative_position_bias' needs the attribute 'relative_position_max_distance'"
                               : "attribute 'relative_position_max_distance' is set without the input "
                                 "'relative_position_bias'");
    if (!table.present) {
      return Status::Ok();
    }
    BYTETX_CHECK(Compatible(positions.dims[0], inputs[kQkv].dims[0]), "input 'positions' must have shape [T] = ",
                 ShapeString({inputs[kQkv].dims[0]}), " (the rows of 'qkv'), but its shape is ",
                 ShapeString(positions.dims));
    BYTETX_CHECK(Compatible(table.dims[1], attributes.num_heads), "input 'relative_position_bias' must have shape ",
                 "[num_buckets, num_heads] with num_heads=", attributes.num_heads, ", but its shape is ",
                 ShapeString(table.dims));
    const int64_t num_buckets = table.dims[0];
    if (!Known(num_buckets)) {
      dims->num_buckets = kUnknownDim;
      return Status::Ok();
    }
    BYTETX_CHECK(num_buckets >= 4 && num_buckets % 2 == 0 && num_buckets <= INT32_MAX,
                 "input 'relative_position_bias' must have an even number of buckets >= 4 (rows), but its shape is ",
                 ShapeString(table.dims));
    BYTETX_CHECK(*attributes.relative_position_max_distance > num_buckets / 4,
                 "attribute 'relative_position_max_distance' must exceed the ", num_buckets / 4,
                 " exact distances of ", num_buckets, " buckets, but it is ", *attributes.relative_position_max_distance);
    dims->num_buckets = num_buckets;
    return Status::Ok();
  }

  // position_key (content to position) and position_query (position to content) [2 * span, H], each
  // optional, both with the attributes position_buckets and max_relative_positions.
  static Status ValidateDisentangled(const TensorDesc* inputs, const Attributes& attributes, Dims* dims) {
    const TensorDesc& key = inputs[kPositionKey];
    const TensorDesc& query = inputs[kPositionQuery];
    const bool disentangled = key.present || query.present;
    BYTETX_CHECK(disentangled == attributes.position_buckets.has_value(),
                 disentangled ? "the inputs 'position_key' and 'position_query' need the attributes 'position_buckets' "
                                "and 'max_relative_positions'"
                              : "attributes 'position_buckets' and 'max_relative_positions' are set without the input "
                                "'position_key' or 'position_query'");
    if (!disentangled) {
      return Status::Ok();
    }
    BYTETX_CHECK(!inputs[kRelativePositionBias].present,
                 "the disentangled position terms do not combine with 'relative_position_bias'");
    int64_t rows = kUnknownDim;
    for (const TensorDesc* table : {&key, &query}) {
      if (!table->present) {
        continue;
      }
      const char* name = table == &key ? "position_key" : "position_query";
      BYTETX_CHECK(Compatible(table->dims[1], dims->hidden), "input '", name, "' must have shape [2 * span, H] with H=",
                   dims->hidden, " (the width of 'qkv' / 3), but its shape is ", ShapeString(table->dims));
      if (Known(table->dims[0])) {
        BYTETX_CHECK(table->dims[0] >= 2 && table->dims[0] % 2 == 0 && table->dims[0] <= INT32_MAX,
                     "input '", name, "' must have an even number >= 2 of rows (2 * span), but its shape is ",
                     ShapeString(table->dims));
        BYTETX_CHECK(!Known(rows) || rows == table->dims[0], "inputs 'position_key' and 'position_query' must have ",
                     "the same rows (2 * span), but they have ", rows, " and ", table->dims[0]);
        rows = table->dims[0];
      }
    }
    dims->position_span = Known(rows) ? rows / 2 : kUnknownDim;
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
