// The few CUDA facilities the trainer and its benchmark use beyond LibTorch's device
// API: a stream per slot, the device's free memory, and a captured training step.
// Compiled against CUDA where LibTorch has it (RESWEEP_WITH_CUDA); elsewhere a
// SlotStream leaves work on the default stream and the other calls return
// UNIMPLEMENTED.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <torch/torch.h>

#include "common/status.h"

namespace resweep {

// True when this build can use CUDA streams and graphs.
bool CudaSupportCompiled();

// While alive, this thread's current stream on `device` is one of its own (from
// LibTorch's stream pool), so work of several slots on one GPU can overlap. Does
// nothing on the CPU.
class SlotStream {
 public:
  explicit SlotStream(const torch::Device& device);
  ~SlotStream();
  SlotStream(const SlotStream&) = delete;
  SlotStream& operator=(const SlotStream&) = delete;
  // Waits until the work queued on this slot's stream is done.
  void Synchronize();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct DeviceMemory {
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
};
// The device's free and total memory as the driver reports them (memory LibTorch's
// allocator holds but does not use counts as used).
StatusOr<DeviceMemory> QueryDeviceMemory(const torch::Device& device);

// A step (forward, backward, optimiser step on fixed input tensors) captured once as
// a CUDA graph and replayed: one launch instead of thousands. The step must not
// synchronise with the host or change shapes; its inputs are refreshed by copying
// into the tensors it captured.
class CapturedStep {
 public:
  CapturedStep();
  ~CapturedStep();
  // Captures `step` on this thread's current stream, which must not be the default
  // stream (open a SlotStream first); run `step` eagerly a few times before, so
  // lazily created state (optimiser buffers, cuDNN plans) exists. Errors as values.
  Status Capture(const torch::Device& device, const std::function<void()>& step);
  void Replay();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace resweep
