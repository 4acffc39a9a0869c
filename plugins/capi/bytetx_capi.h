/* The C ABI of the bytetx ops (docs/ops.md): RemovePadding, FusedMHA and RebuildPadding on plain
 * pointers and sizes, for callers that are not ONNX Runtime or TensorRT (bytetx.torch binds it with
 * ctypes). Exported by libbytetx_kernels.so; no framework headers, no C++ types, no exceptions.
 *
 * Every call validates its tensors through the op's contract (the checks and messages of every other
 * back end) before touching memory, and returns a bytetx_status. On failure, `message` (when not NULL)
 * receives "<op>: <reason>", NUL-terminated and cut to `message_size` bytes.
 *
 * device BYTETX_CPU: host pointers; values (mask, cu_seqlens, token_offset) are validated too, as on
 * the ONNX Runtime CPU provider. device BYTETX_CUDA: device pointers, launched on `stream` (a
 * cudaStream_t; NULL is the legacy default stream), never synchronized; values in device memory are
 * not read (the kernels stay in bounds on bad values). */
#ifndef BYTETX_CAPI_H_
#define BYTETX_CAPI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BYTETX_CAPI_VERSION 2
#define BYTETX_MAX_RANK 4

typedef enum { BYTETX_CPU = 0, BYTETX_CUDA = 1 } bytetx_device;

typedef enum {
  BYTETX_FLOAT32 = 0,
  BYTETX_FLOAT16 = 1,
  BYTETX_BFLOAT16 = 2,
  BYTETX_INT32 = 3,
  BYTETX_INT64 = 4,
} bytetx_dtype;

typedef enum {
  BYTETX_OK = 0,
  BYTETX_INVALID_ARGUMENT = 1, /* an input broke the op's contract */
  BYTETX_INTERNAL = 2,         /* the op could not run (a launch failed, out of memory) */
  BYTETX_UNAVAILABLE = 3,      /* the library was built without that device */
} bytetx_status;

/* A dense, row-major tensor: `rank` dimensions of `dims`, elements of `dtype` at `data`. */
typedef struct {
  void* data;
  int32_t dtype;
  int32_t rank;
  int64_t dims[BYTETX_MAX_RANK];
} bytetx_tensor;

/* BYTETX_CAPI_VERSION of the library. */
int32_t bytetx_capi_version(void);

/* 1 when the library has the CUDA kernels, else 0. */
int32_t bytetx_has_cuda(void);

/* Threads of the CPU kernels (0, the default: every core). */
void bytetx_set_cpu_threads(int32_t num_threads);

/* input [B, S, H] float, attention_mask [B, S] int32/int64 (nonzero: a token) -> packed [rows, H],
 * cu_seqlens [B + 1] int32, token_offset [B, S] int32. On the CPU rows must be T, the number of
 * tokens; on CUDA rows is T or the bound B * S (rows from T on are written with zeros). */
int32_t bytetx_remove_padding(int32_t device, const bytetx_tensor* input, const bytetx_tensor* attention_mask,
                              const bytetx_tensor* packed, const bytetx_tensor* cu_seqlens,
                              const bytetx_tensor* token_offset, void* stream, char* message, size_t message_size);

/* qkv [T, 3H], qkv_bias [3H], cu_seqlens [B + 1], token_offset [B, S] (only its shape is read) ->
 * context [T, H]. `scale` multiplies Q K^T when has_scale is nonzero, else 1 / sqrt(H / num_heads).
 * A relative position bias (docs/ops.md#fusedmha): positions int32 [T] and relative_position_bias
 * [num_buckets, num_heads] of qkv's type with relative_position_max_distance > 0; without one, both
 * tensors NULL and the distance 0. */
int32_t bytetx_fused_mha(int32_t device, const bytetx_tensor* qkv, const bytetx_tensor* qkv_bias,
                         const bytetx_tensor* cu_seqlens, const bytetx_tensor* token_offset,
                         const bytetx_tensor* positions, const bytetx_tensor* relative_position_bias,
                         int64_t num_heads, int32_t has_scale, float scale, int64_t relative_position_max_distance,
                         const bytetx_tensor* context, void* stream, char* message, size_t message_size);

/* packed [T, H], token_offset [B, S] -> output [B, S, H], padding exactly zero. */
int32_t bytetx_rebuild_padding(int32_t device, const bytetx_tensor* packed, const bytetx_tensor* token_offset,
                               const bytetx_tensor* output, void* stream, char* message, size_t message_size);

#ifdef __cplusplus
}
#endif

#endif /* BYTETX_CAPI_H_ */
