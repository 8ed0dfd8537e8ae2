#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "coordinator/scheduler_internal.h"

// The Scheduler, split by job: this file holds construction and the lease helpers
// every part uses; scheduler_admission.cc (submit, cancel, retry, delete),
// scheduler_leases.cc (workers and their leases), scheduler_checkpoints.cc and
// scheduler_queries.cc hold the rest.

namespace resweep {

namespace scheduler_internal {

std::string RandomHex(int chars) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < chars; ++i) out.push_back(kHex[rng() & 0xf]);
  return out;
}

std::string CapText(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t keep = max_bytes - 40;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
  return text.substr(0, keep) + fmt::format(" [... {} bytes cut]", text.size() - keep);
}

Status ValidateMetrics(const EpochRecord& e) {
  struct Check {
    const char* field;
    double value;
    bool ok;
  };
  auto finite = [](double v) { return std::isfinite(v); };
  auto fraction = [&](double v) { return finite(v) && v >= 0 && v <= 1; };
  // test_error/test_loss < 0: "not evaluated this epoch".
  const Check checks[] = {
      {"train_loss", e.train_loss, finite(e.train_loss) && e.train_loss >= 0},
      {"train_error", e.train_error, fraction(e.train_error)},
      {"test_error", e.test_error, finite(e.test_error) && e.test_error <= 1},
      {"test_loss", e.test_loss, finite(e.test_loss)},
      {"lr", e.lr, finite(e.lr) && e.lr >= 0},
      {"seconds", e.seconds, finite(e.seconds) && e.seconds >= 0},
      {"images_per_sec", e.images_per_sec, finite(e.images_per_sec) && e.images_per_sec >= 0},
  };
  for (const auto& c : checks) {
    if (!c.ok) {
      return InvalidArgumentError(fmt::format(
          "run {} epoch {}: metrics.{} = {} is not a valid value (finite; error rates in 0..1; "
          "test_error < 0 means not evaluated)",
          e.run_id, e.epoch, c.field, c.value));
    }
  }
  return Status::Ok();
}

int SlotCount(const WorkerRecord& worker) {
  return static_cast<int>(std::count(worker.devices.begin(), worker.devices.end(), ',')) + 1;
}

}  // namespace scheduler_internal

using namespace scheduler_internal;  // NOLINT

Scheduler::Scheduler(Store* store, const Clock* clock, SchedulerOptions options,
                     CheckpointStore* checkpoints, ReadPool* reads)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      checkpoints_(checkpoints),
      reads_(reads),
      queries_(store, clock, options_.lease_ms, &stats_cache_),
      started_mono_ms_(clock->MonotonicMs()) {}

// ------------------------------------------------------------------- users

// ---------------------------------------------------------- lease helpers

StatusOr<RunRecord> Scheduler::FencedRunLocked(const std::string& worker_id,
                                               const std::string& run_id, int attempt) {
  auto run = store_->GetRun(run_id);
  if (!run.ok()) return run.status();
  return FenceLocked(*run, worker_id, run_id, attempt);
}

StatusOr<RunRecord> Scheduler::FenceLocked(const std::optional<RunRecord>& run,
                                           const std::string& worker_id, const std::string& run_id,
                                           int attempt) {
  if (!run.has_value()) return NotFoundError("no run " + run_id);
  const RunRecord& r = *run;
  if (r.attempt != attempt) {
    return FailedPreconditionError("stale attempt " + std::to_string(attempt) + " of run " +
                                   run_id + ": the run is on attempt " + std::to_string(r.attempt));
  }
  if (!HoldsLease(r.state)) {
    return FailedPreconditionError("run " + run_id + " is " + RunStateName(r.state) +
                                   (r.error.empty() ? "" : " (" + r.error + ")"));
  }
  if (r.worker_id != worker_id) {
    return FailedPreconditionError("run " + run_id + " attempt " + std::to_string(attempt) +
                                   " is leased to another worker");
  }
  if (LeaseExpiredLocked(r)) {
    // Only reached when the lease ran out between ExpireIfDueLocked and here; the
    // reaper closes it.
    return FailedPreconditionError("lease of run " + run_id + " attempt " +
                                   std::to_string(attempt) + " expired");
  }
  return r;
}

Status Scheduler::ExpireIfDueLocked(const std::string& run_id) {
  return ExpireIfDueAndReadLocked(run_id).status();
}

StatusOr<std::optional<RunRecord>> Scheduler::ExpireIfDueAndReadLocked(const std::string& run_id) {
  // Nearly always nothing is due: one read, and a transaction only to close the lease
  // (which reads the run again inside it).
  auto current = store_->GetRun(run_id);
  if (!current.ok()) return current.status();
  if (!current->has_value() || !HoldsLease((*current)->state) || !LeaseExpiredLocked(**current)) {
    return current;
  }
  RESWEEP_RETURN_IF_ERROR(store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = store_->GetRun(run_id);
    if (!run.ok()) return run.status();
    if (!run->has_value()) return Status::Ok();
    const RunRecord& r = **run;
    if (HoldsLease(r.state) && LeaseExpiredLocked(r)) {
      return LoseLeaseLocked(r, "lease expired");
    }
    return Status::Ok();
  }));
  return store_->GetRun(run_id);
}

Status Scheduler::LoseLeaseLocked(RunRecord run, const std::string& why) {
  RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(run, "lost", why));
  const std::string lost_worker = run.worker_id;
  run.failures += 1;
  run.worker_id.clear();
  run.lease_expires_ms = 0;
  run.updated_ms = clock_->NowMs();
  if (run.failures >= run.max_attempts) {
    run.state = RunState::kFailed;
    run.error = why + " on " + lost_worker + " (attempt " + std::to_string(run.attempt) + " of " +
                std::to_string(run.max_attempts) + ")";
    spdlog::warn("run {} failed: {}", run.run_id, run.error);
  } else {
    run.state = RunState::kQueued;
    NoteRunsQueuedLocked();
    spdlog::warn("run {} attempt {} lost on {} ({}): queued again", run.run_id, run.attempt,
                 lost_worker, why);
  }
  return store_->UpdateRun(run);
}

int64_t Scheduler::QuarantineEndMonoLocked(const WorkerHealthRecord& health) {
  auto it = quarantine_end_mono_.find(health.worker_id);
  if (it != quarantine_end_mono_.end()) return it->second;
  // A quarantine this scheduler did not impose (it was imposed before a restart):
  // what was left of it on the wall clock, at most a full back-off.
  const int64_t left = std::clamp<int64_t>(health.quarantined_until_ms - clock_->NowMs(), 0,
                                           options_.quarantine_max_ms);
  const int64_t end = clock_->MonotonicMs() + left;
  if (left > 0) quarantine_end_mono_[health.worker_id] = end;
  return end;
}

bool Scheduler::LeaseExpiredLocked(const RunRecord& run) const {
  auto it = lease_deadlines_.find(run.run_id);
  const int64_t deadline = it != lease_deadlines_.end() && it->second.attempt == run.attempt
                               ? it->second.mono_ms
                               : started_mono_ms_ + options_.lease_ms;
  return deadline < clock_->MonotonicMs();
}

bool Scheduler::LeaseDeadlineAheadLocked(const std::string& run_id, int attempt) const {
  auto it = lease_deadlines_.find(run_id);
  return it != lease_deadlines_.end() && it->second.attempt == attempt &&
         it->second.mono_ms >= clock_->MonotonicMs();
}

void Scheduler::RenewLeaseLocked(RunRecord* run) {
  // Set before the caller's transaction commits: a rolled-back renewal leaves a
  // deadline later than the stored one, which only ever favours the worker that
  // called.
  run->lease_expires_ms = clock_->NowMs() + options_.lease_ms;
  lease_deadlines_[run->run_id] = {run->attempt, clock_->MonotonicMs() + options_.lease_ms};
}

StatusOr<Lease> Scheduler::LeaseOfRunLocked(const RunRecord& run) {
  Lease l;
  l.run_id = run.run_id;
  l.attempt = run.attempt;
  l.config_json = run.config_json;
  l.seed = run.seed;
  l.resume_epoch = run.checkpoint_epoch;
  l.resume_path = run.checkpoint_epoch > 0 ? run.checkpoint_path : "";
  l.expires_ms = run.lease_expires_ms;
  auto link = store_->FirstLinkOfRun(run.run_id);
  if (!link.ok()) return link.status();
  if (link->has_value()) {
    l.cell_label = (*link)->cell_label;
    auto sweep = store_->GetSweep((*link)->sweep_id);
    if (!sweep.ok()) return sweep.status();
    if (sweep->has_value()) l.sweep_name = (*sweep)->name;
  }
  return l;
}

Status Scheduler::TouchWorkerLocked(const std::string& worker_id) {
  // In memory only: an idle worker's acquires and heartbeats write nothing. The
  // monotonic contact decides silence on this coordinator; the wall-clock one is
  // written by FlushWorkerContacts (a restart loses at most what was not flushed,
  // and then the monotonic rule still waits a lease of its own running time).
  unflushed_contact_ms_[worker_id] = clock_->NowMs();
  worker_contact_mono_ms_[worker_id] = clock_->MonotonicMs();
  return Status::Ok();
}

Status Scheduler::FlushWorkerContacts() {
  MutexLock lock(&mutex_);
  return FlushWorkerContactsLocked();
}

Status Scheduler::FlushWorkerContactsLocked() {
  if (unflushed_contact_ms_.empty()) return Status::Ok();
  RESWEEP_RETURN_IF_ERROR(store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    for (const auto& [worker_id, seen_ms] : unflushed_contact_ms_) {
      RESWEEP_RETURN_IF_ERROR(store_->TouchWorker(worker_id, seen_ms));
    }
    return Status::Ok();
  }));
  unflushed_contact_ms_.clear();
  return Status::Ok();
}

bool Scheduler::SilentForLocked(const WorkerRecord& worker, int64_t wall_ms,
                                int64_t monotonic_ms) const {
  auto it = worker_contact_mono_ms_.find(worker.worker_id);
  const int64_t since = it != worker_contact_mono_ms_.end() ? it->second : started_mono_ms_;
  auto unflushed = unflushed_contact_ms_.find(worker.worker_id);
  const int64_t last_seen = unflushed != unflushed_contact_ms_.end()
                                ? std::max(worker.last_seen_ms, unflushed->second)
                                : worker.last_seen_ms;
  return clock_->NowMs() - last_seen >= wall_ms && clock_->MonotonicMs() - since >= monotonic_ms;
}

void Scheduler::SetRunsQueuedListener(std::function<void(int64_t)> listener) {
  MutexLock lock(&mutex_);
  runs_queued_listener_ = std::move(listener);
}

Status Scheduler::RunBatch(const std::function<void()>& calls) {
  RESWEEP_RETURN_IF_ERROR(RunBatchBeforeSync(calls));
  return SyncCommitted();
}

Status Scheduler::RunBatchBeforeSync(const std::function<void()>& calls) {
  {
    MutexLock lock(&mutex_);
    RESWEEP_RETURN_IF_ERROR(store_->BeginBatch());
  }
  calls();
  MutexLock lock(&mutex_);
  Status st = store_->CommitBatchBeforeSync();
  if (!st.ok()) {
    spdlog::error(
        "a batch of worker calls could not be committed ({}): each of them fails with it; leases "
        "get a full lease from now and quarantines are re-read from the database",
        st.ToString());
    ForgetUncommittedStateLocked();
  }
  return st;
}

Status Scheduler::SyncCommitted() {
  Status st = store_->SyncCommitted();
  if (!st.ok()) {
    spdlog::error(
        "the batches committed so far could not be made durable ({}): their calls fail with "
        "it, though their writes may stand",
        st.ToString());
  }
  return st;
}

void Scheduler::ForgetUncommittedStateLocked() {
  // What the calls changed in memory may be ahead of the store now. Deadlines only
  // ever favour the worker: every lease the store holds gets at least a full lease
  // from now (a lease whose close was rolled back has no deadline left); a deadline
  // of an attempt the store does not have is ignored anyway (LeaseExpiredLocked).
  const int64_t full_lease = clock_->MonotonicMs() + options_.lease_ms;
  auto holders = store_->ListLeaseHolders();
  if (holders.ok()) {
    for (const auto& [run_id, worker_id] : *holders) {
      auto run = store_->GetRun(run_id);
      if (!run.ok()) {
        // Unreadable (its epoch log cannot be applied): the deadline known here, if
        // any, gets the full lease.
        if (auto known = lease_deadlines_.find(run_id); known != lease_deadlines_.end()) {
          known->second.mono_ms = std::max(known->second.mono_ms, full_lease);
        }
        continue;
      }
      if (!run->has_value()) continue;
      LeaseDeadline& d = lease_deadlines_[run_id];
      if (d.attempt != (*run)->attempt) d = {(*run)->attempt, full_lease};
      d.mono_ms = std::max(d.mono_ms, full_lease);
    }
  } else {
    spdlog::error(
        "after a failed batch, the leases could not be read ({}): they expire {} ms "
        "after this coordinator's start at the earliest",
        holders.status().ToString(), options_.lease_ms);
  }
  // A quarantine imposed or lifted by a rolled-back call: read from the store again
  // (as after a restart).
  quarantine_end_mono_.clear();
  // A credentials binding made by a rolled-back call: read from the store again.
  worker_identity_.clear();
}

Status Scheduler::KeepLogTailLocked(const RunRecord& run, const std::string& log_tail) {
  if (log_tail.empty()) return Status::Ok();
  // Whole lines from the end, at most kMaxLogTailBytes.
  std::string tail = log_tail;
  if (tail.size() > kMaxLogTailBytes) {
    tail = tail.substr(tail.size() - kMaxLogTailBytes);
    if (auto nl = tail.find('\n'); nl != std::string::npos) tail = tail.substr(nl + 1);
  }
  return store_->SetAttemptLogTail(run.run_id, run.attempt, tail);
}

Status Scheduler::CloseAttemptLocked(const RunRecord& run, const std::string& state,
                                     const std::string& reason) {
  const bool open = state == "leased" || state == "running";
  if (!open) lease_deadlines_.erase(run.run_id);
  return store_->UpdateAttempt(run.run_id, run.attempt, state, open ? 0 : clock_->NowMs(), reason);
}

}  // namespace resweep
