// What every op contract (docs/ops.md) is written in: element types, tensor descriptions and the
// rules on them. Each op's contract (<op>_contract.h beside this file) lists its tensors once, with
// their names, ranks and type rules, and checks shapes and attributes; the ONNX Runtime shells (CPU
// and CUDA), the TensorRT plugins and the C ABI describe the tensors they were handed and call it,
// so every back end applies the same rules with the same messages. Plain C++: no framework headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/checks.h"
#include "kernels/common/data_type.h"

namespace bytetx::contract {

// Element types as every back end names them; each shell maps its framework's types onto these.
// kUnknown: not known yet (TensorRT computing output shapes knows no types), so the rule is skipped.
enum class ElementType { kUnknown, kFloat32, kFloat16, kBFloat16, kFloat64, kInt8, kUInt8, kInt16, kInt32, kInt64,
                         kBool, kOther };

inline const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kFloat16:
      return "float16";
    case ElementType::kBFloat16:
      return "bfloat16";
    case ElementType::kFloat64:
      return "float64";
    case ElementType::kInt8:
      return "int8";
    case ElementType::kUInt8:
      return "uint8";
    case ElementType::kInt16:
      return "int16";
    case ElementType::kInt32:
      return "int32";
    case ElementType::kInt64:
      return "int64";
    case ElementType::kBool:
      return "bool";
    case ElementType::kUnknown:
      return "an unknown type";
    case ElementType::kOther:
      break;
  }
  return "another element type";
}

// The kernels an op runs on: their floating-point types (and FusedMHA's head sizes) differ.
enum class Backend { kCpu, kCuda };

// Whether `backend`'s kernels take `type` for floating-point tensors (CPU: float32; CUDA: float32,
// float16, bfloat16).
inline bool IsKernelFloat(Backend backend, ElementType type) {
  if (backend == Backend::kCpu) {
    return type == ElementType::kFloat32;
  }
  return type == ElementType::kFloat32 || type == ElementType::kFloat16 || type == ElementType::kBFloat16;
}

inline const char* KernelFloatNames(Backend backend) {
  return backend == Backend::kCpu ? "float32" : "float32, float16 or bfloat16";
}

// The CUDA kernels' type for a floating-point element type they take.
inline std::optional<cuda::DataType> ToKernelDataType(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return cuda::DataType::kFloat32;
    case ElementType::kFloat16:
      return cuda::DataType::kFloat16;
    case ElementType::kBFloat16:
      return cuda::DataType::kBFloat16;
    default:
      return std::nullopt;
  }
}

// A dimension that a builder does not know yet (TensorRT before the shapes are set).
constexpr int64_t kUnknownDim = -1;

inline bool Known(int64_t dim) { return dim != kUnknownDim; }

// A tensor as a shell sees it before touching its data.
struct TensorDesc {
  ElementType type = ElementType::kUnknown;
  std::vector<int64_t> dims;  // kUnknownDim where not known yet; checks skip those
  bool present = true;        // false: an optional input the node leaves out
};

// How a tensor's element type is constrained.
struct TypeRule {
  enum class Kind { kKernelFloat, kSameAs, kExactly, kMaskInteger };
  Kind kind;
  int same_as;        // kSameAs: the position of the tensor whose type it has
  ElementType type;   // kExactly

  static constexpr TypeRule KernelFloat() { return {Kind::kKernelFloat, -1, ElementType::kUnknown}; }
  static constexpr TypeRule SameAs(int position) { return {Kind::kSameAs, position, ElementType::kUnknown}; }
  static constexpr TypeRule Exactly(ElementType type) { return {Kind::kExactly, -1, type}; }
  // int32 or int64, as tokenizers give an attention mask.
  static constexpr TypeRule MaskInteger() { return {Kind::kMaskInteger, -1, ElementType::kUnknown}; }
};

// One input or output of an op: positions count the inputs first, then the outputs (TensorRT's
// order).
struct TensorSpec {
  const char* name;
  const char* dims;  // as docs/ops.md spells the shape, e.g. "[B, S, H]"
  size_t rank;
  TypeRule type;
  bool optional = false;  // an input a node may leave out (ONNX: an empty name)
};

// Whether `type` satisfies the rule of position `position` given the types at earlier positions.
inline bool TypeAllowed(const TensorSpec* specs, int position, ElementType type, const ElementType* types,
                        Backend backend) {
  const TypeRule& rule = specs[position].type;
  switch (rule.kind) {
    case TypeRule::Kind::kKernelFloat:
      return IsKernelFloat(backend, type);
    case TypeRule::Kind::kSameAs:
      return type == types[rule.same_as];
    case TypeRule::Kind::kExactly:
      return type == rule.type;
    case TypeRule::Kind::kMaskInteger:
      return type == ElementType::kInt32 || type == ElementType::kInt64;
  }
  return false;
}

inline std::string ShapeString(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    out += (i == 0 ? "" : ", ") + (Known(dims[i]) ? std::to_string(dims[i]) : std::string("?"));
  }
  return out + "]";
}

// What a rule asks for, for messages.
inline std::string TypeRuleText(const TensorSpec* specs, const TypeRule& rule, Backend backend) {
  switch (rule.kind) {
    case TypeRule::Kind::kKernelFloat:
      return KernelFloatNames(backend);
    case TypeRule::Kind::kSameAs:
      return StrCat("of the type of '", specs[rule.same_as].name, "'");
    case TypeRule::Kind::kExactly:
      return ElementTypeName(rule.type);
    case TypeRule::Kind::kMaskInteger:
      return "int64 or int32";
  }
  return "";
}

// Ranks and element types of the inputs against `specs` (the op's inputs come first there), in
// order: the first broken rule, named as "input '<name>' must ...". Unknown types are skipped.
inline Status ValidateRanksAndTypes(const TensorSpec* specs, const TensorDesc* inputs, int num_inputs,
                                    Backend backend) {
  std::vector<ElementType> types(static_cast<size_t>(num_inputs));
  for (int i = 0; i < num_inputs; ++i) {
    const TensorSpec& spec = specs[i];
    const TensorDesc& input = inputs[i];
    if (!input.present) {
      BYTETX_CHECK(spec.optional, "required input '", spec.name, "' is missing");
      continue;
    }
    types[static_cast<size_t>(i)] = input.type;
    BYTETX_CHECK(input.dims.size() == spec.rank, "input '", spec.name, "' must have rank ", spec.rank, " (",
                 spec.dims, "), but its shape is ", ShapeString(input.dims));
    const bool earlier_unknown =
        spec.type.kind == TypeRule::Kind::kSameAs && types[static_cast<size_t>(spec.type.same_as)] == ElementType::kUnknown;
    if (input.type == ElementType::kUnknown || earlier_unknown) {
      continue;
    }
    BYTETX_CHECK(TypeAllowed(specs, i, input.type, types.data(), backend), "input '", spec.name, "' must be ",
                 TypeRuleText(specs, spec.type, backend), ", but it is ", ElementTypeName(input.type));
  }
  return Status::Ok();
}

// The element type an output gets: its rule applied to the input types (kUnknown where the rule
// leaves a choice).
inline ElementType OutputType(const TensorSpec& spec, const ElementType* input_types) {
  switch (spec.type.kind) {
    case TypeRule::Kind::kSameAs:
      return input_types[spec.type.same_as];
    case TypeRule::Kind::kExactly:
      return spec.type.type;
    default:
      return ElementType::kUnknown;
  }
}

// Two dimensions that must agree where both are known.
inline bool Compatible(int64_t a, int64_t b) { return !Known(a) || !Known(b) || a == b; }

}  // namespace bytetx::contract
