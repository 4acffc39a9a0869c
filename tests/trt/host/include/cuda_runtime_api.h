// TensorRT's headers include <cuda_runtime_api.h>; under the host emulation (tests/emulation) the
// runtime API is the emulation's <cuda_runtime.h>, plus the one type TensorRT's headers name that the
// kernels never use.
#pragma once

#include <cuda_runtime.h>

typedef struct CUevent_st* cudaEvent_t;
