// Kernel-side API of the host CUDA emulation (tests/emulation/README.md): built-in variables,
// __syncthreads, warp functions, atomics, and bytetx_emulation::Launch, which runs a kernel's grid on
// the CPU. Included by the emulated <cuda_runtime.h> and, under BYTETX_CUDA_EMULATION, by
// plugins/kernels/common/launch.cuh. The machinery behind it is tests/emulation/runtime.cc.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace bytetx_emulation {

// The emulated device, as cudaDeviceGetAttribute and cudaGetDeviceProperties report it and as
// Launch enforces it (threads per block, grid size, dynamic shared memory per block).
struct DeviceConfig {
  int compute_capability = 90;
  size_t shared_memory_per_block_optin = 227 * 1024;
  int multiprocessor_count = 132;
};
void SetDeviceConfig(const DeviceConfig& config);
DeviceConfig GetDeviceConfig();

// The current block's dynamic shared memory: 128-byte aligned, the size given to the launch, filled
// with kPoisonByte pairs at the start of every block.
void* DynamicSharedMemory();

// Why the last launch on this host thread failed (the emulation's own diagnosis: a warp function
// reached by only part of a warp, a misaligned wmma pointer, ...); empty after a good launch.
const char* LastLaunchError();

// Uninitialized memory is filled with this 4-byte pattern: a NaN as float32 (0x7fc07fc0), and as
// each float16 or bfloat16 half (0x7fc0), so a kernel that reads it gets NaN results.
constexpr uint32_t kPoisonWord = 0x7fc07fc0u;
void Poison(void* pointer, size_t bytes);

namespace detail {

// What a kernel sees of the CUDA thread it runs as.
struct LaneInfo {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  int lane;        // index in the warp
  int warp_lanes;  // threads in this warp (32 but for the last warp of a block of another size)
};

// The CUDA thread running on this host thread; set by the runtime before it resumes a lane.
extern __thread const LaneInfo* current_lane;
inline const LaneInfo& CurrentLane() { return *current_lane; }

// The warp and block rendezvous points. A warp function gives its 64-bit payload and gets back the
// value the runtime computed once all the warp's live lanes arrived; a block barrier gives a
// predicate and gets back how many threads of the block passed a nonzero one.
enum class WarpOp : uint8_t { kSyncWarp, kShfl, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll };
uint64_t WarpCollective(WarpOp op, unsigned mask, uint64_t payload, int lane_arg, int width);
enum class BlockOp : uint8_t { kSync, kCount, kAnd, kOr };
int BlockCollective(BlockOp op, int predicate);

// wmma::mma_sync: d = a b + c for 16x16 tiles (a and b of input_bytes each, c and d of 256 floats).
// The lanes of a warp nearly always multiply identical fragments, so the product is computed by the
// first lane and looked up by the others (inputs compared byte for byte: a lane with other inputs
// computes its own); the cache lives until the warp's next rendezvous.
using MmaCompute = void (*)(const void* a, const void* b, const float* c, float* d);
void MmaSync(MmaCompute compute, const void* a, const void* b, size_t input_bytes, const float* c, float* d);

// Ends the block with `error`: the launch returns it and LastLaunchError() says `what`.
[[noreturn]] void Fail(cudaError_t error, const char* what);

template <typename T>
uint64_t ToPayload(const T& value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}

template <typename T>
T FromPayload(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

// Launch arguments convert to the kernel's parameter types as in a <<<...>>> launch (implicitly).
template <typename P, typename A>
P ConvertArgument(A&& argument) {
  return std::forward<A>(argument);
}

struct KernelLaunch {
  const void* function;   // identifies the kernel (cudaFuncSetAttribute)
  const char* signature;  // for error messages
  void (*invoke)(const void* closure);
  const void* closure;
};

cudaError_t LaunchGrid(const KernelLaunch& launch, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream);

template <typename Closure>
void InvokeClosure(const void* closure) {
  const auto* c = static_cast<const Closure*>(closure);
  std::apply(c->kernel, c->arguments);  // every CUDA thread gets its own copy of the parameters
}

}  // namespace detail

// kernel<<<grid, block, shared_bytes, stream>>>(args...), run to completion before it returns:
// blocks one after another, the threads of a block concurrently (README). Returns
// cudaErrorInvalidConfiguration or cudaErrorInvalidValue for a launch a GPU would refuse, another
// error (see LastLaunchError) when the emulation caught the kernel misbehaving, else cudaSuccess.
template <typename... Params, typename... Args>
cudaError_t Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  using Arguments = std::tuple<std::decay_t<Params>...>;
  struct Closure {
    void (*kernel)(Params...);
    Arguments arguments;
  };
  const Closure closure{kernel, Arguments(detail::ConvertArgument<std::decay_t<Params>>(std::forward<Args>(args))...)};
  const detail::KernelLaunch launch{reinterpret_cast<const void*>(kernel), __PRETTY_FUNCTION__,
                                    &detail::InvokeClosure<Closure>, &closure};
  return detail::LaunchGrid(launch, grid, block, shared_bytes, stream);
}

}  // namespace bytetx_emulation

// ---------------------------------------------------------------------------------------------------
// Built-in variables and device functions, in the global namespace as CUDA has them.
// ---------------------------------------------------------------------------------------------------

#define threadIdx (::bytetx_emulation::detail::CurrentLane().thread_idx)
#define blockIdx (::bytetx_emulation::detail::CurrentLane().block_idx)
#define blockDim (::bytetx_emulation::detail::CurrentLane().block_dim)
#define gridDim (::bytetx_emulation::detail::CurrentLane().grid_dim)

inline void __syncthreads() {
  bytetx_emulation::detail::BlockCollective(bytetx_emulation::detail::BlockOp::kSync, 0);
}
inline int __syncthreads_count(int predicate) {
  return bytetx_emulation::detail::BlockCollective(bytetx_emulation::detail::BlockOp::kCount, predicate);
}
inline int __syncthreads_and(int predicate) {
  return bytetx_emulation::detail::BlockCollective(bytetx_emulation::detail::BlockOp::kAnd, predicate);
}
inline int __syncthreads_or(int predicate) {
  return bytetx_emulation::detail::BlockCollective(bytetx_emulation::detail::BlockOp::kOr, predicate);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  bytetx_emulation::detail::WarpCollective(bytetx_emulation::detail::WarpOp::kSyncWarp, mask, 0, 0, warpSize);
}

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  using namespace bytetx_emulation::detail;
  return FromPayload<T>(WarpCollective(WarpOp::kShfl, mask, ToPayload(var), src_lane, width));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace bytetx_emulation::detail;
  return FromPayload<T>(WarpCollective(WarpOp::kShflUp, mask, ToPayload(var), static_cast<int>(delta), width));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  using namespace bytetx_emulation::detail;
  return FromPayload<T>(WarpCollective(WarpOp::kShflDown, mask, ToPayload(var), static_cast<int>(delta), width));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  using namespace bytetx_emulation::detail;
  return FromPayload<T>(WarpCollective(WarpOp::kShflXor, mask, ToPayload(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  using namespace bytetx_emulation::detail;
  return static_cast<unsigned>(WarpCollective(WarpOp::kBallot, mask, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
  using namespace bytetx_emulation::detail;
  return static_cast<int>(WarpCollective(WarpOp::kAny, mask, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
  using namespace bytetx_emulation::detail;
  return static_cast<int>(WarpCollective(WarpOp::kAll, mask, predicate != 0, 0, warpSize));
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap() { bytetx_emulation::detail::Fail(cudaErrorLaunchFailure, "__trap() was called"); }

template <typename T>
T __ldg(const T* pointer) {
  return *pointer;
}

// Atomics: real atomic read-modify-writes (GCC builtins on plain memory), since the warps of a block
// run concurrently.
namespace bytetx_emulation::detail {
template <typename T, typename Op>
T AtomicUpdate(T* address, Op op) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "atomics on 4- or 8-byte words");
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  auto* word = reinterpret_cast<Bits*>(address);
  Bits expected = __atomic_load_n(word, __ATOMIC_RELAXED);
  while (true) {
    T old;
    std::memcpy(&old, &expected, sizeof(T));
    const T updated = op(old);
    Bits desired;
    std::memcpy(&desired, &updated, sizeof(T));
    if (__atomic_compare_exchange_n(word, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      return old;
    }
  }
}
}  // namespace bytetx_emulation::detail

#define BYTETX_EMULATION_INTEGER_ATOMICS(T)                                                             \
  inline T atomicAdd(T* address, T value) { return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST); } \
  inline T atomicSub(T* address, T value) { return __atomic_fetch_sub(address, value, __ATOMIC_SEQ_CST); } \
  inline T atomicAnd(T* address, T value) { return __atomic_fetch_and(address, value, __ATOMIC_SEQ_CST); } \
  inline T atomicOr(T* address, T value) { return __atomic_fetch_or(address, value, __ATOMIC_SEQ_CST); }   \
  inline T atomicXor(T* address, T value) { return __atomic_fetch_xor(address, value, __ATOMIC_SEQ_CST); } \
  inline T atomicExch(T* address, T value) { return __atomic_exchange_n(address, value, __ATOMIC_SEQ_CST); } \
  inline T atomicMax(T* address, T value) {                                                            \
    return bytetx_emulation::detail::AtomicUpdate(address, [value](T old) { return old > value ? old : value; }); \
  }                                                                                                    \
  inline T atomicMin(T* address, T value) {                                                            \
    return bytetx_emulation::detail::AtomicUpdate(address, [value](T old) { return old < value ? old : value; }); \
  }                                                                                                    \
  inline T atomicCAS(T* address, T compare, T value) {                                                 \
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);  \
    return compare;                                                                                    \
  }

BYTETX_EMULATION_INTEGER_ATOMICS(int)
BYTETX_EMULATION_INTEGER_ATOMICS(unsigned int)
BYTETX_EMULATION_INTEGER_ATOMICS(long long)
BYTETX_EMULATION_INTEGER_ATOMICS(unsigned long long)
#undef BYTETX_EMULATION_INTEGER_ATOMICS

inline float atomicAdd(float* address, float value) {
  return bytetx_emulation::detail::AtomicUpdate(address, [value](float old) { return old + value; });
}
inline double atomicAdd(double* address, double value) {
  return bytetx_emulation::detail::AtomicUpdate(address, [value](double old) { return old + value; });
}
inline float atomicExch(float* address, float value) {
  return bytetx_emulation::detail::AtomicUpdate(address, [value](float) { return value; });
}
