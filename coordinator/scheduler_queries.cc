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

// Read questions, answered by Queries.

namespace resweep {

using namespace scheduler_internal;  // NOLINT: this file is the scheduler's own

template <typename T>
StatusOr<T> Scheduler::Read(const std::function<StatusOr<T>(Queries&)>& query) {
  if (reads_ == nullptr) {
    MutexLock lock(&mutex_);
    return query(queries_);
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

StatusOr<SweepsPageView> Scheduler::ListSweeps(bool include_archived, const PageRequest& page) {
  return Read<SweepsPageView>([&](Queries& q) { return q.ListSweeps(include_archived, page); });
}

StatusOr<RunsPageView> Scheduler::ListRuns(const std::string& sweep, const std::string& state,
                                           const PageRequest& page) {
  return Read<RunsPageView>([&](Queries& q) { return q.ListRuns(sweep, state, page); });
}

StatusOr<ResultsView> Scheduler::Results(const std::string& sweep, int last_k) {
  return Read<ResultsView>([&](Queries& q) { return q.Results(sweep, last_k); });
}

StatusOr<RunDetailView> Scheduler::GetRun(const std::string& run) {
  return Read<RunDetailView>([&](Queries& q) { return q.GetRun(run); });
}

StatusOr<CurvesView> Scheduler::Curves(const std::string& sweep, int max_points) {
  return Read<CurvesView>([&](Queries& q) { return q.Curves(sweep, max_points); });
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
