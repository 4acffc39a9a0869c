// Glue shared by the ONNX Runtime shells: error conversion that never lets an exception cross the
// library boundary, the ParallelFor hook on ORT's intra-op pool, and input inspection helpers.
// ORT_API_MANUAL_INIT is defined for the whole target (CMake): the API table comes from
// RegisterCustomOps, never from linking libonnxruntime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "common/checks.h"
#include "common/parallel_for.h"

namespace bytetx::ort {

// An OrtStatus whose message is "<op>: <message>"; never throws.
OrtStatusPtr MakeOrtStatus(OrtErrorCode code, const char* op, const char* message) noexcept;

// Runs fn (returning Status) and reports its failure, or any exception, as an OrtStatus naming the op.
template <typename Fn>
OrtStatusPtr Guarded(const char* op, const Fn& fn) noexcept {
  try {
    const Status status = fn();
    if (status.ok()) {
      return nullptr;
    }
    const OrtErrorCode code = status.code() == Status::Code::kInvalid ? ORT_INVALID_ARGUMENT : ORT_FAIL;
    return MakeOrtStatus(code, op, status.message().c_str());
  } catch (const Ort::Exception& e) {
    return MakeOrtStatus(e.GetOrtErrorCode(), op, e.what());
  } catch (const std::exception& e) {
    return MakeOrtStatus(ORT_FAIL, op, e.what());
  } catch (...) {
    return MakeOrtStatus(ORT_FAIL, op, "unknown exception");
  }
}

// FusedMHA's attributes, read the same way (and with the same messages) by its CPU and CUDA shells:
// num_heads (int, required, >= 1) and scale (float, optional: absent gives std::nullopt; a scale
// of another type is refused rather than taken as absent).
Status ReadFusedMHAAttributes(const OrtApi& api, const OrtKernelInfo* info, int64_t* num_heads,
                              std::optional<float>* scale);

// The ParallelFor hook running on the intra-op thread pool of the given kernel context.
ParallelFor OrtParallelFor(OrtKernelContext* context);

// One input tensor of a kernel call, with the name the contract (docs/ops.md) gives it.
class Input {
 public:
  // The input at `index`; absent optional inputs give std::nullopt.
  static std::optional<Input> Get(const Ort::KernelContext& context, size_t index, const char* name);

  ONNXTensorElementDataType type() const { return type_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t axis) const { return shape_[axis]; }

  Status ExpectType(ONNXTensorElementDataType expected) const;
  // `dims` spells the expected shape for the message, e.g. "[B, S, H]".
  Status ExpectRank(size_t rank, const char* dims) const;
  // Exact shape; `dims` and `why` explain where the expected dimensions come from.
  Status ExpectShape(const std::vector<int64_t>& expected, const char* dims, const char* why) const;

  template <typename T>
  const T* Data() const {
    return value_.GetTensorData<T>();
  }

 private:
  Input(const char* name, Ort::ConstValue value);

  const char* name_;
  Ort::ConstValue value_;
  ONNXTensorElementDataType type_;
  std::vector<int64_t> shape_;
};

// Like Input::Get for a required input.
Input GetRequiredInput(const Ort::KernelContext& context, size_t index, const char* name);

const char* TypeName(ONNXTensorElementDataType type);
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace bytetx::ort
