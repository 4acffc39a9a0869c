// ONNX Runtime shells of the CPU kernels (docs/ops.md): each validates its inputs through the op's
// contract (values included: they are on the host), then runs the CPU kernel of plugins/cpu/.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <vector>

namespace bytetx::ort {

// Every CPU op, once; ORT keeps pointers to them while sessions use them.
const std::vector<const OrtCustomOp*>& CpuOps();

}  // namespace bytetx::ort
