#include "coordinator/scheduler.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "common/checkpoint_path.h"
#include "coordinator/scheduler_internal.h"

// Read questions, answered by Queries.

namespace resweep {

using namespace scheduler_internal;  // NOLINT: this file is the scheduler's own

template <typename T>
StatusOr<T> Scheduler::Read(const std::function<StatusOr<T>(Queries&)>& query) {
  if (reads_ == nullptr) {
    MutexLock lock(&mutex_);
    return query(queries_);
  }
  // Every epoch acknowledged before the query is in its snapshot: what the writer
  // still holds in its log is applied first (a short write under the lock). When
  // that write fails (a full disk), the query goes on without those epochs.
  if (store_->HoldsUnappliedEpochs()) {
    MutexLock lock(&mutex_);
    if (Status applied = store_->ApplyLoggedEpochs(); !applied.ok()) {
      spdlog::warn("a query is answered without the epochs reported since the last apply: {}",
                   applied.ToString());
    }
  }
  RESWEEP_ASSIGN_OR_RETURN(ReadPool::Handle connection, reads_->Acquire());
  Queries queries(connection.store(), clock_, options_.lease_ms, &stats_cache_);
  std::optional<StatusOr<T>> result;
  RESWEEP_RETURN_IF_ERROR(connection.store()->RunInReadTransaction([&]() -> Status {
    result.emplace(query(queries));
    return Status::Ok();
  }));
  return std::move(*result);
}

StatusOr<SweepView> Scheduler::GetSweep(const std::string& sweep) {
  return Read<SweepView>([&](Queries& q) { return q.GetSweep(sweep); });
}

StatusOr<SweepsPageView> Scheduler::ListSweeps(bool include_archived, const PageRequest& page,
                                               SweepOrder order) {
  return Read<SweepsPageView>(
      [&](Queries& q) { return q.ListSweeps(include_archived, page, order); });
}

StatusOr<RunsPageView> Scheduler::ListRuns(const std::string& sweep, const std::string& state,
                                           const PageRequest& page) {
  return Read<RunsPageView>([&](Queries& q) { return q.ListRuns(sweep, state, page); });
}

StatusOr<ResultsView> Scheduler::Results(const std::string& sweep, int last_k) {
  // The inputs in one short read transaction; the statistics outside it, so that a
  // query that has to compute some holds no snapshot (nor the WAL) meanwhile. Stored
  // statistics may come from a later snapshot: they are keyed by their exact inputs.
  RESWEEP_ASSIGN_OR_RETURN(ResultsInputs inputs, Read<ResultsInputs>([&](Queries& q) {
                             return q.ReadResultsInputs(sweep, last_k);
                           }));
  const std::string sweep_id = inputs.sweep.sweep.sweep_id;
  PersistedStatistics stored(StoredStatisticsLoader(sweep_id));
  auto results = SummarizeResults(std::move(inputs), &stats_cache_, &stored);
  if (!results.ok()) spdlog::error("{}", results.status().ToString());
  return results;
}

PersistedStatistics::Loader Scheduler::StoredStatisticsLoader(const std::string& sweep_id) {
  return [this, sweep_id] {
    return Read<std::vector<StatisticsEntryRecord>>(
        [&](Queries& q) { return q.StoredStatistics(sweep_id); });
  };
}

StatusOr<RunDetailView> Scheduler::GetRun(const std::string& run) {
  return Read<RunDetailView>([&](Queries& q) { return q.GetRun(run); });
}

StatusOr<SweepStampView> Scheduler::SweepChangeStamp(const std::string& sweep) {
  return Read<SweepStampView>([&](Queries& q) { return q.SweepChangeStamp(sweep); });
}

StatusOr<CurvesView> Scheduler::Curves(const std::string& sweep, int max_points) {
  return Read<CurvesView>([&](Queries& q) { return q.Curves(sweep, max_points); });
}

namespace {
constexpr int64_t kRetryFailedRefreshMs = 60 * 1000;
}  // namespace

StatusOr<int> Scheduler::RefreshStatistics(int max_sweeps, const std::function<bool()>& stop) {
  using Stale = std::vector<std::pair<std::string, int64_t>>;
  if (!statistics_versions_checked_.exchange(true)) {
    // Once per coordinator: statistics stored by another version of the algorithms
    // are never used (their keys differ); their sweeps are refreshed to replace them.
    MutexLock lock(&mutex_);
    auto marked = store_->MarkStatisticsOfOtherVersionsStale(analysis::kStatisticsKeyVersion);
    if (!marked.ok()) {
      statistics_versions_checked_ = false;
      return marked.status();
    }
    if (*marked > 0) {
      spdlog::info("statistics of {} sweep(s) were stored by another version: computing them again",
                   *marked);
    }
  }
  // More stale sweeps than are refreshed, since some may not be due yet.
  RESWEEP_ASSIGN_OR_RETURN(Stale stale, Read<Stale>([&](Queries& q) {
                             return q.SweepsWithStaleStatistics(std::max(max_sweeps, 1) * 16);
                           }));
  {
    MutexLock lock(&refresh_mutex_);
    for (auto it = refresh_not_before_ms_.begin(); it != refresh_not_before_ms_.end();) {
      it = it->second <= clock_->MonotonicMs() ? refresh_not_before_ms_.erase(it) : std::next(it);
    }
  }
  int stored = 0;
  for (const auto& entry : stale) {
    const std::string& sweep_id = entry.first;
    if (stop && stop()) break;
    if (stored >= max_sweeps) break;
    {
      MutexLock lock(&refresh_mutex_);
      auto due = refresh_not_before_ms_.find(sweep_id);
      if (due != refresh_not_before_ms_.end() && clock_->MonotonicMs() < due->second) continue;
    }
    const auto started = std::chrono::steady_clock::now();
    auto inputs = Read<ResultsInputs>([&](Queries& q) { return q.ReadResultsInputs(sweep_id, 0); });
    PersistedStatistics used(StoredStatisticsLoader(sweep_id), stop);
    Status st = inputs.ok() ? used.Load() : inputs.status();
    const int64_t version = inputs.ok() ? inputs->outcomes_version : -1;
    size_t cells = 0;
    if (st.ok()) {
      try {
        auto results = SummarizeResults(std::move(*inputs), &stats_cache_, &used);
        st = results.status();
        if (results.ok()) cells = results->cells.size();
      } catch (const StatisticsComputationStopped&) {
        break;
      }
    }
    const auto added = used.Added();
    const auto removed = used.Unused();
    if (st.ok()) {
      MutexLock lock(&mutex_);
      st = store_->UpdateSweepStatistics(sweep_id, version, added, removed);
    }
    if (!st.ok()) {
      // The other sweeps go on; this one stays stale and is tried again in a minute.
      spdlog::warn("statistics of sweep {} not stored (trying again in {} s): {}", sweep_id,
                   kRetryFailedRefreshMs / 1000, st.ToString());
      MutexLock lock(&refresh_mutex_);
      refresh_not_before_ms_[sweep_id] = clock_->MonotonicMs() + kRetryFailedRefreshMs;
      continue;
    }
    ++stored;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    {
      MutexLock lock(&refresh_mutex_);
      refresh_not_before_ms_[sweep_id] =
          clock_->MonotonicMs() + std::max<int64_t>(1, static_cast<int64_t>(seconds * 10000));
    }
    // A big sweep's first computation takes seconds: worth an info line; the small
    // updates while runs finish are not.
    spdlog::log(seconds >= 1 ? spdlog::level::info : spdlog::level::debug,
                "statistics of sweep {} (outcomes version {}): {} cells, {} entries stored, {} "
                "dropped, in {:.2f} s",
                sweep_id, version, cells, added.size(), removed.size(), seconds);
  }
  return stored;
}

StatusOr<RunCountsRecord> Scheduler::CountRunsOfLiveSweeps() {
  return Read<RunCountsRecord>([&](Queries& q) { return q.CountRunsOfLiveSweeps(); });
}

StatusOr<std::vector<WorkerView>> Scheduler::ListWorkers(bool include_gone) {
  {
    MutexLock lock(&mutex_);
    // The stored contacts the listing shows are written lazily (TouchWorkerLocked). A
    // read works on when they cannot be written (a full disk): they are then as old as
    // the last flush.
    if (Status flushed = FlushWorkerContactsLocked(); !flushed.ok()) {
      spdlog::warn("worker contacts not written before listing workers: {}", flushed.ToString());
    }
  }
  return Read<std::vector<WorkerView>>([&](Queries& q) { return q.ListWorkers(include_gone); });
}

}  // namespace resweep
