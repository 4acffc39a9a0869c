// The test host's TensorRT logger: keeps every message until the test takes them. Shared by the fake
// libnvinfer (the registry's logger) and the host (the logger of setLoggerFinder).
#pragma once

#include <NvInferRuntime.h>

#include <mutex>
#include <string>

namespace bytetx_trt_host {

class RecordingLogger final : public nvinfer1::ILogger {
 public:
  void log(Severity /*severity*/, const char* message) noexcept override {
    const std::lock_guard<std::mutex> lock(mutex_);
    text_ += std::string(message) + "\n";
  }
  // The messages since the last call, one a line.
  std::string Take() {
    const std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    text.swap(text_);
    return text;
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

}  // namespace bytetx_trt_host
