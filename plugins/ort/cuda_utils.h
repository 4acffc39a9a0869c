// Glue shared by the ONNX Runtime CUDA shells: ORT's compute stream and scratch memory from ORT's
// allocator. Host C++ only (compiled by the host compiler);
// the kernels are reached through the launchers of plugins/kernels/.
#pragma once

#include <cuda_runtime.h>
#include <onnxruntime_cxx_api.h>

#include <cstddef>

#include "common/checks.h"
#include "common/cuda_status.h"

namespace bytetx::ort {

// The stream ORT runs the node on: every launch goes there, nothing waits for it.
cudaStream_t ComputeStream(OrtKernelContext* context);

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
