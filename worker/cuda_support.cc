#include "worker/cuda_support.h"

#ifdef RESWEEP_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <optional>
#endif

namespace resweep {

#ifdef RESWEEP_WITH_CUDA

bool CudaSupportCompiled() { return true; }

struct SlotStream::State {
  std::optional<c10::cuda::CUDAStream> stream;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

SlotStream::SlotStream(const torch::Device& device) : state_(std::make_unique<State>()) {
  if (!device.is_cuda()) return;
  state_->stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  state_->guard.emplace(*state_->stream);
}

SlotStream::~SlotStream() = default;

void SlotStream::Synchronize() {
  if (state_->stream) state_->stream->synchronize();
}

StatusOr<DeviceMemory> QueryDeviceMemory(const torch::Device& device) {
  if (!device.is_cuda())
    return InvalidArgumentError("device memory: " + device.str() + " is no GPU");
  c10::cuda::CUDAGuard guard(device.index());
  size_t free_bytes = 0, total_bytes = 0;
  const cudaError_t e = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (e != cudaSuccess)
    return InternalError(std::string("cudaMemGetInfo: ") + cudaGetErrorString(e));
  return DeviceMemory{static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

struct CapturedStep::State {
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

CapturedStep::CapturedStep() : state_(std::make_unique<State>()) {}
CapturedStep::~CapturedStep() = default;

Status CapturedStep::Capture(const torch::Device& device, const std::function<void()>& step) {
  if (!device.is_cuda()) return InvalidArgumentError("CUDA graphs need a GPU, not " + device.str());
  if (c10::cuda::getCurrentCUDAStream(device.index()) ==
      c10::cuda::getDefaultCUDAStream(device.index())) {
    return FailedPreconditionError("CUDA graph capture needs a non-default stream");
  }
  try {
    state_->graph.capture_begin();
    try {
      step();
    } catch (...) {
      try {
        state_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    state_->graph.capture_end();
  } catch (const c10::Error& e) {
    return InternalError(std::string("CUDA graph capture: ") + e.what_without_backtrace());
  }
  state_->captured = true;
  return Status::Ok();
}

void CapturedStep::Replay() {
  TORCH_CHECK(state_->captured, "CapturedStep::Replay before a successful Capture");
  state_->graph.replay();
}

#else  // no CUDA in this build

bool CudaSupportCompiled() { return false; }

struct SlotStream::State {};
SlotStream::SlotStream(const torch::Device&) {}  // work stays on the default stream
SlotStream::~SlotStream() = default;
void SlotStream::Synchronize() {}

StatusOr<DeviceMemory> QueryDeviceMemory(const torch::Device& device) {
  return UnimplementedError("device memory of " + device.str() + ": built without CUDA");
}

struct CapturedStep::State {};
CapturedStep::CapturedStep() = default;
CapturedStep::~CapturedStep() = default;
Status CapturedStep::Capture(const torch::Device& device, const std::function<void()>&) {
  return UnimplementedError("CUDA graphs on " + device.str() + ": built without CUDA");
}
void CapturedStep::Replay() { TORCH_CHECK(false, "built without CUDA"); }

#endif

}  // namespace resweep
