// Whose fault a failed run is, as the worker sees it (docs/reliability.md has the
// table). Host faults (data missing on this host, device errors, I/O on this host's
// mounts, out of memory, a trainer that stopped making progress) give the run back
// without using up one of its attempts and count against the worker; run faults
// (divergence, a config the worker can prove invalid) are the run's own.
#pragma once

#include "common/status.h"

namespace resweep {

enum class FaultKind { kRun, kHost };

// Where in a run's life the failure arose.
enum class FailureOrigin {
  kConfig,      // parsing or validating the leased config
  kResume,      // fetching or reading the checkpoint the lease resumes from
  kTraining,    // the trainer (data loading, the model, epoch reports, checkpoints)
  kNoProgress,  // the progress deadline ran out (the trainer stopped making progress)
  kRunLimit,    // the sweep's train.max_run_seconds ran out: the run's own limit
};

struct FailureClass {
  FaultKind fault = FaultKind::kRun;
  bool retryable = false;            // a run fault that another attempt may get past
  bool checkpoint_unusable = false;  // forget the run's checkpoint (next attempt from 0)
};

// The status of a LibTorch error `what` raised while a checkpoint was being loaded
// onto the run's device: a device error (CUDA, cuDNN) is INTERNAL and running out of
// device memory RESOURCE_EXHAUSTED, both the host's faults that keep the checkpoint;
// anything else is DATA_LOSS, the checkpoint's own fault.
Status CheckpointLoadError(const std::string& what);

// The classification of `status` (not OK) from `origin`. `checkpoint_unusable`: the
// checkpoint the lease resumes from proved unusable (missing, corrupt, refused by the
// trainer); only then is it forgotten. Any other failure keeps it, a DATA_LOSS from
// reading the data set included.
FailureClass ClassifyFailure(const Status& status, FailureOrigin origin,
                             bool checkpoint_unusable = false);

}  // namespace resweep
