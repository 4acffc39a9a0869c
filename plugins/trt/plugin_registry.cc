// How TensorRT finds the plugins of libbytetx_trt.so (README.md beside this file). Two ways in:
//
//  - dynamic: IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, --setPluginsToSerialize, an
//    engine carrying the library, the Python API's load_library) calls the exported setLoggerFinder
//    and getCreators and registers what getCreators returns;
//  - static: loading the library (trtexec --staticPlugins, dlopen, ctypes.CDLL) registers the
//    creators with libnvinfer's global registry from a static initializer, as REGISTER_TENSORRT_PLUGIN
//    does.
//
// REGISTER_TENSORRT_PLUGIN itself is not used, for two reasons. It calls getPluginRegistry() directly,
// so the library would have to link libnvinfer, and then could not be serialized into engines that
// the lean runtime runs. And loadLibrary fails when any of the library's creators is registered
// already, which the macro's registration, run by the dlopen inside loadLibrary, always causes. Here
// the static registration finds getPluginRegistry at run time (NvinferSymbol) and remembers what it
// registered; getCreators hands those creators back (deregisters them) before loadLibrary registers
// them again, now owned by the library handle. Loading the library both ways in one process thus
// works, in either order.
#include <NvInferRuntime.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "trt/common/plugin_utils.h"
#include "trt/fusedMHAPlugin/fused_mha_plugin.h"
#include "trt/rebuildPaddingPlugin/rebuild_padding_plugin.h"
#include "trt/removePaddingPlugin/remove_padding_plugin.h"

namespace bytetx::trt {
namespace {

constexpr char kRegistry[] = "plugin registry";
constexpr int32_t kNumCreators = 3;

// One creator per plugin, alive as long as the library is loaded.
nvinfer1::IPluginCreatorInterface* const* Creators() {
  static RemovePaddingPluginCreator remove_padding;
  static FusedMHAPluginCreator fused_mha;
  static RebuildPaddingPluginCreator rebuild_padding;
  static nvinfer1::IPluginCreatorInterface* const creators[kNumCreators] = {&remove_padding, &fused_mha,
                                                                             &rebuild_padding};
  return creators;
}

class StaticRegistration {
 public:
  static StaticRegistration& Instance() {
    static StaticRegistration instance;
    return instance;
  }

  // Registers every creator with libnvinfer's global registry, if the process has loaded libnvinfer.
  // A creator registered already (another copy of the library, a loadLibrary before) is left alone.
  void Register() {
    using GetPluginRegistry = nvinfer1::IPluginRegistry* (*)() noexcept;
    const auto get_registry = reinterpret_cast<GetPluginRegistry>(NvinferSymbol("getPluginRegistry"));
    nvinfer1::IPluginRegistry* registry = get_registry != nullptr ? get_registry() : nullptr;
    if (registry == nullptr) {
      return;  // no TensorRT in the process yet: only loadLibrary can register the plugins
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    registry_ = registry;
    for (int32_t i = 0; i < kNumCreators; ++i) {
      nvinfer1::IPluginCreatorInterface* creator = Creators()[i];
      if (registry->registerCreator(*creator, kPluginNamespace)) {
        registered_.push_back(creator);
      }
    }
  }

  // Deregisters what Register registered, so that loadLibrary can register the same creators.
  void Release() {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (nvinfer1::IPluginCreatorInterface* creator : registered_) {
      registry_->deregisterCreator(*creator);
    }
    registered_.clear();
  }

 private:
  std::mutex mutex_;
  nvinfer1::IPluginRegistry* registry_ = nullptr;
  std::vector<nvinfer1::IPluginCreatorInterface*> registered_;
};

// The static registration, run when the library is loaded.
struct StaticRegistrar {
  StaticRegistrar() {
    Guarded(kRegistry, false, [] {
      StaticRegistration::Instance().Register();
      return true;
    });
  }
};

const StaticRegistrar static_registrar;

}  // namespace
}  // namespace bytetx::trt

// The entry points IPluginRegistry::loadLibrary looks up (the only symbols the library exports,
// exports.map): TensorRT's logger for the library's messages, and the creators to register. Visible
// by their own attribute: TENSORRTAPI exports only inside TensorRT's build.
#define BYTETX_TRT_ENTRY_POINT extern "C" __attribute__((visibility("default")))

BYTETX_TRT_ENTRY_POINT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  bytetx::trt::SetLoggerFinder(finder);
}

BYTETX_TRT_ENTRY_POINT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  using namespace bytetx::trt;
  nbCreators = 0;
  return Guarded(kRegistry, static_cast<nvinfer1::IPluginCreatorInterface* const*>(nullptr), [&] {
    nvinfer1::IPluginCreatorInterface* const* creators = Creators();
    StaticRegistration::Instance().Release();
    nbCreators = kNumCreators;
    return creators;
  });
}
