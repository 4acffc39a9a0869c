// The machinery behind the host CUDA emulation (include/bytetx_emulation.h, README.md).
//
// Execution model. Blocks run one after another. Within a block each warp runs on its own host
// thread (a pool reused across blocks and launches), so the warps of a block run concurrently and
// meet at __syncthreads on a real barrier. The 32 lanes of a warp are fibers (user-space contexts
// with their own stacks) on their warp's thread: a lane runs until it reaches a warp function, a
// block barrier or its end, then the next lane runs; once every live lane has arrived, the warp
// function's results are computed for all lanes at once (the per-warp barrier), and the lanes go on.
// Lanes take turns in ascending or descending order, alternating between rounds, blocks and warps,
// so that a missing __syncwarp shows whichever lane reads what another wrote.
//
// Why fibers for lanes: with a host thread per lane, a warp function costs a wake-up of each of the
// 32 threads, about 4 us each on a 2-core runner (128 us per __shfl_xor_sync, measured); the FMA
// attention kernel shuffles ~170 times per key tile and warp, which made a single fp32 attention
// case take seconds. A fiber switch costs tens of nanoseconds.
#include "bytetx_emulation.h"

#include <cuda_fp16.h>
#include <mma.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if !defined(__x86_64__) || defined(BYTETX_EMULATION_UCONTEXT)
#define BYTETX_EMULATION_USE_UCONTEXT
#include <ucontext.h>
#endif

namespace bytetx_emulation {
namespace detail {

__thread const LaneInfo* current_lane = nullptr;

namespace {

// ---------------------------------------------------------------------------------------------------
// Execution contexts: a hand-written switch on x86-64 (the callee-saved registers; MXCSR and the x87
// control word are left alone, as kernels never change them), ucontext elsewhere (or with
// -DBYTETX_EMULATION_UCONTEXT).
// ---------------------------------------------------------------------------------------------------

#if !defined(BYTETX_EMULATION_USE_UCONTEXT)

extern "C" void bytetx_emulation_switch_context(void** save_sp, void* restore_sp);
extern "C" void bytetx_emulation_fiber_entry();

asm(R"(
    .text
    .p2align 4
    .hidden bytetx_emulation_switch_context
    .type bytetx_emulation_switch_context, @function
bytetx_emulation_switch_context:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size bytetx_emulation_switch_context, .-bytetx_emulation_switch_context

    .p2align 4
    .hidden bytetx_emulation_fiber_entry
    .type bytetx_emulation_fiber_entry, @function
bytetx_emulation_fiber_entry:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size bytetx_emulation_fiber_entry, .-bytetx_emulation_fiber_entry
)");

struct ExecutionContext {
  void* sp = nullptr;
};

void MakeContext(ExecutionContext* context, void* stack, size_t stack_bytes, void (*entry)(void*), void* argument) {
  // The first switch to the context pops the registers below and returns into fiber_entry with the
  // stack 16-byte aligned, which calls entry(argument) from r12 and r13.
  const uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + stack_bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top);
  slot[-1] = reinterpret_cast<uint64_t>(&bytetx_emulation_fiber_entry);
  slot[-2] = 0;                                     // rbp
  slot[-3] = 0;                                     // rbx
  slot[-4] = reinterpret_cast<uint64_t>(entry);     // r12
  slot[-5] = reinterpret_cast<uint64_t>(argument);  // r13
  slot[-6] = 0;                                     // r14
  slot[-7] = 0;                                     // r15
  context->sp = &slot[-7];
}

void SwitchContext(ExecutionContext* from, ExecutionContext* to) { bytetx_emulation_switch_context(&from->sp, to->sp); }

#else

struct ExecutionContext {
  ucontext_t context;
  void (*entry)(void*) = nullptr;
  void* argument = nullptr;
};

void UcontextEntry(unsigned int high, unsigned int low) {
  auto* context = reinterpret_cast<ExecutionContext*>((static_cast<uintptr_t>(high) << 32) | low);
  context->entry(context->argument);
}

void MakeContext(ExecutionContext* context, void* stack, size_t stack_bytes, void (*entry)(void*), void* argument) {
  context->entry = entry;
  context->argument = argument;
  getcontext(&context->context);
  context->context.uc_stack.ss_sp = stack;
  context->context.uc_stack.ss_size = stack_bytes;
  context->context.uc_link = nullptr;
  const auto bits = reinterpret_cast<uintptr_t>(context);
  makecontext(&context->context, reinterpret_cast<void (*)()>(&UcontextEntry), 2,
              static_cast<unsigned int>(bits >> 32), static_cast<unsigned int>(bits));
}

void SwitchContext(ExecutionContext* from, ExecutionContext* to) { swapcontext(&from->context, &to->context); }

#endif

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bytetx CUDA emulation: %s\n", message.c_str());
  std::abort();
}

// A lane's stack: mapped lazily, with an inaccessible page below it so an overflow faults.
class Stack {
 public:
  static constexpr size_t kBytes = 256 * 1024;

  Stack() {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    mapping_bytes_ = kBytes + page;
    mapping_ = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
    if (mapping_ == MAP_FAILED) {
      Die("cannot map a lane stack");
    }
    mprotect(mapping_, page, PROT_NONE);
    base_ = static_cast<char*>(mapping_) + page;
  }
  ~Stack() { munmap(mapping_, mapping_bytes_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  void* base() const { return base_; }

 private:
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  void* base_ = nullptr;
};

// Indexed by the enums' values, in their order (bytetx_emulation.h).
const char* WarpOpName(WarpOp op) {
  static constexpr const char* kNames[] = {"__syncwarp",      "__shfl_sync",     "__shfl_up_sync", "__shfl_down_sync",
                                           "__shfl_xor_sync", "__ballot_sync",   "__any_sync",     "__all_sync"};
  return kNames[static_cast<int>(op)];
}

const char* BlockOpName(BlockOp op) {
  static constexpr const char* kNames[] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and",
                                           "__syncthreads_or"};
  return kNames[static_cast<int>(op)];
}

std::string Dim(uint3 v) {
  std::ostringstream out;
  out << "(" << v.x << ", " << v.y << ", " << v.z << ")";
  return out.str();
}

// ---------------------------------------------------------------------------------------------------
// A block: its barrier among warps and its outcome.
// ---------------------------------------------------------------------------------------------------

struct BlockResult {
  long count = 0;    // threads that passed a nonzero predicate
  long threads = 0;  // threads that arrived
};

class BlockState {
 public:
  BlockState(const KernelLaunch& launch, uint3 block_idx, dim3 block_dim, dim3 grid_dim, unsigned char* dynamic_shared,
             int num_warps)
      : launch_(launch),
        block_idx_(block_idx),
        block_dim_(block_dim),
        grid_dim_(grid_dim),
        dynamic_shared_(dynamic_shared),
        num_threads_(static_cast<int>(block_dim.x * block_dim.y * block_dim.z)),
        num_warps_(num_warps),
        running_warps_(num_warps) {}

  const KernelLaunch& launch() const { return launch_; }
  uint3 block_idx() const { return block_idx_; }
  dim3 block_dim() const { return block_dim_; }
  dim3 grid_dim() const { return grid_dim_; }
  unsigned char* dynamic_shared() const { return dynamic_shared_; }
  int num_threads() const { return num_threads_; }
  int num_warps() const { return num_warps_; }
  uint64_t linear_index() const {
    const uint64_t plane = block_idx_.y + static_cast<uint64_t>(grid_dim_.y) * block_idx_.z;
    return block_idx_.x + static_cast<uint64_t>(grid_dim_.x) * plane;
  }
  bool aborted() const { return aborted_flag_.load(std::memory_order_acquire); }

  // A warp whose live lanes all reached the block barrier `op`; false if the block was aborted.
  bool Arrive(BlockOp op, long count, long threads, BlockResult* result) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (aborted_) {
      return false;
    }
    if (arrived_ == 0) {
      op_ = op;
    } else if (op != op_) {
      FailLocked(cudaErrorIllegalInstruction, std::string("warps of the block reached different barriers: ") +
                                                  BlockOpName(op_) + " and " + BlockOpName(op));
      return false;
    }
    pending_.count += count;
    pending_.threads += threads;
    if (++arrived_ == running_warps_) {
      CompleteLocked();
      *result = result_;
      return true;
    }
    const uint64_t generation = generation_;
    changed_.wait(lock, [&] { return generation_ != generation || aborted_; });
    if (generation_ == generation) {
      return false;
    }
    *result = result_;  // no later round can complete before this warp arrives again
    return true;
  }

  // A warp has no live lane left: the barrier stops waiting for it (as for exited threads on a GPU).
  void WarpFinished() {
    std::lock_guard<std::mutex> lock(mutex_);
    --running_warps_;
    if (arrived_ > 0 && arrived_ == running_warps_) {
      CompleteLocked();
    }
  }

  void Fail(cudaError_t error, const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex_);
    FailLocked(error, message);
  }

  cudaError_t error() const { return error_; }
  const std::string& message() const { return message_; }

 private:
  void CompleteLocked() {
    result_ = pending_;
    pending_ = BlockResult{};
    arrived_ = 0;
    ++generation_;
    changed_.notify_all();
  }

  void FailLocked(cudaError_t error, const std::string& message) {
    if (error_ == cudaSuccess) {
      error_ = error;
      message_ = message;
    }
    aborted_ = true;
    aborted_flag_.store(true, std::memory_order_release);
    changed_.notify_all();
  }

  const KernelLaunch& launch_;
  const uint3 block_idx_;
  const dim3 block_dim_;
  const dim3 grid_dim_;
  unsigned char* const dynamic_shared_;
  const int num_threads_;
  const int num_warps_;

  std::mutex mutex_;
  std::condition_variable changed_;
  int running_warps_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  BlockOp op_ = BlockOp::kSync;
  BlockResult pending_;
  BlockResult result_;
  bool aborted_ = false;
  std::atomic<bool> aborted_flag_{false};
  cudaError_t error_ = cudaSuccess;
  std::string message_;
};

// ---------------------------------------------------------------------------------------------------
// Lanes and the warps that schedule them.
// ---------------------------------------------------------------------------------------------------

enum class LaneStatus : uint8_t { kRunnable, kAtWarpOp, kAtBarrier, kExited, kFailed };

class Worker;

struct LaneState : LaneInfo {
  ExecutionContext context;
  Worker* worker = nullptr;
  BlockState* block = nullptr;
  LaneStatus status = LaneStatus::kExited;
  // The rendezvous the lane waits at, and what it brought.
  WarpOp warp_op = WarpOp::kSyncWarp;
  BlockOp block_op = BlockOp::kSync;
  unsigned mask = 0;
  int lane_arg = 0;
  int width = 0;
  uint64_t payload = 0;
  uint64_t result = 0;
  size_t mma_index = 0;  // mma_sync calls since the warp's last rendezvous
};

// A product computed by one lane of the warp since the last rendezvous (MmaSync).
struct MmaEntry {
  MmaCompute compute;
  unsigned char a[512];
  unsigned char b[512];
  float c[256];
  float d[256];
};

LaneState* CurrentLaneState() {
  // LaneInfo is only ever the base of a LaneState.
  return static_cast<LaneState*>(const_cast<LaneInfo*>(current_lane));
}

void LaneMain(void* argument);

class Pool;

// A host thread that runs warps: its scheduler context, the lanes' states and stacks, and the mma cache.
class Worker {
 public:
  explicit Worker(Pool* pool) : pool_(pool), thread_([this] { Loop(); }) {}

  void Post(BlockState* block, int warp) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      block_ = block;
      warp_ = warp;
    }
    posted_.notify_one();
  }

  // Switches from a lane back to this worker's scheduler.
  void Yield(LaneState* lane) { SwitchContext(&lane->context, &scheduler_); }

  void Mma(LaneState* lane, MmaCompute compute, const void* a, const void* b, size_t input_bytes, const float* c,
           float* d);

 private:
  void Loop();
  void RunWarp(BlockState& block, int warp);
  bool CompleteWarpOp(BlockState& block, int warp, int lanes);
  bool CompleteBarrier(BlockState& block, int warp, int lanes);

  Pool* pool_;
  std::mutex mutex_;
  std::condition_variable posted_;
  BlockState* block_ = nullptr;
  int warp_ = 0;
  ExecutionContext scheduler_;
  std::vector<MmaEntry> mma_cache_;
  size_t mma_cached_ = 0;  // entries of mma_cache_ valid since the last rendezvous
  LaneState lanes_[32];
  Stack stacks_[32];
  std::thread thread_;  // last: starts once everything above exists
};

// The host threads that run warps. Never destroyed: idle workers simply end with the process.
class Pool {
 public:
  void RunBlock(BlockState& block) {
    while (static_cast<int>(workers_.size()) < block.num_warps()) {
      workers_.push_back(std::make_unique<Worker>(this));
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_ = block.num_warps();
    }
    for (int w = 0; w < block.num_warps(); ++w) {
      workers_[static_cast<size_t>(w)]->Post(&block, w);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
  }

  void WarpDone() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--pending_ == 0) {
      done_.notify_one();
    }
  }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::mutex mutex_;
  std::condition_variable done_;
  int pending_ = 0;
};

void Worker::Loop() {
  while (true) {
    BlockState* block = nullptr;
    int warp = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      posted_.wait(lock, [&] { return block_ != nullptr; });
      block = block_;
      warp = warp_;
      block_ = nullptr;
    }
    RunWarp(*block, warp);
    block->WarpFinished();
    pool_->WarpDone();
  }
}

void Worker::RunWarp(BlockState& block, int warp) {
  const dim3 dims = block.block_dim();
  const int first = warp * 32;
  const int lanes = std::min(32, block.num_threads() - first);
  for (int l = 0; l < lanes; ++l) {
    LaneState& lane = lanes_[l];
    const auto linear = static_cast<unsigned>(first + l);
    lane.thread_idx = uint3{linear % dims.x, linear / dims.x % dims.y, linear / (dims.x * dims.y)};
    lane.block_idx = block.block_idx();
    lane.block_dim = dims;
    lane.grid_dim = block.grid_dim();
    lane.lane = l;
    lane.warp_lanes = lanes;
    lane.worker = this;
    lane.block = &block;
    lane.status = LaneStatus::kRunnable;
    MakeContext(&lane.context, stacks_[l].base(), Stack::kBytes, &LaneMain, &lane);
  }
  for (uint64_t round = block.linear_index() + static_cast<uint64_t>(warp);; ++round) {
    mma_cached_ = 0;
    for (int l = 0; l < lanes; ++l) {
      lanes_[l].mma_index = 0;
    }
    const bool descending = round % 2 == 1;
    for (int i = 0; i < lanes; ++i) {
      LaneState& lane = lanes_[descending ? lanes - 1 - i : i];
      if (lane.status == LaneStatus::kRunnable) {
        current_lane = &lane;
        SwitchContext(&scheduler_, &lane.context);
        current_lane = nullptr;
      }
    }
    if (block.aborted()) {
      return;  // the suspended lanes are abandoned; their stacks are reset by the next MakeContext
    }
    int live = 0;
    int at_warp_op = 0;
    for (int l = 0; l < lanes; ++l) {
      live += lanes_[l].status != LaneStatus::kExited;
      at_warp_op += lanes_[l].status == LaneStatus::kAtWarpOp;
    }
    if (live == 0) {
      return;
    }
    if (at_warp_op != live && at_warp_op != 0) {
      block.Fail(cudaErrorIllegalInstruction, "warp " + std::to_string(warp) +
                                                  ": some lanes wait at a warp function, others at a block barrier "
                                                  "(divergent synchronization)");
      return;
    }
    if (!(at_warp_op == live ? CompleteWarpOp(block, warp, lanes) : CompleteBarrier(block, warp, lanes))) {
      return;
    }
  }
}

bool Worker::CompleteWarpOp(BlockState& block, int warp, int lanes) {
  const LaneState* first = nullptr;
  for (int l = 0; l < lanes; ++l) {
    const LaneState& lane = lanes_[l];
    if (lane.status != LaneStatus::kAtWarpOp) {
      continue;
    }
    if (first == nullptr) {
      first = &lane;
    }
    const auto where = [&] { return "warp " + std::to_string(warp) + ", lane " + std::to_string(l) + ": "; };
    if (lane.warp_op != first->warp_op) {
      block.Fail(cudaErrorIllegalInstruction, where() + "lanes of one warp reached different warp functions: " +
                                                  WarpOpName(first->warp_op) + " and " + WarpOpName(lane.warp_op));
      return false;
    }
    if (lane.mask != 0xffffffffu) {
      block.Fail(cudaErrorNotSupported, where() + WarpOpName(lane.warp_op) +
                                            " with a partial mask: the emulation supports the full mask only");
      return false;
    }
    if (lane.width < 1 || lane.width > 32 || (lane.width & (lane.width - 1)) != 0) {
      block.Fail(cudaErrorInvalidValue,
                 where() + WarpOpName(lane.warp_op) + " with a width that is not a power of 2 <= 32");
      return false;
    }
  }
  // Lanes that exited (or do not exist in a partial warp) give no value: a shuffle from one returns
  // the poison pattern, undefined as on the GPU.
  const auto value_of = [&](int source) -> uint64_t {
    if (source < 0 || source >= lanes || lanes_[source].status != LaneStatus::kAtWarpOp) {
      return (uint64_t{kPoisonWord} << 32) | kPoisonWord;
    }
    return lanes_[source].payload;
  };
  uint64_t ballot = 0;
  bool all = true;
  for (int l = 0; l < lanes; ++l) {
    if (lanes_[l].status == LaneStatus::kAtWarpOp) {
      ballot |= lanes_[l].payload != 0 ? uint64_t{1} << l : 0;
      all = all && lanes_[l].payload != 0;
    }
  }
  for (int l = 0; l < lanes; ++l) {
    LaneState& lane = lanes_[l];
    if (lane.status != LaneStatus::kAtWarpOp) {
      continue;
    }
    const int segment = l & ~(lane.width - 1);
    int source = l;
    switch (lane.warp_op) {
      case WarpOp::kSyncWarp:
        lane.result = 0;
        break;
      case WarpOp::kShfl:
        source = segment + (lane.lane_arg & (lane.width - 1));
        lane.result = value_of(source);
        break;
      case WarpOp::kShflUp:
        source = l - lane.lane_arg;
        lane.result = value_of(source < segment ? l : source);
        break;
      case WarpOp::kShflDown:
        source = l + lane.lane_arg;
        lane.result = value_of(source >= segment + lane.width ? l : source);
        break;
      case WarpOp::kShflXor:
        source = l ^ lane.lane_arg;
        lane.result = value_of(source >= segment + lane.width ? l : source);
        break;
      case WarpOp::kBallot:
        lane.result = ballot;
        break;
      case WarpOp::kAny:
        lane.result = ballot != 0;
        break;
      case WarpOp::kAll:
        lane.result = all;
        break;
    }
  }
  for (int l = 0; l < lanes; ++l) {
    if (lanes_[l].status == LaneStatus::kAtWarpOp) {
      lanes_[l].status = LaneStatus::kRunnable;
    }
  }
  return true;
}

bool Worker::CompleteBarrier(BlockState& block, int warp, int lanes) {
  BlockOp op = BlockOp::kSync;
  bool first = true;
  long count = 0;
  long threads = 0;
  for (int l = 0; l < lanes; ++l) {
    const LaneState& lane = lanes_[l];
    if (lane.status != LaneStatus::kAtBarrier) {
      continue;
    }
    if (first) {
      op = lane.block_op;
      first = false;
    } else if (lane.block_op != op) {
      block.Fail(cudaErrorIllegalInstruction, "warp " + std::to_string(warp) + ": lanes reached different barriers: " +
                                                  BlockOpName(op) + " and " + BlockOpName(lane.block_op));
      return false;
    }
    count += lane.payload != 0;
    ++threads;
  }
  BlockResult total;
  if (!block.Arrive(op, count, threads, &total)) {
    return false;
  }
  const uint64_t result = op == BlockOp::kCount ? static_cast<uint64_t>(total.count)
                          : op == BlockOp::kAnd ? total.count == total.threads
                          : op == BlockOp::kOr  ? total.count > 0
                                                : 0;
  for (int l = 0; l < lanes; ++l) {
    if (lanes_[l].status == LaneStatus::kAtBarrier) {
      lanes_[l].result = result;
      lanes_[l].status = LaneStatus::kRunnable;
    }
  }
  return true;
}

void Worker::Mma(LaneState* lane, MmaCompute compute, const void* a, const void* b, size_t input_bytes, const float* c,
                 float* d) {
  const size_t index = lane->mma_index++;
  if (index < mma_cached_) {
    const MmaEntry& entry = mma_cache_[index];
    if (entry.compute == compute && std::memcmp(entry.a, a, input_bytes) == 0 &&
        std::memcmp(entry.b, b, input_bytes) == 0 && std::memcmp(entry.c, c, sizeof(entry.c)) == 0) {
      std::memcpy(d, entry.d, sizeof(entry.d));
      return;
    }
  }
  if (index != mma_cached_ || input_bytes > sizeof(MmaEntry::a)) {
    compute(a, b, c, d);  // another lane's entry, or one this lane cannot add in order: no caching
    return;
  }
  if (mma_cache_.size() <= index) {
    mma_cache_.resize(index + 1);
  }
  MmaEntry& entry = mma_cache_[index];
  entry.compute = compute;
  std::memcpy(entry.a, a, input_bytes);
  std::memcpy(entry.b, b, input_bytes);
  std::memcpy(entry.c, c, sizeof(entry.c));
  compute(a, b, c, entry.d);
  std::memcpy(d, entry.d, sizeof(entry.d));
  ++mma_cached_;
}

void LaneMain(void* argument) {
  auto* lane = static_cast<LaneState*>(argument);
  try {
    const KernelLaunch& launch = lane->block->launch();
    launch.invoke(launch.closure);
    lane->status = LaneStatus::kExited;
  } catch (...) {
    lane->block->Fail(cudaErrorLaunchFailure, "a C++ exception escaped the kernel");
    lane->status = LaneStatus::kFailed;
  }
  lane->worker->Yield(lane);
  Die("an exited lane was resumed");
}

// ---------------------------------------------------------------------------------------------------
// Process-wide state: the emulated device, function attributes, errors.
// ---------------------------------------------------------------------------------------------------

std::mutex& ConfigMutex() {
  static std::mutex mutex;
  return mutex;
}

DeviceConfig& Config() {
  static DeviceConfig config;
  return config;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string last_launch_error;

cudaError_t Record(cudaError_t error) {
  if (error != cudaSuccess) {
    last_error = error;
  }
  return error;
}

cudaError_t LaunchFailed(cudaError_t error, const KernelLaunch& launch, const std::string& message) {
  // Launch's __PRETTY_FUNCTION__ names the kernel's parameter types: "... [with Params = {A, B}; Args = ...]".
  std::string signature = launch.signature;
  const std::string params = "[with Params = {";
  const size_t begin = signature.find(params);
  const size_t end = signature.find("}; Args", begin);
  if (begin != std::string::npos && end != std::string::npos) {
    signature = "kernel(" + signature.substr(begin + params.size(), end - begin - params.size()) + ")";
  }
  last_launch_error = std::string(cudaGetErrorName(error)) + " in " + signature + ": " + message;
  return Record(error);
}

// The dynamic shared memory of one launch: a 128-byte aligned buffer between two guard zones.
class SharedBuffer {
 public:
  static constexpr size_t kGuardBytes = 1024;

  explicit SharedBuffer(size_t bytes) : bytes_(bytes) {
    const size_t total = kGuardBytes + (bytes + 127) / 128 * 128 + kGuardBytes;
    base_ = static_cast<unsigned char*>(std::aligned_alloc(128, total));
    if (base_ == nullptr) {
      Die("cannot allocate dynamic shared memory");
    }
    total_ = total;
  }
  ~SharedBuffer() { std::free(base_); }
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;

  unsigned char* data() const { return base_ + kGuardBytes; }
  void PoisonAll() { Poison(base_, total_); }
  bool GuardsIntact() const {
    return Poisoned(base_, kGuardBytes) && Poisoned(data() + bytes_, total_ - kGuardBytes - bytes_);
  }

 private:
  static bool Poisoned(const unsigned char* p, size_t bytes) {
    for (size_t i = 0; i < bytes; ++i) {
      if (p[i] != static_cast<unsigned char>(kPoisonWord >> (8 * (reinterpret_cast<uintptr_t>(p + i) % 4)))) {
        return false;
      }
    }
    return true;
  }

  size_t bytes_;
  size_t total_ = 0;
  unsigned char* base_ = nullptr;
};

// Ends the process when one launch runs longer than BYTETX_EMULATION_TIMEOUT_S seconds (default 300):
// a kernel that spins forever (waiting for another block, which never runs alongside it, or for a
// lane of its own warp, which never runs until it yields) would otherwise hang the test run.
class Watchdog {
 public:
  static Watchdog& Get() {
    static Watchdog* watchdog = new Watchdog;  // never destroyed: its thread lives as long as the process
    return *watchdog;
  }

  void Begin(const KernelLaunch& launch, dim3 grid, dim3 block) {
    std::lock_guard<std::mutex> lock(mutex_);
    description_ = std::string(launch.signature) + " with grid " + Dim(grid) + " and block " + Dim(block);
    started_ = std::chrono::steady_clock::now();
    active_ = true;
  }

  void End() {
    std::lock_guard<std::mutex> lock(mutex_);
    active_ = false;
  }

 private:
  Watchdog() : limit_(Limit()) {
    std::thread([this] { Watch(); }).detach();
  }

  static std::chrono::seconds Limit() {
    const char* value = std::getenv("BYTETX_EMULATION_TIMEOUT_S");
    const long seconds = value != nullptr ? std::strtol(value, nullptr, 10) : 0;
    return std::chrono::seconds(seconds > 0 ? seconds : 300);
  }

  void Watch() {
    while (true) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::lock_guard<std::mutex> lock(mutex_);
      if (active_ && std::chrono::steady_clock::now() - started_ > limit_) {
        Die("a launch ran for more than " + std::to_string(limit_.count()) +
            " s (BYTETX_EMULATION_TIMEOUT_S), a kernel that waits for something that never comes? " + description_);
      }
    }
  }

  const std::chrono::seconds limit_;
  std::mutex mutex_;
  bool active_ = false;
  std::chrono::steady_clock::time_point started_;
  std::string description_;
};

}  // namespace

uint64_t WarpCollective(WarpOp op, unsigned mask, uint64_t payload, int lane_arg, int width) {
  LaneState* lane = CurrentLaneState();
  if (lane == nullptr) {
    Die(std::string(WarpOpName(op)) + " called outside a kernel");
  }
  lane->warp_op = op;
  lane->mask = mask;
  lane->payload = payload;
  lane->lane_arg = lane_arg;
  lane->width = width;
  lane->status = LaneStatus::kAtWarpOp;
  lane->worker->Yield(lane);
  return lane->result;
}

int BlockCollective(BlockOp op, int predicate) {
  LaneState* lane = CurrentLaneState();
  if (lane == nullptr) {
    Die(std::string(BlockOpName(op)) + " called outside a kernel");
  }
  lane->block_op = op;
  lane->payload = predicate != 0;
  lane->status = LaneStatus::kAtBarrier;
  lane->worker->Yield(lane);
  return static_cast<int>(lane->result);
}

const float* HalfToFloatTable() {
  static const std::vector<float> table = [] {
    std::vector<float> values(65536);
    for (uint32_t bits = 0; bits < values.size(); ++bits) {
      values[bits] = HalfBitsToFloat(static_cast<uint16_t>(bits));
    }
    return values;
  }();
  return table.data();
}

void MmaSync(MmaCompute compute, const void* a, const void* b, size_t input_bytes, const float* c, float* d) {
  LaneState* lane = CurrentLaneState();
  if (lane == nullptr) {
    compute(a, b, c, d);
    return;
  }
  lane->worker->Mma(lane, compute, a, b, input_bytes, c, d);
}

void Fail(cudaError_t error, const char* what) {
  LaneState* lane = CurrentLaneState();
  if (lane == nullptr) {
    Die(std::string("device code failed outside a kernel: ") + what);
  }
  lane->block->Fail(error, std::string(what) + " (thread " + Dim(lane->thread_idx) + ")");
  lane->status = LaneStatus::kFailed;
  lane->worker->Yield(lane);
  Die("a failed lane was resumed");
}

// Accepted as a GPU accepts it (a value within the device's opt-in limit); launches are checked
// against the device limit, not against the opt-in (README, requests).
cudaError_t SetFunctionAttribute(const void*, cudaFuncAttribute attribute, int value) {
  if (attribute == cudaFuncAttributeMaxDynamicSharedMemorySize &&
      (value < 0 || static_cast<size_t>(value) > GetDeviceConfig().shared_memory_per_block_optin)) {
    return Record(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t LaunchGrid(const KernelLaunch& launch, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t) {
  static std::mutex launch_mutex;  // static __shared__ variables are one per kernel, not per launch
  std::lock_guard<std::mutex> launch_lock(launch_mutex);
  last_launch_error.clear();
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    return LaunchFailed(cudaErrorInvalidConfiguration, launch, "block " + Dim(block) + " is not a valid block shape");
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    return LaunchFailed(cudaErrorInvalidConfiguration, launch, "grid " + Dim(grid) + " is not a valid grid shape");
  }
  const size_t limit = GetDeviceConfig().shared_memory_per_block_optin;
  if (shared_bytes > limit) {
    return LaunchFailed(cudaErrorInvalidValue, launch,
                        std::to_string(shared_bytes) + " bytes of dynamic shared memory exceed the device's " +
                            std::to_string(limit));
  }
  const int num_warps = static_cast<int>((threads + 31) / 32);
  static Pool* pool = new Pool;
  SharedBuffer shared(shared_bytes);
  Watchdog::Get().Begin(launch, grid, block);
  cudaError_t status = cudaSuccess;
  for (unsigned z = 0; z < grid.z && status == cudaSuccess; ++z) {
    for (unsigned y = 0; y < grid.y && status == cudaSuccess; ++y) {
      for (unsigned x = 0; x < grid.x && status == cudaSuccess; ++x) {
        shared.PoisonAll();
        BlockState state(launch, uint3{x, y, z}, block, grid, shared.data(), num_warps);
        pool->RunBlock(state);
        if (state.error() == cudaSuccess && !shared.GuardsIntact()) {
          state.Fail(cudaErrorIllegalAddress,
                     "a thread wrote outside the " + std::to_string(shared_bytes) + " bytes of dynamic shared memory");
        }
        if (state.error() != cudaSuccess) {
          status = LaunchFailed(state.error(), launch, "block " + Dim(uint3{x, y, z}) + ": " + state.message());
        }
      }
    }
  }
  Watchdog::Get().End();
  return status;
}

}  // namespace detail

void SetDeviceConfig(const DeviceConfig& config) {
  std::lock_guard<std::mutex> lock(detail::ConfigMutex());
  detail::Config() = config;
}

DeviceConfig GetDeviceConfig() {
  std::lock_guard<std::mutex> lock(detail::ConfigMutex());
  return detail::Config();
}

void* DynamicSharedMemory() {
  const detail::LaneState* lane = detail::CurrentLaneState();
  if (lane == nullptr) {
    detail::Die("DynamicSharedMemory() called outside a kernel");
  }
  return lane->block->dynamic_shared();
}

const char* LastLaunchError() { return detail::last_launch_error.c_str(); }

void Poison(void* pointer, size_t bytes) {
  auto* p = static_cast<unsigned char*>(pointer);
  for (size_t i = 0; i < bytes; ++i) {
    p[i] = static_cast<unsigned char>(kPoisonWord >> (8 * (reinterpret_cast<uintptr_t>(p + i) % 4)));
  }
}

}  // namespace bytetx_emulation

// ---------------------------------------------------------------------------------------------------
// Runtime API: device memory is host memory, every call is synchronous.
// ---------------------------------------------------------------------------------------------------

using bytetx_emulation::detail::Record;

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction:
      return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources:
      return "cudaErrorLaunchOutOfResources";
    case cudaErrorAssert:
      return "cudaErrorAssert";
    case cudaErrorIllegalInstruction:
      return "cudaErrorIllegalInstruction";
    case cudaErrorMisalignedAddress:
      return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress:
      return "misaligned address";
    case cudaErrorIllegalInstruction:
      return "an illegal instruction was encountered";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorNotSupported:
      return "operation not supported";
    default:
      return cudaGetErrorName(error);
  }
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = bytetx_emulation::detail::last_error;
  bytetx_emulation::detail::last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() { return bytetx_emulation::detail::last_error; }

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  if (pointer == nullptr) {
    return Record(cudaErrorInvalidValue);
  }
  // Like device memory: 256-byte aligned and uninitialized (poisoned).
  *pointer = std::aligned_alloc(256, std::max<size_t>(256, (bytes + 255) / 256 * 256));
  if (*pointer == nullptr) {
    return Record(cudaErrorMemoryAllocation);
  }
  bytetx_emulation::Poison(*pointer, bytes);
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** pointer, size_t bytes) { return cudaMalloc(pointer, bytes); }
cudaError_t cudaFreeHost(void* pointer) { return cudaFree(pointer); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes > 0 && (dst == nullptr || src == nullptr)) {
    return Record(cudaErrorInvalidValue);
  }
  if (bytes > 0) {
    std::memmove(dst, src, bytes);
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* pointer, int value, size_t bytes) {
  if (bytes > 0 && pointer == nullptr) {
    return Record(cudaErrorInvalidValue);
  }
  if (bytes > 0) {
    std::memset(pointer, value, bytes);
  }
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(pointer, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) {
    return Record(cudaErrorInvalidValue);
  }
  static char streams;  // any non-null handle will do: work runs synchronously
  *stream = reinterpret_cast<cudaStream_t>(&streams);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : Record(cudaErrorInvalidDevice); }

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (value == nullptr || device != 0) {
    return Record(device != 0 ? cudaErrorInvalidDevice : cudaErrorInvalidValue);
  }
  const bytetx_emulation::DeviceConfig config = bytetx_emulation::GetDeviceConfig();
  switch (attribute) {
    case cudaDevAttrMaxThreadsPerBlock:
    case cudaDevAttrMaxBlockDimX:
      *value = 1024;
      return cudaSuccess;
    case cudaDevAttrMaxGridDimX:
      *value = 2147483647;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = 48 * 1024;
      return cudaSuccess;
    case cudaDevAttrWarpSize:
      *value = 32;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = config.multiprocessor_count;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = config.compute_capability / 10;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = config.compute_capability % 10;
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = static_cast<int>(config.shared_memory_per_block_optin + 1024);
      return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(config.shared_memory_per_block_optin);
      return cudaSuccess;
  }
  return Record(cudaErrorInvalidValue);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
  if (properties == nullptr || device != 0) {
    return Record(device != 0 ? cudaErrorInvalidDevice : cudaErrorInvalidValue);
  }
  const bytetx_emulation::DeviceConfig config = bytetx_emulation::GetDeviceConfig();
  *properties = cudaDeviceProp{};
  std::snprintf(properties->name, sizeof(properties->name), "bytetx host emulation (sm_%d)", config.compute_capability);
  properties->totalGlobalMem = size_t{16} << 30;
  properties->sharedMemPerBlock = 48 * 1024;
  properties->sharedMemPerBlockOptin = config.shared_memory_per_block_optin;
  properties->sharedMemPerMultiprocessor = config.shared_memory_per_block_optin + 1024;
  properties->regsPerBlock = 65536;
  properties->warpSize = 32;
  properties->maxThreadsPerBlock = 1024;
  properties->maxThreadsDim[0] = 1024;
  properties->maxThreadsDim[1] = 1024;
  properties->maxThreadsDim[2] = 64;
  properties->maxGridSize[0] = 2147483647;
  properties->maxGridSize[1] = 65535;
  properties->maxGridSize[2] = 65535;
  properties->major = config.compute_capability / 10;
  properties->minor = config.compute_capability % 10;
  properties->multiProcessorCount = config.multiprocessor_count;
  return cudaSuccess;
}
