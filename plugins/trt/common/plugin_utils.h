// Glue shared by the TensorRT plugins: the namespace every plugin carries, logging through the logger
// TensorRT hands the library, guards that keep exceptions inside the library, tensors described for
// the op contracts, and plugin fields. Host C++ only; the kernels are reached through the launchers of plugins/kernels/.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "common/checks.h"
#include "common/contract.h"

namespace bytetx::trt {

// Every plugin of the library lives in the namespace named like the ONNX domain (docs/ops.md); each
// has its own version, in its op's contract. A new behaviour is a new plugin version, never a hidden
// flag.
constexpr char kPluginNamespace[] = "com.bytetx";

// What the int32_t-returning plugin methods give TensorRT: any nonzero value fails the call, and the
// reason has been logged before.
constexpr int32_t kSuccess = 0;
constexpr int32_t kFailure = -1;

// The logger finder TensorRT passes through setLoggerFinder (plugin_registry.cc).
void SetLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

// Logs "bytetx <plugin>: <message>" as an error: through the logger TensorRT handed the library,
// else through libnvinfer's global logger when the process has one, else on stderr.
void LogError(const char* plugin, const std::string& message) noexcept;

// Runs `body` and returns its result; an exception is logged as an error of `plugin` and gives
// `on_error`. Every noexcept entry point of the library goes through this (or ReportStatus).
template <typename R, typename Body>
R Guarded(const char* plugin, R on_error, const Body& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    LogError(plugin, e.what());
  } catch (...) {
    LogError(plugin, "unknown exception");
  }
  return on_error;
}

// Runs `body` (returning Status): kSuccess, or kFailure after logging the failure or exception.
template <typename Body>
int32_t ReportStatus(const char* plugin, const Body& body) noexcept {
  return Guarded(plugin, kFailure, [&] {
    const Status status = body();
    if (status.ok()) {
      return kSuccess;
    }
    LogError(plugin, status.message());
    return kFailure;
  });
}

contract::ElementType ToElementType(nvinfer1::DataType type) noexcept;
// kFLOAT for types TensorRT has no name for (never asked for: the contracts give only these).
nvinfer1::DataType ToTrtType(contract::ElementType type) noexcept;

// A tensor for the op contract: TensorRT's -1 (a dimension of a profile's range) is the contract's
// unknown dimension.
contract::TensorDesc Describe(const nvinfer1::PluginTensorDesc& desc);
// The dimensions known at build time (constants), the others and the element type unknown.
contract::TensorDesc Describe(const nvinfer1::DimsExprs& dims);

// Where libnvinfer's exported `name` is (getPluginRegistry, getLogger), nullptr if the process has not
// loaded libnvinfer: the library never links it (plugin_registry.cc says why).
void* NvinferSymbol(const char* name) noexcept;

// One integer (kINT8, kINT16, kINT32 or kINT64) or one float (kFLOAT32 or kFLOAT64) plugin field, as
// the ONNX parser (kINT32, kFLOAT32) and the Python API (NumPy's types) make them.
Status ReadIntField(const nvinfer1::PluginField& field, int64_t* value);
// ReadIntField into an optional attribute, set only where the field reads.
Status ReadOptionalIntField(const nvinfer1::PluginField& field, std::optional<int64_t>* value);
// The field's name, "" where it has none.
inline const char* FieldName(const nvinfer1::PluginField& field) { return field.name != nullptr ? field.name : ""; }
Status ReadFloatField(const nvinfer1::PluginField& field, float* value);
// One or more floats (kFLOAT32 or kFLOAT64).
Status ReadFloatsField(const nvinfer1::PluginField& field, std::vector<float>* values);
// A string (kCHAR), with or without the NUL some writers count in its length.
Status ReadStringField(const nvinfer1::PluginField& field, std::string* value);

// The fields a creator advertises (getFieldNames) or a plugin serializes (getFieldsToSerialize): the
// collection points into `fields`, so it stays valid as long as the object does.
class FieldList {
 public:
  FieldList() = default;
  explicit FieldList(std::vector<nvinfer1::PluginField> fields);
  FieldList(const FieldList& other);
  FieldList& operator=(const FieldList& other);

  const nvinfer1::PluginFieldCollection* collection() const { return &collection_; }

 private:
  void Point();

  std::vector<nvinfer1::PluginField> fields_;
  nvinfer1::PluginFieldCollection collection_{};
};

}  // namespace bytetx::trt
