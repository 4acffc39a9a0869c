// ONNX Runtime CUDA shell of RemovePadding (docs/ops.md, "CUDA execution provider"): the mask is a
// CPU input, so T is known on the host without a synchronization and every output has its exact
// shape; the packing itself runs on ORT's compute stream.
#pragma once

#include "ort/kernel_utils.h"

namespace bytetx::ort {

class CudaRemovePaddingKernel {
 public:
  explicit CudaRemovePaddingKernel(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;

 private:
  Status Compute(OrtKernelContext* context) const;

  ONNXTensorElementDataType type_;
};

struct CudaRemovePaddingOp
    : Ort::CustomOpBase<CudaRemovePaddingOp, CudaRemovePaddingKernel, /*WithStatus=*/true> {
  static constexpr const char* kName = "RemovePadding";

  explicit CudaRemovePaddingOp(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept;
  const char* GetName() const { return kName; }
  const char* GetExecutionProviderType() const;
  size_t GetInputTypeCount() const { return 2; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtMemType GetInputMemoryType(size_t index) const;
  size_t GetOutputTypeCount() const { return 3; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;

 private:
  ONNXTensorElementDataType type_;
};

}  // namespace bytetx::ort
