// ParallelFor: the hook through which kernels use a framework's thread pool without including it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>

#include "common/checks.h"

namespace bytetx {

// Runs body(i) for every i in [0, total), possibly concurrently, and returns once all calls are done.
// It does not own anything: `runner` is a plain function plus a context pointer (e.g. ONNX Runtime's
// KernelContext_ParallelFor), so a kernel can take one by const reference without allocating.
class ParallelFor {
 public:
  using Body = void (*)(void* body_context, size_t index);
  using Runner = Status (*)(void* runner_context, size_t total, Body body, void* body_context);

  ParallelFor(Runner runner, void* runner_context) : runner_(runner), runner_context_(runner_context) {}

  // Runs everything on the calling thread (tests, harnesses, single-threaded callers).
  static ParallelFor Serial() { return ParallelFor(&RunSerially, nullptr); }

  // Calls fn(i) for i in [0, total). An exception thrown by fn never reaches the thread pool: the
  // first one is turned into the returned error and the remaining calls are skipped.
  template <typename Fn>
  Status operator()(size_t total, const Fn& fn) const {
    if (total == 0) {
      return Status::Ok();
    }
    Invocation<Fn> invocation(&fn);
    BYTETX_RETURN_IF_ERROR(runner_(runner_context_, total, &Invocation<Fn>::Call, &invocation));
    if (invocation.failed.load()) {
      return Status::Internal(StrCat("a parallel task failed: ", Describe(invocation.error)));
    }
    return Status::Ok();
  }

  // Splits [0, n) into blocks of `grain` items and calls fn(begin, end) once per block.
  template <typename Fn>
  Status ForRange(size_t n, size_t grain, const Fn& fn) const {
    grain = std::max<size_t>(grain, 1);
    return (*this)((n + grain - 1) / grain, [&](size_t block) {
      const size_t begin = block * grain;
      fn(begin, std::min(n, begin + grain));
    });
  }

 private:
  template <typename Fn>
  struct Invocation {
    explicit Invocation(const Fn* f) : fn(f) {}

    const Fn* fn;
    std::atomic<bool> failed{false};
    std::exception_ptr error;  // written once, by the task that set `failed` first

    static void Call(void* context, size_t index) {
      auto* self = static_cast<Invocation*>(context);
      if (self->failed.load(std::memory_order_relaxed)) {
        return;
      }
      try {
        (*self->fn)(index);
      } catch (...) {
        if (!self->failed.exchange(true)) {
          self->error = std::current_exception();
        }
      }
    }
  };

  static Status RunSerially(void* /*runner_context*/, size_t total, Body body, void* body_context) {
    for (size_t i = 0; i < total; ++i) {
      body(body_context, i);
    }
    return Status::Ok();
  }

  static std::string Describe(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "unknown exception";
    }
  }

  Runner runner_;
  void* runner_context_;
};

}  // namespace bytetx
