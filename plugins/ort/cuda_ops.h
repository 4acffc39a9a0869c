// ONNX Runtime CUDA shells (docs/ops.md, "CUDA execution provider"): each validates shapes and types
// through the op's contract on the host and launches on ORT's compute stream. Values in device memory
// (cu_seqlens, token_offset) are not read on the host, which would need a sync; the attention mask is
// a host input (RemovePadding's GetInputMemoryType), counted there.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <vector>

namespace bytetx::ort {

// Every op for CUDAExecutionProvider, once per float type: ORT merges same-named ops into one schema
// and picks the kernel by type. ORT keeps pointers to them while sessions use them.
const std::vector<const OrtCustomOp*>& CudaOps();

}  // namespace bytetx::ort
