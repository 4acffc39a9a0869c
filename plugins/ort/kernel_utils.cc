#include "ort/kernel_utils.h"

#include <sstream>
#include <stdexcept>

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

Status ReadFusedMHAAttributes(const OrtApi& api, const OrtKernelInfo* info, int64_t* num_heads,
                              std::optional<float>* scale) {
  const Ort::Status heads_status(api.KernelInfoGetAttribute_int64(info, "num_heads", num_heads));
  BYTETX_CHECK(heads_status.IsOK(), "attribute 'num_heads' (int) is required: ",
               heads_status.GetErrorMessage());
  BYTETX_CHECK(*num_heads >= 1, "attribute 'num_heads' must be >= 1, but it is ", *num_heads);

  float value = 0.0f;
  const Ort::Status scale_status(api.KernelInfoGetAttribute_float(info, "scale", &value));
  if (scale_status.IsOK()) {
    *scale = value;
    return Status::Ok();
  }
  int64_t int_value = 0;
  const Ort::Status int_status(api.KernelInfoGetAttribute_int64(info, "scale", &int_value));
  BYTETX_CHECK(!int_status.IsOK(), "attribute 'scale' must be a float, but it is the int ", int_value);
  *scale = std::nullopt;
  return Status::Ok();
}

ParallelFor OrtParallelFor(OrtKernelContext* context) { return ParallelFor(&RunOnIntraOpPool, context); }

Input::Input(const char* name, Ort::ConstValue value) : name_(name), value_(value) {
  const Ort::TensorTypeAndShapeInfo info = value_.GetTensorTypeAndShapeInfo();
  type_ = info.GetElementType();
  shape_ = info.GetShape();
}

std::optional<Input> Input::Get(const Ort::KernelContext& context, size_t index, const char* name) {
  Ort::ConstValue value = context.GetInput(index);
  if (value == nullptr) {
    return std::nullopt;
  }
  return Input(name, value);
}

Input GetRequiredInput(const Ort::KernelContext& context, size_t index, const char* name) {
  std::optional<Input> input = Input::Get(context, index, name);
  if (!input) {
    throw std::runtime_error(StrCat("required input '", name, "' is missing"));
  }
  return *input;
}

Status Input::ExpectType(ONNXTensorElementDataType expected) const {
  BYTETX_CHECK(type_ == expected, "input '", name_, "' must be ", TypeName(expected), ", but it is ",
               TypeName(type_));
  return Status::Ok();
}

Status Input::ExpectRank(size_t rank, const char* dims) const {
  BYTETX_CHECK(shape_.size() == rank, "input '", name_, "' must have rank ", rank, " (", dims,
               "), but its shape is ", ShapeString(shape_));
  return Status::Ok();
}

Status Input::ExpectShape(const std::vector<int64_t>& expected, const char* dims, const char* why) const {
  BYTETX_CHECK(shape_ == expected, "input '", name_, "' must have shape ", dims, " = ", ShapeString(expected),
               " ", why, ", but its shape is ", ShapeString(shape_));
  return Status::Ok();
}

const char* TypeName(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
      return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return "float16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16:
      return "bfloat16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
      return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
      return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
      return "int16";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
      return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
      return "bool";
    default:
      return "another element type";
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i == 0 ? "" : ", ") << shape[i];
  }
  out << ']';
  return out.str();
}

}  // namespace bytetx::ort
