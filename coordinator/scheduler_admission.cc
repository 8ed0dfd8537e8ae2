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

// Submitting, cancelling, retrying and deleting sweeps.

namespace resweep {

using namespace scheduler_internal;  // NOLINT: this file is the scheduler's own

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
  size_t runs_parsed = 0;
  StatusOr<SubmitResult> result =
      SubmitParsing(spec_yaml, source_name, submit_options, &runs_parsed);
  // A big sweep's parsed runs (about 1 KiB each) are freed by now, and its rows went
  // through the store's page cache: both go back to the system, so that the
  // coordinator's memory does not keep the peak of its biggest submission.
  constexpr size_t kRunsWorthReleasingMemory = 1000;
  if (runs_parsed >= kRunsWorthReleasingMemory) {
    MutexLock lock(&mutex_);
    store_->ReleaseMemory();
  }
  return result;
}

StatusOr<SubmitResult> Scheduler::SubmitParsing(const std::string& spec_yaml,
                                                const std::string& source_name,
                                                const SubmitOptions& submit_options,
                                                size_t* runs_parsed) {
  if (!submit_options.dry_run) {  // trying a file out is not submitting it
    MutexLock lock(&mutex_);
    RESWEEP_RETURN_IF_ERROR(TakeSubmitTokenLocked());
  }
  auto parsed = ParseSweepSpec(spec_yaml, source_name.empty() ? "<sweep>" : source_name,
                               options_.spec_limits);
  if (!parsed.ok()) return parsed.status();
  const SweepSpec& spec = *parsed;
  *runs_parsed = spec.runs.size();

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
    // The newest live sweep of that name (an indexed lookup, no other sweep read).
    RESWEEP_ASSIGN_OR_RETURN(std::optional<SweepRecord> named, store_->NewestSweepNamed(spec.name));
    if (named && !named->archived) {
      if (!submit_options.allow_name_reuse) {
        return FailedPreconditionError(fmt::format(
            "a different sweep named '{}' exists ({}): its runs differ from this file's. Pass "
            "--new-version to submit this one under the same name too (the name then means the "
            "newest), change `name:` in the file, or delete the old sweep (resweep delete {})",
            spec.name, named->sweep_id, named->sweep_id));
      }
      result.name_reused_by = named->sweep_id;
    }
  }
  if (submit_options.dry_run) {
    result.planned.reserve(spec.runs.size());
    for (const auto& r : spec.runs)
      result.planned.push_back({r.run_id, r.cell->cell_label, r.seed});
    return result;
  }
  if (result.already_existed) {
    if ((*existing)->archived) {
      // Submitting a deleted sweep's file again brings it back (its runs as they are).
      // A transaction of its own: durable before the reply, also while a batch of
      // worker calls is open (Store::BeginBatch).
      RESWEEP_RETURN_IF_ERROR(
          store_->RunInTransaction([&] { return store_->SetSweepArchived(spec.sweep_id, false); }));
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
  Status st = store_->RunInBulkTransaction([&]() -> Status {
    mutex_.AssertHeld();
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
    // Runs and their links go to the store in batches: it writes a cell's config once
    // per batch and accounts for a batch's links at once.
    constexpr size_t kBatch = 4096;
    const int max_attempts =
        spec.max_attempts > 0 ? spec.max_attempts : options_.default_max_attempts;
    std::string cell_params_json;  // the same for every seed of a cell (runs are cell-major)
    std::vector<RunRecord> runs;
    std::vector<SweepRunRecord> links;
    runs.reserve(std::min(kBatch, spec.runs.size()));
    links.reserve(std::min(kBatch, spec.runs.size()));
    for (size_t begin = 0; begin < spec.runs.size(); begin += kBatch) {
      const size_t end = std::min(spec.runs.size(), begin + kBatch);
      runs.clear();
      links.clear();
      for (size_t i = begin; i < end; ++i) {
        const ExpandedRun& er = spec.runs[i];
        if (i == 0 || er.cell != spec.runs[i - 1].cell) {
          cell_params_json = nlohmann::json(er.cell->cell_params).dump();
        }
        RunRecord& run = runs.emplace_back();
        run.run_id = er.run_id;
        run.config_json = er.cell->config_json;
        run.config_key = er.cell->cell_key;  // the hash of config_json
        run.seed = er.seed;
        run.max_attempts = max_attempts;
        run.summary_k = spec.last_k;
        run.epochs_total = er.cell->config.train.epochs;
        // Seed-major order: every cell gets its first seed before any gets its second,
        // so partial results cover the whole grid early.
        run.queue_position = *base + static_cast<int64_t>((i % seeds) * cells + i / seeds);
        run.created_ms = run.updated_ms = now;
        SweepRunRecord& link = links.emplace_back();
        link.sweep_id = spec.sweep_id;
        link.run_id = er.run_id;
        link.cell_key = er.cell->cell_key;
        link.cell_label = er.cell->cell_label;
        link.cell_params_json = cell_params_json;
      }
      RESWEEP_ASSIGN_OR_RETURN(std::vector<bool> inserted, store_->InsertRunsIfAbsent(runs));
      for (size_t j = 0; j < runs.size(); ++j) {
        if (inserted[j]) {
          ++result.runs_new;
          continue;
        }
        // Shared with an earlier sweep. A run cancelled with that sweep is wanted
        // again, with a fresh attempt budget.
        RESWEEP_ASSIGN_OR_RETURN(std::optional<RunRecord> old, store_->GetRun(runs[j].run_id));
        if (old && old->state == RunState::kCancelled) {
          RunRecord again = std::move(*old);
          again.state = RunState::kQueued;
          again.error.clear();
          again.failures = 0;
          again.queue_position = runs[j].queue_position;
          again.updated_ms = now;
          RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(again));
          ++result.runs_new;
        }
      }
      RESWEEP_RETURN_IF_ERROR(store_->LinkRuns(links));
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (result.runs_new > 0) NoteRunsQueuedLocked(result.runs_new);
  spdlog::info(
      "sweep {} '{}' submitted from {}: {} runs, {} newly queued{}", spec.sweep_id, spec.name,
      source_name, result.runs_total, result.runs_new,
      result.name_reused_by.empty() ? "" : " (name also used by " + result.name_reused_by + ")");
  return result;
}

Status Scheduler::CancelRunsLocked(const SweepRecord& sweep, CancelResult* result,
                                   bool count_only) {
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
    if (count_only) {
      ++result->runs_cancelled;
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
    mutex_.AssertHeld();
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
    mutex_.AssertHeld();
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
  if (result.runs_queued > 0) NoteRunsQueuedLocked(result.runs_queued);
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
  // Runs that another live sweep holds go on whatever this sweep does (cancel keeps
  // them too): only the ones a delete would cancel need --force. Without it, a delete
  // goes on only when it cancels nothing, so what it keeps is counted here, once.
  CancelResult cancelled;
  if (unfinished > 0 && !force) {
    RESWEEP_RETURN_IF_ERROR(CancelRunsLocked(*record, &cancelled, /*count_only=*/true));
    if (cancelled.runs_cancelled > 0) {
      return FailedPreconditionError(fmt::format(
          "sweep {} ({}) still has {} run(s) queued or running: cancel it first (resweep cancel "
          "{}) or pass --force",
          record->name, record->sweep_id, cancelled.runs_cancelled, record->sweep_id));
    }
  }
  DeleteResult result;
  result.sweep_id = record->sweep_id;
  std::vector<std::string> drop_checkpoints;
  const int64_t now = clock_->NowMs();
  Status st = store_->RunInTransaction([&]() -> Status {
    mutex_.AssertHeld();
    if (unfinished > 0) {
      RESWEEP_RETURN_IF_ERROR(store_->SetSweepCancelled(record->sweep_id));
      if (force) RESWEEP_RETURN_IF_ERROR(CancelRunsLocked(*record, &cancelled));
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

}  // namespace resweep
