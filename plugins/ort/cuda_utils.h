// Glue shared by the ONNX Runtime CUDA shells: ORT's compute stream, scratch memory from ORT's
// allocator, dtype mapping and CUDA errors as Status. Host C++ only (compiled by the host compiler);
// the kernels are reached through the launchers of plugins/kernels/.
#pragma once

#include <cuda_runtime.h>
#include <onnxruntime_cxx_api.h>

#include <cstddef>

#include "common/checks.h"
#include "kernels/common/data_type.h"

namespace bytetx::ort {

constexpr const char* kCudaExecutionProvider = "CUDAExecutionProvider";

// The element types the CUDA ops accept for their floating-point tensors.
constexpr ONNXTensorElementDataType kCudaFloatTypes[] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                         ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16,
                                                         ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16};

cuda::DataType ToCudaDataType(ONNXTensorElementDataType type);

// The stream ORT runs the node on: every launch goes there, nothing waits for it.
cudaStream_t ComputeStream(OrtKernelContext* context);

// A launcher's status; `what` names the launch for the message.
Status CudaStatus(cudaError_t error, const char* what);

// Device memory for one Compute call from ORT's allocator of `memory_info` (that of a device tensor
// of the node). Freed when the object goes: work queued on the compute stream still uses it safely,
// as ORT's allocator hands memory out again only to work ordered after it on that stream.
class ScratchBuffer {
 public:
  ScratchBuffer(OrtKernelContext* context, const OrtMemoryInfo* memory_info, size_t bytes);
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  void* data() const { return data_; }

 private:
  OrtAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
};

}  // namespace bytetx::ort
