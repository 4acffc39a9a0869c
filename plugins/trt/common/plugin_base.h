// What every bytetx plugin shares: the IPluginV3 object with its three capabilities (core, build,
// runtime), the constant name, version and namespace, cloning, and the creator's fixed identity. Each
// plugin derives from PluginBase<Plugin> and names itself with `static constexpr char kName[]`.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "trt/common/plugin_utils.h"

namespace bytetx::trt {

template <typename Plugin>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
 public:
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE:
        return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD:
        return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME:
        return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return Guarded(Plugin::kName, static_cast<nvinfer1::IPluginCapability*>(nullptr), [&] {
      LogError(Plugin::kName, StrCat("unknown plugin capability type ", static_cast<int32_t>(type)));
      return static_cast<nvinfer1::IPluginCapability*>(nullptr);
    });
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    return Guarded(Plugin::kName, static_cast<nvinfer1::IPluginV3*>(nullptr),
                   [&] { return static_cast<nvinfer1::IPluginV3*>(new Plugin(static_cast<const Plugin&>(*this))); });
  }

  const char* getPluginName() const noexcept override { return Plugin::kName; }
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }

  int32_t getNbOutputs() const noexcept override { return Plugin::kNumOutputs; }

  // Shapes are checked where they are used (enqueue), so nothing is cached between calls.
  int32_t onShapeChange(const nvinfer1::PluginTensorDesc* /*in*/, int32_t /*num_inputs*/,
                        const nvinfer1::PluginTensorDesc* /*out*/, int32_t /*num_outputs*/) noexcept override {
    return kSuccess;
  }

  // No per-context resources: every execution context gets a plain copy.
  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
    return clone();
  }

 protected:
  PluginBase() = default;
  PluginBase(const PluginBase&) = default;
  PluginBase& operator=(const PluginBase&) = delete;
};

// A creator with the library's version and namespace and the given fields (the ONNX node's attributes).
class CreatorBase : public nvinfer1::IPluginCreatorV3One {
 public:
  const char* getPluginVersion() const noexcept override { return kPluginVersion; }
  const char* getPluginNamespace() const noexcept override { return kPluginNamespace; }
  const nvinfer1::PluginFieldCollection* getFieldNames() noexcept override { return fields_.collection(); }

 protected:
  explicit CreatorBase(std::vector<nvinfer1::PluginField> fields) : fields_(std::move(fields)) {}

 private:
  FieldList fields_;
};

}  // namespace bytetx::trt
