#include "trt/common/plugin_utils.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <sstream>
#include <utility>

#define BYTETX_STRINGIFY_VALUE(x) #x
#define BYTETX_STRINGIFY(x) BYTETX_STRINGIFY_VALUE(x)

namespace bytetx::trt {
namespace {

std::atomic<nvinfer1::ILoggerFinder*> g_logger_finder{nullptr};

// libnvinfer's global logger (`extern "C" ILogger* getLogger()`), where the process has libnvinfer.
nvinfer1::ILogger* GlobalLogger() noexcept {
  using GetLogger = nvinfer1::ILogger* (*)() noexcept;
  const auto get_logger = reinterpret_cast<GetLogger>(NvinferSymbol("getLogger"));
  return get_logger != nullptr ? get_logger() : nullptr;
}

nvinfer1::ILogger* FindLogger() noexcept {
  nvinfer1::ILoggerFinder* finder = g_logger_finder.load();
  if (finder != nullptr) {
    try {
      if (nvinfer1::ILogger* logger = finder->findLogger()) {
        return logger;
      }
    } catch (...) {  // findLogger is not declared noexcept
    }
  }
  return GlobalLogger();
}

}  // namespace

void* NvinferSymbol(const char* name) noexcept {
  // Executables linking libnvinfer (trtexec, C++ applications) have it in the global scope; Python's
  // tensorrt module loads it privately, so it is also looked up by its file name among the libraries
  // already loaded (RTLD_NOLOAD never loads one).
  if (void* symbol = dlsym(RTLD_DEFAULT, name)) {
    return symbol;
  }
  static constexpr const char* kNames[] = {"libnvinfer.so." BYTETX_STRINGIFY(NV_TENSORRT_MAJOR), "libnvinfer.so.10",
                                           "libnvinfer.so.11", "libnvinfer.so"};
  for (const char* library : kNames) {
    if (void* handle = dlopen(library, RTLD_LAZY | RTLD_NOLOAD)) {
      void* symbol = dlsym(handle, name);
      dlclose(handle);  // drops the reference RTLD_NOLOAD took; the library stays loaded
      if (symbol != nullptr) {
        return symbol;
      }
    }
  }
  return nullptr;
}

void SetLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
  if (finder != nullptr) {
    g_logger_finder.store(finder);
  }
}

void LogError(const char* plugin, const std::string& message) noexcept {
  try {
    const std::string line = StrCat("bytetx ", plugin, ": ", message);
    if (nvinfer1::ILogger* logger = FindLogger()) {
      logger->log(nvinfer1::ILogger::Severity::kERROR, line.c_str());
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  } catch (...) {  // out of memory while formatting: nothing left to report with
  }
}

std::optional<cuda::DataType> ToCudaDataType(nvinfer1::DataType type) noexcept {
  switch (type) {
    case nvinfer1::DataType::kFLOAT:
      return cuda::DataType::kFloat32;
    case nvinfer1::DataType::kHALF:
      return cuda::DataType::kFloat16;
    case nvinfer1::DataType::kBF16:
      return cuda::DataType::kBFloat16;
    default:
      return std::nullopt;
  }
}

bool IsKernelFloatType(nvinfer1::DataType type) noexcept { return ToCudaDataType(type).has_value(); }

const char* TypeName(nvinfer1::DataType type) noexcept {
  switch (type) {
    case nvinfer1::DataType::kFLOAT:
      return "float32";
    case nvinfer1::DataType::kHALF:
      return "float16";
    case nvinfer1::DataType::kBF16:
      return "bfloat16";
    case nvinfer1::DataType::kINT32:
      return "int32";
    case nvinfer1::DataType::kINT64:
      return "int64";
    case nvinfer1::DataType::kINT8:
      return "int8";
    case nvinfer1::DataType::kBOOL:
      return "bool";
    default:
      return "another type";
  }
}

std::string DimsString(const nvinfer1::Dims& dims) {
  std::ostringstream out;
  out << '[';
  for (int32_t i = 0; i < dims.nbDims; ++i) {
    out << (i > 0 ? ", " : "") << dims.d[i];
  }
  out << ']';
  return out.str();
}

Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) {
    return Status::Ok();
  }
  return Status::Internal(StrCat(what, " failed: ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

Status ExpectRank(const nvinfer1::PluginTensorDesc& desc, const char* name, int32_t rank, const char* dims) {
  BYTETX_CHECK(desc.dims.nbDims == rank, "input '", name, "' must have rank ", rank, " ", dims, ", but its shape is ",
               DimsString(desc.dims));
  return Status::Ok();
}

Status ExpectType(const nvinfer1::PluginTensorDesc& desc, const char* name, nvinfer1::DataType type) {
  BYTETX_CHECK(desc.type == type, "tensor '", name, "' must be ", TypeName(type), ", but it is ", TypeName(desc.type));
  return Status::Ok();
}

Status ExpectCounts(int32_t num_inputs, int32_t expected_inputs, int32_t num_outputs, int32_t expected_outputs) {
  BYTETX_CHECK(num_inputs == expected_inputs && num_outputs == expected_outputs, "the plugin takes ", expected_inputs,
               " inputs and gives ", expected_outputs, " outputs, but the layer has ", num_inputs, " inputs and ",
               num_outputs, " outputs");
  return Status::Ok();
}

Status ReadIntField(const nvinfer1::PluginField& field, int64_t* value) {
  BYTETX_CHECK(field.data != nullptr && field.length == 1, "field '", FieldName(field),
               "' must hold one value, but it has ", field.data == nullptr ? 0 : field.length);
  switch (field.type) {
    case nvinfer1::PluginFieldType::kINT8:
      *value = *static_cast<const int8_t*>(field.data);
      return Status::Ok();
    case nvinfer1::PluginFieldType::kINT16:
      *value = *static_cast<const int16_t*>(field.data);
      return Status::Ok();
    case nvinfer1::PluginFieldType::kINT32:
      *value = *static_cast<const int32_t*>(field.data);
      return Status::Ok();
    case nvinfer1::PluginFieldType::kINT64:
      *value = *static_cast<const int64_t*>(field.data);
      return Status::Ok();
    default:
      return Status::Invalid(StrCat("field '", FieldName(field), "' must be an integer (PluginFieldType ",
                                    static_cast<int32_t>(field.type), " given)"));
  }
}

Status ReadFloatField(const nvinfer1::PluginField& field, float* value) {
  BYTETX_CHECK(field.data != nullptr && field.length == 1, "field '", FieldName(field),
               "' must hold one value, but it has ", field.data == nullptr ? 0 : field.length);
  switch (field.type) {
    case nvinfer1::PluginFieldType::kFLOAT32:
      *value = *static_cast<const float*>(field.data);
      return Status::Ok();
    case nvinfer1::PluginFieldType::kFLOAT64:
      *value = static_cast<float>(*static_cast<const double*>(field.data));
      return Status::Ok();
    default:
      return Status::Invalid(StrCat("field '", FieldName(field), "' must be a float (PluginFieldType ",
                                    static_cast<int32_t>(field.type), " given)"));
  }
}

FieldList::FieldList(std::vector<nvinfer1::PluginField> fields) : fields_(std::move(fields)) { Point(); }

FieldList::FieldList(const FieldList& other) : fields_(other.fields_) { Point(); }

FieldList& FieldList::operator=(const FieldList& other) {
  fields_ = other.fields_;
  Point();
  return *this;
}

void FieldList::Point() {
  collection_.nbFields = static_cast<int32_t>(fields_.size());
  collection_.fields = fields_.empty() ? nullptr : fields_.data();
}

}  // namespace bytetx::trt
