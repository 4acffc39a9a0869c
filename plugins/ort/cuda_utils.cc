#include "ort/cuda_utils.h"

#include <stdexcept>

namespace bytetx::ort {

cudaStream_t ComputeStream(OrtKernelContext* context) {
  void* stream = nullptr;
  Ort::ThrowOnError(Ort::GetApi().KernelContext_GetGPUComputeStream(context, &stream));
  return static_cast<cudaStream_t>(stream);
}

ScratchBuffer::ScratchBuffer(OrtKernelContext* context, const OrtMemoryInfo* memory_info, size_t bytes) {
  if (bytes == 0) {
    return;
  }
  const OrtApi& api = Ort::GetApi();
  Ort::ThrowOnError(api.KernelContext_GetAllocator(context, memory_info, &allocator_));
  try {
    Ort::ThrowOnError(api.KernelContext_GetScratchBuffer(context, memory_info, bytes, &data_));
  } catch (...) {
    api.ReleaseAllocator(allocator_);
    throw;
  }
  if (data_ == nullptr) {
    api.ReleaseAllocator(allocator_);
    throw std::runtime_error(StrCat("could not allocate ", bytes, " bytes of device scratch memory"));
  }
}

ScratchBuffer::~ScratchBuffer() {
  if (allocator_ != nullptr) {
    if (data_ != nullptr) {
      allocator_->Free(allocator_, data_);
    }
    Ort::GetApi().ReleaseAllocator(allocator_);
  }
}

}  // namespace bytetx::ort
