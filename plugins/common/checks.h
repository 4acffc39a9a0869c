// Status type and check helpers shared by the kernels and the framework shells. Plain C++ (no
// ONNX Runtime, no CUDA) so kernels and test harnesses can use it anywhere.
#pragma once

#include <sstream>
#include <string>
#include <utility>

namespace bytetx {

// Result of an operation: ok, or an error with a human-readable message. Invalid means the caller's
// input broke a rule; Internal means the operation itself could not complete (e.g. out of memory);
// Unavailable means this build lacks what was asked for (a device).
class Status {
 public:
  enum class Code { kOk, kInvalid, kInternal, kUnavailable };

  static Status Ok() { return Status(Code::kOk, {}); }
  static Status Invalid(std::string message) { return Status(Code::kInvalid, std::move(message)); }
  static Status Internal(std::string message) { return Status(Code::kInternal, std::move(message)); }
  static Status Unavailable(std::string message) { return Status(Code::kUnavailable, std::move(message)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  Code code_;
  std::string message_;
};

// Concatenates anything std::ostream can print, for error messages.
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace bytetx

// Returns from the enclosing function if `expr` yields a failed Status.
#define BYTETX_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::bytetx::Status bytetx_status_ = (expr); \
    if (!bytetx_status_.ok()) {               \
      return bytetx_status_;                  \
    }                                         \
  } while (false)

// Returns an Invalid Status whose message concatenates the remaining arguments when `cond` is false.
#define BYTETX_CHECK(cond, ...)                                          \
  do {                                                                   \
    if (!(cond)) {                                                       \
      return ::bytetx::Status::Invalid(::bytetx::StrCat(__VA_ARGS__));   \
    }                                                                    \
  } while (false)
