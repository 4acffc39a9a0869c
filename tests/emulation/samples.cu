// Small kernels that exercise the emulation layer itself (tests/kernels/test_emulated_layer.py): warp
// functions, barriers, shared memory, atomics, wmma, float16/bfloat16 conversions, and the misuse
// the emulation reports. Each extern "C" entry point launches one kernel and returns its cudaError_t.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "bytetx_emulation.h"

#define SAMPLE_EXPORT extern "C" __attribute__((visibility("default")))

namespace samples {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kShuffleResults = 10;

// A launch of `blocks` x `threads`.
template <typename... Params, typename... Args>
int Launch1D(void (*kernel)(Params...), int blocks, int threads, size_t shared_bytes, Args&&... args) {
  return bytetx_emulation::Launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(static_cast<unsigned>(threads)),
                                  shared_bytes, nullptr, std::forward<Args>(args)...);
}

int LinearThread() { return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)); }

// out[thread][k]: the k-th warp function's result for each thread of the block.
__global__ void ShuffleKernel(int* out) {
  const int t = LinearThread();
  const int lane = t % 32;
  int* row = out + (static_cast<int64_t>(blockIdx.x) * blockDim.x * blockDim.y * blockDim.z + t) * kShuffleResults;
  const int value = 1000 * static_cast<int>(blockIdx.x) + t;
  row[0] = __shfl_sync(kFull, value, 3);
  row[1] = __shfl_xor_sync(kFull, value, 5);
  row[2] = __shfl_down_sync(kFull, value, 4);
  row[3] = __shfl_up_sync(kFull, value, 4);
  row[4] = static_cast<int>(__ballot_sync(kFull, lane % 3 == 0));
  row[5] = __any_sync(kFull, lane == 7);
  row[6] = __all_sync(kFull, lane < 31);
  row[7] = __shfl_xor_sync(kFull, value, 4, 8);
  row[8] = __shfl_sync(kFull, value, 9, 16);
  unsigned sum = static_cast<unsigned>(value);  // unsigned: the partial warp sums poison
  for (int offset = 16; offset > 0; offset /= 2) {
    sum += __shfl_xor_sync(kFull, sum, offset);
  }
  row[9] = static_cast<int>(sum);
}

SAMPLE_EXPORT int sample_shuffles(int* out, int blocks, int threads) {
  return Launch1D(ShuffleKernel, blocks, threads, 0, out);
}

// float and double shuffles move the bits unchanged.
__global__ void FloatShuffleKernel(const double* in, double* out_double, float* out_float) {
  const int t = static_cast<int>(threadIdx.x);
  out_double[t] = __shfl_xor_sync(kFull, in[t], 1);
  out_float[t] = __shfl_down_sync(kFull, static_cast<float>(in[t]), 1);
}

SAMPLE_EXPORT int sample_float_shuffles(const double* in, double* out_double, float* out_float) {
  return Launch1D(FloatShuffleKernel, 1, 32, 0, in, out_double, out_float);
}

// Built-in variables of 3D blocks and grids:
// out[block][thread] = {threadIdx.xyz, blockIdx.xyz, blockDim.xyz, gridDim.xyz}.
__global__ void BuiltinsKernel(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  unsigned* row = out + (block * threads + static_cast<unsigned>(LinearThread())) * 12;
  const unsigned values[12] = {threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
                               blockDim.x,  blockDim.y,  blockDim.z,  gridDim.x,  gridDim.y,  gridDim.z};
  for (int i = 0; i < 12; ++i) {
    row[i] = values[i];
  }
}

SAMPLE_EXPORT int sample_builtins(unsigned* out, const unsigned* grid, const unsigned* block) {
  const dim3 grid_dim(grid[0], grid[1], grid[2]);
  const dim3 block_dim(block[0], block[1], block[2]);
  return bytetx_emulation::Launch(BuiltinsKernel, grid_dim, block_dim, 0, nullptr, out);
}

// Rounds of write, barrier, read-someone-else's: every read sees the write of the same round only if
// __syncthreads is a real barrier across warps. Also the counting barriers.
template <int kThreads>
__global__ void BarrierKernel(int rounds, int* out, int* counts) {
  __shared__ int cells[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  int checksum = 0;
  for (int r = 0; r < rounds; ++r) {
    cells[t] = r * kThreads + t;
    __syncthreads();
    const int other = (t * 7 + r * 13 + 1) % kThreads;
    checksum += cells[other] == r * kThreads + other ? 1 : 0;
    __syncthreads();
  }
  out[blockIdx.x * kThreads + t] = checksum;
  const int count = __syncthreads_count(t % 5 == 0);
  const int all = __syncthreads_and(t >= 0);
  const int any = __syncthreads_or(t == kThreads - 1);
  const int none = __syncthreads_or(0);
  if (t == 0) {
    counts[blockIdx.x * 4 + 0] = count;
    counts[blockIdx.x * 4 + 1] = all;
    counts[blockIdx.x * 4 + 2] = any;
    counts[blockIdx.x * 4 + 3] = none;
  }
}

SAMPLE_EXPORT int sample_barriers(int blocks, int rounds, int* out, int* counts) {
  return Launch1D(BarrierKernel<256>, blocks, 256, 0, rounds, out, counts);
}

// Threads that return early stop counting for __syncthreads, as exited threads do on a GPU.
__global__ void EarlyExitKernel(int* out) {
  __shared__ int cell;
  const int t = static_cast<int>(threadIdx.x);
  if (t >= 40) {
    return;
  }
  if (t == 0) {
    cell = 123;
  }
  __syncthreads();
  out[t] = cell;
}

SAMPLE_EXPORT int sample_early_exit(int* out) { return Launch1D(EarlyExitKernel, 1, 128, 0, out); }

// Static __shared__: one variable per template instantiation; it keeps what the previous block left
// (zero before the first block). stale[b] is what block b found before writing.
template <int kTag>
__global__ void StaticSharedKernel(int* stale) {
  __shared__ int cell;
  __syncthreads();
  if (threadIdx.x == 0) {
    stale[blockIdx.x] = cell;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    cell = kTag * 100 + static_cast<int>(blockIdx.x) + 1;
  }
}

SAMPLE_EXPORT int sample_static_shared(int blocks, int* stale_a, int* stale_b) {
  const int status = Launch1D(StaticSharedKernel<1>, blocks, 64, 0, stale_a);
  return status != cudaSuccess ? status : Launch1D(StaticSharedKernel<2>, blocks, 64, 0, stale_b);
}

// Dynamic shared memory: reports its alignment and the bits it held before being written (poison),
// then reverses `in` through it across warps.
__global__ void DynamicSharedKernel(const float* in, float* out, uint32_t* first_bits, int64_t* alignment, int n,
                                    int write_past) {
  auto* buffer = static_cast<float*>(bytetx_emulation::DynamicSharedMemory());
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) {
    uint32_t bits;
    std::memcpy(&bits, buffer, sizeof(bits));
    first_bits[blockIdx.x] = bits;
    alignment[blockIdx.x] = static_cast<int64_t>(reinterpret_cast<uintptr_t>(buffer) % 128);
  }
  __syncthreads();
  for (int i = t; i < n; i += static_cast<int>(blockDim.x)) {
    buffer[i] = in[blockIdx.x * n + i];
  }
  if (write_past != 0 && t == 0) {
    buffer[n + write_past - 1] = 1.0f;
  }
  __syncthreads();
  for (int i = t; i < n; i += static_cast<int>(blockDim.x)) {
    out[blockIdx.x * n + i] = buffer[n - 1 - i];
  }
}

SAMPLE_EXPORT int sample_dynamic_shared(const float* in, float* out, uint32_t* first_bits, int64_t* alignment,
                                        int blocks, int n, int write_past) {
  return Launch1D(DynamicSharedKernel, blocks, 96, static_cast<size_t>(n) * sizeof(float), in, out, first_bits,
                  alignment, n, write_past);
}

// Atomics from every thread of every block, on global and shared memory.
__global__ void AtomicsKernel(int* int_sum, float* float_sum, int* maximum, unsigned long long* wide_sum,
                              int* per_block) {
  __shared__ int block_sum;
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) {
    block_sum = 0;
  }
  __syncthreads();
  const int value = static_cast<int>(blockIdx.x) * 1000 + t;
  atomicAdd(int_sum, value);
  atomicAdd(float_sum, 0.5f);
  atomicMax(maximum, (value * 7919) % 100003);
  atomicAdd(wide_sum, static_cast<unsigned long long>(value) << 20);
  atomicAdd(&block_sum, 1);
  __syncthreads();
  if (t == 0) {
    per_block[blockIdx.x] = block_sum;
  }
}

SAMPLE_EXPORT int sample_atomics(int blocks, int threads, int* int_sum, float* float_sum, int* maximum,
                                 unsigned long long* wide_sum, int* per_block) {
  return Launch1D(AtomicsKernel, blocks, threads, 0, int_sum, float_sum, maximum, wide_sum, per_block);
}

// wmma: d = scale * (a b) + (c + a b) for one 16x16 tile per warp (an element-wise scale, an
// accumulator loaded from memory, an element-wise sum of two fragments), a and b stored row- or
// column-major with leading dimension 24, c and d with 20; d stored row- or column-major.
template <typename T, typename LayoutA, typename LayoutB>
__global__ void WmmaKernel(const T* a, const T* b, const float* c, float* d, float scale, int store_col_major) {
  using namespace nvcuda;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LayoutA> a_frag;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LayoutB> b_frag;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c_frag;
  wmma::load_matrix_sync(a_frag, a + warp * 16 * 24, 24);
  wmma::load_matrix_sync(b_frag, b + warp * 16 * 24, 24);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, a_frag, b_frag, acc);
  for (int i = 0; i < acc.num_elements; ++i) {
    acc.x[i] *= scale;
  }
  wmma::load_matrix_sync(c_frag, c + warp * 16 * 20, 20, wmma::mem_row_major);
  wmma::mma_sync(c_frag, a_frag, b_frag, c_frag);
  for (int i = 0; i < acc.num_elements; ++i) {
    acc.x[i] += c_frag.x[i];
  }
  const wmma::layout_t layout = store_col_major != 0 ? wmma::mem_col_major : wmma::mem_row_major;
  wmma::store_matrix_sync(d + warp * 16 * 20, acc, 20, layout);
}

template <typename T>
int LaunchWmma(const void* a, const void* b, const float* c, float* d, float scale, int a_col_major, int b_col_major,
               int store_col_major, int warps) {
  using nvcuda::wmma::col_major;
  using nvcuda::wmma::row_major;
  const auto* at = static_cast<const T*>(a);
  const auto* bt = static_cast<const T*>(b);
  const int threads = 32 * warps;
  if (a_col_major == 0 && b_col_major == 0) {
    return Launch1D(WmmaKernel<T, row_major, row_major>, 1, threads, 0, at, bt, c, d, scale, store_col_major);
  }
  if (a_col_major == 0) {
    return Launch1D(WmmaKernel<T, row_major, col_major>, 1, threads, 0, at, bt, c, d, scale, store_col_major);
  }
  if (b_col_major == 0) {
    return Launch1D(WmmaKernel<T, col_major, row_major>, 1, threads, 0, at, bt, c, d, scale, store_col_major);
  }
  return Launch1D(WmmaKernel<T, col_major, col_major>, 1, threads, 0, at, bt, c, d, scale, store_col_major);
}

// dtype 1: float16, 2: bfloat16.
SAMPLE_EXPORT int sample_wmma(int dtype, const void* a, const void* b, const float* c, float* d, float scale,
                              int a_col_major, int b_col_major, int store_col_major, int warps) {
  return dtype == 1 ? LaunchWmma<__half>(a, b, c, d, scale, a_col_major, b_col_major, store_col_major, warps)
                    : LaunchWmma<__nv_bfloat16>(a, b, c, d, scale, a_col_major, b_col_major, store_col_major, warps);
}

// A wmma load from a pointer that is not 32-byte aligned: cudaErrorMisalignedAddress.
__global__ void MisalignedWmmaKernel(const __half* a, float* d) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a_frag;
  wmma::load_matrix_sync(a_frag, a + 8, 16);
  d[threadIdx.x] = static_cast<float>(a_frag.x[0]);
}

SAMPLE_EXPORT int sample_misaligned_wmma(const void* a, float* d) {
  return Launch1D(MisalignedWmmaKernel, 1, 32, 0, static_cast<const __half*>(a), d);
}

// A lane reads what its neighbour wrote to shared memory, with or without __syncwarp between: without
// it the emulation shows the stale (poisoned) values, as a GPU may.
__global__ void NeighbourKernel(float* out, int use_syncwarp) {
  auto* cells = static_cast<float*>(bytetx_emulation::DynamicSharedMemory());
  const int t = static_cast<int>(threadIdx.x);
  cells[t] = static_cast<float>(t);
  if (use_syncwarp != 0) {
    __syncwarp();
  }
  const int lane = t % 32;
  out[blockIdx.x * blockDim.x + t] = cells[t - lane + (lane + 1) % 32];
}

SAMPLE_EXPORT int sample_neighbours(int blocks, int use_syncwarp, float* out) {
  return bytetx_emulation::Launch(NeighbourKernel, dim3(static_cast<unsigned>(blocks)), dim3(64), 64 * sizeof(float),
                                  nullptr, out, use_syncwarp);
}

// Misuse the emulation must report rather than hang or compute garbage silently.
//   0: half of a warp at __shfl_xor_sync, the other half at __syncwarp
//   1: some lanes at a warp function, others at __syncthreads
//   2: a partial mask
//   3: __trap()
//   4: warps at __syncthreads and __syncthreads_count
__global__ void MisuseKernel(int kind, int* out) {
  const int t = static_cast<int>(threadIdx.x);
  int v = t;
  switch (kind) {
    case 0:
      if (t % 32 < 16) {
        v = __shfl_xor_sync(kFull, v, 1);
      } else {
        __syncwarp();
      }
      break;
    case 1:
      if (t % 32 < 16) {
        v = __shfl_xor_sync(kFull, v, 1);
      } else {
        __syncthreads();
      }
      break;
    case 2:
      v = __shfl_xor_sync(0x0000ffffu, v, 1);
      break;
    case 3:
      if (t == 5) {
        __trap();
      }
      break;
    case 4:
      if (t < 32) {
        __syncthreads();
      } else {
        v = __syncthreads_count(1);
      }
      break;
    default:
      break;
  }
  out[t] = v;
}

SAMPLE_EXPORT int sample_misuse(int kind, int* out) {
  return bytetx_emulation::Launch(MisuseKernel, dim3(2), dim3(64), 0, nullptr, kind, out);
}

// Launches a GPU refuses: 0: 2048 threads per block, 1: a grid.y beyond 65535, 2: more dynamic shared
// memory than the device has.
__global__ void EmptyKernel() {}

SAMPLE_EXPORT int sample_bad_launch(int kind) {
  switch (kind) {
    case 0:
      return bytetx_emulation::Launch(EmptyKernel, dim3(1), dim3(2048), 0, nullptr);
    case 1:
      return bytetx_emulation::Launch(EmptyKernel, dim3(1, 70000), dim3(32), 0, nullptr);
    default:
      return bytetx_emulation::Launch(EmptyKernel, dim3(1), dim3(32),
                                      bytetx_emulation::GetDeviceConfig().shared_memory_per_block_optin + 1, nullptr);
  }
}

// Parameters are copied per thread: a thread changing its copy does not affect the others.
__global__ void ParameterCopyKernel(int base, int* out) {
  base += static_cast<int>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = base;
}

SAMPLE_EXPORT int sample_parameter_copies(int base, int* out) {
  return bytetx_emulation::Launch(ParameterCopyKernel, dim3(1), dim3(64), 0, nullptr, base, out);
}

// Waits for a flag nobody sets, as a kernel waiting for another block would: the watchdog ends the
// process (run in a subprocess by the test).
__global__ void SpinKernel(const int* flag) {
  const volatile int* watched = flag;
  while (*watched == 0) {
  }
}

SAMPLE_EXPORT int sample_spin(const int* flag) { return Launch1D(SpinKernel, 1, 32, 0, flag); }

}  // namespace samples

SAMPLE_EXPORT void sample_set_device(int compute_capability, int64_t shared_memory_per_block_optin) {
  bytetx_emulation::DeviceConfig config;
  config.compute_capability = compute_capability;
  config.shared_memory_per_block_optin = static_cast<size_t>(shared_memory_per_block_optin);
  bytetx_emulation::SetDeviceConfig(config);
}

// cudaDeviceGetAttribute(attribute) of device 0, or -1 if it fails.
SAMPLE_EXPORT int sample_device_attribute(int attribute) {
  int value = 0;
  return cudaDeviceGetAttribute(&value, static_cast<cudaDeviceAttr>(attribute), 0) == cudaSuccess ? value : -1;
}

SAMPLE_EXPORT const char* sample_last_launch_error() { return bytetx_emulation::LastLaunchError(); }

SAMPLE_EXPORT void sample_float_to_half(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = __float2half(in[i]).__x;
  }
}

SAMPLE_EXPORT void sample_half_to_float(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = __half2float(__half(__half_raw{in[i]}));
  }
}

SAMPLE_EXPORT void sample_float_to_bfloat16(const float* in, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = __float2bfloat16(in[i]).__x;
  }
}

SAMPLE_EXPORT void sample_bfloat16_to_float(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = __bfloat162float(__nv_bfloat16(__nv_bfloat16_raw{in[i]}));
  }
}
