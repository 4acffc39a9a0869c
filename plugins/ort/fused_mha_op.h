// ONNX Runtime shell of FusedMHA (docs/ops.md): reads the attributes once per node, validates the
// inputs of every call, then runs the CPU kernel.
#pragma once

#include <cstdint>
#include <optional>

#include "ort/kernel_utils.h"

namespace bytetx::ort {

class FusedMHAKernel {
 public:
  // scale: std::nullopt when the node has no 'scale' attribute (then 1 / sqrt(head_size)).
  FusedMHAKernel(int64_t num_heads, std::optional<float> scale) : num_heads_(num_heads), scale_(scale) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;

 private:
  Status Compute(OrtKernelContext* context) const;

  int64_t num_heads_;
  std::optional<float> scale_;
};

struct FusedMHAOp : Ort::CustomOpBase<FusedMHAOp, FusedMHAKernel, /*WithStatus=*/true> {
  static constexpr const char* kName = "FusedMHA";

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept;
  const char* GetName() const { return kName; }
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const;
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace bytetx::ort
