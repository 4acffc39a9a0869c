// A stand-in for libnvinfer's two global entry points that libbytetx_trt.so looks up at run time
// (getPluginRegistry, getLogger), for tests/trt/test_emulated_plugins.py: loaded with RTLD_GLOBAL before
// the plugin library, so its static registration finds this registry. The registry refuses a second
// creator of the same namespace, name and version, as TensorRT's does, and keeps a log of the calls.
#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "recording_logger.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::string Key(const char* name, const char* version, const char* plugin_namespace) {
  return std::string(plugin_namespace) + "::" + name + "/" + version;
}

std::string KeyOf(const nvinfer1::IPluginCreatorInterface& creator) {
  const auto& v3 = static_cast<const nvinfer1::IPluginCreatorV3One&>(creator);
  return Key(v3.getPluginName(), v3.getPluginVersion(), v3.getPluginNamespace());
}

class FakeRegistry final : public nvinfer1::IPluginRegistry {
 public:
  bool registerCreator(nvinfer1::IPluginCreatorInterface& creator, const char* plugin_namespace) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    const std::string key = KeyOf(creator);
    log_ += "register " + key + " (namespace argument '" + plugin_namespace + "')\n";
    for (const auto* other : creators_) {
      if (KeyOf(*other) == key) {
        return false;
      }
    }
    creators_.push_back(&creator);
    return true;
  }

  bool deregisterCreator(const nvinfer1::IPluginCreatorInterface& creator) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    log_ += "deregister " + KeyOf(creator) + "\n";
    for (auto it = creators_.begin(); it != creators_.end(); ++it) {
      if (*it == &creator) {
        creators_.erase(it);
        return true;
      }
    }
    return false;
  }

  nvinfer1::IPluginCreatorInterface* getCreator(const char* name, const char* version,
                                                const char* plugin_namespace) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (auto* creator : creators_) {
      if (KeyOf(*creator) == Key(name, version, plugin_namespace)) {
        return creator;
      }
    }
    return nullptr;
  }

  nvinfer1::IPluginCreatorInterface* const* getAllCreators(int32_t* const count) const noexcept override {
    *count = static_cast<int32_t>(creators_.size());
    return creators_.data();
  }

  std::string State() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::string state = log_ + "registered:";
    for (const auto* creator : creators_) {
      state += " " + KeyOf(*creator);
    }
    return state;
  }

  // The rest of the interface, unused by the plugin library.
  void setErrorRecorder(nvinfer1::IErrorRecorder* const /*recorder*/) noexcept override {}
  nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
  bool isParentSearchEnabled() const override { return false; }
  void setParentSearchEnabled(bool const /*enabled*/) override {}
  PluginLibraryHandle loadLibrary(const char* /*path*/) noexcept override { return nullptr; }
  void deregisterLibrary(PluginLibraryHandle /*handle*/) noexcept override {}
  nvinfer1::IPluginResource* acquirePluginResource(const char* /*key*/,
                                                   nvinfer1::IPluginResource* /*resource*/) noexcept override {
    return nullptr;
  }
  int32_t releasePluginResource(const char* /*key*/) noexcept override { return 0; }
#if NV_TENSORRT_MAJOR > 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR >= 10)
  nvinfer1::IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const count) noexcept override {
    return getAllCreators(count);
  }
#endif
#if NV_TENSORRT_MAJOR < 11  // the IPluginV2 registry methods, deprecated in 10 and gone in 11
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  bool registerCreator(nvinfer1::IPluginCreator& /*creator*/, const char* const /*ns*/) noexcept override {
    return false;
  }
  nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const count) const noexcept override {
    *count = 0;
    return nullptr;
  }
  nvinfer1::IPluginCreator* getPluginCreator(const char* const /*name*/, const char* const /*version*/,
                                             const char* const /*ns*/) noexcept override {
    return nullptr;
  }
  bool deregisterCreator(const nvinfer1::IPluginCreator& /*creator*/) noexcept override { return false; }
#pragma GCC diagnostic pop
#endif

 private:
  std::mutex mutex_;
  std::vector<nvinfer1::IPluginCreatorInterface*> creators_;
  std::string log_;
};

using bytetx_trt_host::RecordingLogger;

FakeRegistry& Registry() {
  static FakeRegistry registry;
  return registry;
}

RecordingLogger& Logger() {
  static RecordingLogger logger;
  return logger;
}

int32_t Copy(const std::string& text, char* buffer, int32_t size) {
  if (size > 0) {
    std::strncpy(buffer, text.c_str(), static_cast<size_t>(size) - 1);
    buffer[size - 1] = '\0';
  }
  return static_cast<int32_t>(text.size());
}

}  // namespace

FAKE_EXPORT nvinfer1::IPluginRegistry* getPluginRegistry() noexcept { return &Registry(); }
FAKE_EXPORT nvinfer1::ILogger* getLogger() noexcept { return &Logger(); }

// What the registry saw and holds; what the global logger received since the last call.
FAKE_EXPORT int32_t fake_registry_state(char* buffer, int32_t size) { return Copy(Registry().State(), buffer, size); }
FAKE_EXPORT int32_t fake_take_global_log(char* buffer, int32_t size) { return Copy(Logger().Take(), buffer, size); }
