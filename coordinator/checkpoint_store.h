// Checkpoint files under the coordinator's artifact directory:
//   <dir>/<run_id>/epoch-<E>-it-<I>.ckpt       checkpoint files
//   <dir>/<run_id>/upload-a<A>-e<E>-i<I>.part  an upload in progress (attempt A)
//   <dir>/<run_id>/epoch-<E>.ckpt              a checkpoint of an older coordinator
//
// A .ckpt file is the run's checkpoint only once the database records its (E, I):
// the Scheduler promotes an upload to its file first, records it second, and only
// then removes the older files (RemoveOlder). A crash or a failed database write in
// between leaves the recorded file in place, plus an unrecorded newer one that a
// retried commit records or the periodic sweep-up (List + Remove) removes. Files are
// fsync'ed before their rename and their directory after it.
//
// Thread-safe. Uploads of different files proceed in parallel; a call on an upload
// that another call is writing at the same moment is refused with UNAVAILABLE (the
// worker retries it).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace resweep {

// One checkpoint of a run, as uploaded by one attempt.
struct CheckpointId {
  std::string run_id;
  int attempt = 0;
  int epoch = 0;
  int64_t iteration = 0;
};

// A file in a run's artifact directory, for the sweep-up.
struct ArtifactFile {
  enum class Kind { kCheckpoint, kUpload, kOther };
  std::string run_id;
  std::string name;  // file name within the run's directory
  Kind kind = Kind::kOther;
  int attempt = 0;  // uploads only
  int epoch = 0;    // checkpoints and uploads
  // Checkpoints and uploads; -1 for a checkpoint of an older coordinator, which
  // named the epoch only.
  int64_t iteration = 0;
  int64_t bytes = 0;
  int64_t modified_ms = 0;  // wall clock, ms since the Unix epoch
};

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string dir);

  const std::string& dir() const { return dir_; }

  // Writes `data` at `offset` of the upload `id`. `offset` must not be past the
  // bytes received so far; returns the upload's new size. An upload started (offset
  // 0) removes the run's other uploads of this or earlier attempts: a run has one
  // upload in progress.
  StatusOr<int64_t> Append(const CheckpointId& id, int64_t offset, const std::string& data);
  // True when upload `id` was already promoted to its file of `size` bytes and no
  // upload of it is in progress: a retried last chunk whose commit did not finish.
  bool Promoted(const CheckpointId& id, int64_t size);
  // Checks the upload against `sha256` (hex) and renames it to its checkpoint file
  // (durably). A retried call after that checks the file instead. The file is not
  // yet the run's checkpoint: the caller records it in the database.
  Status Promote(const CheckpointId& id, const std::string& sha256);
  // Up to max_bytes of the checkpoint file of (epoch, iteration) from `offset`;
  // NOT_FOUND when there is no such file.
  Status Read(const std::string& run_id, int epoch, int64_t iteration, int64_t offset,
              int max_bytes, std::string* data, int64_t* total_size);
  bool Exists(const std::string& run_id, int epoch, int64_t iteration);
  // The newest checkpoint file of the run older than (epoch, iteration), if any.
  std::optional<std::pair<int, int64_t>> NewestBefore(const std::string& run_id, int epoch,
                                                      int64_t iteration);
  // Removes the run's checkpoint files older than (epoch, iteration): call once the
  // database records (epoch, iteration).
  void RemoveOlder(const std::string& run_id, int epoch, int64_t iteration);
  // Removes everything stored for the run (it is finished).
  void RemoveRun(const std::string& run_id);

  // Every entry of the run directories under the artifact directory; entries of the
  // artifact directory that are not run ids are left alone.
  std::vector<ArtifactFile> List();
  // Removes one listed file (and the run's directory once it is empty).
  void Remove(const ArtifactFile& file);

  // Path of the checkpoint file of (epoch, iteration); for logs and tests.
  std::string CheckpointPath(const std::string& run_id, int epoch, int64_t iteration) const;

 private:
  std::string RunDir(const std::string& run_id) const;
  std::string UploadPath(const CheckpointId& id) const;
  // The existing file holding (epoch, iteration): the current name, else an older
  // coordinator's epoch-only name; "" when neither exists.
  std::string FindCheckpoint(const std::string& run_id, int epoch, int64_t iteration) const;

  // Marks an upload as being written by one call; the Busy guard releases it.
  class Busy;

  const std::string dir_;
  Mutex mutex_;  // guards busy_ only: file I/O runs outside it
  std::set<std::string> busy_ RESWEEP_GUARDED_BY(mutex_);
};

}  // namespace resweep
