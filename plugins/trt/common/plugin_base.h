// What every bytetx plugin shares: the IPluginV3 object with its three capabilities (core, build,
// runtime), the op contract's identity (name, version, tensors), and every method that the contract
// alone decides: type inference, the formats query, and validation at configure, shape and enqueue
// time (through the contract, so the checks and messages are those of every other back end).
//
// A plugin derives from PluginBase<Plugin, Contract> and provides:
//   Status OutputShapes(const nvinfer1::DimsExprs* inputs, nvinfer1::DimsExprs* outputs,
//                       nvinfer1::IExprBuilder& builder) const;
//   Status Launch(const Dims& dims, const contract::TensorDesc* inputs, const void* const* input_data,
//                 void* const* output_data, cudaStream_t stream) const;
// and, where it differs from the contract's, kTensors and kNumOutputs (outputs TensorRT needs beyond
// the op's, e.g. a size tensor), Validate (an op with attributes), or NumInputs and Tensors (a plugin
// whose inputs depend on its fields: its tensors, inputs then outputs).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "common/contract.h"
#include "trt/common/plugin_utils.h"

namespace bytetx::trt {

template <typename Plugin, typename OpContract>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
 public:
  using Contract = OpContract;
  using Dims = typename Contract::Dims;
  static constexpr int32_t kNumInputs = Contract::kNumInputs;
  static constexpr int32_t kNumOutputs = Contract::kNumOutputs;
  static constexpr const contract::TensorSpec* kTensors = Contract::kTensors;

  // Shapes and types by the contract; dimensions not known yet are skipped.
  Status Validate(const contract::TensorDesc* inputs, Dims* dims) const {
    return Contract::Validate(inputs, contract::Backend::kCuda, dims);
  }
  int32_t NumInputs() const { return Plugin::kNumInputs; }
  const contract::TensorSpec* Tensors() const { return Plugin::kTensors; }

  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE:
        return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD:
        return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME:
        return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return Guarded(Name(), static_cast<nvinfer1::IPluginCapability*>(nullptr), [&] {
      LogError(Name(), StrCat("unknown plugin capability type ", static_cast<int32_t>(type)));
      return static_cast<nvinfer1::IPluginCapability*>(nullptr);
    });
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    return Guarded(Name(), static_cast<nvinfer1::IPluginV3*>(nullptr),
                   [&] { return static_cast<nvinfer1::IPluginV3*>(new Plugin(static_cast<const Plugin&>(*this))); });
  }

  const char* getPluginName() const noexcept override { return Name(); }
  const char* getPluginVersion() const noexcept override { return Plugin::Contract::kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  int32_t getNbOutputs() const noexcept override { return Plugin::kNumOutputs; }

  // Build capability.
  int32_t configurePlugin(const nvinfer1::DynamicPluginTensorDesc* in, int32_t num_inputs,
                          const nvinfer1::DynamicPluginTensorDesc* /*out*/, int32_t num_outputs) noexcept override {
    return ReportStatus(Name(), [&]() -> Status {
      BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, num_outputs));
      std::vector<contract::TensorDesc> descs;
      for (int32_t i = 0; i < num_inputs; ++i) {
        descs.push_back(Describe(in[i].desc));  // -1 marks a dimension of the profile's range
      }
      typename Plugin::Dims dims;
      return self().Validate(descs.data(), &dims);
    });
  }

  int32_t getOutputDataTypes(nvinfer1::DataType* output_types, int32_t num_outputs,
                             const nvinfer1::DataType* input_types, int32_t num_inputs) const noexcept override {
    return ReportStatus(Name(), [&]() -> Status {
      BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, num_outputs));
      const contract::TensorSpec* tensors = self().Tensors();
      std::vector<contract::ElementType> types;
      for (int32_t i = 0; i < num_inputs; ++i) {
        types.push_back(ToElementType(input_types[i]));
        BYTETX_CHECK(contract::TypeAllowed(tensors, i, types.back(), types.data(), contract::Backend::kCuda),
                     "input '", tensors[i].name, "' must be ",
                     contract::TypeRuleText(tensors, tensors[i].type, contract::Backend::kCuda), ", but it is ",
                     contract::ElementTypeName(types.back()));
      }
      for (int32_t o = 0; o < num_outputs; ++o) {
        output_types[o] = ToTrtType(contract::OutputType(tensors[num_inputs + o], types.data()));
      }
      return Status::Ok();
    });
  }

  int32_t getOutputShapes(const nvinfer1::DimsExprs* inputs, int32_t num_inputs,
                          const nvinfer1::DimsExprs* /*shape_inputs*/, int32_t /*num_shape_inputs*/,
                          nvinfer1::DimsExprs* outputs, int32_t num_outputs,
                          nvinfer1::IExprBuilder& builder) noexcept override {
    return ReportStatus(Name(), [&]() -> Status {
      BYTETX_RETURN_IF_ERROR(ExpectCounts(num_inputs, num_outputs));
      // The dimensions known at build time are checked now: e.g. an unsupported head size fails the
      // engine build, not the first inference.
      std::vector<contract::TensorDesc> descs;
      for (int32_t i = 0; i < num_inputs; ++i) {
        descs.push_back(Describe(inputs[i]));
      }
      typename Plugin::Dims dims;
      BYTETX_RETURN_IF_ERROR(self().Validate(descs.data(), &dims));
      return self().OutputShapes(inputs, outputs, builder);
    });
  }

  bool supportsFormatCombination(int32_t pos, const nvinfer1::DynamicPluginTensorDesc* in_out, int32_t num_inputs,
                                 int32_t num_outputs) noexcept override {
    if (num_inputs != self().NumInputs() || num_outputs != Plugin::kNumOutputs || pos < 0 ||
        pos >= num_inputs + num_outputs || in_out[pos].desc.format != nvinfer1::TensorFormat::kLINEAR) {
      return false;
    }
    contract::ElementType types[Contract::kNumInputs + Plugin::kNumOutputs];  // no plugin takes more inputs
    for (int32_t i = 0; i <= pos; ++i) {
      types[i] = ToElementType(in_out[i].desc.type);
    }
    return contract::TypeAllowed(self().Tensors(), pos, types[pos], types, contract::Backend::kCuda);
  }

  // Runtime capability.
  int32_t enqueue(const nvinfer1::PluginTensorDesc* input_desc, const nvinfer1::PluginTensorDesc* /*output_desc*/,
                  const void* const* inputs, void* const* outputs, void* /*workspace*/,
                  cudaStream_t stream) noexcept override {
    return ReportStatus(Name(), [&]() -> Status {
      std::vector<contract::TensorDesc> descs;
      for (int32_t i = 0; i < self().NumInputs(); ++i) {
        descs.push_back(Describe(input_desc[i]));
      }
      typename Plugin::Dims dims;
      BYTETX_RETURN_IF_ERROR(self().Validate(descs.data(), &dims));
      return self().Launch(dims, descs.data(), inputs, outputs, stream);
    });
  }

  // Shapes are checked where they are used (enqueue), so nothing is cached between calls.
  int32_t onShapeChange(const nvinfer1::PluginTensorDesc* /*in*/, int32_t /*num_inputs*/,
                        const nvinfer1::PluginTensorDesc* /*out*/, int32_t /*num_outputs*/) noexcept override {
    return kSuccess;
  }

  // No per-context resources: every execution context gets a plain copy.
  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
    return clone();
  }

  // Plugins with attributes serialize them; the others have none.
  const nvinfer1::PluginFieldCollection* getFieldsToSerialize() noexcept override { return no_fields_.collection(); }

 protected:
  PluginBase() = default;
  PluginBase(const PluginBase&) = default;
  PluginBase& operator=(const PluginBase&) = delete;

  static const char* Name() { return Plugin::Contract::kName; }

 private:
  const Plugin& self() const { return static_cast<const Plugin&>(*this); }

  Status ExpectCounts(int32_t num_inputs, int32_t num_outputs) const {
    BYTETX_CHECK(num_inputs == self().NumInputs() && num_outputs == Plugin::kNumOutputs, "the plugin takes ",
                 self().NumInputs(), " inputs and gives ", Plugin::kNumOutputs, " outputs, but the layer has ",
                 num_inputs, " inputs and ", num_outputs, " outputs");
    return Status::Ok();
  }

  FieldList no_fields_;
};

// A creator with the plugin's name and version, the library's namespace and the given fields (the
// ONNX node's attributes).
template <typename Plugin>
class CreatorBase : public nvinfer1::IPluginCreatorV3One {
 public:
  const char* getPluginName() const noexcept override { return Plugin::Contract::kName; }
  const char* getPluginVersion() const noexcept override { return Plugin::Contract::kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }
  const nvinfer1::PluginFieldCollection* getFieldNames() noexcept override { return fields_.collection(); }

 protected:
  explicit CreatorBase(std::vector<nvinfer1::PluginField> fields = {}) : fields_(std::move(fields)) {}

 private:
  FieldList fields_;
};

// The creator of a plugin without attributes.
template <typename Plugin>
class FieldlessCreator final : public CreatorBase<Plugin> {
 public:
  nvinfer1::IPluginV3* createPlugin(const char* /*name*/, const nvinfer1::PluginFieldCollection* fields,
                                    nvinfer1::TensorRTPhase /*phase*/) noexcept override {
    const char* name = Plugin::Contract::kName;
    return Guarded(name, static_cast<nvinfer1::IPluginV3*>(nullptr), [&]() -> nvinfer1::IPluginV3* {
      if (fields != nullptr && fields->nbFields > 0) {
        LogError(name, StrCat("the plugin has no fields, but '", FieldName(fields->fields[0]), "' was given"));
        return nullptr;
      }
      return new Plugin();
    });
  }
};

}  // namespace bytetx::trt
