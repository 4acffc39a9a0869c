// ONNX Runtime CUDA shell of RebuildPadding (docs/ops.md, "CUDA execution provider"): checks shapes
// and dtypes on the host, then scatters on ORT's compute stream. token_offset stays on the device.
#pragma once

#include "ort/kernel_utils.h"

namespace bytetx::ort {

class CudaRebuildPaddingKernel {
 public:
  explicit CudaRebuildPaddingKernel(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;

 private:
  Status Compute(OrtKernelContext* context) const;

  ONNXTensorElementDataType type_;
};

struct CudaRebuildPaddingOp
    : Ort::CustomOpBase<CudaRebuildPaddingOp, CudaRebuildPaddingKernel, /*WithStatus=*/true> {
  static constexpr const char* kName = "RebuildPadding";

  explicit CudaRebuildPaddingOp(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept;
  const char* GetName() const { return kName; }
  const char* GetExecutionProviderType() const;
  size_t GetInputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;

 private:
  ONNXTensorElementDataType type_;
};

}  // namespace bytetx::ort
