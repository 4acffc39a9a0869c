// Element types of the CUDA kernels' floating-point tensors. Plain C++ so framework shells and host
// test harnesses can name them without CUDA headers.
#pragma once

#include <cstddef>

namespace bytetx::cuda {

enum class DataType { kFloat32, kFloat16, kBFloat16 };

inline size_t ElementSize(DataType type) { return type == DataType::kFloat32 ? 4 : 2; }

}  // namespace bytetx::cuda
