// Read-only questions about the coordinator's state: sweeps, runs, results,
// workers. Free of gRPC and of the write path.
//
// The coordinator's Scheduler answers its read RPCs through a Queries over its own
// store (under its lock); `resweep ... --db FILE` builds one over a read-only store,
// so offline reads never construct the scheduler and never write.
//
// Not thread-safe: the owner serialises calls (as for the Store it reads).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "coordinator/results.h"
#include "coordinator/store.h"

namespace resweep {

struct SweepView {
  SweepRecord sweep;
  RunCountsRecord counts;
  // active: some run is queued, leased or running (also after a cancel request, while
  // runs shared with another live sweep go on); cancelled: a cancel was requested and
  // runs of the sweep were cancelled; done: every run finished.
  std::string state;
  SweepProgressRecord progress;
  double eta_seconds = -1;  // < 0: unknown or not applicable
};

// Which sweep a reference names, and that sweep's change stamp (Store::SweepChangeStamp).
struct SweepStampView {
  std::string sweep_id;
  int64_t stamp = 0;
};

struct RunView {
  SweepRunRecord link;
  RunRecord run;
};

// One page of a list. page_size 0 asks for the list's default; larger sizes than the
// list allows are capped. page_token "" asks for the first page, else it is the
// next_page_token of the page before (opaque to callers).
struct PageRequest {
  int page_size = 0;
  std::string page_token;
};

struct SweepsPageView {
  std::vector<SweepView> sweeps;  // in submission order
  std::string next_page_token;    // "" when this is the last page
};

struct RunsPageView {
  std::vector<RunView> runs;    // in grid order (cells, then seeds)
  std::string next_page_token;  // "" when this is the last page
};

struct ResultsView {
  SweepView sweep;
  int last_k = 0;
  std::vector<CellSummary> cells;
};

struct ResultsInputs {
  SweepView sweep;
  int last_k = 0;
  int64_t outcomes_version = 0;  // of `outcomes` (see Store::SweepOutcomesVersion)
  std::vector<SweepCellRecord> cells;
  std::vector<SweepOutcomeRecord> outcomes;  // last_k_test_error is for last_k
};

// The results of `inputs`; statistics from `cache`, else from `stored`, else computed
// (each optional; the numbers are the same either way). Reads no store. A statistic
// that cannot be computed (an exception from the maths) is INTERNAL naming the sweep;
// StatisticsComputationStopped (see persisted_statistics.h) passes through.
StatusOr<ResultsView> SummarizeResults(ResultsInputs inputs, analysis::StatisticsCache* cache,
                                       analysis::StatisticsBacking* stored);

struct RunDetailView {
  RunRecord run;
  std::vector<SweepRunRecord> links;  // oldest sweep first
  std::vector<AttemptRecord> attempts;
  std::vector<EpochRecord> epochs;
};

// One run's learning curve in a sweep.
struct RunCurveView {
  SweepRunRecord link;
  RunRecord run;
  std::map<std::string, std::string> params;  // grid axis -> value (from link)
  // Batches per epoch from the run's config (the data set's standard size, or
  // dataset.train_limit if smaller, over train.batch_size); 0 when the config is unreadable.
  int64_t iterations_per_epoch = 0;
  std::vector<EpochRecord> epochs;  // ascending epoch; downsampled as requested
};

struct CurvesView {
  SweepView sweep;
  std::vector<RunCurveView> runs;  // the sweep file's grid order (cells, then seeds)
};

// The epochs a curve of `epochs` (ascending) keeps at `stride` (>= 1): every stride-th
// epoch counting from epoch 1, and the last one.
std::vector<EpochRecord> DownsampleEpochs(const std::vector<EpochRecord>& epochs, int stride);

struct WorkerView {
  WorkerRecord worker;
  std::vector<std::string> runs_held;
  // Summed over runs_held: the images/s each one's current attempt reported for its
  // latest epoch (the worker's training throughput now; 0 before any report).
  double images_per_sec = 0;
  double heartbeat_age_seconds = 0;
  std::string state;          // alive | silent | gone
  WorkerHealthRecord health;  // host faults and quarantine
  bool quarantined = false;   // health.quarantined_until_ms is still ahead
};

// A sweep's state from its run counts and whether a cancel was requested.
std::string SweepStateName(const RunCountsRecord& counts, bool cancel_requested);

// Seconds until the epochs left of a sweep's unfinished runs are done at the observed
// epoch time, with as many runs in parallel as hold a lease now; < 0 when nothing was
// observed yet, nothing remains, or nothing is running.
double EstimateSecondsLeft(const SweepProgressRecord& progress, const RunCountsRecord& counts);

class Queries {
 public:
  // `store`, `clock` and `stats` must outlive this object. `lease_ms` sets when a
  // worker counts as silent (no contact within a lease) and gone (within ten). With
  // `stats`, results reuse statistics computed before for the same values.
  Queries(Store* store, const Clock* clock, int64_t lease_ms,
          analysis::StatisticsCache* stats = nullptr);

  // Pages: defaults and the most one page holds. A page of runs also ends early, at
  // one run or more, once its text passes kMaxRunsPageBytes, so that a response stays
  // far below gRPC's message limit (8 MiB by default) whatever the runs' errors hold.
  static constexpr int kDefaultSweepsPageSize = 500;
  static constexpr int kMaxSweepsPageSize = 1000;
  static constexpr int kDefaultRunsPageSize = 1000;
  static constexpr int kMaxRunsPageSize = 10000;
  static constexpr size_t kMaxRunsPageBytes = 4 << 20;

  // `sweep` is an id, a name (the newest live sweep of that name, else the newest
  // archived one), or a unique id prefix, in that order of precedence. An ambiguous
  // prefix is INVALID_ARGUMENT listing the candidates. Reads only the sweeps that
  // match (indexed), never a spec: the record's spec_yaml is empty.
  StatusOr<SweepRecord> ResolveSweep(const std::string& sweep);
  // `run` is a run id or a unique prefix of one.
  StatusOr<std::string> ResolveRunId(const std::string& run);

  // The sweep `sweep` names (as ResolveSweep) and its change stamp.
  StatusOr<SweepStampView> SweepChangeStamp(const std::string& sweep);

  StatusOr<SweepView> View(const SweepRecord& sweep);
  StatusOr<SweepView> GetSweep(const std::string& sweep);
  // A page of the sweeps in `order`; a bad page_size or page_token (one of the other
  // order's included) is INVALID_ARGUMENT naming it.
  StatusOr<SweepsPageView> ListSweeps(bool include_archived, const PageRequest& page,
                                      SweepOrder order = SweepOrder::kOldestFirst);
  // Runs by state over the sweeps not archived, each run once (Store::CountRunsOfLiveSweeps).
  StatusOr<RunCountsRecord> CountRunsOfLiveSweeps() { return store_->CountRunsOfLiveSweeps(); }
  // A page of a sweep's runs (`state` "" = all). A page_token continues the listing
  // of the sweep it came from only: given with another sweep, it is INVALID_ARGUMENT.
  StatusOr<RunsPageView> ListRuns(const std::string& sweep, const std::string& state,
                                  const PageRequest& page);
  // What a sweep's results are computed from (last_k <= 0: the sweep's own setting):
  // its cells and the summaries of its succeeded runs (never the runs or their epochs,
  // unless a run's summary is of another K than asked for). In one read transaction
  // this is one snapshot; computing the statistics (SummarizeResults) needs none.
  StatusOr<ResultsInputs> ReadResultsInputs(const std::string& sweep, int last_k);
  // ReadResultsInputs, then SummarizeResults with this object's cache and the
  // statistics the store remembers for the sweep (or `statistics` instead).
  StatusOr<ResultsView> Results(const std::string& sweep, int last_k,
                                analysis::StatisticsBacking* statistics = nullptr);
  // The statistics the store remembers for a sweep (see Store::ListSweepStatistics),
  // and the sweeps whose remembered statistics are not of their current outcomes.
  StatusOr<std::vector<StatisticsEntryRecord>> StoredStatistics(const std::string& sweep_id);
  StatusOr<std::vector<std::pair<std::string, int64_t>>> SweepsWithStaleStatistics(int limit);
  StatusOr<RunDetailView> GetRun(const std::string& run);
  // Every run of the sweep with its epochs (one store query for all of them).
  // max_points > 0 keeps about that many points per run, choosing epochs by number
  // so that every run keeps the same ones (see DownsampleEpochs); < 0 is INVALID_ARGUMENT.
  StatusOr<CurvesView> Curves(const std::string& sweep, int max_points);
  StatusOr<std::vector<WorkerView>> ListWorkers(bool include_gone);

 private:
  Store* const store_;
  const Clock* const clock_;
  const int64_t lease_ms_;
  analysis::StatisticsCache* const stats_;
};

}  // namespace resweep
