// ONNX Runtime CUDA shell of FusedMHA (docs/ops.md, "CUDA execution provider"): checks every shape
// and dtype on the host, then launches on ORT's compute stream. cu_seqlens stays on the device and
// is not read on the host (that would need a sync); docs/ops.md says what the kernels do with bad values.
#pragma once

#include <cstdint>
#include <optional>

#include "ort/kernel_utils.h"

namespace bytetx::ort {

class CudaFusedMHAKernel {
 public:
  // scale: std::nullopt when the node has no 'scale' attribute (then 1 / sqrt(head_size)).
  CudaFusedMHAKernel(ONNXTensorElementDataType type, int64_t num_heads, std::optional<float> scale)
      : type_(type), num_heads_(num_heads), scale_(scale) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;

 private:
  Status Compute(OrtKernelContext* context) const;

  ONNXTensorElementDataType type_;
  int64_t num_heads_;
  std::optional<float> scale_;
};

struct CudaFusedMHAOp : Ort::CustomOpBase<CudaFusedMHAOp, CudaFusedMHAKernel, /*WithStatus=*/true> {
  static constexpr const char* kName = "FusedMHA";

  explicit CudaFusedMHAOp(ONNXTensorElementDataType type) : type_(type) {}
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept;
  const char* GetName() const { return kName; }
  const char* GetExecutionProviderType() const;
  size_t GetInputTypeCount() const { return 4; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const;
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t index) const;

 private:
  ONNXTensorElementDataType type_;
};

}  // namespace bytetx::ort
