// ONNX Runtime shell of RemovePadding (docs/ops.md): validates the inputs, then runs the CPU kernel.
#pragma once

#include "ort/kernel_utils.h"

namespace bytetx::ort {

struct RemovePaddingKernel {
  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;
};

struct RemovePaddingOp : Ort::CustomOpBase<RemovePaddingOp, RemovePaddingKernel, /*WithStatus=*/true> {
  static constexpr const char* kName = "RemovePadding";

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept;
  const char* GetName() const { return kName; }
  size_t GetInputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  size_t GetOutputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;
};

}  // namespace bytetx::ort
