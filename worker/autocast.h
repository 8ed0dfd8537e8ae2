// Mixed precision on CUDA for one scope. Autocast state is thread-local, so a scope
// affects only the thread that opens it: each slot of a worker (and each run of a
// benchmark thread) chooses its own precision.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace resweep {

// LibTorch 2.4 replaced the CUDA-only autocast calls with per-device-type ones (the
// old names were deprecated, then removed); Debian's LibTorch is 1.13.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define RESWEEP_AUTOCAST_PER_DEVICE 1
#endif

// While alive: ops that autocast lowers run in `dtype` on CUDA, the rest in fp32.
// `enabled` false: does nothing. `cache_casts` false: no cast is cached across ops,
// which CUDA graph capture needs (a cached cast would outlive the capture).
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::ScalarType dtype, bool cache_casts = true) : enabled_(enabled) {
    if (!enabled_) return;
#ifdef RESWEEP_AUTOCAST_PER_DEVICE
    previous_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    previous_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
#endif
    previous_cache_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(cache_casts);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_cache_enabled(previous_cache_);
#ifdef RESWEEP_AUTOCAST_PER_DEVICE
    at::autocast::set_autocast_enabled(at::kCUDA, previous_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
#else
    at::autocast::set_enabled(previous_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool previous_enabled_ = false;
  bool previous_cache_ = true;
  at::ScalarType previous_dtype_ = at::kHalf;
};

}  // namespace resweep
