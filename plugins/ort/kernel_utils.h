// Glue shared by the ONNX Runtime shells: error conversion that never lets an exception cross the
// library boundary, the ParallelFor hook on ORT's intra-op pool, the inputs of a call described for
// the op contracts, and the custom-op declarations that a contract determines.
// ORT_API_MANUAL_INIT is defined for the whole target (CMake): the API table comes from
// RegisterCustomOps, never from linking libonnxruntime.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <cstdint>
#include <exception>
#include <vector>

#include "common/checks.h"
#include "common/contract.h"
#include "common/fused_mha_contract.h"
#include "common/parallel_for.h"

namespace bytetx::ort {

// An OrtStatus whose message is "<op>: <message>"; never throws.
OrtStatusPtr MakeOrtStatus(OrtErrorCode code, const char* op, const char* message) noexcept;

// Runs fn (returning Status) and reports its failure, or any exception, as an OrtStatus naming the op.
template <typename Fn>
OrtStatusPtr Guarded(const char* op, const Fn& fn) noexcept {
  try {
    const Status status = fn();
    if (status.ok()) {
      return nullptr;
    }
    const OrtErrorCode code = status.code() == Status::Code::kInvalid ? ORT_INVALID_ARGUMENT : ORT_FAIL;
    return MakeOrtStatus(code, op, status.message().c_str());
  } catch (const Ort::Exception& e) {
    return MakeOrtStatus(e.GetOrtErrorCode(), op, e.what());
  } catch (const std::exception& e) {
    return MakeOrtStatus(ORT_FAIL, op, e.what());
  } catch (...) {
    return MakeOrtStatus(ORT_FAIL, op, "unknown exception");
  }
}

contract::ElementType ToElementType(ONNXTensorElementDataType type);
ONNXTensorElementDataType ToOrtType(contract::ElementType type);

// FusedMHA's attributes as the node gives them: num_heads (int, required), scale (float, optional),
// relative_position_max_distance and sliding_window (int, optional), rotary_frequencies (floats,
// optional); an optional attribute of another type is refused
// rather than taken as absent. The contract checks their values.
Status ReadFusedMHAAttributes(const OrtApi& api, const OrtKernelInfo* info, contract::FusedMHA::Attributes* attributes);

// The ParallelFor hook running on the intra-op thread pool of the given kernel context.
ParallelFor OrtParallelFor(OrtKernelContext* context);

// The inputs of one kernel call: described for the op's contract, and their data. An optional input
// the node leaves out is a null value (described as not present); a missing required one is an error
// naming it (`specs`).
std::vector<Ort::ConstValue> ContractInputs(const Ort::KernelContext& context, const contract::TensorSpec* specs,
                                            int count);
std::vector<contract::TensorDesc> Describe(const std::vector<Ort::ConstValue>& values);

// One call of an op: its inputs, validated by the op's contract (Validate), with their data and the
// sizes the contract found.
template <typename Contract>
class ContractCall {
 public:
  explicit ContractCall(OrtKernelContext* context)
      : context_(context),
        values_(ContractInputs(context_, Contract::kTensors, Contract::kNumInputs)),
        descs_(Describe(values_)) {}

  // `attributes`: the op's, for an op that has them (the contract's Validate takes them first).
  template <typename... Attributes>
  Status Validate(contract::Backend backend, const Attributes&... attributes) {
    return Contract::Validate(descs_.data(), attributes..., backend, &dims_);
  }

  const typename Contract::Dims& dims() const { return dims_; }
  const contract::TensorDesc& desc(int index) const { return descs_[static_cast<size_t>(index)]; }
  // nullptr for an optional input the node leaves out.
  template <typename T>
  const T* Data(int index) const {
    const Ort::ConstValue& value = values_[static_cast<size_t>(index)];
    return value == nullptr ? nullptr : value.GetTensorData<T>();
  }
  const void* RawData(int index) const {
    const Ort::ConstValue& value = values_[static_cast<size_t>(index)];
    return value == nullptr ? nullptr : value.GetTensorRawData();
  }
  Ort::ConstMemoryInfo MemoryInfo(int index) const { return values_[static_cast<size_t>(index)].GetTensorMemoryInfo(); }
  // Output `index`, allocated with the given shape.
  template <typename T>
  T* Output(size_t index, const std::vector<int64_t>& shape) const {
    return context_.GetOutput(index, shape).template GetTensorMutableData<T>();
  }
  void* RawOutput(size_t index, const std::vector<int64_t>& shape) const {
    return context_.GetOutput(index, shape).GetTensorMutableRawData();
  }

 private:
  Ort::KernelContext context_;
  std::vector<Ort::ConstValue> values_;
  std::vector<contract::TensorDesc> descs_;
  typename Contract::Dims dims_;
};

// The kernel of an op without attributes: `compute` runs one call.
template <typename Contract, Status (*compute)(OrtKernelContext*)>
struct StatelessKernel {
  static Status Create(const OrtApi& /*api*/, const OrtKernelInfo* /*info*/, StatelessKernel** kernel) {
    *kernel = new StatelessKernel();
    return Status::Ok();
  }
  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept {
    return Guarded(Contract::kName, [&] { return compute(context); });
  }
};

// FusedMHA's kernel: the node's attributes, read and validated once, and `compute` per call.
template <Status (*compute)(OrtKernelContext*, const contract::FusedMHA::Attributes&)>
class FusedMHAKernel {
 public:
  static Status Create(const OrtApi& api, const OrtKernelInfo* info, FusedMHAKernel** kernel) {
    contract::FusedMHA::Attributes attributes;
    BYTETX_RETURN_IF_ERROR(ReadFusedMHAAttributes(api, info, &attributes));
    BYTETX_RETURN_IF_ERROR(contract::FusedMHA::ValidateAttributes(attributes));
    *kernel = new FusedMHAKernel(attributes);
    return Status::Ok();
  }
  OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept {
    return Guarded(contract::FusedMHA::kName, [&] { return compute(context, attributes_); });
  }

 private:
  explicit FusedMHAKernel(const contract::FusedMHA::Attributes& attributes) : attributes_(attributes) {}

  contract::FusedMHA::Attributes attributes_;
};

// An ONNX Runtime custom op as its contract declares it: name, input and output counts and element
// types. `float_type` is the type of the op's floating-point tensors (the CUDA library registers each
// op once per type); an attention mask is declared open and checked by the contract.
template <typename Derived, typename Contract, typename Kernel>
struct ContractOp : Ort::CustomOpBase<Derived, Kernel, /*WithStatus=*/true> {
  // execution_provider: nullptr for the CPU provider.
  ContractOp(ONNXTensorElementDataType float_type, const char* execution_provider)
      : float_type_(float_type), execution_provider_(execution_provider) {}

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept {
    return Guarded(Contract::kName, [&] { return Kernel::Create(api, info, reinterpret_cast<Kernel**>(kernel)); });
  }

  const char* GetName() const { return Contract::kName; }
  const char* GetExecutionProviderType() const { return execution_provider_; }
  size_t GetInputTypeCount() const { return Contract::kNumInputs; }
  size_t GetOutputTypeCount() const { return Contract::kNumOutputs; }
  ONNXTensorElementDataType GetInputType(size_t index) const { return DeclaredType(static_cast<int>(index)); }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return DeclaredType(Contract::kNumInputs + static_cast<int>(index));
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return Contract::kTensors[index].optional ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }

 private:
  ONNXTensorElementDataType DeclaredType(int position) const {
    const contract::TypeRule& rule = Contract::kTensors[position].type;
    switch (rule.kind) {
      case contract::TypeRule::Kind::kKernelFloat:
        return float_type_;
      case contract::TypeRule::Kind::kSameAs:
        return DeclaredType(rule.same_as);
      case contract::TypeRule::Kind::kExactly:
        return ToOrtType(rule.type);
      case contract::TypeRule::Kind::kMaskInteger:
        break;
    }
    return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }

  ONNXTensorElementDataType float_type_;
  const char* execution_provider_;
};

}  // namespace bytetx::ort
