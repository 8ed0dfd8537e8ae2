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
                     CheckpointStore* checkpoints)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      checkpoints_(checkpoints),
      queries_(store, clock, options_.lease_ms),
      started_mono_ms_(clock->MonotonicMs()) {}

// ------------------------------------------------------------------- users

// ---------------------------------------------------------- lease helpers

StatusOr<RunRecord> Scheduler::FencedRunLocked(const std::string& worker_id,
                                               const std::string& run_id, int attempt) {
  auto run = store_->GetRun(run_id);
  if (!run.ok()) return run.status();
  if (!run->has_value()) return NotFoundError("no run " + run_id);
  const RunRecord& r = **run;
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
  return store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = store_->GetRun(run_id);
    if (!run.ok()) return run.status();
    if (!run->has_value()) return Status::Ok();
    const RunRecord& r = **run;
    if (HoldsLease(r.state) && LeaseExpiredLocked(r)) {
      return LoseLeaseLocked(r, "lease expired");
    }
    return Status::Ok();
  });
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
  RESWEEP_RETURN_IF_ERROR(store_->TouchWorker(worker_id, clock_->NowMs()));
  worker_contact_mono_ms_[worker_id] = clock_->MonotonicMs();
  return Status::Ok();
}

bool Scheduler::SilentForLocked(const WorkerRecord& worker, int64_t wall_ms,
                                int64_t monotonic_ms) const {
  auto it = worker_contact_mono_ms_.find(worker.worker_id);
  const int64_t since = it != worker_contact_mono_ms_.end() ? it->second : started_mono_ms_;
  return clock_->NowMs() - worker.last_seen_ms >= wall_ms &&
         clock_->MonotonicMs() - since >= monotonic_ms;
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
