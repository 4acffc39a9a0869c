// The C ABI (bytetx_capi.h): each entry point describes its tensors for the op's contract, validates
// them there (and, on the CPU, their values and the outputs' shapes), then runs the CPU kernel or the
// CUDA launch. No exception leaves the library.
#include "capi/bytetx_capi.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "capi/capi_internal.h"
#include "common/parallel_for.h"
#include "cpu/contract_run.h"

namespace bytetx::capi {
namespace {

using contract::Backend;
using contract::ElementType;

#ifdef BYTETX_WITH_CUDA
constexpr int32_t kHasCuda = 1;
#else
constexpr int32_t kHasCuda = 0;
#endif

std::atomic<int32_t> g_cpu_threads{0};

// ParallelFor on threads started for the call: the tasks are handed out one at a time.
Status RunOnThreads(void* /*runner_context*/, size_t total, ParallelFor::Body body, void* body_context) {
  const int32_t wanted = g_cpu_threads.load();
  const size_t threads = std::min<size_t>(
      total, static_cast<size_t>(wanted > 0 ? wanted : std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t index = next.fetch_add(1); index < total; index = next.fetch_add(1)) {
      body(body_context, index);
    }
  };
  std::vector<std::thread> helpers;
  try {
    for (size_t i = 1; i < threads; ++i) {
      helpers.emplace_back(work);
    }
  } catch (const std::exception&) {  // no more threads to be had: the calling thread does the rest
  }
  work();
  for (std::thread& helper : helpers) {
    helper.join();
  }
  return Status::Ok();
}

const ParallelFor kThreads(&RunOnThreads, nullptr);

Status ExpectTensors(std::initializer_list<const bytetx_tensor*> tensors) {
  for (const bytetx_tensor* tensor : tensors) {
    BYTETX_CHECK(tensor != nullptr, "a tensor argument is NULL");
    BYTETX_CHECK(tensor->rank >= 0 && tensor->rank <= BYTETX_MAX_RANK, "a tensor has rank ", tensor->rank,
                 ", outside [0, ", BYTETX_MAX_RANK, "]");
    BYTETX_CHECK(tensor->data != nullptr || ElementCount(*tensor) == 0, "a tensor with elements has data NULL");
  }
  return Status::Ok();
}

Status ExpectDevice(int32_t device) {
  BYTETX_CHECK(device == BYTETX_CPU || device == BYTETX_CUDA, "device must be BYTETX_CPU (0) or BYTETX_CUDA (1), but ",
               "it is ", device);
  if (device == BYTETX_CUDA && kHasCuda == 0) {
    return Status::Unavailable("this library was built without CUDA (no nvcc at build time)");
  }
  return Status::Ok();
}

// Runs a CUDA launch; ExpectDevice has refused CUDA where the library has none.
template <typename Launch>
Status OnCuda(const Launch& launch) {
#ifdef BYTETX_WITH_CUDA
  return launch();
#else
  static_cast<void>(launch);
  return Status::Unavailable("this library was built without CUDA (no nvcc at build time)");
#endif
}

Backend BackendOf(int32_t device) { return device == BYTETX_CUDA ? Backend::kCuda : Backend::kCpu; }

// An output the caller allocated: the type and shape the op gives it.
Status ExpectOutput(const bytetx_tensor& tensor, const contract::TensorSpec& spec, ElementType type,
                    const std::vector<int64_t>& dims) {
  const contract::TensorDesc desc = Describe(tensor);
  BYTETX_CHECK(desc.type == type, "output '", spec.name, "' must be ", contract::ElementTypeName(type), ", but it is ",
               contract::ElementTypeName(desc.type));
  BYTETX_CHECK(desc.dims == dims, "output '", spec.name, "' must have shape ", spec.dims, " = ",
               contract::ShapeString(dims), ", but its shape is ", contract::ShapeString(desc.dims));
  return Status::Ok();
}

Status RemovePadding(int32_t device, const bytetx_tensor* input, const bytetx_tensor* mask, const bytetx_tensor* packed,
                     const bytetx_tensor* cu_seqlens, const bytetx_tensor* token_offset, void* stream) {
  using Contract = contract::RemovePadding;
  BYTETX_RETURN_IF_ERROR(ExpectDevice(device));
  BYTETX_RETURN_IF_ERROR(ExpectTensors({input, mask, packed, cu_seqlens, token_offset}));
  const contract::TensorDesc inputs[] = {Describe(*input), Describe(*mask)};
  Contract::Dims dims;
  BYTETX_RETURN_IF_ERROR(Contract::Validate(inputs, BackendOf(device), &dims));
  const auto& specs = Contract::kTensors;
  BYTETX_RETURN_IF_ERROR(ExpectOutput(*cu_seqlens, specs[Contract::kCuSeqlens], ElementType::kInt32, {dims.batch + 1}));
  BYTETX_RETURN_IF_ERROR(
      ExpectOutput(*token_offset, specs[Contract::kTokenOffset], ElementType::kInt32, {dims.batch, dims.seq_len}));
  if (device == BYTETX_CUDA) {
    // T is on the device: packed may have T rows or the bound B * S, as the caller chose.
    const int64_t rows = packed->rank == 2 ? packed->dims[0] : -1;
    BYTETX_CHECK(rows >= 0 && rows <= dims.batch * dims.seq_len, "output 'packed' must have T or at most B * S=",
                 dims.batch * dims.seq_len, " rows, but its shape is ", contract::ShapeString(Describe(*packed).dims));
    BYTETX_RETURN_IF_ERROR(ExpectOutput(*packed, specs[Contract::kPacked], inputs[0].type, {rows, dims.hidden}));
    return OnCuda([&] { return RemovePaddingCuda(dims, *input, *mask, *packed, *cu_seqlens, *token_offset, stream); });
  }
  const cpu::MaskType mask_type = cpu::MaskTypeOf(inputs[Contract::kAttentionMask].type);
  const int64_t num_tokens = cpu::CountTokens(dims, mask->data, mask_type);
  BYTETX_RETURN_IF_ERROR(ExpectOutput(*packed, specs[Contract::kPacked], inputs[0].type, {num_tokens, dims.hidden}));
  return cpu::RunRemovePadding(dims, static_cast<const float*>(input->data), mask->data, mask_type,
                               static_cast<float*>(packed->data), static_cast<int32_t*>(cu_seqlens->data),
                               static_cast<int32_t*>(token_offset->data), kThreads);
}

// An optional input: absent where the caller passed NULL.
contract::TensorDesc DescribeOptional(const bytetx_tensor* tensor) {
  return tensor == nullptr ? contract::TensorDesc{ElementType::kUnknown, {}, /*present=*/false} : Describe(*tensor);
}

Status FusedMHA(int32_t device, const bytetx_tensor* qkv, const bytetx_tensor* qkv_bias, const bytetx_tensor* cu_seqlens,
                const bytetx_tensor* token_offset, const bytetx_tensor* positions,
                const bytetx_tensor* relative_position_bias, const contract::FusedMHA::Attributes& attributes,
                const bytetx_tensor* context, void* stream) {
  using Contract = contract::FusedMHA;
  BYTETX_RETURN_IF_ERROR(ExpectDevice(device));
  BYTETX_RETURN_IF_ERROR(ExpectTensors({qkv, qkv_bias, cu_seqlens, token_offset, context}));
  for (const bytetx_tensor* optional : {positions, relative_position_bias}) {
    if (optional != nullptr) {
      BYTETX_RETURN_IF_ERROR(ExpectTensors({optional}));
    }
  }
  BYTETX_RETURN_IF_ERROR(Contract::ValidateAttributes(attributes));
  const contract::TensorDesc inputs[] = {Describe(*qkv),         Describe(*qkv_bias),
                                         Describe(*cu_seqlens),  Describe(*token_offset),
                                         DescribeOptional(positions), DescribeOptional(relative_position_bias),
                                         DescribeOptional(nullptr),   DescribeOptional(nullptr)};
  Contract::Dims dims;
  BYTETX_RETURN_IF_ERROR(Contract::Validate(inputs, attributes, BackendOf(device), &dims));
  BYTETX_RETURN_IF_ERROR(
      ExpectOutput(*context, Contract::kTensors[Contract::kContext], inputs[0].type, {dims.num_tokens, dims.hidden}));
  if (device == BYTETX_CUDA) {
    return OnCuda([&] {
      return FusedMHACuda(dims, attributes, *qkv, *qkv_bias, *cu_seqlens, positions, relative_position_bias, *context,
                          stream);
    });
  }
  return cpu::RunFusedMHA(dims, attributes, static_cast<const float*>(qkv->data),
                          static_cast<const float*>(qkv_bias->data), static_cast<const int32_t*>(cu_seqlens->data),
                          positions ? static_cast<const int32_t*>(positions->data) : nullptr,
                          relative_position_bias ? static_cast<const float*>(relative_position_bias->data) : nullptr,
                          nullptr, nullptr, static_cast<float*>(context->data), kThreads);
}

Status RebuildPadding(int32_t device, const bytetx_tensor* packed, const bytetx_tensor* token_offset,
                      const bytetx_tensor* output, void* stream) {
  using Contract = contract::RebuildPadding;
  BYTETX_RETURN_IF_ERROR(ExpectDevice(device));
  BYTETX_RETURN_IF_ERROR(ExpectTensors({packed, token_offset, output}));
  const contract::TensorDesc inputs[] = {Describe(*packed), Describe(*token_offset)};
  Contract::Dims dims;
  BYTETX_RETURN_IF_ERROR(Contract::Validate(inputs, BackendOf(device), &dims));
  BYTETX_RETURN_IF_ERROR(ExpectOutput(*output, Contract::kTensors[Contract::kOutput], inputs[0].type,
                                      {dims.batch, dims.seq_len, dims.hidden}));
  if (device == BYTETX_CUDA) {
    return OnCuda([&] { return RebuildPaddingCuda(dims, *packed, *token_offset, *output, stream); });
  }
  return cpu::RunRebuildPadding(dims, static_cast<const float*>(packed->data),
                                static_cast<const int32_t*>(token_offset->data), static_cast<float*>(output->data),
                                kThreads);
}

// The status code of `status`, its message ("<op>: ...") copied into the caller's buffer.
int32_t Report(const char* op, const Status& status, char* message, size_t message_size) noexcept {
  if (status.ok()) {
    if (message != nullptr && message_size > 0) {
      message[0] = '\0';
    }
    return BYTETX_OK;
  }
  if (message != nullptr && message_size > 0) {
    try {
      const std::string text = StrCat(op, ": ", status.message());
      const size_t length = std::min(text.size(), message_size - 1);
      std::memcpy(message, text.data(), length);
      message[length] = '\0';
    } catch (...) {  // out of memory while formatting: the code alone reports the failure
      message[0] = '\0';
    }
  }
  switch (status.code()) {
    case Status::Code::kInvalid:
      return BYTETX_INVALID_ARGUMENT;
    case Status::Code::kUnavailable:
      return BYTETX_UNAVAILABLE;
    default:
      return BYTETX_INTERNAL;
  }
}

template <typename Fn>
int32_t Guarded(const char* op, char* message, size_t message_size, const Fn& fn) noexcept {
  try {
    return Report(op, fn(), message, message_size);
  } catch (const std::exception& e) {
    return Report(op, Status::Internal(e.what()), message, message_size);
  } catch (...) {
    return Report(op, Status::Internal("unknown exception"), message, message_size);
  }
}

}  // namespace

contract::ElementType ToElementType(int32_t dtype) {
  switch (dtype) {
    case BYTETX_FLOAT32:
      return ElementType::kFloat32;
    case BYTETX_FLOAT16:
      return ElementType::kFloat16;
    case BYTETX_BFLOAT16:
      return ElementType::kBFloat16;
    case BYTETX_INT32:
      return ElementType::kInt32;
    case BYTETX_INT64:
      return ElementType::kInt64;
    default:
      return ElementType::kOther;
  }
}

contract::TensorDesc Describe(const bytetx_tensor& tensor) {
  contract::TensorDesc desc{ToElementType(tensor.dtype), {}};
  for (int32_t i = 0; i < tensor.rank; ++i) {
    desc.dims.push_back(tensor.dims[i]);
  }
  return desc;
}

int64_t ElementCount(const bytetx_tensor& tensor) {
  int64_t count = 1;
  for (int32_t i = 0; i < tensor.rank; ++i) {
    if (tensor.dims[i] <= 0) {
      return 0;
    }
    count = tensor.dims[i] > INT64_MAX / count ? INT64_MAX : count * tensor.dims[i];
  }
  return count;
}

}  // namespace bytetx::capi

#define BYTETX_CAPI extern "C" __attribute__((visibility("default")))

BYTETX_CAPI int32_t bytetx_capi_version(void) { return BYTETX_CAPI_VERSION; }

BYTETX_CAPI int32_t bytetx_has_cuda(void) { return bytetx::capi::kHasCuda; }

BYTETX_CAPI void bytetx_set_cpu_threads(int32_t num_threads) {
  bytetx::capi::g_cpu_threads.store(num_threads > 0 ? num_threads : 0);
}

BYTETX_CAPI int32_t bytetx_remove_padding(int32_t device, const bytetx_tensor* input,
                                          const bytetx_tensor* attention_mask, const bytetx_tensor* packed,
                                          const bytetx_tensor* cu_seqlens, const bytetx_tensor* token_offset,
                                          void* stream, char* message, size_t message_size) {
  using namespace bytetx;
  return capi::Guarded(contract::RemovePadding::kName, message, message_size, [&] {
    return capi::RemovePadding(device, input, attention_mask, packed, cu_seqlens, token_offset, stream);
  });
}

BYTETX_CAPI int32_t bytetx_fused_mha(int32_t device, const bytetx_tensor* qkv, const bytetx_tensor* qkv_bias,
                                     const bytetx_tensor* cu_seqlens, const bytetx_tensor* token_offset,
                                     const bytetx_tensor* positions, const bytetx_tensor* relative_position_bias,
                                     int64_t num_heads, int32_t has_scale, float scale,
                                     int64_t relative_position_max_distance, const bytetx_tensor* context,
                                     void* stream, char* message, size_t message_size) {
  using namespace bytetx;
  return capi::Guarded(contract::FusedMHA::kName, message, message_size, [&] {
    contract::FusedMHA::Attributes attributes;
    attributes.num_heads = num_heads;
    if (has_scale != 0) {
      attributes.scale = scale;
    }
    if (relative_position_max_distance != 0) {
      attributes.relative_position_max_distance = relative_position_max_distance;
    }
    return capi::FusedMHA(device, qkv, qkv_bias, cu_seqlens, token_offset, positions, relative_position_bias,
                          attributes, context, stream);
  });
}

BYTETX_CAPI int32_t bytetx_rebuild_padding(int32_t device, const bytetx_tensor* packed,
                                           const bytetx_tensor* token_offset, const bytetx_tensor* output,
                                           void* stream, char* message, size_t message_size) {
  using namespace bytetx;
  return capi::Guarded(contract::RebuildPadding::kName, message, message_size,
                       [&] { return capi::RebuildPadding(device, packed, token_offset, output, stream); });
}
