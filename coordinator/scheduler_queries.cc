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
  // The stored contacts the listing shows are written lazily (TouchWorkerLocked). A
  // read works on when they cannot be written (a full disk): they are then as old as
  // the last flush.
  if (Status flushed = FlushWorkerContactsLocked(); !flushed.ok()) {
    spdlog::warn("worker contacts not written before listing workers: {}", flushed.ToString());
  }
  return queries_.ListWorkers(include_gone);
}

}  // namespace resweep
