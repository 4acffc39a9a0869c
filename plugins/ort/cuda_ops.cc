#include "ort/cuda_ops.h"

#include "ort/cuda_fused_mha_op.h"
#include "ort/cuda_rebuild_padding_op.h"
#include "ort/cuda_remove_padding_op.h"
#include "ort/cuda_utils.h"

namespace bytetx::ort {
namespace {

// One line per (op, type): ORT merges same-named ops into one schema and picks the kernel by type.
template <typename Op>
void AddForEveryFloatType(std::vector<const OrtCustomOp*>* ops) {
  for (const ONNXTensorElementDataType type : kCudaFloatTypes) {
    ops->push_back(new Op(type));  // never freed: see CudaOps
  }
}

}  // namespace

const std::vector<const OrtCustomOp*>& CudaOps() {
  static const std::vector<const OrtCustomOp*> ops = [] {
    std::vector<const OrtCustomOp*> all;
    AddForEveryFloatType<CudaRemovePaddingOp>(&all);
    AddForEveryFloatType<CudaFusedMHAOp>(&all);
    AddForEveryFloatType<CudaRebuildPaddingOp>(&all);
    return all;
  }();
  return ops;
}

}  // namespace bytetx::ort
