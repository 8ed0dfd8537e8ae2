#include "worker/fault.h"

namespace resweep {

Status CheckpointLoadError(const std::string& what) {
  auto has = [&](const char* s) { return what.find(s) != std::string::npos; };
  if (has("out of memory")) {
    return ResourceExhaustedError("loading the checkpoint onto the device: " + what);
  }
  if (has("CUDA") || has("cuda") || has("cuDNN") || has("CUDNN") || has("device-side")) {
    return InternalError("loading the checkpoint onto the device: " + what);
  }
  return DataLossError("checkpoint unusable: " + what);
}

FailureClass ClassifyFailure(const Status& status, FailureOrigin origin, bool checkpoint_unusable) {
  FailureClass c;
  if (origin == FailureOrigin::kConfig) return c;  // the same config fails everywhere
  if (origin == FailureOrigin::kNoProgress) {
    c.fault = FaultKind::kHost;
    return c;
  }
  if (origin == FailureOrigin::kRunLimit) {
    // The sweep's own time limit: not the host's fault (it must not quarantine
    // workers); another attempt, perhaps on a faster worker, may fit.
    c.retryable = true;
    return c;
  }
  if (checkpoint_unusable) {
    // The run's own checkpoint could not be used: the coordinator forgets it and the
    // run goes on from an older one or from scratch, without using up an attempt.
    c.retryable = true;
    c.checkpoint_unusable = true;
    return c;
  }
  switch (status.code()) {
    // This host: missing data or --data-root (NOT_FOUND), device and LibTorch errors
    // (INTERNAL), unwritable or unreachable mounts such as --checkpoint-dir
    // (UNAVAILABLE), file permissions, out of memory or disk (RESOURCE_EXHAUSTED),
    // unreadable files (DATA_LOSS: a data set file that fails to read, a shared
    // checkpoint this worker has no --checkpoint-dir for).
    case StatusCode::kDataLoss:
    case StatusCode::kNotFound:
    case StatusCode::kInternal:
    case StatusCode::kUnavailable:
    case StatusCode::kPermissionDenied:
    case StatusCode::kResourceExhausted:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kUnknown:
      c.fault = FaultKind::kHost;
      return c;
    // The run's own: divergence and invalid data or config (INVALID_ARGUMENT), and
    // whatever else a trainer reports.
    default:
      return c;
  }
}

}  // namespace resweep
