#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "common/checkpoint_path.h"

namespace resweep {

namespace {

std::string RandomHex(int chars) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < chars; ++i) out.push_back(kHex[rng() & 0xf]);
  return out;
}

// `text` cut to at most `max_bytes` (never inside a UTF-8 sequence), saying how much
// was cut.
std::string CapText(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t keep = max_bytes - 40;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
  return text.substr(0, keep) + fmt::format(" [... {} bytes cut]", text.size() - keep);
}

// INVALID_ARGUMENT naming the first metric that is not finite or out of its range.
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

// A worker's slots: one per registered device.
int SlotCount(const WorkerRecord& worker) {
  return static_cast<int>(std::count(worker.devices.begin(), worker.devices.end(), ',')) + 1;
}

}  // namespace

Scheduler::Scheduler(Store* store, const Clock* clock, SchedulerOptions options,
                     CheckpointStore* checkpoints)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      checkpoints_(checkpoints),
      queries_(store, clock, options_.lease_ms),
      started_mono_ms_(clock->MonotonicMs()) {}

// ------------------------------------------------------------------- users

Status Scheduler::TakeSubmitTokenLocked() {
  if (options_.submits_per_minute <= 0) return Status::Ok();
  // Monotonic, and clamped both ways: no clock step can lock submitters out or
  // grant more than a burst.
  const int64_t now = clock_->MonotonicMs();
  const double burst = std::max(1, options_.submit_burst);
  if (submit_tokens_ < 0) {
    submit_tokens_ = burst;
    submit_refilled_mono_ms_ = now;
  }
  const int64_t elapsed = std::max<int64_t>(0, now - submit_refilled_mono_ms_);
  submit_tokens_ =
      std::clamp(submit_tokens_ + elapsed * options_.submits_per_minute / 60000.0, 0.0, burst);
  submit_refilled_mono_ms_ = now;
  if (submit_tokens_ < 1) {
    const double wait_s = (1 - submit_tokens_) * 60.0 / options_.submits_per_minute;
    return ResourceExhaustedError(fmt::format(
        "too many submissions (limit {} per minute, bursts of {}); try again in {:.1f} s",
        options_.submits_per_minute, options_.submit_burst, wait_s));
  }
  submit_tokens_ -= 1;
  return Status::Ok();
}

StatusOr<SubmitResult> Scheduler::Submit(const std::string& spec_yaml,
                                         const std::string& source_name,
                                         const SubmitOptions& submit_options) {
  if (!submit_options.dry_run) {  // trying a file out is not submitting it
    MutexLock lock(&mutex_);
    RESWEEP_RETURN_IF_ERROR(TakeSubmitTokenLocked());
  }
  auto parsed = ParseSweepSpec(spec_yaml, source_name.empty() ? "<sweep>" : source_name,
                               options_.spec_limits);
  if (!parsed.ok()) return parsed.status();
  const SweepSpec& spec = *parsed;

  MutexLock lock(&mutex_);
  SubmitResult result;
  result.sweep_id = spec.sweep_id;
  result.name = spec.name;
  result.runs_total = static_cast<int>(spec.runs.size());
  result.warnings = spec.warnings;
  result.max_runs_per_sweep = options_.spec_limits.max_runs;

  auto existing = store_->GetSweep(spec.sweep_id);
  if (!existing.ok()) return existing.status();
  result.already_existed = existing->has_value();
  if (!result.already_existed) {
    auto all = store_->ListSweeps();
    if (!all.ok()) return all.status();
    for (auto it = all->rbegin(); it != all->rend(); ++it) {
      if (it->name != spec.name || it->archived) continue;
      if (!submit_options.allow_name_reuse) {
        return FailedPreconditionError(fmt::format(
            "a different sweep named '{}' exists ({}): its runs differ from this file's. Pass "
            "--new-version to submit this one under the same name too (the name then means the "
            "newest), change `name:` in the file, or delete the old sweep (resweep delete {})",
            spec.name, it->sweep_id, it->sweep_id));
      }
      result.name_reused_by = it->sweep_id;
      break;
    }
  }
  if (submit_options.dry_run) {
    result.planned.reserve(spec.runs.size());
    for (const auto& r : spec.runs) result.planned.push_back({r.run_id, r.cell_label, r.seed});
    return result;
  }
  if (result.already_existed) {
    if ((*existing)->archived) {
      // Submitting a deleted sweep's file again brings it back (its runs as they are).
      RESWEEP_RETURN_IF_ERROR(store_->SetSweepArchived(spec.sweep_id, false));
      result.restored = true;
      spdlog::info("sweep {} '{}' submitted again: restored from deleted", spec.sweep_id,
                   spec.name);
    }
    return result;
  }

  auto active = store_->CountActiveRuns();
  if (!active.ok()) return active.status();
  if (*active + static_cast<int64_t>(spec.runs.size()) > options_.max_active_runs) {
    return ResourceExhaustedError(
        fmt::format("queue full: {} runs are queued or running, and this sweep's {} would pass the "
                    "coordinator's limit of {} (--max-active-runs)",
                    *active, spec.runs.size(), options_.max_active_runs));
  }

  const int64_t now = clock_->NowMs();
  const size_t seeds = spec.seeds.size();
  const size_t cells = seeds ? spec.runs.size() / seeds : 0;
  Status st = store_->RunInTransaction([&]() -> Status {
    SweepRecord sweep;
    sweep.sweep_id = spec.sweep_id;
    sweep.name = spec.name;
    sweep.spec_yaml = spec_yaml;
    sweep.source_name = source_name;
    sweep.created_ms = now;
    sweep.last_k = spec.last_k;
    for (const auto& axis : spec.grid) sweep.grid_axes.push_back(axis.path);
    RESWEEP_RETURN_IF_ERROR(store_->InsertSweep(sweep));

    auto base = store_->NextQueuePosition();
    if (!base.ok()) return base.status();
    for (size_t i = 0; i < spec.runs.size(); ++i) {
      const ExpandedRun& er = spec.runs[i];
      RunRecord run;
      run.run_id = er.run_id;
      run.config_json = er.config_json;
      run.seed = er.seed;
      run.max_attempts = spec.max_attempts > 0 ? spec.max_attempts : options_.default_max_attempts;
      run.epochs_total = er.config.train.epochs;
      // Seed-major order: every cell gets its first seed before any gets its second,
      // so partial results cover the whole grid early.
      run.queue_position = *base + static_cast<int64_t>((i % seeds) * cells + i / seeds);
      run.created_ms = run.updated_ms = now;
      auto inserted = store_->InsertRunIfAbsent(run);
      if (!inserted.ok()) return inserted.status();
      if (*inserted) {
        ++result.runs_new;
      } else {
        // Shared with an earlier sweep. A run cancelled with that sweep is wanted
        // again, with a fresh attempt budget.
        auto old = store_->GetRun(run.run_id);
        if (!old.ok()) return old.status();
        if (old->has_value() && (*old)->state == RunState::kCancelled) {
          RunRecord again = **old;
          again.state = RunState::kQueued;
          again.error.clear();
          again.failures = 0;
          again.queue_position = run.queue_position;
          again.updated_ms = now;
          RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(again));
          ++result.runs_new;
        }
      }
      SweepRunRecord link;
      link.sweep_id = spec.sweep_id;
      link.run_id = er.run_id;
      link.cell_key = er.cell_key;
      link.cell_label = er.cell_label;
      link.cell_params_json = nlohmann::json(er.cell_params).dump();
      RESWEEP_RETURN_IF_ERROR(store_->LinkRun(link));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  spdlog::info(
      "sweep {} '{}' submitted from {}: {} runs, {} newly queued{}", spec.sweep_id, spec.name,
      source_name, result.runs_total, result.runs_new,
      result.name_reused_by.empty() ? "" : " (name also used by " + result.name_reused_by + ")");
  return result;
}

StatusOr<SweepView> Scheduler::GetSweep(const std::string& sweep) {
  MutexLock lock(&mutex_);
  return queries_.GetSweep(sweep);
}

StatusOr<std::vector<SweepView>> Scheduler::ListSweeps(bool include_archived) {
  MutexLock lock(&mutex_);
  return queries_.ListSweeps(include_archived);
}

StatusOr<std::vector<RunView>> Scheduler::ListRuns(const std::string& sweep,
                                                   const std::string& state) {
  MutexLock lock(&mutex_);
  return queries_.ListRuns(sweep, state);
}

StatusOr<ResultsView> Scheduler::Results(const std::string& sweep, int last_k) {
  MutexLock lock(&mutex_);
  return queries_.Results(sweep, last_k);
}

StatusOr<RunDetailView> Scheduler::GetRun(const std::string& run) {
  MutexLock lock(&mutex_);
  return queries_.GetRun(run);
}

StatusOr<CurvesView> Scheduler::Curves(const std::string& sweep, int max_points) {
  MutexLock lock(&mutex_);
  return queries_.Curves(sweep, max_points);
}

StatusOr<std::vector<WorkerView>> Scheduler::ListWorkers(bool include_gone) {
  MutexLock lock(&mutex_);
  return queries_.ListWorkers(include_gone);
}

Status Scheduler::CancelRunsLocked(const SweepRecord& sweep, CancelResult* result) {
  const int64_t now = clock_->NowMs();
  auto rows = store_->ListSweepRuns(sweep.sweep_id, std::nullopt);
  if (!rows.ok()) return rows.status();
  for (auto& [link, run] : *rows) {
    if (IsTerminal(run.state)) continue;
    auto others = store_->CountOtherActiveSweeps(run.run_id, sweep.sweep_id);
    if (!others.ok()) return others.status();
    if (*others > 0) {  // another live sweep still wants this run
      ++result->runs_kept;
      continue;
    }
    if (HoldsLease(run.state)) {
      RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(run, "cancelled", "sweep cancelled"));
    }
    run.state = RunState::kCancelled;
    run.error = "sweep cancelled";
    run.worker_id.clear();
    run.lease_expires_ms = 0;
    run.updated_ms = now;
    RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(run));
    ++result->runs_cancelled;
  }
  return Status::Ok();
}

StatusOr<CancelResult> Scheduler::Cancel(const std::string& sweep) {
  MutexLock lock(&mutex_);
  auto record = queries_.ResolveSweep(sweep);
  if (!record.ok()) return record.status();
  auto counts = store_->CountRuns(record->sweep_id);
  if (!counts.ok()) return counts.status();
  CancelResult result;
  if (counts->queued + counts->leased + counts->running == 0) {
    result.already_finished = true;
    result.message = fmt::format(
        "sweep {} ({}) has already finished ({} succeeded, {} failed, {} cancelled): nothing to "
        "cancel",
        record->name, record->sweep_id, counts->succeeded, counts->failed, counts->cancelled);
    return result;
  }
  Status st = store_->RunInTransaction([&]() -> Status {
    RESWEEP_RETURN_IF_ERROR(store_->SetSweepCancelled(record->sweep_id));
    return CancelRunsLocked(*record, &result);
  });
  if (!st.ok()) return st;
  result.message = fmt::format("cancelled {} run(s) of {} ({})", result.runs_cancelled,
                               record->name, record->sweep_id);
  if (result.runs_kept > 0) {
    result.message += fmt::format(
        "; {} unfinished run(s) keep going because another live sweep holds them too (the sweep "
        "stays active until they finish)",
        result.runs_kept);
  }
  spdlog::info("sweep {} cancelled: {} runs stopped, {} kept for other sweeps", record->sweep_id,
               result.runs_cancelled, result.runs_kept);
  return result;
}

StatusOr<RetryResult> Scheduler::Retry(const std::string& sweep, const RetryRequest& request) {
  MutexLock lock(&mutex_);
  auto record = queries_.ResolveSweep(sweep);
  if (!record.ok()) return record.status();
  const bool by_state = request.failed || request.cancelled || request.run_ids.empty();
  const bool want_failed = request.failed || (request.run_ids.empty() && !request.cancelled);
  RetryResult result;
  result.sweep_id = record->sweep_id;
  // Named runs: resolved within this sweep's runs.
  auto rows = store_->ListSweepRuns(record->sweep_id, std::nullopt);
  if (!rows.ok()) return rows.status();
  std::set<std::string> named;
  for (const auto& wanted : request.run_ids) {
    std::vector<std::string> matches;
    for (const auto& [link, run] : *rows) {
      if (run.run_id.rfind(wanted, 0) == 0) matches.push_back(run.run_id);
    }
    if (matches.empty()) {
      return NotFoundError("sweep " + record->sweep_id + " has no run '" + wanted + "'");
    }
    if (matches.size() > 1 && std::find(matches.begin(), matches.end(), wanted) == matches.end()) {
      return InvalidArgumentError("run id prefix '" + wanted + "' matches " +
                                  std::to_string(matches.size()) + " runs of the sweep");
    }
    named.insert(matches.size() == 1 ? matches[0] : wanted);
  }
  const int64_t now = clock_->NowMs();
  Status st = store_->RunInTransaction([&]() -> Status {
    auto position = store_->NextQueuePosition();
    if (!position.ok()) return position.status();
    int64_t next_position = *position;
    for (auto& [link, run] : *rows) {
      const bool is_named = named.count(run.run_id) > 0;
      const bool selected =
          is_named || (by_state && ((want_failed && run.state == RunState::kFailed) ||
                                    (request.cancelled && run.state == RunState::kCancelled)));
      if (!selected) continue;
      if (!IsTerminal(run.state) || run.state == RunState::kSucceeded) {
        if (is_named) {
          result.skipped.push_back("run " + run.run_id + ": " + RunStateName(run.state) +
                                   (run.state == RunState::kSucceeded
                                        ? " (its result is recorded; a run is never re-trained)"
                                        : " (not finished)"));
        }
        continue;
      }
      run.state = RunState::kQueued;
      run.failures = 0;
      run.error.clear();
      run.worker_id.clear();
      run.lease_expires_ms = 0;
      run.queue_position = next_position++;
      run.updated_ms = now;
      if (request.restart) {
        run.checkpoint_epoch = 0;
        run.checkpoint_iteration = 0;
        run.checkpoint_path.clear();
      }
      RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(run));
      ++result.runs_queued;
    }
    if (result.runs_queued > 0 && record->cancelled) {
      RESWEEP_RETURN_IF_ERROR(store_->SetSweepCancelled(record->sweep_id, false));
    }
    if (result.runs_queued > 0 && record->archived) {  // running again: shown again
      RESWEEP_RETURN_IF_ERROR(store_->SetSweepArchived(record->sweep_id, false));
      result.restored = true;
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  spdlog::info("sweep {}: {} run(s) queued again by retry", record->sweep_id, result.runs_queued);
  return result;
}

StatusOr<DeleteResult> Scheduler::Delete(const std::string& sweep, bool force) {
  MutexLock lock(&mutex_);
  auto record = queries_.ResolveSweep(sweep);
  if (!record.ok()) return record.status();
  auto counts = store_->CountRuns(record->sweep_id);
  if (!counts.ok()) return counts.status();
  const int unfinished = counts->queued + counts->leased + counts->running;
  if (unfinished > 0 && !force) {
    return FailedPreconditionError(fmt::format(
        "sweep {} ({}) still has {} run(s) queued or running: cancel it first (resweep cancel "
        "{}) or pass --force",
        record->name, record->sweep_id, unfinished, record->sweep_id));
  }
  DeleteResult result;
  result.sweep_id = record->sweep_id;
  std::vector<std::string> drop_checkpoints;
  const int64_t now = clock_->NowMs();
  Status st = store_->RunInTransaction([&]() -> Status {
    CancelResult cancelled;
    if (unfinished > 0) {
      RESWEEP_RETURN_IF_ERROR(store_->SetSweepCancelled(record->sweep_id));
      RESWEEP_RETURN_IF_ERROR(CancelRunsLocked(*record, &cancelled));
    }
    result.runs_cancelled = cancelled.runs_cancelled;
    result.runs_kept = cancelled.runs_kept;
    RESWEEP_RETURN_IF_ERROR(store_->SetSweepArchived(record->sweep_id));
    // Checkpoints of failed and cancelled runs that no other live sweep holds: the
    // run can only resume through `retry`, which then starts it from scratch.
    auto rows = store_->ListSweepRuns(record->sweep_id, std::nullopt);
    if (!rows.ok()) return rows.status();
    for (auto& [link, run] : *rows) {
      if (run.state != RunState::kFailed && run.state != RunState::kCancelled) continue;
      if (run.checkpoint_epoch == 0 || !run.checkpoint_path.empty()) continue;
      auto others = store_->CountOtherActiveSweeps(run.run_id, record->sweep_id);
      if (!others.ok()) return others.status();
      if (*others > 0) continue;
      run.checkpoint_epoch = 0;
      run.checkpoint_iteration = 0;
      run.updated_ms = now;
      RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(run));
      drop_checkpoints.push_back(run.run_id);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  // Files go only after the database no longer points at them.
  if (checkpoints_) {
    for (const auto& run_id : drop_checkpoints) checkpoints_->RemoveRun(run_id);
    result.checkpoints_removed = static_cast<int>(drop_checkpoints.size());
  }
  spdlog::info("sweep {} deleted (archived): {} runs cancelled, {} kept, {} checkpoints removed",
               record->sweep_id, result.runs_cancelled, result.runs_kept,
               result.checkpoints_removed);
  return result;
}

// ----------------------------------------------------------------- workers

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
      worker_contact_mono_ms_.erase(old.worker_id);
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
  auto worker = store_->GetWorker(worker_id);
  if (!worker.ok()) return worker.status();
  if (!worker->has_value() || (*worker)->identity_digest == identity) return Status::Ok();
  if ((*worker)->identity_digest.empty()) {
    // Registered without credentials (by an older coordinator, or before tokens
    // were required): bound to the first credentials that use it.
    WorkerRecord bound = **worker;
    bound.identity_digest = identity;
    RESWEEP_RETURN_IF_ERROR(store_->UpsertWorker(bound));
    spdlog::info("worker {} is now bound to the credentials it calls with", worker_id);
    return Status::Ok();
  }
  return PermissionDeniedError("worker " + worker_id +
                               " was registered with other credentials: a worker may act only "
                               "under the worker id its own credentials registered");
}

StatusOr<std::optional<Lease>> Scheduler::Acquire(const std::string& worker_id, int slot,
                                                  AcquireRefusal* refusal) {
  MutexLock lock(&mutex_);
  auto worker = store_->GetWorker(worker_id);
  if (!worker.ok()) return worker.status();
  if (!worker->has_value()) return NotFoundError("unknown worker " + worker_id);
  const int slots = SlotCount(**worker);
  if (slot < 0 || slot >= slots) {
    return InvalidArgumentError(
        fmt::format("AcquireRun.slot = {}: worker {} registered {} slot(s), numbered 0..{}", slot,
                    worker_id, slots, slots - 1));
  }
  const int64_t now = clock_->NowMs();
  std::optional<Lease> lease;
  bool again = false;
  Status st = store_->RunInTransaction([&]() -> Status {
    RESWEEP_RETURN_IF_ERROR(TouchWorkerLocked(worker_id));
    auto held = store_->LeaseOfSlot(worker_id, slot);
    if (!held.ok()) return held.status();
    if (held->has_value()) RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(**held));
    auto current = held->has_value() ? store_->GetRun(**held)
                                     : StatusOr<std::optional<RunRecord>>(std::nullopt);
    if (!current.ok()) return current.status();
    RunRecord run;
    if (current->has_value() && HoldsLease((*current)->state) &&
        (*current)->worker_id == worker_id) {
      // The slot asks again while holding a lease: the reply to its AcquireRun was
      // lost, or it dropped the run. It gets the same attempt back, from the resume
      // point, and nothing new is leased.
      run = **current;
      again = true;
    } else {
      // At most one lease per slot; a database from before slots were recorded may
      // hold more, and then nothing new is leased until they end.
      auto count = store_->CountLeasesOf(worker_id);
      if (!count.ok()) return count.status();
      if (*count >= slots) return Status::Ok();
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
      run = **next;
      if (run.checkpoint_epoch > 0 && run.checkpoint_path.empty() && checkpoints_ &&
          !checkpoints_->Exists(run.run_id, run.checkpoint_epoch, run.checkpoint_iteration)) {
        FallBackToOlderCheckpoint(&run, "its file is missing from the artifact directory");
      }
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
    auto l = LeaseOfRunLocked(run);
    if (!l.ok()) return l.status();
    lease = std::move(*l);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (lease) {
    spdlog::info("run {} ({} {} seed {}) attempt {} leased to {} slot {}{}", lease->run_id,
                 lease->sweep_name, lease->cell_label, lease->seed, lease->attempt, worker_id, slot,
                 again ? " again (the slot asked while holding it)" : "");
  }
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
    for (const auto& p : leases) RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(p.run_id));
    RESWEEP_RETURN_IF_ERROR(TouchWorkerLocked(worker_id));
    for (const auto& p : leases) {
      LeaseDecision d{p.run_id, p.attempt, false, ""};
      auto run = FencedRunLocked(worker_id, p.run_id, p.attempt);
      if (!run.ok()) {
        if (run.status().code() != StatusCode::kFailedPrecondition &&
            run.status().code() != StatusCode::kNotFound) {
          return run.status();
        }
        d.stop = true;
        d.reason = run.status().message();
      } else if (p.progress > 0 && options_.progress_timeout_ms > 0) {
        // (Progress 0: nothing trained yet, or a worker that does not report it.)
        auto before = seen_before.find(p.run_id);
        const bool same = before != seen_before.end() && before->second.attempt == p.attempt &&
                          before->second.progress == p.progress;
        // On the monotonic clock: a wall-clock step between two heartbeats is no stall.
        const int64_t mono = clock_->MonotonicMs();
        const int64_t since = same ? before->second.since_ms : mono;
        if (mono - since > options_.progress_timeout_ms) {
          d.stop = true;
          d.reason = fmt::format(
              "no training progress reported for {:.0f} s (coordinator --progress-timeout-seconds "
              "{:.0f})",
              (mono - since) / 1000.0, options_.progress_timeout_ms / 1000.0);
          stalled.emplace_back();
          RESWEEP_RETURN_IF_ERROR(HostFaultLocked(*run, d.reason, "", &stalled.back()));
        } else {
          seen[p.run_id] = {p.attempt, p.progress, since};
        }
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
  RESWEEP_RETURN_IF_ERROR(ExpireIfDueLocked(epoch.run_id));
  const int64_t now = clock_->NowMs();
  return store_->RunInTransaction([&]() -> Status {
    auto run = FencedRunLocked(worker_id, epoch.run_id, epoch.attempt);
    if (!run.ok()) return run.status();
    RunRecord r = *run;
    if (epoch.epoch == r.epoch && epoch.epoch > 0) {
      // A retry of the last report (its reply was lost, e.g. in a coordinator
      // restart): record it again, idempotently.
      return store_->PutEpoch(epoch);
    }
    if (epoch.epoch != r.epoch + 1) {
      return FailedPreconditionError("run " + r.run_id + ": expected epoch " +
                                     std::to_string(r.epoch + 1) + ", got " +
                                     std::to_string(epoch.epoch));
    }
    if (epoch.epoch > r.epochs_total) {
      return InvalidArgumentError("run " + r.run_id + " has only " +
                                  std::to_string(r.epochs_total) + " epochs");
    }
    RESWEEP_RETURN_IF_ERROR(store_->PutEpoch(epoch));
    if (r.state == RunState::kLeased) {
      r.state = RunState::kRunning;
      RESWEEP_RETURN_IF_ERROR(CloseAttemptLocked(r, "running", ""));
    }
    r.epoch = epoch.epoch;
    if (epoch.test_error >= 0) r.last_test_error = epoch.test_error;
    RenewLeaseLocked(&r);
    r.updated_ms = now;
    return store_->UpdateRun(r);
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
    spdlog::info("run {} attempt {} released by {}{}: {}", run_id, attempt, worker_id,
                 earlier_releases >= kFreeReleasesPerWorker
                     ? fmt::format(" (release {} of this run by it: counted as a failure{})",
                                   earlier_releases + 1, failed ? "; run failed" : "")
                     : "",
                 reason);
  }
  return st;
}

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

StatusOr<int> Scheduler::ExpireLeases() {
  MutexLock lock(&mutex_);
  const int64_t now = clock_->MonotonicMs();
  const bool start_grace_over = now > started_mono_ms_ + options_.lease_ms;
  int expired = 0;
  Status st = store_->RunInTransaction([&]() -> Status {
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
      forgotten.push_back(w.worker_id);
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  for (const auto& id : forgotten) {
    worker_contact_mono_ms_.erase(id);
    spdlog::info("worker {} forgotten: no contact for over {} s", id,
                 options_.forget_workers_after_ms / 1000);
  }
  return static_cast<int>(forgotten.size());
}

// ------------------------------------------------------------------ helpers

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
