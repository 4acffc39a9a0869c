// A stand-in for the part of TensorRT that drives a plugin, for tests/trt/test_emulated_plugins.py.
// Compiled with the plugins of plugins/trt/ and the kernels under the host CUDA emulation (tests/emulation)
// against real TensorRT headers, it calls the plugins only through TensorRT's interfaces, as TensorRT
// does: getCreators, IPluginCreatorV3One::createPlugin with PluginFields as the ONNX parser makes them,
// the capabilities, getOutputShapes with an IExprBuilder that evaluates the expressions, the formats
// query, enqueue on emulated device memory, serialization through getFieldsToSerialize. Messages reach
// the logger handed over through setLoggerFinder. The C functions return 0 / nonzero as the plugin did.
#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "recording_logger.h"

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

#define HOST_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using nvinfer1::DataType;
using nvinfer1::IPluginV3;

constexpr int32_t kMaxDims = 8;

class Finder final : public nvinfer1::ILoggerFinder {
 public:
  nvinfer1::ILogger* findLogger() override { return &logger; }
  bytetx_trt_host::RecordingLogger logger;
};

Finder& TheFinder() {
  static Finder finder;
  return finder;
}

int32_t Copy(const std::string& text, char* buffer, int32_t size) {
  if (size > 0) {
    std::strncpy(buffer, text.c_str(), static_cast<size_t>(size) - 1);
    buffer[size - 1] = '\0';
  }
  return static_cast<int32_t>(text.size());
}

// An evaluated dimension expression: its value (for runtime dimensions too, so the outputs can be
// compared), whether TensorRT would know it at build time, and for size tensors the declared bounds.
class Expr final : public nvinfer1::IDimensionExpr {
 public:
  Expr(int64_t value, bool constant) : impl_(this), value_(value), constant_(constant) { mImpl = &impl_; }
  ~Expr() override = default;

  int64_t value() const { return value_; }
  bool constant() const { return constant_; }
  bool size_tensor() const { return size_tensor_; }
  int32_t size_tensor_output() const { return output_; }
  int64_t opt() const { return opt_; }
  int64_t upper() const { return upper_; }

  void MakeSizeTensor(int32_t output, int64_t opt, int64_t upper) {
    size_tensor_ = true;
    constant_ = false;
    value_ = -1;
    output_ = output;
    opt_ = opt;
    upper_ = upper;
  }

 private:
  class Impl final : public nvinfer1::apiv::VDimensionExpr {
   public:
    explicit Impl(const Expr* self) : self_(self) {}
    bool isConstant() const override { return self_->constant_; }
    int64_t getConstantValue() const override { return self_->constant_ ? self_->value_ : -1; }
    bool isSizeTensor() const override { return self_->size_tensor_; }

   private:
    const Expr* self_;
  };

  Impl impl_;
  int64_t value_;
  bool constant_;
  bool size_tensor_ = false;
  int32_t output_ = -1;
  int64_t opt_ = -1;
  int64_t upper_ = -1;
};

const Expr& AsExpr(const nvinfer1::IDimensionExpr& expr) { return static_cast<const Expr&>(expr); }

class Builder final : public nvinfer1::IExprBuilder {
 public:
  Builder() : impl_(this) { mImpl = &impl_; }
  ~Builder() override = default;

  Expr* Make(int64_t value, bool constant) {
    exprs_.push_back(std::make_unique<Expr>(value, constant));
    return exprs_.back().get();
  }

 private:
  class Impl final : public nvinfer1::apiv::VExprBuilder {
   public:
    explicit Impl(Builder* self) : self_(self) {}
    const nvinfer1::IDimensionExpr* constant(int64_t value) override { return self_->Make(value, true); }

    const nvinfer1::IDimensionExpr* operation(nvinfer1::DimensionOperation op, const nvinfer1::IDimensionExpr& first,
                                              const nvinfer1::IDimensionExpr& second) override {
      const Expr& a = AsExpr(first);
      const Expr& b = AsExpr(second);
      if (a.size_tensor() || b.size_tensor()) {
        return nullptr;  // not needed by the plugins: evaluating one would need the runtime value
      }
      int64_t value = 0;
      switch (op) {
        case nvinfer1::DimensionOperation::kSUM:
          value = a.value() + b.value();
          break;
        case nvinfer1::DimensionOperation::kPROD:
          value = a.value() * b.value();
          break;
        case nvinfer1::DimensionOperation::kMAX:
          value = std::max(a.value(), b.value());
          break;
        case nvinfer1::DimensionOperation::kMIN:
          value = std::min(a.value(), b.value());
          break;
        case nvinfer1::DimensionOperation::kSUB:
          value = a.value() - b.value();
          break;
        case nvinfer1::DimensionOperation::kEQUAL:
          value = a.value() == b.value();
          break;
        case nvinfer1::DimensionOperation::kLESS:
          value = a.value() < b.value();
          break;
        case nvinfer1::DimensionOperation::kFLOOR_DIV:
          if (b.value() == 0) {
            return nullptr;
          }
          value = a.value() / b.value();
          break;
        case nvinfer1::DimensionOperation::kCEIL_DIV:
          if (b.value() == 0) {
            return nullptr;
          }
          value = (a.value() + b.value() - 1) / b.value();
          break;
      }
      return self_->Make(value, a.constant() && b.constant());
    }

    const nvinfer1::IDimensionExpr* declareSizeTensor(int32_t output, const nvinfer1::IDimensionExpr& opt,
                                                      const nvinfer1::IDimensionExpr& upper) override {
      Expr* expr = self_->Make(-1, false);
      expr->MakeSizeTensor(output, AsExpr(opt).value(), AsExpr(upper).value());
      return expr;
    }

   private:
    Builder* self_;
  };

  Impl impl_;
  std::deque<std::unique_ptr<Expr>> exprs_;
};

nvinfer1::IPluginV3OneCore* Core(IPluginV3* plugin) {
  return static_cast<nvinfer1::IPluginV3OneCore*>(
      plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
}
nvinfer1::IPluginV3OneBuild* Build(IPluginV3* plugin) {
  return static_cast<nvinfer1::IPluginV3OneBuild*>(
      plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
}
nvinfer1::IPluginV3OneRuntime* Runtime(IPluginV3* plugin) {
  return static_cast<nvinfer1::IPluginV3OneRuntime*>(
      plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
}

nvinfer1::IPluginCreatorV3One* FindCreator(const char* name) {
  int32_t count = 0;
  nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
  for (int32_t i = 0; i < count; ++i) {
    auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
    if (std::strcmp(creator->getPluginName(), name) == 0) {
      return creator;
    }
  }
  return nullptr;
}

// How the tests spell the field types in their specs ("name:type:value").
struct FieldTypeSpelling {
  const char* name;
  nvinfer1::PluginFieldType type;
};
constexpr FieldTypeSpelling kFieldTypes[] = {
    {"i8", nvinfer1::PluginFieldType::kINT8},       {"i16", nvinfer1::PluginFieldType::kINT16},
    {"i32", nvinfer1::PluginFieldType::kINT32},     {"i64", nvinfer1::PluginFieldType::kINT64},
    {"f32", nvinfer1::PluginFieldType::kFLOAT32},   {"f64", nvinfer1::PluginFieldType::kFLOAT64},
    {"str", nvinfer1::PluginFieldType::kCHAR},
};

const char* FieldTypeName(nvinfer1::PluginFieldType type) {
  for (const FieldTypeSpelling& spelling : kFieldTypes) {
    if (spelling.type == type) {
      return spelling.name;
    }
  }
  return "other";
}

// PluginFields from "name:type:value;..." (types i8 i16 i32 i64 f32 f64 str; numbers may be a list
// "v1,v2,..."), the values kept in `storage`.
std::vector<nvinfer1::PluginField> ParseFields(const std::string& spec, std::deque<std::string>& names,
                                               std::deque<std::vector<char>>& storage) {
  std::vector<nvinfer1::PluginField> fields;
  std::stringstream entries(spec);
  std::string entry;
  while (std::getline(entries, entry, ';')) {
    if (entry.empty()) {
      continue;
    }
    const size_t first = entry.find(':');
    const size_t second = entry.find(':', first + 1);
    names.push_back(entry.substr(0, first));
    const std::string type = entry.substr(first + 1, second - first - 1);
    const std::string value = entry.substr(second + 1);
    std::vector<char> bytes;
    nvinfer1::PluginFieldType field_type = nvinfer1::PluginFieldType::kUNKNOWN;
    int32_t count = 0;
    // Appends each comma-separated item of `value`, converted by `convert`.
    auto put = [&bytes, &count, &value](const auto& convert) {
      std::stringstream items(value);
      std::string item;
      while (std::getline(items, item, ',')) {
        const auto number = convert(item);
        const size_t offset = bytes.size();
        bytes.resize(offset + sizeof(number));
        std::memcpy(bytes.data() + offset, &number, sizeof(number));
        ++count;
      }
    };
    if (type == "i8") {
      put([](const std::string& v) { return static_cast<int8_t>(std::stoll(v)); });
      field_type = nvinfer1::PluginFieldType::kINT8;
    } else if (type == "i16") {
      put([](const std::string& v) { return static_cast<int16_t>(std::stoll(v)); });
      field_type = nvinfer1::PluginFieldType::kINT16;
    } else if (type == "i32") {
      put([](const std::string& v) { return static_cast<int32_t>(std::stoll(v)); });
      field_type = nvinfer1::PluginFieldType::kINT32;
    } else if (type == "i64") {
      put([](const std::string& v) { return static_cast<int64_t>(std::stoll(v)); });
      field_type = nvinfer1::PluginFieldType::kINT64;
    } else if (type == "f32") {
      put([](const std::string& v) { return std::stof(v); });
      field_type = nvinfer1::PluginFieldType::kFLOAT32;
    } else if (type == "f64") {
      put([](const std::string& v) { return std::stod(v); });
      field_type = nvinfer1::PluginFieldType::kFLOAT64;
    } else {
      bytes.assign(value.begin(), value.end());
      bytes.push_back('\0');
      field_type = nvinfer1::PluginFieldType::kCHAR;
    }
    storage.push_back(std::move(bytes));
    const int32_t length = field_type == nvinfer1::PluginFieldType::kCHAR ? static_cast<int32_t>(value.size()) : count;
    fields.emplace_back(names.back().c_str(), storage.back().data(), field_type, length);
  }
  return fields;
}

nvinfer1::Dims MakeDims(int32_t rank, const int64_t* dims) {
  nvinfer1::Dims out{};
  out.nbDims = rank;
  for (int32_t i = 0; i < rank; ++i) {
    out.d[i] = dims[i];
  }
  return out;
}

// Tensor descriptions from flat arrays: ranks[i], then kMaxDims dims per tensor.
std::vector<nvinfer1::PluginTensorDesc> MakeDescs(int32_t count, const int32_t* types, const int32_t* ranks,
                                                  const int64_t* dims) {
  std::vector<nvinfer1::PluginTensorDesc> descs(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    descs[i].dims = MakeDims(ranks[i], dims + i * kMaxDims);
    descs[i].type = static_cast<DataType>(types[i]);
    descs[i].format = nvinfer1::TensorFormat::kLINEAR;
    descs[i].scale = 1.0f;
  }
  return descs;
}

}  // namespace

HOST_EXPORT void host_install_logger() { setLoggerFinder(&TheFinder()); }

HOST_EXPORT int32_t host_take_log(char* buffer, int32_t size) { return Copy(TheFinder().logger.Take(), buffer, size); }

// One line per creator: "interface-kind|name|version|namespace|field:type,field:type".
HOST_EXPORT int32_t host_creators(char* buffer, int32_t size) {
  int32_t count = 0;
  nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
  std::string text;
  for (int32_t i = 0; i < count; ++i) {
    auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
    text += std::string(creator->getInterfaceInfo().kind) + "|" + creator->getPluginName() + "|" +
            creator->getPluginVersion() + "|" + creator->getPluginNamespace() + "|";
    const nvinfer1::PluginFieldCollection* fields = creator->getFieldNames();
    for (int32_t f = 0; f < fields->nbFields; ++f) {
      text += std::string(f > 0 ? "," : "") + fields->fields[f].name + ":" + FieldTypeName(fields->fields[f].type);
    }
    text += "\n";
  }
  return Copy(text, buffer, size);
}

HOST_EXPORT IPluginV3* host_create(const char* name, const char* spec, int32_t runtime_phase) {
  nvinfer1::IPluginCreatorV3One* creator = FindCreator(name);
  if (creator == nullptr) {
    return nullptr;
  }
  std::deque<std::string> names;
  std::deque<std::vector<char>> storage;
  const std::vector<nvinfer1::PluginField> fields = ParseFields(spec, names, storage);
  nvinfer1::PluginFieldCollection collection{static_cast<int32_t>(fields.size()), fields.data()};
  return creator->createPlugin(
      "node", &collection, runtime_phase != 0 ? nvinfer1::TensorRTPhase::kRUNTIME : nvinfer1::TensorRTPhase::kBUILD);
}

HOST_EXPORT void host_destroy(IPluginV3* plugin) { delete plugin; }

// "interface kinds|name|version|namespace|outputs" through the three capabilities.
HOST_EXPORT int32_t host_describe(IPluginV3* plugin, char* buffer, int32_t size) {
  nvinfer1::IPluginV3OneCore* core = Core(plugin);
  nvinfer1::IPluginV3OneBuild* build = Build(plugin);
  nvinfer1::IPluginV3OneRuntime* runtime = Runtime(plugin);
  if (core == nullptr || build == nullptr || runtime == nullptr) {
    return -1;
  }
  const std::string text = std::string(plugin->getInterfaceInfo().kind) + "," + core->getInterfaceInfo().kind + "," +
                           build->getInterfaceInfo().kind + "," + runtime->getInterfaceInfo().kind + "|" +
                           core->getPluginName() + "|" + core->getPluginVersion() + "|" + core->getPluginNamespace() +
                           "|" + std::to_string(build->getNbOutputs());
  return Copy(text, buffer, size);
}

// What TensorRT does for a new execution context, and what the builder does to copy a layer.
HOST_EXPORT IPluginV3* host_attach_to_context(IPluginV3* plugin) { return Runtime(plugin)->attachToContext(nullptr); }
HOST_EXPORT IPluginV3* host_clone(IPluginV3* plugin) { return plugin->clone(); }

// Serializes the plugin's fields (copying their bytes, as an engine does) and creates the plugin again
// from them in the runtime phase. Writes "name:type:count" of each field to `buffer`.
HOST_EXPORT IPluginV3* host_serialize_roundtrip(IPluginV3* plugin, char* buffer, int32_t size) {
  const nvinfer1::PluginFieldCollection* fields = Runtime(plugin)->getFieldsToSerialize();
  if (fields == nullptr) {
    return nullptr;
  }
  std::deque<std::string> names;
  std::deque<std::vector<char>> storage;
  std::vector<nvinfer1::PluginField> copies;
  std::string text;
  for (int32_t i = 0; i < fields->nbFields; ++i) {
    const nvinfer1::PluginField& field = fields->fields[i];
    size_t element = 0;
    switch (field.type) {
      case nvinfer1::PluginFieldType::kINT32:
      case nvinfer1::PluginFieldType::kFLOAT32:
        element = 4;
        break;
      case nvinfer1::PluginFieldType::kCHAR:
        element = 1;
        break;
      default:
        return nullptr;  // the plugins serialize only these
    }
    names.emplace_back(field.name);
    const auto* bytes = static_cast<const char*>(field.data);
    storage.emplace_back(bytes, bytes + element * static_cast<size_t>(field.length));
    copies.emplace_back(names.back().c_str(), storage.back().data(), field.type, field.length);
    text += std::string(i > 0 ? "," : "") + field.name + ":" + FieldTypeName(field.type) + ":" +
            std::to_string(field.length);
  }
  Copy(text, buffer, size);
  nvinfer1::PluginFieldCollection collection{static_cast<int32_t>(copies.size()), copies.data()};
  nvinfer1::IPluginCreatorV3One* creator = FindCreator(Core(plugin)->getPluginName());
  return creator->createPlugin("node", &collection, nvinfer1::TensorRTPhase::kRUNTIME);
}

HOST_EXPORT int32_t host_output_types(IPluginV3* plugin, int32_t num_inputs, const int32_t* input_types,
                                      int32_t num_outputs, int32_t* output_types) {
  std::vector<DataType> in(static_cast<size_t>(num_inputs));
  for (int32_t i = 0; i < num_inputs; ++i) {
    in[i] = static_cast<DataType>(input_types[i]);
  }
  std::vector<DataType> out(static_cast<size_t>(num_outputs), DataType::kBOOL);
  const int32_t status = Build(plugin)->getOutputDataTypes(out.data(), num_outputs, in.data(), num_inputs);
  for (int32_t i = 0; i < num_outputs; ++i) {
    output_types[i] = static_cast<int32_t>(out[i]);
  }
  return status;
}

// getOutputShapes on input dimensions of known values; `constant` marks those TensorRT knows at build
// time. Per output dimension: its value, its kind (0 build-time constant, 1 runtime expression, 2 size
// tensor) and, for size tensors, the declared output index, opt and upper bound.
HOST_EXPORT int32_t host_output_shapes(IPluginV3* plugin, int32_t num_inputs, const int32_t* ranks,
                                       const int64_t* dims, const int32_t* constant, int32_t num_outputs,
                                       int32_t* out_ranks, int64_t* out_values, int32_t* out_kinds,
                                       int64_t* size_tensor_info) {
  Builder builder;
  std::vector<nvinfer1::DimsExprs> inputs(static_cast<size_t>(num_inputs));
  for (int32_t i = 0; i < num_inputs; ++i) {
    inputs[i].nbDims = ranks[i];
    for (int32_t d = 0; d < ranks[i]; ++d) {
      inputs[i].d[d] = builder.Make(dims[i * kMaxDims + d], constant[i * kMaxDims + d] != 0);
    }
  }
  std::vector<nvinfer1::DimsExprs> outputs(static_cast<size_t>(num_outputs));
  const int32_t status =
      Build(plugin)->getOutputShapes(inputs.data(), num_inputs, nullptr, 0, outputs.data(), num_outputs, builder);
  if (status != 0) {
    return status;
  }
  for (int32_t i = 0; i < num_outputs; ++i) {
    out_ranks[i] = outputs[i].nbDims;
    for (int32_t d = 0; d < outputs[i].nbDims; ++d) {
      const Expr& expr = AsExpr(*outputs[i].d[d]);
      out_values[i * kMaxDims + d] = expr.value();
      out_kinds[i * kMaxDims + d] = expr.size_tensor() ? 2 : expr.constant() ? 0 : 1;
      if (expr.size_tensor()) {
        size_tensor_info[0] = expr.size_tensor_output();
        size_tensor_info[1] = expr.opt();
        size_tensor_info[2] = expr.upper();
      }
    }
  }
  return 0;
}

// supportsFormatCombination at `pos` for the given types and formats (TensorFormat values) of every
// input and output, as TensorRT asks: only inOut[0..pos] hold values the plugin may read.
HOST_EXPORT int32_t host_supports(IPluginV3* plugin, int32_t pos, int32_t num_inputs, int32_t num_outputs,
                                  const int32_t* types, const int32_t* formats) {
  std::vector<nvinfer1::DynamicPluginTensorDesc> in_out(static_cast<size_t>(num_inputs + num_outputs));
  for (int32_t i = 0; i <= pos && i < num_inputs + num_outputs; ++i) {
    in_out[i].desc.type = static_cast<DataType>(types[i]);
    in_out[i].desc.format = static_cast<nvinfer1::TensorFormat>(formats[i]);
  }
  for (int32_t i = pos + 1; i < num_inputs + num_outputs; ++i) {
    in_out[i].desc.type = static_cast<DataType>(-7);  // garbage, as TensorRT promises nothing there
    in_out[i].desc.format = static_cast<nvinfer1::TensorFormat>(-7);
  }
  return Build(plugin)->supportsFormatCombination(pos, in_out.data(), num_inputs, num_outputs) ? 1 : 0;
}

// configurePlugin with build-time dimensions (-1 for runtime dimensions).
HOST_EXPORT int32_t host_configure(IPluginV3* plugin, int32_t num_inputs, const int32_t* types, const int32_t* ranks,
                                   const int64_t* dims, int32_t num_outputs) {
  std::vector<nvinfer1::DynamicPluginTensorDesc> in(static_cast<size_t>(num_inputs));
  const std::vector<nvinfer1::PluginTensorDesc> descs = MakeDescs(num_inputs, types, ranks, dims);
  for (int32_t i = 0; i < num_inputs; ++i) {
    in[i].desc = descs[i];
    in[i].min = in[i].opt = in[i].max = descs[i].dims;
  }
  std::vector<nvinfer1::DynamicPluginTensorDesc> out(static_cast<size_t>(num_outputs));
  return Build(plugin)->configurePlugin(in.data(), num_inputs, out.data(), num_outputs);
}

// onShapeChange, then enqueue on the emulated device (host memory); waits for the stream.
HOST_EXPORT int32_t host_enqueue(IPluginV3* plugin, int32_t num_inputs, const int32_t* in_types, const int32_t* in_ranks,
                                 const int64_t* in_dims, void* const* inputs, int32_t num_outputs,
                                 const int32_t* out_types, const int32_t* out_ranks, const int64_t* out_dims,
                                 void* const* outputs) {
  const std::vector<nvinfer1::PluginTensorDesc> in = MakeDescs(num_inputs, in_types, in_ranks, in_dims);
  const std::vector<nvinfer1::PluginTensorDesc> out = MakeDescs(num_outputs, out_types, out_ranks, out_dims);
  nvinfer1::IPluginV3OneRuntime* runtime = Runtime(plugin);
  int32_t status = runtime->onShapeChange(in.data(), num_inputs, out.data(), num_outputs);
  if (status != 0) {
    return status;
  }
  status = runtime->enqueue(in.data(), out.data(), reinterpret_cast<const void* const*>(inputs), outputs, nullptr,
                            nullptr);
  if (cudaStreamSynchronize(nullptr) != cudaSuccess) {
    return -100;
  }
  return status;
}
