#include "ort/kernel_utils.h"

#include <optional>
#include <stdexcept>
#include <vector>

namespace bytetx::ort {
namespace {

Status RunOnIntraOpPool(void* runner_context, size_t total, ParallelFor::Body body, void* body_context) {
  if (total == 1) {
    body(body_context, 0);
    return Status::Ok();
  }
  // num_batch 0: one pool work item per index, handed out dynamically, so uneven tasks balance.
  const auto* context = static_cast<const OrtKernelContext*>(runner_context);
  Ort::Status status(Ort::GetApi().KernelContext_ParallelFor(context, body, total, 0, body_context));
  if (!status.IsOK()) {
    return Status::Internal(StrCat("ONNX Runtime's ParallelFor failed: ", status.GetErrorMessage()));
  }
  return Status::Ok();
}

}  // namespace

OrtStatusPtr MakeOrtStatus(OrtErrorCode code, const char* op, const char* message) noexcept {
  const OrtApi& api = Ort::GetApi();
  try {
    return api.CreateStatus(code, StrCat(op, ": ", message).c_str());
  } catch (...) {  // could not even build the string: report the bare message
    return api.CreateStatus(code, message);
  }
}

namespace {

// An optional float attribute: absent, or a float; an int of that name is refused, not taken as absent.
Status ReadOptionalFloat(const OrtApi& api, const OrtKernelInfo* info, const char* name, std::optional<float>* out) {
  float value = 0.0f;
  if (Ort::Status(api.KernelInfoGetAttribute_float(info, name, &value)).IsOK()) {
    *out = value;
    return Status::Ok();
  }
  int64_t int_value = 0;
  BYTETX_CHECK(!Ort::Status(api.KernelInfoGetAttribute_int64(info, name, &int_value)).IsOK(), "attribute '", name,
               "' must be a float, but it is the int ", int_value);
  *out = std::nullopt;
  return Status::Ok();
}

// An optional int attribute, as ReadOptionalFloat.
Status ReadOptionalInt(const OrtApi& api, const OrtKernelInfo* info, const char* name, std::optional<int64_t>* out) {
  int64_t value = 0;
  if (Ort::Status(api.KernelInfoGetAttribute_int64(info, name, &value)).IsOK()) {
    *out = value;
    return Status::Ok();
  }
  float float_value = 0.0f;
  BYTETX_CHECK(!Ort::Status(api.KernelInfoGetAttribute_float(info, name, &float_value)).IsOK(), "attribute '", name,
               "' must be an int, but it is the float ", float_value);
  *out = std::nullopt;
  return Status::Ok();
}

// An optional list of floats: absent (or empty), or floats; a float, an int or ints of that name are
// refused. (ONNX Runtime answers the size query of a scalar or int list with size 0, not an error.)
Status ReadOptionalFloats(const OrtApi& api, const OrtKernelInfo* info, const char* name, std::vector<float>* out) {
  out->clear();
  size_t size = 0;
  if (Ort::Status(api.KernelInfoGetAttributeArray_float(info, name, nullptr, &size)).IsOK() && size > 0) {
    out->resize(size);
    const Ort::Status status(api.KernelInfoGetAttributeArray_float(info, name, out->data(), &size));
    BYTETX_CHECK(status.IsOK(), "attribute '", name, "' must be a list of floats: ", status.GetErrorMessage());
    return Status::Ok();
  }
  float value = 0.0f;
  int64_t int_value = 0;
  size_t int_count = 0;
  const bool other_type = Ort::Status(api.KernelInfoGetAttribute_float(info, name, &value)).IsOK() ||
                          Ort::Status(api.KernelInfoGetAttribute_int64(info, name, &int_value)).IsOK() ||
                          (Ort::Status(api.KernelInfoGetAttributeArray_int64(info, name, nullptr, &int_count)).IsOK() &&
                           int_count > 0);
  BYTETX_CHECK(!other_type, "attribute '", name, "' must be a list of floats");
  return Status::Ok();
}

}  // namespace

Status ReadFusedMHAAttributes(const OrtApi& api, const OrtKernelInfo* info,
                              contract::FusedMHA::Attributes* attributes) {
  const Ort::Status heads_status(api.KernelInfoGetAttribute_int64(info, "num_heads", &attributes->num_heads));
  BYTETX_CHECK(heads_status.IsOK(), "attribute 'num_heads' (int) is required: ", heads_status.GetErrorMessage());
  BYTETX_RETURN_IF_ERROR(ReadOptionalFloat(api, info, "scale", &attributes->scale));
  BYTETX_RETURN_IF_ERROR(
      ReadOptionalInt(api, info, "relative_position_max_distance", &attributes->relative_position_max_distance));
  BYTETX_RETURN_IF_ERROR(ReadOptionalFloats(api, info, "rotary_frequencies", &attributes->rotary_frequencies));
  BYTETX_RETURN_IF_ERROR(ReadOptionalInt(api, info, "sliding_window", &attributes->sliding_window));
  BYTETX_RETURN_IF_ERROR(ReadOptionalInt(api, info, "position_buckets", &attributes->position_buckets));
  return ReadOptionalInt(api, info, "max_relative_positions", &attributes->max_relative_positions);
}

ParallelFor OrtParallelFor(OrtKernelContext* context) { return ParallelFor(&RunOnIntraOpPool, context); }

std::vector<Ort::ConstValue> ContractInputs(const Ort::KernelContext& context, const contract::TensorSpec* specs,
                                            int count) {
  std::vector<Ort::ConstValue> values;
  const size_t given = context.GetInputCount();
  for (int i = 0; i < count; ++i) {
    values.push_back(static_cast<size_t>(i) < given ? context.GetInput(static_cast<size_t>(i)) : Ort::ConstValue{});
    if (values.back() == nullptr && !specs[i].optional) {
      throw std::runtime_error(StrCat("required input '", specs[i].name, "' is missing"));
    }
  }
  return values;
}

std::vector<contract::TensorDesc> Describe(const std::vector<Ort::ConstValue>& values) {
  std::vector<contract::TensorDesc> descs;
  for (const Ort::ConstValue& value : values) {
    if (value == nullptr) {
      descs.push_back({contract::ElementType::kUnknown, {}, /*present=*/false});
      continue;
    }
    const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
    descs.push_back({ToElementType(info.GetElementType()), info.GetShape()});
  }
  return descs;
}

contract::ElementType ToElementType(ONNXTensorElementDataType type) {
  using contract::ElementType;
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return ElementType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return ElementType::kFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return ElementType::kBFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return ElementType::kFloat64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
      return ElementType::kInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return ElementType::kUInt8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
      return ElementType::kInt16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return ElementType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      return ElementType::kInt64;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return ElementType::kBool;
    default:
      return ElementType::kOther;
  }
}

ONNXTensorElementDataType ToOrtType(contract::ElementType type) {
  using contract::ElementType;
  switch (type) {
    case ElementType::kFloat32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    case ElementType::kFloat16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    case ElementType::kBFloat16:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
    case ElementType::kInt32:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case ElementType::kInt64:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    default:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }
}

}  // namespace bytetx::ort
