#include "worker/fault.h"

namespace resweep {

FailureClass ClassifyFailure(const Status& status, FailureOrigin origin) {
  FailureClass c;
  if (origin == FailureOrigin::kConfig) return c;  // the same config fails everywhere
  if (origin == FailureOrigin::kNoProgress) {
    c.fault = FaultKind::kHost;
    return c;
  }
  switch (status.code()) {
    // The checkpoint could not be read back: forgotten, and the next attempt starts
    // afresh (using up an attempt, as the checkpoint may be what is wrong).
    case StatusCode::kDataLoss:
      c.retryable = true;
      c.checkpoint_unusable = true;
      return c;
    // This host: missing data or --data-root (NOT_FOUND), device and LibTorch errors
    // (INTERNAL), unwritable or unreachable mounts such as --checkpoint-dir
    // (UNAVAILABLE), file permissions, out of memory or disk (RESOURCE_EXHAUSTED).
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
