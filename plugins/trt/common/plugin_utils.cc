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

contract::ElementType ToElementType(nvinfer1::DataType type) noexcept {
  using contract::ElementType;
  switch (type) {
    case nvinfer1::DataType::kFLOAT:
      return ElementType::kFloat32;
    case nvinfer1::DataType::kHALF:
      return ElementType::kFloat16;
    case nvinfer1::DataType::kBF16:
      return ElementType::kBFloat16;
    case nvinfer1::DataType::kINT32:
      return ElementType::kInt32;
    case nvinfer1::DataType::kINT64:
      return ElementType::kInt64;
    case nvinfer1::DataType::kINT8:
      return ElementType::kInt8;
    case nvinfer1::DataType::kUINT8:
      return ElementType::kUInt8;
    case nvinfer1::DataType::kBOOL:
      return ElementType::kBool;
    default:
      return ElementType::kOther;
  }
}

nvinfer1::DataType ToTrtType(contract::ElementType type) noexcept {
  using contract::ElementType;
  switch (type) {
    case ElementType::kFloat16:
      return nvinfer1::DataType::kHALF;
    case ElementType::kBFloat16:
      return nvinfer1::DataType::kBF16;
    case ElementType::kInt32:
      return nvinfer1::DataType::kINT32;
    case ElementType::kInt64:
      return nvinfer1::DataType::kINT64;
    default:
      return nvinfer1::DataType::kFLOAT;
  }
}

contract::TensorDesc Describe(const nvinfer1::PluginTensorDesc& desc) {
  contract::TensorDesc out{ToElementType(desc.type), {}};
  for (int32_t i = 0; i < desc.dims.nbDims; ++i) {
    out.dims.push_back(desc.dims.d[i] < 0 ? contract::kUnknownDim : desc.dims.d[i]);
  }
  return out;
}

contract::TensorDesc Describe(const nvinfer1::DimsExprs& dims) {
  contract::TensorDesc out;
  for (int32_t i = 0; i < dims.nbDims; ++i) {
    const nvinfer1::IDimensionExpr* dim = dims.d[i];
    out.dims.push_back(dim != nullptr && dim->isConstant() ? dim->getConstantValue() : contract::kUnknownDim);
  }
  return out;
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

Status ReadOptionalIntField(const nvinfer1::PluginField& field, std::optional<int64_t>* value) {
  int64_t read = 0;
  BYTETX_RETURN_IF_ERROR(ReadIntField(field, &read));
  *value = read;
  return Status::Ok();
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

Status ReadFloatsField(const nvinfer1::PluginField& field, std::vector<float>* values) {
  BYTETX_CHECK(field.data != nullptr && field.length >= 1, "field '", FieldName(field),
               "' must hold one or more floats, but it has none");
  values->resize(static_cast<size_t>(field.length));
  for (int32_t i = 0; i < field.length; ++i) {
    switch (field.type) {
      case nvinfer1::PluginFieldType::kFLOAT32:
        (*values)[i] = static_cast<const float*>(field.data)[i];
        break;
      case nvinfer1::PluginFieldType::kFLOAT64:
        (*values)[i] = static_cast<float>(static_cast<const double*>(field.data)[i]);
        break;
      default:
        return Status::Invalid(StrCat("field '", FieldName(field), "' must hold floats (PluginFieldType ",
                                      static_cast<int32_t>(field.type), " given)"));
    }
  }
  return Status::Ok();
}

Status ReadStringField(const nvinfer1::PluginField& field, std::string* value) {
  BYTETX_CHECK(field.type == nvinfer1::PluginFieldType::kCHAR, "field '", FieldName(field),
               "' must be a string (PluginFieldType ", static_cast<int32_t>(nvinfer1::PluginFieldType::kCHAR),
               ", but ", static_cast<int32_t>(field.type), " given)");
  BYTETX_CHECK(field.data != nullptr && field.length >= 0, "field '", FieldName(field), "' must hold a string");
  const char* text = static_cast<const char*>(field.data);
  size_t length = static_cast<size_t>(field.length);
  while (length > 0 && text[length - 1] == '\0') {
    --length;
  }
  value->assign(text, length);
  return Status::Ok();
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
