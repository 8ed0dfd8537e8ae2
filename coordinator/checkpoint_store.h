// Checkpoint files under the coordinator's artifact directory:
//   <dir>/<run_id>/epoch-<E>.ckpt          committed checkpoints (the newest is kept)
//   <dir>/<run_id>/upload-a<A>-e<E>.part   an upload in progress
// Not thread-safe; the Scheduler serialises calls.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace resweep {

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string dir);

  // Writes `data` at `offset` of the upload (run, attempt, epoch). `offset` must not
  // be past the bytes received so far; returns the upload's new size.
  StatusOr<int64_t> Append(const std::string& run_id, int attempt, int epoch, int64_t offset,
                           const std::string& data);
  // Checks the upload against `sha256` (hex) and, when it matches, makes it the
  // run's checkpoint for `epoch` (atomic rename) and removes older ones.
  Status Commit(const std::string& run_id, int attempt, int epoch, const std::string& sha256);
  // Up to max_bytes of the committed checkpoint of `epoch` from `offset`.
  Status Read(const std::string& run_id, int epoch, int64_t offset, int max_bytes,
              std::string* data, int64_t* total_size);
  // Removes everything stored for the run (it is finished).
  void RemoveRun(const std::string& run_id);

 private:
  std::string RunDir(const std::string& run_id) const;
  const std::string dir_;
};

}  // namespace resweep
