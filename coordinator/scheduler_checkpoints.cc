#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "common/checkpoint_path.h"
#include "coordinator/scheduler_internal.h"

// Checkpoints: uploads, the shared filesystem, downloads, and the artifact sweep-up.

namespace resweep {

using namespace scheduler_internal;  // NOLINT: this file is the scheduler's own

StatusOr<int64_t> Scheduler::PutCheckpointChunk(const std::string& worker_id,
                                                const std::string& run_id, int attempt, int epoch,
                                                int64_t offset, const std::string& data, bool last,
                                                const std::string& sha256, int64_t iteration) {
  if (!checkpoints_) return FailedPreconditionError("this coordinator keeps no checkpoints");
  if (!IsValidRunId(run_id)) return InvalidArgumentError("bad run id");
  if (offset < 0) return InvalidArgumentError("checkpoint chunk: negative offset");
  const int64_t end = offset + static_cast<int64_t>(data.size());
  if (end > options_.max_checkpoint_bytes) {
    return InvalidArgumentError(
        fmt::format("checkpoint of run {} epoch {}: {} bytes or more; this coordinator takes "
                    "checkpoints of at most {} bytes (--max-checkpoint-bytes)",
                    run_id, epoch, end, options_.max_checkpoint_bytes));
  }
  {
    MutexLock lock(&mutex_);
    RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    if (last && epoch == run->checkpoint_epoch && iteration == run->checkpoint_iteration &&
        run->checkpoint_path.empty()) {
      return end;  // retried commit
    }
    RESWEEP_RETURN_IF_ERROR(CheckCheckpointOrder(*run, epoch, iteration));
    int& in_flight = uploads_in_flight_[worker_id];
    if (in_flight >= options_.max_uploads_per_worker) {
      return ResourceExhaustedError(
          fmt::format("worker {} has {} checkpoint uploads in progress (at most {}); try again",
                      worker_id, in_flight, options_.max_uploads_per_worker));
    }
    ++in_flight;
  }
  // Writing and hashing happen outside the lock; the slot is given back on every path.
  struct UploadSlot {
    Scheduler* scheduler;
    const std::string& worker_id;
    ~UploadSlot() {
      MutexLock lock(&scheduler->mutex_);
      if (--scheduler->uploads_in_flight_[worker_id] <= 0) {
        scheduler->uploads_in_flight_.erase(worker_id);
      }
    }
  } slot{this, worker_id};
  const CheckpointId id{run_id, attempt, epoch, iteration};
  // A retried last chunk whose commit did not finish finds its file in place.
  if (!last || !checkpoints_->Promoted(id, end)) {
    auto next = checkpoints_->Append(id, offset, data);
    if (!next.ok() || !last) return next;
  }
  RESWEEP_RETURN_IF_ERROR(checkpoints_->Promote(id, sha256));
  CrashPoint("checkpoint-after-rename");
  Status st;
  {
    MutexLock lock(&mutex_);
    const int64_t now = clock_->NowMs();
    st = ExpireIfDueLocked(run_id);
    if (st.ok()) {
      st = store_->RunInTransaction([&]() -> Status {
        mutex_.AssertHeld();
        auto fresh = FencedRunLocked(worker_id, run_id, attempt);
        if (!fresh.ok()) return fresh.status();
        RunRecord r = *fresh;
        if (epoch == r.checkpoint_epoch && iteration == r.checkpoint_iteration &&
            r.checkpoint_path.empty()) {
          return Status::Ok();  // committed by a concurrent retry
        }
        RESWEEP_RETURN_IF_ERROR(CheckCheckpointOrder(r, epoch, iteration));
        r.checkpoint_epoch = epoch;
        r.checkpoint_iteration = iteration;
        r.checkpoint_path.clear();
        RenewLeaseLocked(&r);
        r.updated_ms = now;
        return store_->UpdateRun(r);
      });
    }
  }
  if (!st.ok()) {
    // The previous checkpoint stays the run's; this file waits for a retry of the
    // commit or for the sweep-up.
    spdlog::warn("run {} attempt {}: checkpoint of epoch {} (iteration {}) not recorded: {}",
                 run_id, attempt, epoch, iteration, st.ToString());
    return st;
  }
  CrashPoint("checkpoint-after-commit");
  checkpoints_->RemoveOlder(run_id, epoch, iteration);
  spdlog::debug("run {} attempt {}: checkpoint of epoch {} (iteration {}) stored ({} bytes)",
                run_id, attempt, epoch, iteration, end);
  return end;
}

Status Scheduler::RecordSharedCheckpoint(const std::string& worker_id, const std::string& run_id,
                                         int attempt, int epoch, const std::string& relative_path,
                                         int64_t iteration) {
  // Only a file in the run's own directory: a path recorded here is later read (and
  // its directory removed) by other workers.
  RESWEEP_RETURN_IF_ERROR(CheckSharedCheckpointPath(run_id, relative_path));
  MutexLock lock(&mutex_);
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
  const int64_t now = clock_->NowMs();
  return store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    if (epoch == run->checkpoint_epoch && iteration == run->checkpoint_iteration &&
        relative_path == run->checkpoint_path) {
      return Status::Ok();  // retried
    }
    RESWEEP_RETURN_IF_ERROR(CheckCheckpointOrder(*run, epoch, iteration));
    RunRecord r = *run;
    r.checkpoint_epoch = epoch;
    r.checkpoint_iteration = iteration;
    r.checkpoint_path = relative_path;
    RenewLeaseLocked(&r);
    r.updated_ms = now;
    spdlog::debug("run {} attempt {}: shared checkpoint of epoch {} at {}", run_id, attempt, epoch,
                  relative_path);
    return store_->UpdateRun(r);
  });
}

Status Scheduler::GetCheckpointChunk(const std::string& worker_id, const std::string& run_id,
                                     int attempt, int epoch, int64_t offset, int max_bytes,
                                     std::string* data, int64_t* total_size) {
  if (!checkpoints_) return FailedPreconditionError("this coordinator keeps no checkpoints");
  int64_t iteration = 0;
  {
    MutexLock lock(&mutex_);
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    if (!run->checkpoint_path.empty()) {
      return FailedPreconditionError("run " + run_id +
                                     "'s checkpoint is on the shared filesystem (" +
                                     run->checkpoint_path + "), not in the coordinator");
    }
    if (epoch != run->checkpoint_epoch) {
      return FailedPreconditionError("run " + run_id + " resumes from epoch " +
                                     std::to_string(run->checkpoint_epoch) + ", not " +
                                     std::to_string(epoch));
    }
    iteration = run->checkpoint_iteration;
  }
  // The recorded file is removed only after a newer one is recorded, which this
  // attempt alone can do: reading it outside the lock is safe.
  return checkpoints_->Read(run_id, epoch, iteration, offset, std::clamp(max_bytes, 1, 4 << 20),
                            data, total_size);
}

Status Scheduler::CheckCheckpointOrder(const RunRecord& run, int epoch, int64_t iteration) {
  const bool newer = epoch > run.checkpoint_epoch ||
                     (epoch == run.checkpoint_epoch && iteration > run.checkpoint_iteration);
  if (!newer || epoch > run.epoch || epoch < 1) {
    return FailedPreconditionError("checkpoint of epoch " + std::to_string(epoch) + " (iteration " +
                                   std::to_string(iteration) + ") for run " + run.run_id +
                                   ": reported epochs end at " + std::to_string(run.epoch) +
                                   ", newest checkpoint is of epoch " +
                                   std::to_string(run.checkpoint_epoch) + " (iteration " +
                                   std::to_string(run.checkpoint_iteration) + ")");
  }
  return Status::Ok();
}

void Scheduler::FallBackToOlderCheckpoint(RunRecord* run, const std::string& why) {
  const auto older = checkpoints_ ? checkpoints_->NewestBefore(run->run_id, run->checkpoint_epoch,
                                                               run->checkpoint_iteration)
                                  : std::nullopt;
  spdlog::warn("run {}: checkpoint of epoch {} (iteration {}) unusable, {}: resuming from {}",
               run->run_id, run->checkpoint_epoch, run->checkpoint_iteration, why,
               older ? fmt::format("the older checkpoint of epoch {} (iteration {})", older->first,
                                   older->second)
                     : std::string("scratch"));
  run->checkpoint_epoch = older ? older->first : 0;
  run->checkpoint_iteration = older ? older->second : 0;
  run->checkpoint_path.clear();
}

StatusOr<ArtifactSweepResult> Scheduler::SweepArtifacts() {
  ArtifactSweepResult result;
  if (!checkpoints_) return result;
  std::map<std::string, std::vector<ArtifactFile>> by_run;
  for (auto& f : checkpoints_->List()) by_run[f.run_id].push_back(std::move(f));
  std::vector<ArtifactFile> remove;
  {
    MutexLock lock(&mutex_);
    const int64_t now = clock_->NowMs();
    Status st = store_->RunInTransaction([&]() -> Status {
      mutex_.AssertHeld();
      for (const auto& [run_id, files] : by_run) {
        auto found = store_->GetRun(run_id);
        if (!found.ok()) return found.status();
        auto stale = [&](const ArtifactFile& f) {
          return f.modified_ms + options_.stale_upload_ms < now;
        };
        if (!found->has_value()) {  // no such run (any more)
          for (const auto& f : files) {
            if (stale(f)) remove.push_back(f);
          }
          continue;
        }
        RunRecord run = **found;
        const bool finished_long_ago =
            (run.state == RunState::kFailed || run.state == RunState::kCancelled) &&
            run.updated_ms + options_.finished_checkpoint_retention_ms < now;
        if (run.state == RunState::kSucceeded || finished_long_ago) {
          if (finished_long_ago && run.checkpoint_epoch > 0 && run.checkpoint_path.empty()) {
            run.checkpoint_epoch = 0;  // the database lets go before the file goes
            run.checkpoint_iteration = 0;
            RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(run));
            ++result.checkpoints_dropped;
          }
          remove.insert(remove.end(), files.begin(), files.end());
          continue;
        }
        const bool recorded = run.checkpoint_epoch > 0 && run.checkpoint_path.empty();
        for (const auto& f : files) {
          bool drop = false;
          switch (f.kind) {
            case ArtifactFile::Kind::kUpload:
              drop = !HoldsLease(run.state) || f.attempt != run.attempt || stale(f);
              break;
            case ArtifactFile::Kind::kCheckpoint: {
              const bool is_recorded = recorded && f.epoch == run.checkpoint_epoch &&
                                       (f.iteration == run.checkpoint_iteration || f.iteration < 0);
              const bool older =
                  recorded &&
                  (f.epoch < run.checkpoint_epoch ||
                   (f.epoch == run.checkpoint_epoch && f.iteration < run.checkpoint_iteration));
              // Newer and unrecorded: a commit in progress, or one that never finished.
              drop = !is_recorded && (older || stale(f));
              break;
            }
            case ArtifactFile::Kind::kOther:
              drop = stale(f);
              break;
          }
          if (drop) remove.push_back(f);
        }
      }
      return Status::Ok();
    });
    if (!st.ok()) return st;
  }
  for (const auto& f : remove) {
    checkpoints_->Remove(f);
    ++result.files_removed;
    result.bytes_removed += f.bytes;
  }
  if (result.files_removed > 0 || result.checkpoints_dropped > 0) {
    spdlog::info(
        "artifact sweep-up: {} file(s), {} bytes removed; {} checkpoint(s) of runs finished "
        "long ago forgotten",
        result.files_removed, result.bytes_removed, result.checkpoints_dropped);
  }
  return result;
}

}  // namespace resweep
