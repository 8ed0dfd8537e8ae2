#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "common/checkpoint_path.h"
#include "common/run_config_json.h"
#include "coordinator/scheduler_internal.h"

// Workers and their leases: registration, acquire, heartbeats, epoch reports, the
// ends of attempts, and the reapers.

namespace resweep {

using namespace scheduler_internal;  // NOLINT: this file is the scheduler's own

StatusOr<WorkerRegistration> Scheduler::RegisterWorker(const std::string& name,
                                                       const std::string& host,
                                                       const std::vector<std::string>& devices,
                                                       const std::string& identity) {
  if (name.empty() || name.size() > 128) {
    return InvalidArgumentError("worker name must have 1..128 characters");
  }
  if (devices.empty() || devices.size() > 64) {
    return InvalidArgumentError("a worker needs 1..64 devices (one per slot)");
  }
  if (host.size() > kMaxHostBytes) {
    return InvalidArgumentError(
        fmt::format("host name of {} bytes; at most {}", host.size(), kMaxHostBytes));
  }
  for (const auto& d : devices) {
    if (d.empty() || d.size() > kMaxDeviceBytes) {
      return InvalidArgumentError(
          fmt::format("device name of {} bytes; 1..{} allowed", d.size(), kMaxDeviceBytes));
    }
  }
  MutexLock lock(&mutex_);
  WorkerRecord w;
  w.worker_id = name + "-" + RandomHex(8);
  w.name = name;
  w.host = host;
  for (const auto& d : devices) w.devices += (w.devices.empty() ? "" : ",") + d;
  w.registered_ms = w.last_seen_ms = clock_->NowMs();
  w.identity_digest = identity;
  int forgotten = 0;
  bool carried_quarantine = false;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto all = store_->ListWorkers();
    if (!all.ok()) return all.status();
    std::vector<WorkerRecord> mine;
    for (auto& other : *all) {
      if (other.identity_digest == identity) mine.push_back(std::move(other));
    }
    // The same machine registering again (a restarted process: same credentials, name
    // and host) keeps its record of host faults and its quarantine: a restart does
    // not make a broken host a fresh one.
    const WorkerRecord* predecessor = nullptr;
    for (const auto& other : mine) {
      if (other.name == name && other.host == host &&
          (!predecessor || other.registered_ms >= predecessor->registered_ms)) {
        predecessor = &other;
      }
    }
    if (predecessor) {
      auto health = store_->GetWorkerHealth(predecessor->worker_id);
      if (!health.ok()) return health.status();
      if (health->consecutive_host_faults > 0 || health->quarantine_level > 0) {
        const int64_t end = QuarantineEndMonoLocked(*health);
        WorkerHealthRecord carried = *health;
        carried.worker_id = w.worker_id;
        RESWEEP_RETURN_IF_ERROR(store_->PutWorkerHealth(carried));
        if (end > clock_->MonotonicMs()) {
          quarantine_end_mono_[w.worker_id] = end;
          carried_quarantine = true;
        }
      }
    }
    // At the cap: forget this identity's oldest silent registrations (no contact for
    // a lease, no lease held) to make room; refuse when none is silent.
    const int cap = std::max(1, options_.max_workers_per_identity);
    if (static_cast<int>(mine.size()) < cap) return store_->UpsertWorker(w);
    std::sort(mine.begin(), mine.end(), [](const WorkerRecord& a, const WorkerRecord& b) {
      return a.last_seen_ms < b.last_seen_ms;
    });
    int excess = static_cast<int>(mine.size()) - cap + 1;
    for (const auto& old : mine) {
      if (excess == 0) break;
      if (!SilentForLocked(old, options_.lease_ms, options_.lease_ms)) continue;
      auto leases = store_->CountLeasesOf(old.worker_id);
      if (!leases.ok()) return leases.status();
      if (*leases > 0) continue;
      RESWEEP_RETURN_IF_ERROR(store_->DeleteWorker(old.worker_id));
      worker_identity_.erase(old.worker_id);
      worker_contact_mono_ms_.erase(old.worker_id);
      unflushed_contact_ms_.erase(old.worker_id);
      ++forgotten;
      --excess;
    }
    if (excess > 0) {
      return ResourceExhaustedError(fmt::format(
          "these credentials already have {} live worker registrations (the coordinator's "
          "--max-workers-per-identity): stop a worker, wait a lease ({} ms) for a stopped one "
          "to count as silent, or give workers their own tokens",
          mine.size(), options_.lease_ms));
    }
    return store_->UpsertWorker(w);
  });
  if (!st.ok()) {
    quarantine_end_mono_.erase(w.worker_id);
    spdlog::warn("registration of worker '{}' from {} refused: {}", name, host, st.message());
    return st;
  }
  if (carried_quarantine) {
    spdlog::warn("worker {} registered again from {} while quarantined: the quarantine goes on",
                 w.worker_id, host);
  }
  worker_contact_mono_ms_[w.worker_id] = clock_->MonotonicMs();
  worker_identity_[w.worker_id] = w.identity_digest;
  spdlog::info("worker {} registered from {} with {} slot(s): {}{}", w.worker_id, host,
               devices.size(), w.devices,
               forgotten > 0 ? fmt::format(" ({} silent registration(s) of the same credentials "
                                           "forgotten to stay within the cap)",
                                           forgotten)
                             : "");
  return WorkerRegistration{w.worker_id, options_.lease_ms, options_.heartbeat_ms};
}

Status Scheduler::CheckWorkerIdentity(const std::string& worker_id, const std::string& identity) {
  MutexLock lock(&mutex_);
  if (auto known = worker_identity_.find(worker_id);
      known != worker_identity_.end() && known->second == identity) {
    return Status::Ok();
  }
  auto worker = store_->GetWorker(worker_id);
  if (!worker.ok()) return worker.status();
  if (!worker->has_value()) return Status::Ok();
  if ((*worker)->identity_digest == identity) {
    worker_identity_[worker_id] = identity;
    return Status::Ok();
  }
  if ((*worker)->identity_digest.empty()) {
    // Registered without credentials (by an older coordinator, or before tokens
    // were required): bound to the first credentials that use it.
    WorkerRecord bound = **worker;
    bound.identity_digest = identity;
    // In a transaction of its own: durable before the call goes on, also while a
    // batch of other calls is open (Store::BeginBatch).
    RESWEEP_RETURN_IF_ERROR(store_->RunInTransaction([&] { return store_->UpsertWorker(bound); }));
    worker_identity_[worker_id] = identity;
    spdlog::info("worker {} is now bound to the credentials it calls with", worker_id);
    return Status::Ok();
  }
  return PermissionDeniedError("worker " + worker_id +
                               " was registered with other credentials: a worker may act only "
                               "under the worker id its own credentials registered");
}

StatusOr<std::optional<Lease>> Scheduler::Acquire(const std::string& worker_id, int slot,
                                                  AcquireRefusal* refusal) {
  auto gang = AcquireGang(worker_id, slot, 1, refusal);
  if (!gang.ok()) return gang.status();
  if (gang->empty()) return std::optional<Lease>();
  return std::optional<Lease>(std::move(gang->front()));
}

StatusOr<std::vector<Lease>> Scheduler::AcquireGang(const std::string& worker_id, int first_slot,
                                                    int gang_size, AcquireRefusal* refusal) {
  MutexLock lock(&mutex_);
  auto worker = store_->GetWorker(worker_id);
  if (!worker.ok()) return worker.status();
  if (!worker->has_value()) return NotFoundError("unknown worker " + worker_id);
  const int slots = SlotCount(**worker);
  if (first_slot < 0 || first_slot >= slots) {
    return InvalidArgumentError(
        fmt::format("AcquireRun.slot = {}: worker {} registered {} slot(s), numbered 0..{}",
                    first_slot, worker_id, slots, slots - 1));
  }
  if (gang_size < 1 || gang_size > kMaxGangSize || first_slot + gang_size > slots) {
    return InvalidArgumentError(fmt::format(
        "AcquireRun.gang_size = {} from slot {}: worker {} registered {} slot(s), numbered "
        "0..{}, and a gang has at most {} runs",
        gang_size, first_slot, worker_id, slots, slots - 1, kMaxGangSize));
  }
  const int64_t now = clock_->NowMs();
  std::vector<Lease> leases;
  bool again = false;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    leases.clear();
    RESWEEP_RETURN_IF_ERROR(TouchWorkerLocked(worker_id));
    // The range asks again while holding leases: the reply to its AcquireRun was lost,
    // or it dropped its runs. It gets the same attempts back, from their resume
    // points, and nothing new is leased.
    for (int slot = first_slot; slot < first_slot + gang_size; ++slot) {
      auto held = store_->LeaseOfSlot(worker_id, slot);
      if (!held.ok()) return held.status();
      if (!held->has_value()) continue;
      RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(**held));
      auto current = store_->GetRun(**held);
      if (!current.ok()) return current.status();
      if (current->has_value() && HoldsLease((*current)->state) &&
          (*current)->worker_id == worker_id) {
        auto l = LeaseToSlotLocked(**current, worker_id, slot, /*again=*/true);
        if (!l.ok()) return l.status();
        leases.push_back(std::move(*l));
      }
    }
    if (!leases.empty()) {
      again = true;
      return Status::Ok();
    }
    // At most one lease per slot; a database from before slots were recorded may
    // hold more, and then nothing new is leased until they end.
    auto count = store_->CountLeasesOf(worker_id);
    if (!count.ok()) return count.status();
    if (*count >= slots) return Status::Ok();
    const int room = std::min(gang_size, slots - *count);
    auto health = store_->GetWorkerHealth(worker_id);
    if (!health.ok()) return health.status();
    const int64_t left_ms = QuarantineEndMonoLocked(*health) - clock_->MonotonicMs();
    if (left_ms > 0) {
      if (refusal) {
        refusal->until_ms = now + left_ms;
        refusal->reason =
            fmt::format("quarantined for {:.0f} s more after {} host faults in a row (last: {})",
                        left_ms / 1000.0, health->consecutive_host_faults, health->last_fault);
      }
      return Status::Ok();
    }
    // A run this worker had a host fault on only when no other run is queued.
    auto next = store_->NextQueuedRunWithoutHostFaultBy(worker_id);
    if (!next.ok()) return next.status();
    if (!next->has_value()) next = store_->NextQueuedRun();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return Status::Ok();
    // The run's recorded checkpoint is in the artifact directory but its file is not.
    auto checkpoint_file_missing = [&](const RunRecord& r) {
      return r.checkpoint_epoch > 0 && r.checkpoint_path.empty() && checkpoints_ &&
             !checkpoints_->Exists(r.run_id, r.checkpoint_epoch, r.checkpoint_iteration);
    };
    RunRecord first = **next;
    if (checkpoint_file_missing(first)) {
      FallBackToOlderCheckpoint(&first, "its file is missing from the artifact directory");
    }
    std::vector<RunRecord> mates;
    if (room > 1) {
      auto config = RunConfigFromJson(first.config_json);
      if (config.ok() && SeedFusable(*config).ok()) {
        auto found = store_->QueuedCellMates(first, worker_id, room - 1);
        if (!found.ok()) return found.status();
        for (RunRecord& mate : *found) {
          // A mate whose checkpoint file is gone would resume elsewhere: it waits for a
          // lease of its own, which falls back.
          if (!checkpoint_file_missing(mate)) mates.push_back(std::move(mate));
        }
      }
    }
    auto l = LeaseToSlotLocked(std::move(first), worker_id, first_slot, /*again=*/false);
    if (!l.ok()) return l.status();
    leases.push_back(std::move(*l));
    for (size_t i = 0; i < mates.size(); ++i) {
      auto m = LeaseToSlotLocked(std::move(mates[i]), worker_id,
                                 first_slot + 1 + static_cast<int>(i), /*again=*/false);
      if (!m.ok()) return m.status();
      leases.push_back(std::move(*m));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (const Lease& lease : leases) {
    spdlog::info("run {} ({} {} seed {}) attempt {} leased to {} slot {}{}{}", lease.run_id,
                 lease.sweep_name, lease.cell_label, lease.seed, lease.attempt, worker_id,
                 lease.slot, leases.size() > 1 ? fmt::format(" (gang of {})", leases.size()) : "",
                 again ? " again (the slot asked while holding it)" : "");
  }
  return leases;
}

StatusOr<Lease> Scheduler::LeaseToSlotLocked(RunRecord run, const std::string& worker_id, int slot,
                                             bool again) {
  const int64_t now = clock_->NowMs();
  if (!again) {
    run.attempt += 1;
    run.state = RunState::kLeased;
    run.worker_id = worker_id;
    AttemptRecord attempt{run.run_id, run.attempt, worker_id, "leased", now, 0, "", ""};
    RESWEEP_RETURN_IF_ERROR(store_->InsertAttempt(attempt));
  }
  RenewLeaseLocked(&run);
  run.updated_ms = now;
  // History after the resume point belongs to an attempt that is gone (or that
  // starts over): it re-reports those epochs, so none is ever recorded twice or
  // left stale.
  run.epoch = run.checkpoint_epoch;
  RESWEEP_RETURN_IF_ERROR(store_->DeleteEpochsAfter(run.run_id, run.checkpoint_epoch));
  RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(run));
  RESWEEP_RETURN_IF_ERROR(store_->SetLeaseSlot(run.run_id, slot));
  auto lease = LeaseOfRunLocked(run);
  if (!lease.ok()) return lease.status();
  lease->slot = slot;
  return lease;
}

StatusOr<HeartbeatResult> Scheduler::Heartbeat(const std::string& worker_id,
                                               const std::vector<LeaseProgressReport>& leases) {
  MutexLock lock(&mutex_);
  HeartbeatResult result;
  auto worker = store_->GetWorker(worker_id);
  if (!worker.ok()) return worker.status();
  if (!worker->has_value()) {
    result.unknown_worker = true;
    return result;
  }
  // A worker holds at most one lease per slot: a longer list is not a heartbeat.
  const size_t slots = SlotCount(**worker);
  if (leases.size() > slots) {
    return InvalidArgumentError(fmt::format("heartbeat of {} lists {} runs; it has {} slot(s)",
                                            worker_id, leases.size(), slots));
  }
  const int64_t now = clock_->NowMs();
  // Training progress per lease, as this worker's previous heartbeat left it.
  std::map<std::string, ProgressSeen> seen_before = std::move(progress_seen_[worker_id]);
  std::map<std::string, ProgressSeen>& seen = progress_seen_[worker_id];
  seen.clear();
  std::vector<HostFaultOutcome> stalled;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    for (const auto& p : leases) {
      if (!LeaseDeadlineAheadLocked(p.run_id, p.attempt)) {
        RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(p.run_id));
      }
    }
    RESWEEP_RETURN_IF_ERROR(TouchWorkerLocked(worker_id));
    for (const auto& p : leases) {
      LeaseDecision d{p.run_id, p.attempt, false, ""};
      // Since when the lease has reported this training progress, on the monotonic
      // clock (a wall-clock step between two heartbeats is no stall). Progress 0:
      // nothing trained yet, or a worker that does not report it.
      const int64_t mono = clock_->MonotonicMs();
      const bool watched = p.progress > 0 && options_.progress_timeout_ms > 0;
      int64_t since = mono;
      if (auto before = seen_before.find(p.run_id); watched && before != seen_before.end() &&
                                                    before->second.attempt == p.attempt &&
                                                    before->second.progress == p.progress) {
        since = before->second.since_ms;
      }
      const bool stalls = watched && mono - since > options_.progress_timeout_ms;
      // Nearly every lease in a heartbeat is one this process granted or renewed and
      // that has not run out: one fenced write renews it, without reading the run.
      // Anything else (a lease from before a restart, a refusal, a stall) is read and
      // decided below.
      if (!stalls && LeaseDeadlineAheadLocked(p.run_id, p.attempt)) {
        RESWEEP_ASSIGN_OR_RETURN(
            const bool renewed,
            store_->RenewLease(worker_id, p.run_id, p.attempt, now + options_.lease_ms, now));
        if (renewed) {
          lease_deadlines_[p.run_id].mono_ms = mono + options_.lease_ms;
          if (watched) seen[p.run_id] = {p.attempt, p.progress, since};
          result.decisions.push_back(std::move(d));
          continue;
        }
      }
      auto run = FencedRunLocked(worker_id, p.run_id, p.attempt);
      if (!run.ok()) {
        if (run.status().code() != StatusCode::kFailedPrecondition &&
            run.status().code() != StatusCode::kNotFound) {
          return run.status();
        }
        d.stop = true;
        d.reason = run.status().message();
      } else if (stalls) {
        d.stop = true;
        d.reason = fmt::format(
            "no training progress reported for {:.0f} s (coordinator --progress-timeout-seconds "
            "{:.0f})",
            (mono - since) / 1000.0, options_.progress_timeout_ms / 1000.0);
        stalled.emplace_back();
        RESWEEP_RETURN_IF_ERROR(HostFaultLocked(*run, d.reason, "", &stalled.back()));
      } else if (watched) {
        seen[p.run_id] = {p.attempt, p.progress, since};
      }
      if (run.ok() && !d.stop) {
        RunRecord r = *run;
        RenewLeaseLocked(&r);
        r.updated_ms = now;
        RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(r));
      }
      result.decisions.push_back(std::move(d));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (const auto& o : stalled) LogHostFault(o);
  if (seen.empty()) progress_seen_.erase(worker_id);
  return result;
}

Status Scheduler::ReportEpoch(const std::string& worker_id, const EpochRecord& epoch) {
  RESWEEP_RETURN_IF_ERROR(ValidateMetrics(epoch));
  MutexLock lock(&mutex_);
  // Nearly every report is the next epoch of a running attempt whose lease this
  // process renewed and that has not run out: one fenced write, no read first. All
  // else (an attempt's first epoch, a retried report, a lease from before a restart
  // or past its deadline, any refusal) falls through to the read below, which decides
  // and says why; the fast path wrote nothing then.
  if (LeaseDeadlineAheadLocked(epoch.run_id, epoch.attempt)) {
    const int64_t now = clock_->NowMs();
    auto appended = store_->AppendNextEpoch(worker_id, epoch, now + options_.lease_ms, now);
    if (!appended.ok()) return appended.status();
    if (*appended) {
      lease_deadlines_[epoch.run_id].mono_ms = clock_->MonotonicMs() + options_.lease_ms;
      return Status::Ok();
    }
  }
  // Read once: nothing writes between this read and the writes below (the store is
  // the scheduler's, under its lock), and each of them is a compare-and-set.
  auto current = ExpireIfDueAndReadLocked(epoch.run_id);
  if (!current.ok()) return current.status();
  auto run = FenceLocked(*current, worker_id, epoch.run_id, epoch.attempt);
  if (!run.ok()) return run.status();
  RunRecord r = *run;
  if (epoch.epoch == r.epoch && epoch.epoch > 0) {
    // A retry of the last report (its reply was lost, e.g. in a coordinator
    // restart): record it again, idempotently.
    return store_->PutEpoch(epoch, worker_id);
  }
  if (epoch.epoch != r.epoch + 1) {
    return FailedPreconditionError("run " + r.run_id + ": expected epoch " +
                                   std::to_string(r.epoch + 1) + ", got " +
                                   std::to_string(epoch.epoch));
  }
  if (epoch.epoch > r.epochs_total) {
    return InvalidArgumentError("run " + r.run_id + " has only " + std::to_string(r.epochs_total) +
                                " epochs");
  }
  const bool first = r.state == RunState::kLeased;
  r.state = RunState::kRunning;
  r.epoch = epoch.epoch;
  if (epoch.test_error >= 0) r.last_test_error = epoch.test_error;
  RenewLeaseLocked(&r);
  r.updated_ms = clock_->NowMs();
  // The epoch and the run's move to it are one fenced store write, a transaction of
  // its own; the first epoch of an attempt also marks the attempt running, in the
  // same transaction.
  if (!first) return store_->AppendEpoch(r, epoch);
  return store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, "running", ""));
    return store_->AppendEpoch(r, epoch);
  });
}

Status Scheduler::Complete(const std::string& worker_id, const std::string& run_id, int attempt,
                           int64_t param_count) {
  MutexLock lock(&mutex_);
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
  const int64_t now = clock_->NowMs();
  auto current = store_->GetRun(run_id);
  if (!current.ok()) return current.status();
  if (current->has_value() && (*current)->state == RunState::kSucceeded &&
      (*current)->attempt == attempt) {
    return Status::Ok();  // a retried completion whose reply was lost
  }
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    RunRecord r = *run;
    if (r.epoch != r.epochs_total) {
      return FailedPreconditionError("run " + run_id + " reported " + std::to_string(r.epoch) +
                                     " of " + std::to_string(r.epochs_total) + " epochs");
    }
    RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, "succeeded", ""));
    // A success ends the worker's run of host faults and its quarantine back-off.
    auto health = store_->GetWorkerHealth(worker_id);
    if (!health.ok()) return health.status();
    if (health->consecutive_host_faults > 0 || health->quarantine_level > 0) {
      WorkerHealthRecord healthy;
      healthy.worker_id = worker_id;
      healthy.last_fault = health->last_fault;
      RESWEEP_RETURN_IF_ERROR(store_->PutWorkerHealth(healthy));
      quarantine_end_mono_.erase(worker_id);
    }
    r.state = RunState::kSucceeded;
    r.param_count = param_count;
    r.worker_id.clear();
    r.lease_expires_ms = 0;
    r.updated_ms = now;
    return store_->UpdateRun(r);
  });
  if (st.ok()) {
    spdlog::info("run {} attempt {} succeeded on {}", run_id, attempt, worker_id);
    if (checkpoints_) checkpoints_->RemoveRun(run_id);
  }
  return st;
}

Status Scheduler::Fail(const std::string& worker_id, const std::string& run_id, int attempt,
                       const std::string& full_reason, bool retryable, bool checkpoint_unusable,
                       const std::string& log_tail) {
  const std::string reason = CapText(full_reason, kMaxReasonBytes);
  MutexLock lock(&mutex_);
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
  const int64_t now = clock_->NowMs();
  bool requeued = false;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    RunRecord r = *run;
    RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, "failed", reason));
    RESWEEP_RETURN_IF_ERROR(KeepLogTailLocked(r, log_tail));
    r.worker_id.clear();
    r.lease_expires_ms = 0;
    r.updated_ms = now;
    if (checkpoint_unusable && r.checkpoint_epoch > 0) {
      // Not the run's fault: the next attempt starts further back, at no cost.
      FallBackToOlderCheckpoint(&r, "the worker could not use it (" + reason + ")");
      r.state = RunState::kQueued;
      requeued = true;
    } else if (retryable && r.failures + 1 < r.max_attempts) {
      r.failures += 1;
      r.state = RunState::kQueued;
      requeued = true;
    } else {
      r.failures += retryable ? 1 : 0;
      r.state = RunState::kFailed;
      r.error = reason;
    }
    return store_->UpdateRun(r);
  });
  if (st.ok()) {
    if (requeued) NoteRunsQueuedLocked();
    spdlog::warn("run {} attempt {} failed on {}{}: {}", run_id, attempt, worker_id,
                 requeued ? " (queued again)" : "", reason);
  }
  return st;
}

Status Scheduler::HostFault(const std::string& worker_id, const std::string& run_id, int attempt,
                            const std::string& full_reason, const std::string& log_tail) {
  const std::string reason = CapText(full_reason, kMaxReasonBytes);
  MutexLock lock(&mutex_);
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
  HostFaultOutcome outcome;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    return HostFaultLocked(*run, reason, log_tail, &outcome);
  });
  if (!st.ok()) return st;
  LogHostFault(outcome);
  return Status::Ok();
}

Status Scheduler::HostFaultLocked(RunRecord r, const std::string& reason,
                                  const std::string& log_tail, HostFaultOutcome* out) {
  const int64_t now = clock_->NowMs();
  const std::string worker_id = r.worker_id;
  out->run_id = r.run_id;
  out->attempt = r.attempt;
  out->worker_id = worker_id;
  out->reason = reason;
  out->now_ms = now;
  // Host faults since the run was last queued afresh: back to its newest attempt
  // that ended it (failed, succeeded, cancelled), newest worker's reason each.
  auto attempts = store_->ListAttempts(r.run_id);
  if (!attempts.ok()) return attempts.status();
  // Workers are told apart by machine (credentials, name, host), not by registration:
  // one host whose worker process restarted is still one worker.
  std::map<std::string, std::string> machine_of;
  auto machine = [&](const std::string& id) -> StatusOr<std::string> {
    auto it = machine_of.find(id);
    if (it != machine_of.end()) return it->second;
    auto record = store_->GetWorker(id);
    if (!record.ok()) return record.status();
    std::string key = record->has_value() ? (*record)->identity_digest + "\n" + (*record)->name +
                                                "\n" + (*record)->host
                                          : "\n" + id;  // forgotten: its id alone
    machine_of[id] = key;
    return key;
  };
  auto first = machine(worker_id);
  if (!first.ok()) return first.status();
  std::vector<std::pair<std::string, std::string>> faults = {{worker_id, reason}};
  std::set<std::string> machines = {*first};
  for (auto a = attempts->rbegin(); a != attempts->rend(); ++a) {
    if (a->state == "failed" || a->state == "succeeded" || a->state == "cancelled") break;
    if (a->state != "host_fault") continue;
    auto key = machine(a->worker_id);
    if (!key.ok()) return key.status();
    if (machines.insert(*key).second) faults.emplace_back(a->worker_id, a->reason);
  }
  out->workers_with_faults = static_cast<int>(faults.size());
  out->run_failed = out->workers_with_faults >= std::max(1, options_.host_fault_workers_to_fail);
  // The attempt that fails the run closes as "failed": host faults before it do not
  // count again after a retry.
  RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, out->run_failed ? "failed" : "host_fault", reason));
  RESWEEP_RETURN_IF_ERROR(KeepLogTailLocked(r, log_tail));
  r.worker_id.clear();
  r.lease_expires_ms = 0;
  r.updated_ms = now;
  if (out->run_failed) {
    std::string why =
        fmt::format("host faults on {} different worker(s):", out->workers_with_faults);
    for (auto f = faults.rbegin(); f != faults.rend(); ++f) {
      why += fmt::format(" [{}] {};", f->first, CapText(f->second, 512));
    }
    why.pop_back();
    r.state = RunState::kFailed;
    r.error = CapText(why, 4 * kMaxReasonBytes);
  } else {
    r.state = RunState::kQueued;
    NoteRunsQueuedLocked();
  }
  RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(r));

  auto stored = store_->GetWorkerHealth(worker_id);
  if (!stored.ok()) return stored.status();
  WorkerHealthRecord& health = out->health;
  health = *stored;
  health.consecutive_host_faults += 1;
  health.last_fault = reason;
  // A worker already in quarantine (its other slots failing) is not quarantined again.
  const int64_t mono = clock_->MonotonicMs();
  if (health.consecutive_host_faults >= std::max(1, options_.quarantine_after_host_faults) &&
      QuarantineEndMonoLocked(health) <= mono) {
    health.quarantine_level = std::min(health.quarantine_level + 1, 30);
    const int64_t backoff =
        std::min(options_.quarantine_max_ms,
                 options_.quarantine_base_ms << std::min(health.quarantine_level - 1, 20));
    health.quarantined_until_ms = now + backoff;  // for display; the monotonic end decides
    quarantine_end_mono_[worker_id] = mono + backoff;
    out->quarantined_now = true;
  }
  return store_->PutWorkerHealth(health);
}

void Scheduler::LogHostFault(const HostFaultOutcome& o) {
  if (o.run_failed) {
    spdlog::warn("run {} attempt {}: host fault on {}: {}; failed: host faults on {} workers",
                 o.run_id, o.attempt, o.worker_id, o.reason, o.workers_with_faults);
  } else {
    spdlog::warn("run {} attempt {}: host fault on {} (queued again, no attempt used): {}",
                 o.run_id, o.attempt, o.worker_id, o.reason);
  }
  if (o.quarantined_now) {
    spdlog::warn(
        "worker {} quarantined for {:.0f} s (quarantine {} since its last success) after {} host "
        "faults in a row; last: {}",
        o.worker_id, (o.health.quarantined_until_ms - o.now_ms) / 1000.0, o.health.quarantine_level,
        o.health.consecutive_host_faults, o.reason);
  }
}

Status Scheduler::Release(const std::string& worker_id, const std::string& run_id, int attempt,
                          const std::string& full_reason) {
  const std::string reason = CapText(full_reason, kMaxReasonBytes);
  MutexLock lock(&mutex_);
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(run_id));
  const int64_t now = clock_->NowMs();
  int earlier_releases = 0;
  bool failed = false;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto run = FencedRunLocked(worker_id, run_id, attempt);
    if (!run.ok()) return run.status();
    RunRecord r = *run;
    auto attempts = store_->ListAttempts(run_id);
    if (!attempts.ok()) return attempts.status();
    for (const auto& a : *attempts) {
      earlier_releases += a.state == "released" && a.worker_id == worker_id;
    }
    RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, "released", reason));
    r.worker_id.clear();
    r.lease_expires_ms = 0;
    r.updated_ms = now;
    r.state = RunState::kQueued;
    if (earlier_releases >= kFreeReleasesPerWorker) {
      // Giving the same run back again and again is not free.
      r.failures += 1;
      if (r.failures >= r.max_attempts) {
        r.state = RunState::kFailed;
        r.error = fmt::format("given back {} times by {} (last: {})", earlier_releases + 1,
                              worker_id, reason);
        failed = true;
      }
    }
    return store_->UpdateRun(r);
  });
  if (st.ok()) {
    if (!failed) NoteRunsQueuedLocked();
    spdlog::info("run {} attempt {} released by {}{}: {}", run_id, attempt, worker_id,
                 earlier_releases >= kFreeReleasesPerWorker
                     ? fmt::format(" (release {} of this run by it: counted as a failure{})",
                                   earlier_releases + 1, failed ? "; run failed" : "")
                     : "",
                 reason);
  }
  return st;
}

StatusOr<int> Scheduler::ExpireLeases() {
  MutexLock lock(&mutex_);
  // Periodically, also what the store's epoch log holds reaches other connections
  // (`resweep results --db`) when no commit has applied it since a burst of reports.
  if (store_->HoldsUnappliedEpochs()) {
    if (Status applied = store_->ApplyLoggedEpochs(); !applied.ok()) {
      spdlog::warn("lease reaper: the epoch log could not be applied: {}", applied.ToString());
    }
  }
  const int64_t now = clock_->MonotonicMs();
  const bool start_grace_over = now > started_mono_ms_ + options_.lease_ms;
  int expired = 0;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto holders = store_->ListLeaseHolders();
    if (!holders.ok()) return holders.status();
    for (const auto& [run_id, worker_id] : *holders) {
      // Cheap pre-check; LeaseExpiredLocked decides on the run's attempt.
      auto it = lease_deadlines_.find(run_id);
      if (it == lease_deadlines_.end() ? !start_grace_over : it->second.mono_ms >= now) continue;
      auto run = store_->GetRun(run_id);
      if (!run.ok()) return run.status();
      if (!run->has_value() || !HoldsLease((*run)->state) || !LeaseExpiredLocked(**run)) continue;
      RESWEEP_RETURN_IF_ERROR(LoseLeaseLocked(**run, "lease expired"));
      ++expired;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return expired;
}

StatusOr<int> Scheduler::ForgetSilentWorkers() {
  if (options_.forget_workers_after_ms <= 0) return 0;
  MutexLock lock(&mutex_);
  std::vector<std::string> forgotten;
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    auto workers = store_->ListWorkers();
    if (!workers.ok()) return workers.status();
    for (const auto& w : *workers) {
      // Silent on the wall clock for the whole period, and for a lease (at most the
      // period) of this coordinator's running time: a forward clock step alone
      // never forgets a live worker, and a restart does not restart the period.
      if (!SilentForLocked(w, options_.forget_workers_after_ms,
                           std::min(options_.lease_ms, options_.forget_workers_after_ms))) {
        continue;
      }
      // Its runs are left to lease expiry, which closes them first.
      auto leases = store_->CountLeasesOf(w.worker_id);
      if (!leases.ok()) return leases.status();
      if (*leases > 0) continue;
      RESWEEP_RETURN_IF_ERROR(store_->DeleteWorker(w.worker_id));
      worker_identity_.erase(w.worker_id);
      forgotten.push_back(w.worker_id);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (const auto& id : forgotten) {
    worker_contact_mono_ms_.erase(id);
    unflushed_contact_ms_.erase(id);
    spdlog::info("worker {} forgotten: no contact for over {} s", id,
                 options_.forget_workers_after_ms / 1000);
  }
  return static_cast<int>(forgotten.size());
}

// ------------------------------------------------------------------ helpers

}  // namespace resweep
