// The scheduler state machine, driven by a fake clock over a real SQLite file.
#include "coordinator/scheduler.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "common/hash.h"
#include "coordinator/queries.h"
#include "coordinator/sqlite_store.h"
#include "coordinator/write_batcher.h"
#include "tests/forwarding_store.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

using testing::FakeClock;
using testing::TempDir;

const char* kSweep = R"(name: sched
trainer: {kind: synthetic}
train: {epochs: 3}
grid:
  model.depth_n: [1, 2]
seeds: 2
)";

// Overlaps kSweep in one cell (depth_n 2).
const char* kOverlappingSweep = R"(name: other
trainer: {kind: synthetic}
train: {epochs: 3}
grid:
  model.depth_n: [2, 3]
seeds: 2
)";

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.lease_ms = 10000;
    options_.default_max_attempts = 3;
    Open();
  }

  // The scheduler as the coordinator builds it: reads on read-only connections.
  void Open() {
    scheduler_.reset();
    reads_.reset();
    store_.reset();
    auto store = OpenSqliteStore(dir_.File("state.db"), store_options_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    checkpoints_ = std::make_unique<CheckpointStore>(dir_.File("artifacts"));
    reads_ = std::make_unique<ReadPool>(
        [path = dir_.File("state.db")] { return OpenSqliteStore(path, {.read_only = true}); }, 2);
    scheduler_ = std::make_unique<Scheduler>(store_.get(), &clock_, options_, checkpoints_.get(),
                                             reads_.get());
  }

  // A worker with `slots` CPU slots.
  std::string Register(const std::string& name, int slots = 8) {
    auto w = scheduler_->RegisterWorker(name, "host", std::vector<std::string>(slots, "cpu"));
    EXPECT_TRUE(w.ok());
    slots_[w->worker_id] = slots;
    return w->worker_id;
  }

  // The worker's slots in turn, so that successive acquires use different slots.
  int NextSlot(const std::string& worker) {
    const int slots = slots_.count(worker) ? slots_[worker] : 2;
    return next_slot_[worker]++ % slots;
  }

  Lease MustAcquire(const std::string& worker) {
    auto lease = scheduler_->Acquire(worker, NextSlot(worker));
    EXPECT_TRUE(lease.ok()) << lease.status().ToString();
    EXPECT_TRUE(lease->has_value());
    return lease->value_or(Lease());
  }

  Status Report(const std::string& worker, const Lease& lease, int epoch, double test_error) {
    EpochRecord e;
    e.run_id = lease.run_id;
    e.attempt = lease.attempt;
    e.epoch = epoch;
    e.test_error = test_error;
    e.train_loss = 1.0 / epoch;
    return scheduler_->ReportEpoch(worker, e);
  }

  // Submits a one-run, 5-epoch synthetic sweep; `worker` leases the run and reports
  // epochs 1 and 2.
  Lease LeaseWithTwoEpochsReported(const std::string& worker) {
    EXPECT_TRUE(
        scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: 5}\n", "o.yaml")
            .ok());
    Lease l = MustAcquire(worker);
    EXPECT_TRUE(Report(worker, l, 1, 0.5).ok());
    EXPECT_TRUE(Report(worker, l, 2, 0.4).ok());
    return l;
  }

  RunRecord Run(const std::string& run_id) {
    auto run = store_->GetRun(run_id);
    EXPECT_TRUE(run.ok() && run->has_value());
    return run->value_or(RunRecord());
  }

  TempDir dir_;
  SchedulerOptions options_;
  SqliteStoreOptions store_options_;
  FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<CheckpointStore> checkpoints_;
  std::unique_ptr<ReadPool> reads_;
  std::unique_ptr<Scheduler> scheduler_;
  std::map<std::string, int> slots_, next_slot_;
};

// Reports that the store keeps in its epoch log (here: always, as under a stream of
// reports) are in every query's answer once acknowledged, heartbeats renew leases
// without applying them, and a coordinator restart loses none of them.
TEST_F(SchedulerTest, QueriesAndRestartsSeeEveryAcknowledgedEpochTheLogHolds) {
  store_options_ = {
      .epoch_log_defer_after = 0, .epoch_log_defer_rate = 0, .epoch_log_apply_ms = 3600000};
  Open();
  const std::string w = Register("w");
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const Lease l = MustAcquire(w);
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());  // the attempt's first epoch: read and written
  ASSERT_TRUE(scheduler_->RunBatch([&] { EXPECT_TRUE(Report(w, l, 2, 0.4).ok()); }).ok());
  ASSERT_TRUE(store_->HoldsUnappliedEpochs()) << "epoch 2 was not logged";
  clock_.Advance(options_.lease_ms / 2);
  auto beat = scheduler_->RunBatch([&] {
    auto decisions = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 2, 0}});
    ASSERT_TRUE(decisions.ok()) << decisions.status().ToString();
    ASSERT_EQ(decisions->decisions.size(), 1u);
    EXPECT_FALSE(decisions->decisions[0].stop) << decisions->decisions[0].reason;
  });
  ASSERT_TRUE(beat.ok()) << beat.ToString();
  EXPECT_TRUE(store_->HoldsUnappliedEpochs()) << "the heartbeat applied the log";
  auto run = scheduler_->GetRun(l.run_id);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->run.epoch, 2);
  EXPECT_EQ(run->epochs.size(), 2u);
  EXPECT_DOUBLE_EQ(run->run.last_test_error, 0.4);
  EXPECT_EQ(run->run.lease_expires_ms, clock_.NowMs() + options_.lease_ms) << "renewal lost";
  EXPECT_FALSE(store_->HoldsUnappliedEpochs());

  ASSERT_TRUE(scheduler_->RunBatch([&] { EXPECT_TRUE(Report(w, l, 3, 0.3).ok()); }).ok());
  ASSERT_TRUE(store_->HoldsUnappliedEpochs());
  Open();  // the coordinator restarts on the same database
  ASSERT_TRUE(scheduler_->Complete(w, l.run_id, l.attempt, 0).ok());
  run = scheduler_->GetRun(l.run_id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->run.state, RunState::kSucceeded);
  EXPECT_EQ(run->epochs.size(), 3u);
  EXPECT_DOUBLE_EQ(run->run.final_test_error, 0.3);
}

TEST_F(SchedulerTest, SubmitQueuesEveryRunOnceAndResubmitIsANoOp) {
  auto first = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->runs_total, 4);
  EXPECT_EQ(first->runs_new, 4);
  EXPECT_FALSE(first->already_existed);
  auto again = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_existed);
  EXPECT_EQ(again->runs_new, 0);
  EXPECT_EQ(again->sweep_id, first->sweep_id);
  auto view = scheduler_->GetSweep("sched");  // by name
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->counts.queued, 4);
  EXPECT_EQ(view->counts.total(), 4);
  EXPECT_EQ(view->state, "active");
  // A bad spec is refused and queues nothing.
  auto bad = scheduler_->Submit("name: bad\nmodel: {depth_n: 0}\n", "bad.yaml");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("bad.yaml:2:"), std::string::npos);
  EXPECT_EQ(scheduler_->ListSweeps()->sweeps.size(), 1u);
}

TEST_F(SchedulerTest, LeasesSeedMajorSoEveryCellStartsEarly) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  Lease a = MustAcquire(w), b = MustAcquire(w);
  EXPECT_EQ(a.seed, 0);
  EXPECT_EQ(b.seed, 0);
  EXPECT_NE(a.cell_label, b.cell_label);
  EXPECT_EQ(a.attempt, 1);
  EXPECT_EQ(a.sweep_name, "sched");
  MustAcquire(w);
  MustAcquire(w);
  auto none = scheduler_->Acquire(w, NextSlot(w));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(scheduler_->Acquire("nobody", 0).status().code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, RunSucceedsAfterAllEpochsAndResultsAggregate) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  const double errors[4][3] = {{0.5, 0.3, 0.2}, {0.5, 0.3, 0.1}, {0.6, 0.4, 0.3}, {0.6, 0.4, 0.4}};
  for (int i = 0; i < 4; ++i) {
    Lease l = MustAcquire(w);
    // Complete before all epochs is refused.
    EXPECT_EQ(scheduler_->Complete(w, l.run_id, l.attempt, 10).code(),
              StatusCode::kFailedPrecondition);
    // Epochs must come in order.
    EXPECT_EQ(Report(w, l, 2, 0.1).code(), StatusCode::kFailedPrecondition);
    for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(w, l, e, errors[i][e - 1]).ok());
    EXPECT_EQ(Run(l.run_id).state, RunState::kRunning);
    ASSERT_TRUE(scheduler_->Complete(w, l.run_id, l.attempt, 1234).ok());
    EXPECT_EQ(Run(l.run_id).state, RunState::kSucceeded);
  }
  auto results = scheduler_->Results("sched", 2);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_EQ(results->sweep.state, "done");
  ASSERT_EQ(results->cells.size(), 2u);
  // Seed-major leasing: runs 0 and 2 are cell depth_n=1 (seeds 0, 1); 1 and 3 depth_n=2.
  const CellSummary& c1 = results->cells[0];
  EXPECT_EQ(c1.cell_label, "model.depth_n=1");
  EXPECT_EQ(c1.final_test_error.n, 2);
  EXPECT_NEAR(c1.final_test_error.mean, (0.2 + 0.3) / 2, 1e-12);
  EXPECT_NEAR(c1.final_test_error.std, std::sqrt(0.005), 1e-12);
  // last-2: run 0 (0.3+0.2)/2 = 0.25, run 2 (0.4+0.3)/2 = 0.35.
  EXPECT_NEAR(c1.last_k_test_error.mean, 0.30, 1e-12);
  EXPECT_DOUBLE_EQ(c1.mean_param_count, 1234);
  const CellSummary& c2 = results->cells[1];
  EXPECT_NEAR(c2.final_test_error.mean, 0.25, 1e-12);
  EXPECT_NEAR(c2.final_test_error.min, 0.1, 1e-12);
  EXPECT_NEAR(c2.final_test_error.max, 0.4, 1e-12);
  // The sweep's own K (5, more than the 3 epochs): from the summaries the store keeps.
  auto own_k = scheduler_->Results("sched", 0);
  ASSERT_TRUE(own_k.ok()) << own_k.status().ToString();
  EXPECT_EQ(own_k->last_k, 5);
  EXPECT_NEAR(own_k->cells[0].last_k_test_error.mean,
              ((0.5 + 0.3 + 0.2) / 3 + (0.6 + 0.4 + 0.3) / 3) / 2, 1e-12);
}

// A Store that forwards to another one and counts the writes of runs and epochs.
class RunWriteCountingStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  int update_runs = 0, put_epochs = 0, append_epochs = 0, append_next_epochs = 0, get_runs = 0;

  Status UpdateRun(const RunRecord& run) override {
    ++update_runs;
    return inner_->UpdateRun(run);
  }
  Status PutEpoch(const EpochRecord& e, const std::string& w) override {
    ++put_epochs;
    return inner_->PutEpoch(e, w);
  }
  Status AppendEpoch(const RunRecord& run, const EpochRecord& e) override {
    ++append_epochs;
    return inner_->AppendEpoch(run, e);
  }
  StatusOr<bool> AppendNextEpoch(const std::string& w, const EpochRecord& e,
                                 int64_t lease_expires_ms, int64_t updated_ms) override {
    ++append_next_epochs;
    return inner_->AppendNextEpoch(w, e, lease_expires_ms, updated_ms);
  }
  StatusOr<std::optional<RunRecord>> GetRun(const std::string& run_id) override {
    ++get_runs;
    return inner_->GetRun(run_id);
  }
};

// An epoch report writes its run once: the epoch and the run's move to it are one
// fenced store write, not an epoch write and then a run write, each firing the run's
// triggers; the next epoch of a running attempt with a live lease (nearly every
// report) is written without reading the run first (AppendNextEpoch). A retried
// report (its reply lost) records the epoch again and leaves the run alone.
TEST_F(SchedulerTest, AnEpochReportWritesItsRunOnce) {
  RunWriteCountingStore counting(store_.get());
  scheduler_ = std::make_unique<Scheduler>(&counting, &clock_, options_, checkpoints_.get());
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  counting.update_runs = counting.put_epochs = counting.append_epochs = 0;
  counting.append_next_epochs = counting.get_runs = 0;
  clock_.Advance(1000);
  ASSERT_TRUE(Report(w, l, 3, 0.3).ok());
  EXPECT_EQ(counting.append_next_epochs, 1);
  EXPECT_EQ(counting.get_runs, 0);
  EXPECT_EQ(counting.append_epochs, 0);
  EXPECT_EQ(counting.update_runs, 0);
  EXPECT_EQ(counting.put_epochs, 0);
  const RunRecord r = Run(l.run_id);
  EXPECT_EQ(r.epoch, 3);
  EXPECT_EQ(r.state, RunState::kRunning);
  EXPECT_DOUBLE_EQ(r.last_test_error, 0.3);
  EXPECT_DOUBLE_EQ(r.final_test_error, 0.3);
  EXPECT_DOUBLE_EQ(r.last_k_test_error, (0.5 + 0.4 + 0.3) / 3);
  EXPECT_EQ(r.updated_ms, clock_.NowMs());
  EXPECT_EQ(r.lease_expires_ms, clock_.NowMs() + options_.lease_ms);
  ASSERT_TRUE(Report(w, l, 3, 0.3).ok());     // the same report again
  EXPECT_EQ(counting.append_next_epochs, 2);  // refused, writing nothing
  EXPECT_EQ(counting.append_epochs, 0);
  EXPECT_EQ(counting.put_epochs, 1);
  EXPECT_EQ(counting.update_runs, 0);
  EXPECT_EQ(store_->ListEpochs(l.run_id)->size(), 3u);
}

// Every number a results table shows of each cell, bit for bit.
void ExpectSameResults(const ResultsView& got, const ResultsView& want) {
  ASSERT_EQ(got.cells.size(), want.cells.size());
  for (size_t i = 0; i < got.cells.size(); ++i) {
    SCOPED_TRACE("cell " + want.cells[i].cell_label);
    const CellSummary& a = got.cells[i];
    const CellSummary& b = want.cells[i];
    EXPECT_EQ(a.cell_key, b.cell_key);
    EXPECT_EQ(a.runs_total, b.runs_total);
    EXPECT_EQ(a.runs_succeeded, b.runs_succeeded);
    for (auto [x, y] : {std::pair{&a.final_test_error, &b.final_test_error},
                        std::pair{&a.last_k_test_error, &b.last_k_test_error}}) {
      EXPECT_EQ(x->values, y->values);
      EXPECT_EQ(x->mean, y->mean);
      EXPECT_EQ(x->std, y->std);
      EXPECT_EQ(x->ci95.low, y->ci95.low);
      EXPECT_EQ(x->bootstrap_ci95.low, y->bootstrap_ci95.low);
      EXPECT_EQ(x->bootstrap_ci95.high, y->bootstrap_ci95.high);
      EXPECT_EQ(x->iqm, y->iqm);
    }
    EXPECT_EQ(a.comparison.is_best, b.comparison.is_best);
    EXPECT_EQ(a.comparison.p_holm, b.comparison.p_holm);
    EXPECT_EQ(a.comparison.seeds_needed, b.comparison.seeds_needed);
    ASSERT_EQ(a.comparison.probability_better_than_best.has_value(),
              b.comparison.probability_better_than_best.has_value());
    if (b.comparison.probability_better_than_best) {
      EXPECT_EQ(a.comparison.probability_better_than_best->estimate,
                b.comparison.probability_better_than_best->estimate);
      EXPECT_EQ(a.comparison.probability_better_than_best->ci95.low,
                b.comparison.probability_better_than_best->ci95.low);
    }
    EXPECT_EQ(a.mean_param_count, b.mean_param_count);
  }
}

// The refresher stores what results need; a later reader with an empty memory (a
// restarted coordinator, `resweep results --db`) finds it all and computes nothing,
// and gets the same numbers. A sweep whose outcomes changed is stale until refreshed,
// and a refresh keeps only the entries the sweep now needs.
TEST_F(SchedulerTest, StoredStatisticsAnswerResultsWithoutComputingThemAgain) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  const double errors[4] = {0.31, 0.22, 0.35, 0.28};
  auto finish = [&](int i) {
    Lease l = MustAcquire(w);
    for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(w, l, e, errors[i] + 0.1 * (3 - e)).ok());
    ASSERT_TRUE(scheduler_->Complete(w, l.run_id, l.attempt, 1000 + i).ok());
  };
  for (int i = 0; i < 3; ++i) finish(i);
  // Offline: a read-only store, a fresh cache.
  auto offline_results = [&](analysis::StatisticsCache* cache) {
    auto offline = OpenSqliteStore(dir_.File("state.db"), {.read_only = true});
    EXPECT_TRUE(offline.ok());
    Queries queries(offline->get(), &clock_, options_.lease_ms, cache);
    auto results = queries.Results("sched", 0);
    EXPECT_TRUE(results.ok()) << results.status().ToString();
    return *results;
  };
  analysis::StatisticsCache before_refresh;
  const ResultsView computed = offline_results(&before_refresh);
  EXPECT_GT(before_refresh.computed(), 0);

  ASSERT_EQ(*scheduler_->RefreshStatistics(16), 1);
  EXPECT_EQ(*scheduler_->RefreshStatistics(16), 0);  // nothing changed since
  const size_t stored =
      store_->ListSweepStatistics(scheduler_->GetSweep("sched")->sweep.sweep_id)->size();
  EXPECT_GT(stored, 0u);
  analysis::StatisticsCache after_refresh;
  ExpectSameResults(offline_results(&after_refresh), computed);
  EXPECT_EQ(after_refresh.computed(), 0);
  EXPECT_GT(after_refresh.misses(), 0);  // all of them found in the database

  // The last run finishes: stale again; the refresh replaces what changed.
  finish(3);
  auto stale = store_->SweepsWithStaleStatistics(16);
  ASSERT_TRUE(stale.ok());
  ASSERT_EQ(stale->size(), 1u);
  // Not again before ten times its last computation took (at least 1 ms).
  EXPECT_EQ(*scheduler_->RefreshStatistics(16), 0);
  clock_.Advance(60000);
  ASSERT_EQ(*scheduler_->RefreshStatistics(16), 1);
  analysis::StatisticsCache fresh, after_change;
  const ResultsView now = offline_results(&after_change);
  EXPECT_EQ(after_change.computed(), 0);
  EXPECT_EQ(now.cells[1].runs_succeeded, 2);
  auto recomputed = OpenSqliteStore(dir_.File("state.db"), {.read_only = true});
  ASSERT_TRUE(recomputed.ok());
  {
    // What computing from scratch (no stored entries consulted) gives.
    class Nothing : public analysis::StatisticsBacking {
     public:
      const std::string* Find(const std::string&) override { return nullptr; }
      void Used(const std::string& key, const std::string&) override { keys.insert(key); }
      std::set<std::string> keys;
    } nothing;
    Queries queries(recomputed->get(), &clock_, options_.lease_ms, &fresh);
    auto scratch = queries.Results("sched", 0, &nothing);
    ASSERT_TRUE(scratch.ok());
    ExpectSameResults(now, *scratch);
    // Exactly the entries the sweep needs are stored: none left of the old outcomes.
    EXPECT_EQ(store_->ListSweepStatistics(now.sweep.sweep.sweep_id)->size(), nothing.keys.size());
  }
}

// A deleted (archived) sweep's results stay readable by id: its statistics are
// stored too, and a sweep whose refresh fails does not hold up the others.
TEST_F(SchedulerTest, ArchivedSweepsGetTheirStatisticsStoredToo) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  for (int i = 0; i < 4; ++i) {
    Lease l = MustAcquire(w);
    for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(w, l, e, 0.3 + 0.01 * i).ok());
    ASSERT_TRUE(scheduler_->Complete(w, l.run_id, l.attempt, 1000).ok());
  }
  const std::string id = scheduler_->GetSweep("sched")->sweep.sweep_id;
  ASSERT_TRUE(scheduler_->Delete(id, false).ok());
  ASSERT_TRUE((*store_->GetSweep(id))->archived);
  EXPECT_EQ(*scheduler_->RefreshStatistics(16), 1);
  EXPECT_TRUE(store_->SweepsWithStaleStatistics(16)->empty());
  EXPECT_FALSE(store_->ListSweepStatistics(id)->empty());
}

// A store whose results read waits until released, as a results query over a huge
// sweep would take its time.
class SlowResultsStore : public ForwardingStore {
 public:
  SlowResultsStore(std::unique_ptr<Store> inner, std::shared_future<void> release,
                   std::promise<void>* entered)
      : ForwardingStore(inner.get()),
        owned_(std::move(inner)),
        release_(std::move(release)),
        entered_(entered) {}
  StatusOr<std::vector<SweepOutcomeRecord>> ListSweepOutcomes(const std::string& id,
                                                              int k) override {
    entered_->set_value();
    release_.wait();
    return inner_->ListSweepOutcomes(id, k);
  }

 private:
  std::unique_ptr<Store> owned_;
  std::shared_future<void> release_;
  std::promise<void>* entered_;
};

// Reads never block writes: while a results query is in progress on its read
// connection, leases are given, epochs recorded and heartbeats answered; the query then
// answers from its own snapshot. With reads under the scheduler's lock, the writes
// below would wait for the query, which waits for them: the bounded waits fail.
TEST_F(SchedulerTest, ReadsRunOffTheSchedulersLockAndDoNotBlockWrites) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  std::promise<void> release;
  std::promise<void> entered;
  ReadPool slow_reads(
      [&, path = dir_.File("state.db")]() -> StatusOr<std::unique_ptr<Store>> {
        auto store = OpenSqliteStore(path, {.read_only = true});
        if (!store.ok()) return store.status();
        return std::unique_ptr<Store>(std::make_unique<SlowResultsStore>(
            std::move(*store), release.get_future().share(), &entered));
      },
      1);
  Scheduler scheduler(store_.get(), &clock_, options_, checkpoints_.get(), &slow_reads);
  auto results = std::async(std::launch::async, [&] { return scheduler.Results("sched", 0); });
  ASSERT_EQ(entered.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);

  auto writes = std::async(std::launch::async, [&]() -> Status {
    auto worker = scheduler.RegisterWorker("w", "host", {"cpu"});
    RESWEEP_RETURN_IF_ERROR(worker.status());
    RESWEEP_ASSIGN_OR_RETURN(auto lease, scheduler.Acquire(worker->worker_id, 0));
    if (!lease) return InternalError("nothing leased");
    EpochRecord e;
    e.run_id = lease->run_id;
    e.attempt = lease->attempt;
    e.epoch = 1;
    e.test_error = 0.5;
    RESWEEP_RETURN_IF_ERROR(scheduler.ReportEpoch(worker->worker_id, e));
    return scheduler.Heartbeat(worker->worker_id, {{lease->run_id, lease->attempt, 1}}).status();
  });
  const bool writes_done = writes.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  release.set_value();
  ASSERT_TRUE(writes_done) << "writes waited for a read in progress";
  EXPECT_TRUE(writes.get().ok());
  auto answered = results.get();
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->cells.size(), 2u);
  // Its snapshot began before the lease: no run was running in it.
  EXPECT_EQ(answered->sweep.counts.queued, 4);
  EXPECT_EQ(slow_reads.opened(), 1);
  // The next query sees the writes.
  EXPECT_EQ(scheduler_->GetSweep("sched")->counts.running, 1);
}

TEST_F(SchedulerTest, ExpiredLeaseRequeuesAndFencesTheStaleAttempt) {
  ASSERT_TRUE(
      scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: 3}\n", "o.yaml")
          .ok());
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease first = MustAcquire(w1);
  ASSERT_TRUE(Report(w1, first, 1, 0.5).ok());
  // A heartbeat renews the lease: 15 s pass in total, never 10 s without news.
  clock_.Advance(8000);
  auto hb = scheduler_->Heartbeat(w1, {{first.run_id, first.attempt, 1}});
  ASSERT_TRUE(hb.ok());
  ASSERT_EQ(hb->decisions.size(), 1u);
  EXPECT_FALSE(hb->decisions[0].stop);
  clock_.Advance(7000);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 0);
  // Silence past the lease: lost, queued again.
  clock_.Advance(10001);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(Run(first.run_id).state, RunState::kQueued);
  EXPECT_EQ(Run(first.run_id).failures, 1);
  Lease second = MustAcquire(w2);
  EXPECT_EQ(second.run_id, first.run_id);
  EXPECT_EQ(second.attempt, 2);
  // The first worker comes back: every call of its attempt is refused.
  EXPECT_EQ(Report(w1, first, 2, 0.4).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->Complete(w1, first.run_id, first.attempt, 1).code(),
            StatusCode::kFailedPrecondition);
  hb = scheduler_->Heartbeat(w1, {{first.run_id, first.attempt, 2}});
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE(hb->decisions[0].stop);
  // The new attempt restarts from epoch 1: the old attempt's epoch is gone.
  auto epochs = store_->ListEpochs(first.run_id);
  EXPECT_TRUE(epochs->empty());
  for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(w2, second, e, 0.1 * e).ok());
  ASSERT_TRUE(scheduler_->Complete(w2, second.run_id, second.attempt, 1).ok());
  auto attempts = store_->ListAttempts(first.run_id);
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].state, "lost");
  EXPECT_EQ((*attempts)[1].state, "succeeded");
  EXPECT_EQ(store_->ListEpochs(first.run_id)->size(), 3u);
}

TEST_F(SchedulerTest, LateReportBeforeTheReaperIsStillRefused) {
  ASSERT_TRUE(scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\n", "o.yaml").ok());
  const std::string w = Register("w");
  Lease l = MustAcquire(w);
  clock_.Advance(10001);
  EXPECT_EQ(Report(w, l, 1, 0.5).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Run(l.run_id).state, RunState::kQueued);  // the fence expired it on the spot
}

TEST_F(SchedulerTest, MaxAttemptsTurnsRepeatedLossIntoFailure) {
  ASSERT_TRUE(scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\n", "o.yaml").ok());
  const std::string w = Register("w");
  std::string run_id;
  for (int i = 0; i < 3; ++i) {
    Lease l = MustAcquire(w);
    run_id = l.run_id;
    clock_.Advance(10001);
    EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  }
  RunRecord r = Run(run_id);
  EXPECT_EQ(r.state, RunState::kFailed);
  EXPECT_NE(r.error.find("lease expired"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("3 of 3"), std::string::npos) << r.error;
  EXPECT_FALSE(scheduler_->Acquire(w, NextSlot(w))->has_value());
}

TEST_F(SchedulerTest, FailReleaseAndOtherWorkers) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w"), other = Register("other");
  Lease a = MustAcquire(w);
  // Another worker cannot speak for this lease.
  EXPECT_EQ(scheduler_->Fail(other, a.run_id, a.attempt, "x", false).code(),
            StatusCode::kFailedPrecondition);
  // A retryable failure queues again and counts against max attempts.
  ASSERT_TRUE(scheduler_->Fail(w, a.run_id, a.attempt, "CUDA out of memory", true).ok());
  EXPECT_EQ(Run(a.run_id).state, RunState::kQueued);
  EXPECT_EQ(Run(a.run_id).failures, 1);
  // A release (worker shutting down) queues again at no cost.
  Lease b = MustAcquire(w);
  EXPECT_EQ(b.run_id, a.run_id);
  ASSERT_TRUE(scheduler_->Release(w, b.run_id, b.attempt, "SIGTERM").ok());
  EXPECT_EQ(Run(a.run_id).failures, 1);
  EXPECT_EQ(Run(a.run_id).state, RunState::kQueued);
  // A run's own failure is final and keeps the message.
  Lease c = MustAcquire(w);
  ASSERT_TRUE(scheduler_->Fail(w, c.run_id, c.attempt, "diverged: loss nan", false).ok());
  EXPECT_EQ(Run(c.run_id).state, RunState::kFailed);
  EXPECT_EQ(Run(c.run_id).error, "diverged: loss nan");
  auto failed = scheduler_->ListRuns("sched", "failed");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->runs.size(), 1u);
  EXPECT_EQ(scheduler_->ListRuns("sched", "bogus").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, CancelStopsRunningRunsAtTheNextHeartbeat) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  const std::string w = Register("w");
  Lease l = MustAcquire(w);
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());
  auto cancelled = scheduler_->Cancel(sweep->sweep_id.substr(0, 6));  // by id prefix
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->runs_cancelled, 4);
  EXPECT_EQ(cancelled->runs_kept, 0);
  EXPECT_FALSE(cancelled->already_finished);
  auto hb = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 1}});
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE(hb->decisions[0].stop);
  EXPECT_NE(hb->decisions[0].reason.find("cancelled"), std::string::npos);
  EXPECT_EQ(Report(w, l, 2, 0.4).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(scheduler_->Acquire(w, NextSlot(w))->has_value());
  EXPECT_EQ(scheduler_->GetSweep("sched")->state, "cancelled");
  // Submitting the same sweep again later is a no-op (the record exists); its runs stay
  // cancelled until another sweep wants them.
  EXPECT_TRUE(scheduler_->Submit(kSweep, "s.yaml")->already_existed);
}

TEST_F(SchedulerTest, StateSurvivesReopeningTheDatabase) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  Lease l = MustAcquire(w);
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());
  Open();  // a coordinator restart
  EXPECT_EQ(Run(l.run_id).state, RunState::kRunning);
  EXPECT_EQ(Run(l.run_id).epoch, 1);
  // The worker carries on with its lease after the restart.
  ASSERT_TRUE(Report(w, l, 2, 0.4).ok());
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->counts.running, 1);
  EXPECT_EQ(view->counts.queued, 3);
}

TEST_F(SchedulerTest, CheckpointsAreChunkedVerifiedAndResumedFrom) {
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease l = LeaseWithTwoEpochsReported(w1);
  EXPECT_EQ(l.resume_epoch, 0);
  const std::string blob = "checkpoint-bytes-of-epoch-2";
  const std::string sha = Sha256Hex(blob);
  // Not yet reported epochs cannot be checkpointed.
  EXPECT_EQ(scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 3, 0, blob, true, sha)
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  // A wrong checksum is refused and commits nothing.
  EXPECT_EQ(scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 2, 0, blob, true, "00")
                .status()
                .code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 0);
  // Two chunks; the first is sent twice (a retry) without harm.
  ASSERT_EQ(
      *scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 2, 0, blob.substr(0, 10), false, ""),
      10);
  ASSERT_EQ(
      *scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 2, 0, blob.substr(0, 10), false, ""),
      10);
  EXPECT_EQ(scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 2, 50, "x", false, "")
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(
      scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, 2, 10, blob.substr(10), true, sha)
          .ok());
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 2);
  ASSERT_TRUE(Report(w1, l, 3, 0.3).ok());
  // The worker dies; the next attempt resumes after epoch 2, and epoch 3 is gone.
  clock_.Advance(10001);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  Lease again = MustAcquire(w2);
  EXPECT_EQ(again.resume_epoch, 2);
  EXPECT_EQ(store_->ListEpochs(l.run_id)->size(), 2u);
  std::string data;
  int64_t total = 0;
  ASSERT_TRUE(
      scheduler_->GetCheckpointChunk(w2, l.run_id, again.attempt, 2, 0, 8, &data, &total).ok());
  EXPECT_EQ(total, static_cast<int64_t>(blob.size()));
  EXPECT_EQ(data, blob.substr(0, 8));
  // The old attempt can neither read nor write checkpoints any more.
  EXPECT_EQ(scheduler_->GetCheckpointChunk(w1, l.run_id, l.attempt, 2, 0, 8, &data, &total).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Report(w2, again, 4, 0.2).code(),
            StatusCode::kFailedPrecondition);  // must send 3 first
  ASSERT_TRUE(Report(w2, again, 3, 0.3).ok());
  // An unreadable checkpoint is forgotten: the next attempt starts from 0.
  ASSERT_TRUE(
      scheduler_->Fail(w2, l.run_id, again.attempt, "checkpoint checksum mismatch", true, true)
          .ok());
  Lease fresh = MustAcquire(w2);
  EXPECT_EQ(fresh.resume_epoch, 0);
  EXPECT_TRUE(store_->ListEpochs(l.run_id)->empty());
}

TEST_F(SchedulerTest, SharedFilesystemCheckpointsAreRecordedAndHandedOut) {
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease l = LeaseWithTwoEpochsReported(w1);
  const std::string path = l.run_id + "/epoch-2.ckpt";
  // Paths must stay inside the shared directory; epochs must have been reported.
  for (const std::string& bad :
       {std::string("/etc/passwd"), std::string("../x"), std::string("a/../../b"), std::string(),
        std::string("0123abcd/epoch-2.ckpt"),  // another run's directory
        l.run_id + "/sub/epoch-2.ckpt", l.run_id + "/..", l.run_id + "/", l.run_id}) {
    EXPECT_EQ(scheduler_->RecordSharedCheckpoint(w1, l.run_id, l.attempt, 2, bad).code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(scheduler_->RecordSharedCheckpoint(w1, l.run_id, l.attempt, 3, path).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler_->RecordSharedCheckpoint(w2, l.run_id, l.attempt, 2, path).code(),
            StatusCode::kFailedPrecondition);  // not the lease holder
  ASSERT_TRUE(scheduler_->RecordSharedCheckpoint(w1, l.run_id, l.attempt, 2, path).ok());
  ASSERT_TRUE(scheduler_->RecordSharedCheckpoint(w1, l.run_id, l.attempt, 2, path).ok());  // retry
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 2);
  EXPECT_EQ(Run(l.run_id).checkpoint_path, path);
  // The next attempt is told where to read it, and the coordinator has no copy.
  clock_.Advance(10001);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  Lease again = MustAcquire(w2);
  EXPECT_EQ(again.resume_epoch, 2);
  EXPECT_EQ(again.resume_path, path);
  std::string data;
  int64_t total = 0;
  EXPECT_EQ(
      scheduler_->GetCheckpointChunk(w2, l.run_id, again.attempt, 2, 0, 8, &data, &total).code(),
      StatusCode::kFailedPrecondition);
  // An uploaded checkpoint replaces it, and the path is cleared.
  ASSERT_TRUE(Report(w2, again, 3, 0.3).ok());
  const std::string blob = "epoch-3";
  ASSERT_TRUE(
      scheduler_->PutCheckpointChunk(w2, l.run_id, again.attempt, 3, 0, blob, true, Sha256Hex(blob))
          .ok());
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 3);
  EXPECT_EQ(Run(l.run_id).checkpoint_path, "");
  // It survives a reopen of the database (schema migration 1 -> 2 added the column).
  ASSERT_TRUE(Report(w2, again, 4, 0.25).ok());
  ASSERT_TRUE(
      scheduler_->RecordSharedCheckpoint(w2, l.run_id, again.attempt, 4, l.run_id + "/e4").ok());
  Open();
  EXPECT_EQ(Run(l.run_id).checkpoint_path, l.run_id + "/e4");
}

TEST_F(SchedulerTest, MidEpochCheckpointsAreOrderedByIteration) {
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease l = LeaseWithTwoEpochsReported(w1);
  auto put = [&](int epoch, int64_t iteration, const std::string& blob) {
    return scheduler_
        ->PutCheckpointChunk(w1, l.run_id, l.attempt, epoch, 0, blob, true, Sha256Hex(blob),
                             iteration)
        .status();
  };
  ASSERT_TRUE(put(2, 20, "end of epoch 2").ok());
  // Stopped part-way into epoch 3: still "after epoch 2", but further along.
  ASSERT_TRUE(put(2, 25, "epoch 2 + 5 steps").ok());
  EXPECT_EQ(Run(l.run_id).checkpoint_iteration, 25);
  ASSERT_TRUE(put(2, 25, "epoch 2 + 5 steps").ok());  // a retried commit
  EXPECT_EQ(put(2, 22, "older").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(put(1, 40, "older epoch").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(scheduler_->Release(w1, l.run_id, l.attempt, "worker shutting down").ok());
  Lease again = MustAcquire(w2);
  EXPECT_EQ(again.resume_epoch, 2);
  std::string data;
  int64_t total = 0;
  ASSERT_TRUE(
      scheduler_->GetCheckpointChunk(w2, l.run_id, again.attempt, 2, 0, 100, &data, &total).ok());
  EXPECT_EQ(data, "epoch 2 + 5 steps");
}

// A Store that forwards to another one, except that it fails the write recording a
// checkpoint of epoch `fail_checkpoint_epoch` (as a full disk, a busy database or a
// lost lease would): UpdateRun of a run record carrying that epoch.
class CheckpointCommitFailingStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  int fail_checkpoint_epoch = -1;

  Status UpdateRun(const RunRecord& run) override {
    if (run.checkpoint_epoch == fail_checkpoint_epoch) {
      return UnavailableError("database: disk I/O error (injected)");
    }
    return inner_->UpdateRun(run);
  }
  // When set, a batch's commit fails (as a full disk would): rolled back instead.
  bool fail_batch_commit = false;
  Status CommitBatch() override {
    if (!fail_batch_commit) return inner_->CommitBatch();
    EXPECT_TRUE(inner_->AbortBatch().ok());
    return UnavailableError("database: disk I/O error (injected at commit)");
  }
  Status CommitBatchBeforeSync() override {
    if (!fail_batch_commit) return inner_->CommitBatchBeforeSync();
    EXPECT_TRUE(inner_->AbortBatch().ok());
    return UnavailableError("database: disk I/O error (injected at commit)");
  }
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Sets a file's modification time to `ms` (Unix epoch), as the fake clock counts.
void SetModified(const std::string& path, int64_t ms) {
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ms / 1000;
  times[0].tv_nsec = times[1].tv_nsec = (ms % 1000) * 1000000;
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

TEST_F(SchedulerTest, AFailedCheckpointCommitKeepsThePreviousCheckpointAndItsRetryCommits) {
  CheckpointCommitFailingStore faulty(store_.get());
  scheduler_ = std::make_unique<Scheduler>(&faulty, &clock_, options_, checkpoints_.get());
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease l = LeaseWithTwoEpochsReported(w1);
  auto put = [&](int epoch, const std::string& blob) {
    return scheduler_->PutCheckpointChunk(w1, l.run_id, l.attempt, epoch, 0, blob, true,
                                          Sha256Hex(blob), epoch);
  };
  ASSERT_TRUE(put(1, "state after epoch 1").ok());
  faulty.fail_checkpoint_epoch = 2;
  auto failed = put(2, "state after epoch 2");
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  // The database still records epoch 1, and its file is still there to resume from.
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 1);
  std::string data;
  int64_t total = 0;
  ASSERT_TRUE(
      scheduler_->GetCheckpointChunk(w1, l.run_id, l.attempt, 1, 0, 100, &data, &total).ok());
  EXPECT_EQ(data, "state after epoch 1");
  // The worker retries the last chunk once the store works again: it commits.
  faulty.fail_checkpoint_epoch = -1;
  auto retried = put(2, "state after epoch 2");
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 2);
  EXPECT_FALSE(std::filesystem::exists(checkpoints_->CheckpointPath(l.run_id, 1, 1)));
  // The next attempt resumes from it.
  clock_.Advance(10001);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  Lease again = MustAcquire(w2);
  EXPECT_EQ(again.resume_epoch, 2);
  ASSERT_TRUE(
      scheduler_->GetCheckpointChunk(w2, l.run_id, again.attempt, 2, 0, 100, &data, &total).ok());
  EXPECT_EQ(data, "state after epoch 2");
}

TEST_F(SchedulerTest, AMissingCheckpointFileFallsBackToAnOlderOneOrToScratchAndNeverFailsTheRun) {
  options_.default_max_attempts = 2;
  Open();
  const std::string w1 = Register("w1"), w2 = Register("w2");
  Lease l = LeaseWithTwoEpochsReported(w1);
  auto put = [&](const std::string& worker, const Lease& lease, int epoch) {
    const std::string blob = "state after epoch " + std::to_string(epoch);
    return scheduler_
        ->PutCheckpointChunk(worker, lease.run_id, lease.attempt, epoch, 0, blob, true,
                             Sha256Hex(blob), epoch)
        .status();
  };
  ASSERT_TRUE(put(w1, l, 1).ok());
  const std::string one = checkpoints_->CheckpointPath(l.run_id, 1, 1);
  const std::string saved_one = ReadAll(one);
  ASSERT_TRUE(put(w1, l, 2).ok());
  ASSERT_FALSE(std::filesystem::exists(one));
  // A crash left the older file behind, and the recorded one is lost.
  testing::WriteFile(one, saved_one);
  std::filesystem::remove(checkpoints_->CheckpointPath(l.run_id, 2, 2));
  clock_.Advance(10001);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);  // the run's first counted failure
  Lease second = MustAcquire(w2);
  EXPECT_EQ(second.resume_epoch, 1);
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 1);
  EXPECT_EQ(store_->ListEpochs(l.run_id)->size(), 1u);

  // That one vanishes too: the download finds no file, the worker says so, and the
  // run starts from scratch without using up its last attempt.
  std::filesystem::remove(one);
  std::string data;
  int64_t total = 0;
  EXPECT_EQ(
      scheduler_->GetCheckpointChunk(w2, l.run_id, second.attempt, 1, 0, 100, &data, &total).code(),
      StatusCode::kNotFound);
  ASSERT_TRUE(scheduler_
                  ->Fail(w2, l.run_id, second.attempt, "no checkpoint of run at epoch 1",
                         /*retryable=*/true, /*checkpoint_unusable=*/true)
                  .ok());
  EXPECT_EQ(Run(l.run_id).state, RunState::kQueued);
  EXPECT_EQ(Run(l.run_id).failures, 1);
  Lease third = MustAcquire(w1);
  EXPECT_EQ(third.resume_epoch, 0);

  // A recorded file missing at lease time, with nothing older: from scratch as well.
  ASSERT_TRUE(Report(w1, third, 1, 0.5).ok());
  ASSERT_TRUE(put(w1, third, 1).ok());
  ASSERT_TRUE(scheduler_->Release(w1, l.run_id, third.attempt, "worker shutting down").ok());
  std::filesystem::remove(checkpoints_->CheckpointPath(l.run_id, 1, 1));
  Lease fourth = MustAcquire(w2);
  EXPECT_EQ(fourth.resume_epoch, 0);
  EXPECT_EQ(Run(l.run_id).state, RunState::kLeased);
  EXPECT_EQ(Run(l.run_id).failures, 1);
}

TEST_F(SchedulerTest, CheckpointUploadsAreBoundedInSizeAndPerWorkerAndWrittenOutsideTheLock) {
  options_.max_checkpoint_bytes = 64;
  options_.max_uploads_per_worker = 1;
  // Pauses the first upload between writing its file and recording it.
  std::mutex mutex;
  std::condition_variable cv;
  bool paused = false, resume = false;
  options_.test_crash_point = [&](const std::string& point) {
    if (point != "checkpoint-after-rename") return;
    std::unique_lock<std::mutex> lock(mutex);
    if (paused) return;
    paused = true;
    cv.notify_all();
    cv.wait(lock, [&] { return resume; });
  };
  Open();
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  auto too_big =
      scheduler_->PutCheckpointChunk(w, l.run_id, l.attempt, 1, 60, "0123456789", false, "", 1);
  EXPECT_EQ(too_big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status().message().find("--max-checkpoint-bytes"), std::string::npos)
      << too_big.status().message();

  StatusOr<int64_t> first = InternalError("not run");
  std::thread uploading([&] {
    first = scheduler_->PutCheckpointChunk(w, l.run_id, l.attempt, 1, 0, "one", true,
                                           Sha256Hex("one"), 1);
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return paused; });
  }
  // The upload is in progress, outside the scheduler's lock: other calls go on, and
  // a second upload of the same worker is refused until it ends.
  EXPECT_TRUE(scheduler_->ListSweeps().ok());
  auto second = scheduler_->PutCheckpointChunk(w, l.run_id, l.attempt, 2, 0, "two", true,
                                               Sha256Hex("two"), 2);
  EXPECT_EQ(second.status().code(), StatusCode::kResourceExhausted);
  {
    std::lock_guard<std::mutex> lock(mutex);
    resume = true;
  }
  cv.notify_all();
  uploading.join();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 1);
  EXPECT_TRUE(
      scheduler_->PutCheckpointChunk(w, l.run_id, l.attempt, 2, 0, "two", true, Sha256Hex("two"), 2)
          .ok());
}

TEST_F(SchedulerTest, TheSweepUpRemovesAbandonedUploadsAndCheckpointsNoRunNeeds) {
  options_.stale_upload_ms = 3600 * 1000;
  options_.finished_checkpoint_retention_ms = 24 * 3600 * 1000;
  Open();
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string wa = Register("wa"), wb = Register("wb"), wc = Register("wc");
  auto blob = [](int epoch) { return "state " + std::to_string(epoch); };
  // Run A is running with a checkpoint of epoch 2; run B fails with one of epoch 1;
  // run C succeeds.
  Lease a = MustAcquire(wa);
  for (int e = 1; e <= 2; ++e) {
    ASSERT_TRUE(Report(wa, a, e, 0.5).ok());
    ASSERT_TRUE(scheduler_
                    ->PutCheckpointChunk(wa, a.run_id, a.attempt, e, 0, blob(e), true,
                                         Sha256Hex(blob(e)), e)
                    .ok());
  }
  Lease b = MustAcquire(wb);
  ASSERT_TRUE(Report(wb, b, 1, 0.5).ok());
  ASSERT_TRUE(
      scheduler_
          ->PutCheckpointChunk(wb, b.run_id, b.attempt, 1, 0, blob(1), true, Sha256Hex(blob(1)), 1)
          .ok());
  ASSERT_TRUE(scheduler_->Fail(wb, b.run_id, b.attempt, "diverged", false).ok());
  Lease c = MustAcquire(wc);
  for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(wc, c, e, 0.5).ok());
  ASSERT_TRUE(scheduler_->Complete(wc, c.run_id, c.attempt, 1000).ok());

  // Files left behind by crashes, failed commits and dead uploads.
  const int64_t now = clock_.NowMs();
  const int64_t fresh = now - 60 * 1000, stale = now - 2 * 3600 * 1000;
  const std::string dir = checkpoints_->dir();
  auto plant = [&](const std::string& run_id, const std::string& name, int64_t modified) {
    std::filesystem::create_directories(dir + "/" + run_id);
    const std::string path = dir + "/" + run_id + "/" + name;
    testing::WriteFile(path, "x");
    SetModified(path, modified);
    return path;
  };
  const std::string a_recorded = checkpoints_->CheckpointPath(a.run_id, 2, 2);
  SetModified(a_recorded, stale);  // old, but the run's checkpoint
  const std::string a_older = plant(a.run_id, "epoch-1-it-1.ckpt", fresh);
  const std::string a_committing = plant(a.run_id, "epoch-3-it-3.ckpt", fresh);
  const std::string a_never_recorded = plant(a.run_id, "epoch-3-it-4.ckpt", stale);
  const std::string a_uploading =
      plant(a.run_id, "upload-a" + std::to_string(a.attempt) + "-e3-i5.part", fresh);
  const std::string a_stalled =
      plant(a.run_id, "upload-a" + std::to_string(a.attempt) + "-e3-i6.part", stale);
  const std::string a_lost_attempt =
      plant(a.run_id, "upload-a" + std::to_string(a.attempt - 1) + "-e3-i7.part", fresh);
  const std::string b_upload = plant(b.run_id, "upload-a1-e2-i2.part", fresh);
  const std::string c_leftover = plant(c.run_id, "epoch-3-it-3.ckpt", fresh);
  const std::string orphan_fresh = plant("abc123", "epoch-1-it-1.ckpt", fresh);
  const std::string orphan_stale = plant("abc456", "upload-a1-e1-i1.part", stale);

  auto swept = scheduler_->SweepArtifacts();
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  for (const auto& kept : {a_recorded, a_committing, a_uploading, orphan_fresh,
                           checkpoints_->CheckpointPath(b.run_id, 1, 1)}) {
    EXPECT_TRUE(std::filesystem::exists(kept)) << kept;
  }
  for (const auto& gone :
       {a_older, a_never_recorded, a_stalled, a_lost_attempt, b_upload, c_leftover, orphan_stale}) {
    EXPECT_FALSE(std::filesystem::exists(gone)) << gone;
  }
  EXPECT_EQ(swept->files_removed, 7);
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + c.run_id));
  EXPECT_FALSE(std::filesystem::exists(dir + "/abc456"));
  EXPECT_EQ(swept->checkpoints_dropped, 0);

  // A day after run B failed, its checkpoint goes: the database first.
  clock_.Advance(24 * 3600 * 1000 + 1);
  swept = scheduler_->SweepArtifacts();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->checkpoints_dropped, 1);
  EXPECT_EQ(Run(b.run_id).checkpoint_epoch, 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + b.run_id));
  // Run A's checkpoint stays however old it is; the stale orphan goes now.
  EXPECT_TRUE(std::filesystem::exists(a_recorded));
  EXPECT_FALSE(std::filesystem::exists(orphan_fresh));
}

TEST_F(SchedulerTest, SubmissionsAreRateLimitedAndTheQueueIsBounded) {
  options_.submits_per_minute = 6;  // one every 10 s
  options_.submit_burst = 2;
  options_.max_active_runs = 10;
  Open();
  auto sweep = [](int i, int seeds) {
    return "name: s" + std::to_string(i) +
           "\ntrainer: {kind: synthetic}\ntrain: {epochs: " + std::to_string(i) +
           "}\nseeds: " + std::to_string(seeds) + "\n";
  };
  ASSERT_TRUE(scheduler_->Submit(sweep(1, 4), "a.yaml").ok());
  ASSERT_TRUE(scheduler_->Submit(sweep(2, 4), "b.yaml").ok());
  // The burst is spent: refused before the file is even parsed, with the wait.
  auto limited = scheduler_->Submit("not: [valid", "c.yaml");
  EXPECT_EQ(limited.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(limited.status().message().find("try again in 10.0 s"), std::string::npos)
      << limited.status().message();
  clock_.Advance(5000);
  EXPECT_EQ(scheduler_->Submit(sweep(3, 1), "c.yaml").status().code(),
            StatusCode::kResourceExhausted);
  clock_.Advance(5000);
  // A token again, but 8 active runs + 3 new would pass the bound of 10.
  auto full = scheduler_->Submit(sweep(3, 3), "c.yaml");
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.status().message().find("queue full"), std::string::npos);
  clock_.Advance(10000);
  EXPECT_TRUE(scheduler_->Submit(sweep(3, 2), "c.yaml").ok());  // 8 + 2 fits
  ASSERT_TRUE(store_->CountActiveRuns().ok());
  EXPECT_EQ(*store_->CountActiveRuns(), 10);
  EXPECT_EQ(scheduler_->ListSweeps()->sweeps.size(), 3u);  // nothing refused was stored
}

TEST_F(SchedulerTest, SharedRunsAreQueuedOnceAcrossSweeps) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  // Another sweep whose grid overlaps in one cell (depth_n 2): only the new cell is queued.
  auto other = scheduler_->Submit(kOverlappingSweep, "o.yaml");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->runs_total, 4);
  EXPECT_EQ(other->runs_new, 2);
}

// Drives every run of `sweep` that `worker` can lease to success (epochs of 1 s).
void FinishAll(Scheduler& s, const std::string& worker, int epochs) {
  while (true) {
    auto lease = s.Acquire(worker, 0);
    ASSERT_TRUE(lease.ok());
    if (!lease->has_value()) return;
    for (int e = 1; e <= epochs; ++e) {
      EpochRecord r;
      r.run_id = (*lease)->run_id;
      r.attempt = (*lease)->attempt;
      r.epoch = e;
      r.test_error = 0.5;
      r.seconds = 1;
      ASSERT_TRUE(s.ReportEpoch(worker, r).ok());
    }
    ASSERT_TRUE(s.Complete(worker, (*lease)->run_id, (*lease)->attempt, 100).ok());
  }
}

TEST_F(SchedulerTest, CancellingAFinishedSweepChangesNothingAndSaysSo) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  const std::string w = Register("w");
  FinishAll(*scheduler_, w, 3);
  ASSERT_EQ(scheduler_->GetSweep("sched")->state, "done");
  auto cancelled = scheduler_->Cancel("sched");
  ASSERT_TRUE(cancelled.ok());
  EXPECT_TRUE(cancelled->already_finished);
  EXPECT_EQ(cancelled->runs_cancelled, 0);
  EXPECT_NE(cancelled->message.find("already finished (4 succeeded"), std::string::npos)
      << cancelled->message;
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->state, "done");
  EXPECT_FALSE(view->sweep.cancelled);
  EXPECT_EQ(view->counts.succeeded, 4);
}

TEST_F(SchedulerTest, ASweepWhoseRunsAnotherSweepHoldsStaysActiveUntilTheyFinish) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  auto other = scheduler_->Submit(kOverlappingSweep, "o.yaml");
  ASSERT_TRUE(other.ok());
  auto cancelled = scheduler_->Cancel("sched");
  ASSERT_TRUE(cancelled.ok());
  // depth 1 (2 runs) is sched's alone; depth 2 (2 runs) is shared with "other".
  EXPECT_EQ(cancelled->runs_cancelled, 2);
  EXPECT_EQ(cancelled->runs_kept, 2);
  EXPECT_NE(cancelled->message.find("2 unfinished run(s) keep going"), std::string::npos)
      << cancelled->message;
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->state, "active");
  EXPECT_TRUE(view->sweep.cancelled);
  const std::string w = Register("w");
  FinishAll(*scheduler_, w, 3);
  view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->counts.succeeded, 2);
  EXPECT_EQ(view->counts.cancelled, 2);
  EXPECT_EQ(view->state, "cancelled");
  EXPECT_EQ(scheduler_->GetSweep("other")->state, "done");
}

// Hostile (review 9): batches of worker calls (reports, most of them on
// AppendNextEpoch's counted path, completions, failures, releases) with another
// thread's leases, cancels, retries, submits of overlapping sweeps and deletes in the
// middle of them; after every batch each sweep's progress and counts, as the read
// pool reads them, are a recount of its runs.
TEST_F(SchedulerTest, SweepCountersStayARecountOfTheRunsThroughBatchesOfMixedCalls) {
  const char* specs[] = {
      "name: a\ntrainer: {kind: synthetic}\ntrain: {epochs: 6}\n"
      "grid:\n  model.depth_n: [1, 2, 3]\nseeds: 3\n",
      "name: b\ntrainer: {kind: synthetic}\ntrain: {epochs: 6}\n"
      "grid:\n  model.depth_n: [2, 3, 4]\nseeds: 3\n",
      "name: c\ntrainer: {kind: synthetic}\ntrain: {epochs: 6}\n"
      "grid:\n  model.depth_n: [3, 4]\nseeds: 4\n"};
  ASSERT_TRUE(scheduler_->Submit(specs[0], "a.yaml").ok());
  ASSERT_TRUE(scheduler_->Submit(specs[1], "b.yaml").ok());
  const std::vector<std::string> workers = {Register("w1"), Register("w2")};
  struct Held {
    std::string worker;
    Lease lease;
    int next = 1;
  };
  std::map<std::string, Held> held;  // by run id
  std::mt19937 rng(9);
  auto seconds_of = [](const std::string& run_id) {
    return 1.0 + static_cast<double>(std::hash<std::string>()(run_id) % 1000) / 8.0;
  };
  auto acquire_some = [&] {
    for (const auto& w : workers) {
      for (int i = 0; i < 3; ++i) {
        auto lease = scheduler_->Acquire(w, NextSlot(w));
        if (!lease.ok() || !lease->has_value()) continue;
        held[(*lease)->run_id] = {w, **lease, (*lease)->resume_epoch + 1};
      }
    }
  };
  auto worker_call = [&]() {
    if (held.empty()) return;
    auto it = held.begin();
    std::advance(it, rng() % held.size());
    Held& h = it->second;
    const int pick = rng() % 20;
    Status st;
    bool ends = false;
    RunRecord r = Run(h.lease.run_id);
    if (pick == 0) {
      st = scheduler_->Fail(h.worker, h.lease.run_id, h.lease.attempt, "boom", true);
      ends = true;
    } else if (pick == 1) {
      st = scheduler_->Release(h.worker, h.lease.run_id, h.lease.attempt, "bye");
      ends = true;
    } else if (h.next > r.epochs_total) {
      st = scheduler_->Complete(h.worker, h.lease.run_id, h.lease.attempt, 10);
      ends = true;
    } else {
      EpochRecord e;
      e.run_id = h.lease.run_id;
      e.attempt = h.lease.attempt;
      e.epoch = h.next;
      e.test_error = 0.5;
      e.train_loss = 1;
      e.seconds = seconds_of(e.run_id) + h.next;
      st = scheduler_->ReportEpoch(h.worker, e);
      if (st.ok()) ++h.next;
      if (st.ok() && rng() % 5 == 0) {  // a retried report: recorded again
        EXPECT_TRUE(scheduler_->ReportEpoch(h.worker, e).ok());
      }
    }
    if (!st.ok()) ends = true;  // cancelled, lost: the worker drops it
    if (ends) held.erase(it);
  };
  auto admin_call = [&](int round) {
    switch (round % 7) {
      case 0:
        (void)scheduler_->Cancel("b");
        break;
      case 1: {
        RetryRequest request;
        request.failed = request.cancelled = true;
        (void)scheduler_->Retry("b", request);
        break;
      }
      case 2:
        (void)scheduler_->Submit(specs[2], "c.yaml");
        break;
      case 3:
        (void)scheduler_->Retry("a", {});
        break;
      case 4:
        (void)scheduler_->Delete("c", /*force=*/true);
        break;
      case 5:
        (void)scheduler_->Submit(specs[2], "c.yaml");
        break;  // restores it
      case 6:
        acquire_some();
        break;
    }
  };
  auto expect_recount = [&](const std::string& when) {
    for (const char* name : {"a", "b", "c"}) {
      auto view = scheduler_->GetSweep(name);
      if (!view.ok()) continue;  // c before its submit
      SCOPED_TRACE(std::string(name) + " " + when);
      auto rows = store_->ListSweepRuns(view->sweep.sweep_id, std::nullopt);
      ASSERT_TRUE(rows.ok());
      int64_t done = 0, total = 0, left = 0;
      int counts[6] = {};
      for (const auto& [link, run] : *rows) {
        done += run.epoch;
        total += run.epochs_total;
        if (!IsTerminal(run.state)) left += run.epochs_total - run.epoch;
        ++counts[static_cast<int>(run.state)];
      }
      EXPECT_EQ(view->progress.epochs_done, done);
      EXPECT_EQ(view->progress.epochs_total, total);
      EXPECT_EQ(view->progress.epochs_left, left);
      const RunCountsRecord& c = view->counts;
      EXPECT_EQ(
          std::vector<int>({c.queued, c.leased, c.running, c.succeeded, c.failed, c.cancelled}),
          std::vector<int>(counts, counts + 6));
    }
  };
  acquire_some();
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Status batch = scheduler_->RunBatch([&] {
      for (int k = 0; k < 8; ++k) worker_call();
      if (round % 2 == 0) {  // another thread's call in the middle of the batch
        std::thread other([&] { admin_call(round / 2); });
        other.join();
      }
      for (int k = 0; k < 8; ++k) worker_call();
    });
    ASSERT_TRUE(batch.ok()) << batch.ToString();
    expect_recount("after the batch");
    if (HasFailure()) return;
    if (held.size() < 4) acquire_some();
    clock_.Advance(100);
  }
}

TEST_F(SchedulerTest, ACancelledRunQueuedAgainByAnotherSweepHasAFreshFailureCount) {
  ASSERT_TRUE(
      scheduler_->Submit("name: a\ntrainer: {kind: synthetic}\ntrain: {epochs: 2}\n", "a.yaml")
          .ok());
  const std::string w = Register("w");
  Lease l = MustAcquire(w);
  ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, "out of memory", /*retryable=*/true).ok());
  EXPECT_EQ(Run(l.run_id).failures, 1);
  ASSERT_TRUE(scheduler_->Cancel("a").ok());
  // Same run, another sweep (another name, same config): queued again from scratch.
  auto again =
      scheduler_->Submit("name: b\ntrainer: {kind: synthetic}\ntrain: {epochs: 2}\n", "b.yaml");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->runs_new, 1);
  EXPECT_EQ(Run(l.run_id).state, RunState::kQueued);
  EXPECT_EQ(Run(l.run_id).failures, 0);
}

TEST_F(SchedulerTest, RetryQueuesFailedRunsWithAFreshBudgetAndKeepsTheirHistory) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  const std::string w = Register("w");
  Lease failed = MustAcquire(w);
  ASSERT_TRUE(Report(w, failed, 1, 0.5).ok());
  ASSERT_TRUE(scheduler_->Fail(w, failed.run_id, failed.attempt, "diverged", false).ok());
  FinishAll(*scheduler_, w, 3);
  ASSERT_EQ(Run(failed.run_id).state, RunState::kFailed);
  ASSERT_EQ(scheduler_->GetSweep("sched")->state, "done");

  // A succeeded run named explicitly is skipped with the reason.
  auto runs = scheduler_->ListRuns("sched", "succeeded");
  ASSERT_FALSE(runs->runs.empty());
  RetryRequest named;
  named.run_ids = {runs->runs.front().run.run_id.substr(0, 8)};
  auto skipped = scheduler_->Retry("sched", named);
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(skipped->runs_queued, 0);
  ASSERT_EQ(skipped->skipped.size(), 1u);
  EXPECT_NE(skipped->skipped[0].find("never re-trained"), std::string::npos);
  RetryRequest unknown;
  unknown.run_ids = {"zzzz"};
  EXPECT_EQ(scheduler_->Retry("sched", unknown).status().code(), StatusCode::kNotFound);

  auto retried = scheduler_->Retry("sched", RetryRequest());  // default: failed runs
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(retried->runs_queued, 1);
  RunRecord r = Run(failed.run_id);
  EXPECT_EQ(r.state, RunState::kQueued);
  EXPECT_EQ(r.failures, 0);
  EXPECT_TRUE(r.error.empty());
  EXPECT_EQ(scheduler_->GetSweep("sched")->state, "active");
  Lease second = MustAcquire(w);
  EXPECT_EQ(second.run_id, failed.run_id);
  EXPECT_EQ(second.attempt, 2);
  auto detail = scheduler_->GetRun(failed.run_id);
  ASSERT_TRUE(detail.ok());
  ASSERT_EQ(detail->attempts.size(), 2u);
  EXPECT_EQ(detail->attempts[0].state, "failed");
  EXPECT_EQ(detail->attempts[0].reason, "diverged");
}

TEST_F(SchedulerTest, RetryOfCancelledRunsReopensTheSweep) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  ASSERT_TRUE(scheduler_->Cancel("sched").ok());
  ASSERT_EQ(scheduler_->GetSweep("sched")->state, "cancelled");
  RetryRequest request;
  request.cancelled = true;
  auto retried = scheduler_->Retry("sched", request);
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->runs_queued, 4);
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->state, "active");
  EXPECT_FALSE(view->sweep.cancelled);
  EXPECT_EQ(view->counts.queued, 4);
}

TEST_F(SchedulerTest, DeleteArchivesTheSweepAndRemovesCheckpointsOfItsFailedRuns) {
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  const std::string data = "checkpoint bytes";
  ASSERT_TRUE(
      scheduler_->PutCheckpointChunk(w, l.run_id, l.attempt, 2, 0, data, true, Sha256Hex(data))
          .ok());
  ASSERT_EQ(Run(l.run_id).checkpoint_epoch, 2);
  // Still running: refused without --force.
  auto refused = scheduler_->Delete("one", false);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--force"), std::string::npos);
  ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, "diverged", false).ok());
  ASSERT_FALSE(std::filesystem::is_empty(dir_.File("artifacts")));

  auto deleted = scheduler_->Delete("one", false);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(deleted->checkpoints_removed, 1);
  EXPECT_EQ(Run(l.run_id).checkpoint_epoch, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("artifacts") + "/" + l.run_id));
  EXPECT_TRUE(scheduler_->ListSweeps()->sweeps.empty());
  ASSERT_EQ(scheduler_->ListSweeps(/*include_archived=*/true)->sweeps.size(), 1u);
  // Results stay readable, by id and by name.
  auto results = scheduler_->Results("one", 0);
  ASSERT_TRUE(results.ok());
  EXPECT_TRUE(results->sweep.sweep.archived);
}

// Review (docs): cancelling a sweep keeps the runs another live sweep holds, so
// "cancel it first" could never let a delete through without --force.
TEST_F(SchedulerTest, DeleteNeedsNoForceForRunsOnlyAnotherLiveSweepKeepsGoing) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  ASSERT_TRUE(scheduler_->Submit(kOverlappingSweep, "o.yaml").ok());
  // depth 1 (2 runs) is sched's alone; depth 2 (2 runs) is shared with "other".
  auto refused = scheduler_->Delete("sched", false);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("still has 2 run(s) queued or running"),
            std::string::npos)
      << refused.status().ToString();
  ASSERT_EQ(scheduler_->Cancel("sched")->runs_kept, 2);

  auto deleted = scheduler_->Delete("sched", false);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(deleted->runs_cancelled, 0);
  EXPECT_EQ(deleted->runs_kept, 2);
  EXPECT_TRUE(scheduler_->GetSweep("sched")->sweep.archived);
  auto other = scheduler_->GetSweep("other");
  EXPECT_EQ(other->counts.queued, 4);  // its own 2 and the 2 shared
  EXPECT_EQ(other->counts.cancelled, 0);
}

TEST_F(SchedulerTest, DeleteWithForceCancelsUnfinishedRuns) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  auto deleted = scheduler_->Delete("sched", true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->runs_cancelled, 4);
  EXPECT_EQ(scheduler_->GetSweep("sched")->state, "cancelled");
  EXPECT_FALSE(scheduler_->Acquire(Register("w"), 0)->has_value());
}

TEST_F(SchedulerTest, ADifferentSweepUnderAnExistingNameNeedsTheFlag) {
  auto first = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(first.ok());
  const std::string changed = std::string(kSweep) + "description: more seeds later\n";
  const std::string changed_grid = R"(name: sched
trainer: {kind: synthetic}
train: {epochs: 4}
seeds: 2
)";
  auto refused = scheduler_->Submit(changed_grid, "s2.yaml");
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("--new-version"), std::string::npos);
  EXPECT_NE(refused.status().message().find(first->sweep_id), std::string::npos);
  EXPECT_EQ(scheduler_->ListSweeps()->sweeps.size(), 1u);
  // The same runs under the same name is the same sweep (a no-op), whatever the text.
  auto same = scheduler_->Submit(changed, "s.yaml");
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_TRUE(same->already_existed);
  SubmitOptions reuse;
  reuse.allow_name_reuse = true;
  auto second = scheduler_->Submit(changed_grid, "s2.yaml", reuse);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->name_reused_by, first->sweep_id);
  EXPECT_EQ(scheduler_->GetSweep("sched")->sweep.sweep_id, second->sweep_id);  // the newest
}

TEST_F(SchedulerTest, DryRunUsesTheCoordinatorsLimitsAndQueuesNothing) {
  options_.spec_limits.max_runs = 3;
  Open();
  SubmitOptions dry;
  dry.dry_run = true;
  auto refused = scheduler_->Submit(kSweep, "s.yaml", dry);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  options_.spec_limits.max_runs = 20000;
  Open();
  // 12,000 runs: beyond the CLI's old built-in default of 10,000.
  auto big = scheduler_->Submit(R"(name: big
trainer: {kind: synthetic}
grid:
  model.depth_n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
  train.batch_size: [8, 16, 32, 64, 128, 256]
seeds: 100
)",
                                "big.yaml", dry);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->planned.size(), 12000u);
  EXPECT_EQ(big->max_runs_per_sweep, 20000);
  EXPECT_TRUE(scheduler_->ListSweeps()->sweeps.empty());
  EXPECT_FALSE(scheduler_->Acquire(Register("w"), 0)->has_value());
}

TEST_F(SchedulerTest, FinishedRunsKeepTheWorkerThatRanThem) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  FinishAll(*scheduler_, w, 3);
  auto runs = scheduler_->ListRuns("sched", "");
  ASSERT_EQ(runs->runs.size(), 4u);
  for (const auto& r : runs->runs) {
    EXPECT_TRUE(r.run.worker_id.empty());  // no lease held
    EXPECT_EQ(r.run.last_worker_id, w);
  }
}

TEST_F(SchedulerTest, SweepProgressCountsEpochsAndEstimatesTheTimeLeft) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());    // 4 runs x 3 epochs
  EXPECT_LT(scheduler_->GetSweep("sched")->eta_seconds, 0);  // nothing observed yet
  const std::string a = Register("a"), b = Register("b");
  for (const auto& w : {a, b}) {
    Lease l = MustAcquire(w);
    EpochRecord e;
    e.run_id = l.run_id;
    e.attempt = l.attempt;
    e.epoch = 1;
    e.test_error = 0.5;
    e.seconds = 2.0;
    ASSERT_TRUE(scheduler_->ReportEpoch(w, e).ok());
  }
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->progress.epochs_done, 2);
  EXPECT_EQ(view->progress.epochs_total, 12);
  EXPECT_DOUBLE_EQ(view->progress.mean_epoch_seconds, 2.0);
  // 10 epochs left x 2 s, two runs at a time.
  EXPECT_DOUBLE_EQ(view->eta_seconds, 10.0);
}

TEST_F(SchedulerTest, WorkersShowSlotsRunsHeldAndWhetherTheyAreAlive) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  auto reg = scheduler_->RegisterWorker("gpu-node", "host-1", {"cuda:0", "cuda:1"});
  ASSERT_TRUE(reg.ok());
  Lease l = MustAcquire(reg->worker_id);
  auto workers = scheduler_->ListWorkers(false);
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ(workers->front().state, "alive");
  EXPECT_EQ(workers->front().worker.devices, "cuda:0,cuda:1");
  EXPECT_EQ(workers->front().runs_held, std::vector<std::string>{l.run_id});
  EXPECT_EQ(workers->front().images_per_sec, 0);  // nothing reported yet
  // Its throughput is its runs' latest epochs' (not an average over the run).
  for (const auto& [epoch, images_per_sec] : {std::pair{1, 1200.0}, std::pair{2, 1500.0}}) {
    EpochRecord e;
    e.run_id = l.run_id;
    e.attempt = l.attempt;
    e.epoch = epoch;
    e.test_error = 0.5;
    e.images_per_sec = images_per_sec;
    ASSERT_TRUE(scheduler_->ReportEpoch(reg->worker_id, e).ok());
  }
  EXPECT_DOUBLE_EQ(scheduler_->ListWorkers(false)->front().images_per_sec, 1500);
  clock_.Advance(options_.lease_ms + 1000);
  EXPECT_EQ(scheduler_->ListWorkers(false)->front().state, "silent");
  ASSERT_TRUE(scheduler_->ExpireLeases().ok());
  clock_.Advance(10 * options_.lease_ms);
  EXPECT_TRUE(scheduler_->ListWorkers(false)->empty());  // gone, holding nothing
  ASSERT_EQ(scheduler_->ListWorkers(true)->size(), 1u);
  EXPECT_EQ(scheduler_->ListWorkers(true)->front().state, "gone");
}

TEST_F(SchedulerTest, AFailedAttemptKeepsTheTailOfItsTrainerLog) {
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  std::string log;
  for (int i = 0; i < 1000; ++i) log += "line " + std::to_string(i) + " of the trainer log\n";
  ASSERT_GT(log.size(), Scheduler::kMaxLogTailBytes);
  ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, "diverged", false, false, log).ok());
  auto detail = scheduler_->GetRun(l.run_id.substr(0, 10));  // by prefix
  ASSERT_TRUE(detail.ok()) << detail.status().ToString();
  ASSERT_EQ(detail->attempts.size(), 1u);
  const std::string& tail = detail->attempts[0].log_tail;
  EXPECT_LE(tail.size(), Scheduler::kMaxLogTailBytes);
  EXPECT_GT(tail.size(), Scheduler::kMaxLogTailBytes / 2);
  EXPECT_EQ(tail.rfind("line 999 of the trainer log\n"), tail.size() - 28);
  EXPECT_EQ(tail.rfind("line ", 0), 0u);  // starts at a whole line
  EXPECT_EQ(detail->epochs.size(), 2u);
  EXPECT_EQ(detail->links.size(), 1u);
}

TEST_F(SchedulerTest, AnAmbiguousPrefixListsTheCandidates) {
  // 17 one-run sweeps: two of them share the first hex digit of their id.
  std::map<char, std::vector<std::string>> by_first;
  for (int i = 0; i < 17; ++i) {
    auto s = scheduler_->Submit(
        "name: s" + std::to_string(i) +
            "\ntrainer: {kind: synthetic}\ntrain: {epochs: " + std::to_string(i + 1) + "}\n",
        "s.yaml");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    by_first[s->sweep_id[0]].push_back(s->sweep_id);
  }
  for (const auto& [first, ids] : by_first) {
    if (ids.size() < 2) continue;
    auto r = scheduler_->GetSweep(std::string(1, first));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    for (const auto& id : ids) EXPECT_NE(r.status().message().find(id), std::string::npos);
    return;
  }
  FAIL() << "17 ids over 16 first digits must share one";
}

TEST_F(SchedulerTest, ReportsWithInvalidMetricsAreRefusedNamingTheField) {
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  auto report = [&](auto set) {
    EpochRecord e;
    e.run_id = l.run_id;
    e.attempt = l.attempt;
    e.epoch = 3;
    e.train_loss = 0.5;
    e.test_error = 0.3;
    e.lr = 0.1;
    set(e);
    return scheduler_->ReportEpoch(w, e);
  };
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* field;
    std::function<void(EpochRecord&)> set;
  };
  const std::vector<Case> cases = {
      {"train_loss", [&](EpochRecord& e) { e.train_loss = nan; }},
      {"train_loss", [&](EpochRecord& e) { e.train_loss = inf; }},
      {"train_error", [&](EpochRecord& e) { e.train_error = 1.5; }},
      {"test_error", [&](EpochRecord& e) { e.test_error = 7.0; }},
      {"test_error", [&](EpochRecord& e) { e.test_error = nan; }},
      {"test_loss", [&](EpochRecord& e) { e.test_loss = -inf; }},
      {"lr", [&](EpochRecord& e) { e.lr = inf; }},
      {"seconds", [&](EpochRecord& e) { e.seconds = -1; }},
  };
  for (const auto& c : cases) {
    Status st = report(c.set);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(std::string("metrics.") + c.field), std::string::npos)
        << st.message();
  }
  EXPECT_EQ(Run(l.run_id).epoch, 2);  // nothing recorded, the run goes on
  EXPECT_EQ(Run(l.run_id).state, RunState::kRunning);
  // Not evaluated this epoch (test_error < 0) is fine.
  EXPECT_TRUE(report([](EpochRecord& e) { e.test_error = -1; }).ok());
}

TEST_F(SchedulerTest, ReasonsAreCappedAndRepeatedReleasesUseUpAttempts) {
  ASSERT_TRUE(
      scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: 5}\n", "o.yaml")
          .ok());
  const std::string w = Register("w");
  const std::string huge(7 << 20, 'x');
  for (int i = 1; i <= Scheduler::kFreeReleasesPerWorker; ++i) {
    Lease l = MustAcquire(w);
    ASSERT_TRUE(scheduler_->Release(w, l.run_id, l.attempt, huge).ok());
    EXPECT_EQ(Run(l.run_id).failures, 0) << "release " << i << " is free";
  }
  auto detail = scheduler_->GetRun(MustAcquire(w).run_id);
  ASSERT_TRUE(detail.ok());
  for (const auto& a : detail->attempts) {
    if (a.state != "released") continue;
    EXPECT_LE(a.reason.size(), Scheduler::kMaxReasonBytes);
    EXPECT_NE(a.reason.find("bytes cut]"), std::string::npos);
  }
  // From the third release on, each uses up an attempt (max 3): the run fails.
  const std::string run_id = detail->run.run_id;
  for (int i = 0; i < 3; ++i) {
    auto lease = scheduler_->Acquire(w, NextSlot(w));
    if (i > 0) ASSERT_TRUE(lease.ok() && lease->has_value());
    const Lease l = i == 0 ? Lease{run_id, detail->run.attempt} : **lease;
    ASSERT_TRUE(scheduler_->Release(w, l.run_id, l.attempt, "shutting down").ok());
  }
  EXPECT_EQ(Run(run_id).state, RunState::kFailed);
  EXPECT_NE(Run(run_id).error.find("given back 5 times"), std::string::npos) << Run(run_id).error;
  // A failure reason is capped too.
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  Lease l = MustAcquire(w);
  ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, huge, false).ok());
  EXPECT_LE(Run(l.run_id).error.size(), Scheduler::kMaxReasonBytes);
}

TEST_F(SchedulerTest, HeartbeatsListAtMostTheWorkersSlots) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w", 1);
  Lease l = MustAcquire(w);
  std::vector<LeaseProgressReport> made_up;
  for (int i = 0; i < 20000; ++i) made_up.push_back({"run" + std::to_string(i), 1, 0});
  auto refused = scheduler_->Heartbeat(w, made_up);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("1 slot(s)"), std::string::npos);
  // An unknown run id within the slot count is answered with STOP, cheaply.
  auto unknown = scheduler_->Heartbeat(w, {{"nosuchrun", 1, 0}});
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->decisions[0].stop);
  auto ok = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 0}});
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(ok->decisions[0].stop);
}

TEST_F(SchedulerTest, RegistrationsWithOverlongStringsAreRefused) {
  EXPECT_EQ(scheduler_->RegisterWorker("w", std::string(300, 'h'), {"cpu"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->RegisterWorker("w", "host", {std::string(100, 'd')}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler_->RegisterWorker(std::string(200, 'n'), "host", {"cpu"}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(scheduler_->RegisterWorker("w", "host", {"cuda:0", "cuda:1"}).ok());
}

TEST_F(SchedulerTest, AnExactNameWinsOverAnIdPrefix) {
  auto other = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(other.ok());
  // A sweep named like the first character of the other's id.
  const std::string name(1, other->sweep_id[0]);
  auto named = scheduler_->Submit(
      "name: \"" + name + "\"\ntrainer: {kind: synthetic}\ntrain: {epochs: 2}\n", "n.yaml");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(scheduler_->GetSweep(name)->sweep.sweep_id, named->sweep_id);
  auto deleted = scheduler_->Delete(name, /*force=*/true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->sweep_id, named->sweep_id);
  EXPECT_EQ(scheduler_->GetSweep(other->sweep_id)->state, "active");  // untouched
}

TEST_F(SchedulerTest, ADeletedSweepSubmittedOrRetriedAgainIsShownAgain) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  ASSERT_TRUE(scheduler_->Delete("sched", true).ok());
  ASSERT_TRUE(scheduler_->ListSweeps()->sweeps.empty());
  SubmitOptions dry;
  dry.dry_run = true;
  EXPECT_FALSE(scheduler_->Submit(kSweep, "s.yaml", dry)->restored);  // a dry run changes nothing
  ASSERT_TRUE(scheduler_->ListSweeps()->sweeps.empty());
  auto again = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_existed);
  EXPECT_TRUE(again->restored);
  ASSERT_EQ(scheduler_->ListSweeps()->sweeps.size(), 1u);
  // Deleted again, then its cancelled runs retried: shown again too.
  ASSERT_TRUE(scheduler_->Delete("sched", true).ok());
  RetryRequest cancelled;
  cancelled.cancelled = true;
  auto retried = scheduler_->Retry(sweep->sweep_id, cancelled);
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->runs_queued, 4);
  EXPECT_TRUE(retried->restored);
  EXPECT_EQ(scheduler_->ListSweeps()->sweeps.size(), 1u);
}

TEST_F(SchedulerTest, DryRunsDoNotUseUpTheSubmissionRate) {
  options_.submit_burst = 2;
  options_.submits_per_minute = 1;
  Open();
  SubmitOptions dry;
  dry.dry_run = true;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml", dry).ok()) << i;
  EXPECT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
}

TEST_F(SchedulerTest, TheEtaCountsOnlyUnfinishedRunsAndNeedsARunningOne) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());  // 4 runs x 3 epochs
  const std::string w = Register("w");
  // One run fails at once, one succeeds with 2 s epochs.
  Lease failed = MustAcquire(w);
  ASSERT_TRUE(scheduler_->Fail(w, failed.run_id, failed.attempt, "diverged", false).ok());
  Lease done = MustAcquire(w);
  for (int e = 1; e <= 3; ++e) {
    EpochRecord r;
    r.run_id = done.run_id;
    r.attempt = done.attempt;
    r.epoch = e;
    r.test_error = 0.5;
    r.seconds = 2;
    ASSERT_TRUE(scheduler_->ReportEpoch(w, r).ok());
  }
  ASSERT_TRUE(scheduler_->Complete(w, done.run_id, done.attempt, 1).ok());
  auto view = scheduler_->GetSweep("sched");
  EXPECT_EQ(view->progress.epochs_left, 6);  // two queued runs, not the failed one's 3
  EXPECT_LT(view->eta_seconds, 0);           // nothing running: no rate to go by
  MustAcquire(w);
  view = scheduler_->GetSweep("sched");
  EXPECT_DOUBLE_EQ(view->eta_seconds, 6 * 2.0);  // one run at a time
}

TEST_F(SchedulerTest, RunsAndResultsFollowTheGridOrder) {
  ASSERT_TRUE(scheduler_
                  ->Submit(R"(name: order
trainer: {kind: synthetic}
train: {epochs: 1}
grid:
  model.depth_n: [3, 1, 2]
seeds: 2
)",
                           "o.yaml")
                  .ok());
  const std::string w = Register("w");
  FinishAll(*scheduler_, w, 1);
  auto results = scheduler_->Results("order", 0);
  ASSERT_TRUE(results.ok());
  ASSERT_EQ(results->cells.size(), 3u);
  EXPECT_EQ(results->cells[0].cell_label, "model.depth_n=3");
  EXPECT_EQ(results->cells[1].cell_label, "model.depth_n=1");
  EXPECT_EQ(results->cells[2].cell_label, "model.depth_n=2");
  auto runs = scheduler_->ListRuns("order", "");
  EXPECT_EQ(runs->runs.front().link.cell_label, "model.depth_n=3");
  EXPECT_EQ(runs->runs.back().link.cell_label, "model.depth_n=2");
}

// Issue 13: a gang lease gives a slot range the seeds of one cell, each its own lease.
TEST_F(SchedulerTest, AGangLeasesSeedsOfOneCellToConsecutiveSlotsEachWithItsOwnLease) {
  ASSERT_TRUE(scheduler_
                  ->Submit("name: gang\ntrain: {epochs: 3}\ngrid:\n  model.depth_n: [1, 2]\n"
                           "seeds: 3\n",
                           "g.yaml")
                  .ok());
  const std::string w = Register("w", 6);
  auto gang = scheduler_->AcquireGang(w, 0, 3);
  ASSERT_TRUE(gang.ok()) << gang.status().ToString();
  ASSERT_EQ(gang->size(), 3u);
  std::set<std::string> ids;
  for (size_t i = 0; i < gang->size(); ++i) {
    const Lease& l = (*gang)[i];
    EXPECT_EQ(l.cell_label, (*gang)[0].cell_label);
    EXPECT_EQ(l.config_json, (*gang)[0].config_json);
    EXPECT_EQ(l.seed, static_cast<int64_t>(i));  // in queue order: seed-major
    EXPECT_EQ(l.slot, static_cast<int>(i));
    EXPECT_EQ(l.attempt, 1);
    ids.insert(l.run_id);
  }
  EXPECT_EQ(ids.size(), 3u);
  // The reply was lost: asking again for the range gives the same leases, nothing new.
  auto again = scheduler_->AcquireGang(w, 0, 3);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*again)[i].run_id, (*gang)[i].run_id);
    EXPECT_EQ((*again)[i].attempt, 1);
  }
  EXPECT_EQ(scheduler_->GetSweep("gang")->counts.leased, 3);
  // A range past the worker's slots is refused, naming the field; so is a lone slot
  // asking for a run of a range that holds leases (it gets its own back).
  for (auto [first, size] : {std::pair{4, 3}, std::pair{0, -1}, std::pair{0, 0}}) {
    auto bad = scheduler_->AcquireGang(w, first, size);
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << first << " " << size;
    EXPECT_NE(bad.status().message().find("gang_size"), std::string::npos);
  }
  auto lone = scheduler_->Acquire(w, 1);
  ASSERT_TRUE(lone.ok() && lone->has_value());
  EXPECT_EQ((*lone)->run_id, (*gang)[1].run_id);
  // Every member is fenced and ends on its own: one fails, the others report on.
  const Lease &a = (*gang)[0], &b = (*gang)[1], &c = (*gang)[2];
  ASSERT_TRUE(scheduler_->Fail(w, b.run_id, b.attempt, "diverged", /*retryable=*/false).ok());
  for (int e = 1; e <= 3; ++e) {
    ASSERT_TRUE(Report(w, a, e, 0.3).ok());
    ASSERT_TRUE(Report(w, c, e, 0.3).ok());
  }
  EXPECT_EQ(Report(w, b, 1, 0.3).code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(scheduler_->Complete(w, a.run_id, a.attempt, 1).ok());
  ASSERT_TRUE(scheduler_->Complete(w, c.run_id, c.attempt, 1).ok());
  EXPECT_EQ(Run(b.run_id).state, RunState::kFailed);
  // The other cell's seeds: one of them resumes from a checkpoint and is left for a
  // lease of its own; the other two form the gang.
  auto rest =
      store_->ListSweepRuns(scheduler_->GetSweep("gang")->sweep.sweep_id, RunState::kQueued);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 3u);
  RunRecord resumed = rest->back().second;
  resumed.checkpoint_epoch = 1;
  resumed.checkpoint_path = "elsewhere/epoch-1.ckpt";
  ASSERT_TRUE(store_->UpdateRun(resumed).ok());
  auto second = scheduler_->AcquireGang(w, 3, 3);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 2u);
  for (const Lease& l : *second) {
    EXPECT_NE(l.run_id, resumed.run_id);
    EXPECT_NE(l.cell_label, a.cell_label);
  }
  EXPECT_EQ((*second)[1].slot, 4);
  auto alone = scheduler_->AcquireGang(w, 0, 3);
  ASSERT_TRUE(alone.ok());
  ASSERT_EQ(alone->size(), 1u);
  EXPECT_EQ(alone->front().run_id, resumed.run_id);
  EXPECT_EQ(alone->front().resume_epoch, 1);
  // Runs whose config cannot be fused (here: the synthetic trainer) are leased alone.
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  auto synthetic = scheduler_->AcquireGang(w, 1, 2);
  ASSERT_TRUE(synthetic.ok());
  EXPECT_EQ(synthetic->size(), 1u);
}

// Issue 8 item 3: leases are per (worker, slot).
TEST_F(SchedulerTest, AWorkerHoldsOneLeasePerSlotAndARepeatedAcquireGetsTheSameLease) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w", 1);
  auto first = scheduler_->Acquire(w, 0);
  ASSERT_TRUE(first.ok() && first->has_value()) << first.status().ToString();
  // The reply was lost and the worker asks again for its only slot: the same lease,
  // nothing else leased.
  for (int i = 0; i < 3; ++i) {
    auto again = scheduler_->Acquire(w, 0);
    ASSERT_TRUE(again.ok() && again->has_value());
    EXPECT_EQ((*again)->run_id, (*first)->run_id);
    EXPECT_EQ((*again)->attempt, (*first)->attempt);
  }
  EXPECT_EQ(scheduler_->GetSweep("sched")->counts.leased, 1);
  EXPECT_EQ(store_->ListAttempts((*first)->run_id)->size(), 1u);
  // Slots outside the registration are refused, naming the field.
  for (int slot : {1, 24, -1}) {
    auto bad = scheduler_->Acquire(w, slot);
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << slot;
    EXPECT_NE(bad.status().message().find("AcquireRun.slot"), std::string::npos)
        << bad.status().message();
  }
  EXPECT_EQ(scheduler_->GetSweep("sched")->counts.leased, 1);
  // A slot that asks again after reporting (it dropped the run) restarts the same
  // attempt from its resume point: epoch 1 may be reported again.
  const Lease& l = **first;
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());
  auto restarted = scheduler_->Acquire(w, 0);
  ASSERT_TRUE(restarted.ok() && restarted->has_value());
  EXPECT_EQ((*restarted)->attempt, l.attempt);
  EXPECT_EQ((*restarted)->resume_epoch, 0);
  for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(w, l, e, 0.4).ok()) << e;
  ASSERT_TRUE(scheduler_->Complete(w, l.run_id, l.attempt, 1).ok());
  // The slot is free again: the next run.
  auto next = scheduler_->Acquire(w, 0);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_NE((*next)->run_id, l.run_id);
  // Two slots hold two leases, each its own.
  const std::string two = Register("two", 2);
  auto s0 = scheduler_->Acquire(two, 0), s1 = scheduler_->Acquire(two, 1);
  ASSERT_TRUE(s0.ok() && s0->has_value() && s1.ok() && s1->has_value());
  EXPECT_NE((*s0)->run_id, (*s1)->run_id);
  EXPECT_EQ((*scheduler_->Acquire(two, 0))->run_id, (*s0)->run_id);
  EXPECT_EQ((*scheduler_->Acquire(two, 1))->run_id, (*s1)->run_id);
  EXPECT_EQ(*store_->CountLeasesOf(two), 2);
}

// Issue 8 item 4: wall-clock steps neither expire nor extend leases.
TEST_F(SchedulerTest, LeasesExpireOnTheMonotonicClockWhateverTheWallClockDoes) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  Lease l = MustAcquire(w);
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());
  // A day forwards on the wall clock, a second of real time: nothing expires.
  clock_.StepWall(24 * 3600 * 1000LL);
  clock_.Advance(1000);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 0);
  ASSERT_TRUE(Report(w, l, 2, 0.4).ok());
  EXPECT_EQ(Run(l.run_id).attempt, 1);
  EXPECT_EQ(Run(l.run_id).failures, 0);
  // Two days back: the lease still runs out a lease after its last renewal.
  clock_.StepWall(-2 * 24 * 3600 * 1000LL);
  clock_.Advance(options_.lease_ms - 1);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 0);
  clock_.Advance(2);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(Run(l.run_id).state, RunState::kQueued);
}

// Issue 8 item 4: a coordinator start gives every lease a fresh grace period.
TEST_F(SchedulerTest, ARestartedCoordinatorGivesEveryLeaseAFullLeaseOfItsOwnTime) {
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string w = Register("w");
  Lease kept = MustAcquire(w), abandoned = MustAcquire(w);
  ASSERT_TRUE(Report(w, kept, 1, 0.5).ok());
  ASSERT_TRUE(Report(w, abandoned, 1, 0.5).ok());
  // The coordinator is down for five leases, then starts on the same database.
  scheduler_.reset();
  clock_.Advance(5 * options_.lease_ms);
  Open();
  EXPECT_EQ(*scheduler_->ExpireLeases(), 0);
  clock_.Advance(options_.lease_ms - 1000);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 0);
  // The worker of `kept` is back in time: its attempt goes on.
  auto hb = scheduler_->Heartbeat(w, {{kept.run_id, kept.attempt, 1}});
  ASSERT_TRUE(hb.ok());
  EXPECT_FALSE(hb->decisions[0].stop) << hb->decisions[0].reason;
  // No word for `abandoned` within a lease of this coordinator's time: lost.
  clock_.Advance(2000);
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(Run(abandoned.run_id).state, RunState::kQueued);
  EXPECT_EQ(Run(kept.run_id).state, RunState::kRunning);
  EXPECT_EQ(Run(kept.run_id).attempt, 1);
  EXPECT_EQ(Run(kept.run_id).failures, 0);
  ASSERT_TRUE(Report(w, kept, 2, 0.4).ok());
  // A late call for a lease past its start grace is refused like any expired one.
  scheduler_.reset();
  clock_.Advance(3 * options_.lease_ms);
  Open();
  clock_.Advance(options_.lease_ms + 1);
  EXPECT_EQ(Report(w, kept, 3, 0.3).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Run(kept.run_id).state, RunState::kQueued);
}

// Issue 8 item 4: the submission bucket neither locks out nor overflows on clock steps.
TEST_F(SchedulerTest, TheSubmissionRateSurvivesClockStepsBothWays) {
  options_.submits_per_minute = 6;  // one every 10 s
  options_.submit_burst = 2;
  Open();
  int n = 0;
  auto submit = [&]() {
    ++n;
    const std::string yaml = "name: s" + std::to_string(n) +
                             "\ntrainer: {kind: synthetic}\ntrain: {epochs: " + std::to_string(n) +
                             "}\n";
    auto submitted = scheduler_->Submit(yaml, "s.yaml");
    EXPECT_TRUE(submitted.ok() || submitted.status().code() == StatusCode::kResourceExhausted)
        << submitted.status().ToString();
    return submitted.status().code();
  };
  EXPECT_EQ(submit(), StatusCode::kOk);
  EXPECT_EQ(submit(), StatusCode::kOk);
  EXPECT_EQ(submit(), StatusCode::kResourceExhausted);
  // An hour back on the wall clock: ten seconds later a token is due as usual.
  clock_.StepWall(-3600 * 1000LL);
  clock_.Advance(10000);
  EXPECT_EQ(submit(), StatusCode::kOk);
  EXPECT_EQ(submit(), StatusCode::kResourceExhausted);
  // A year forwards: no more than the burst is granted.
  clock_.StepWall(365 * 24 * 3600 * 1000LL);
  clock_.Advance(20000);
  EXPECT_EQ(submit(), StatusCode::kOk);
  EXPECT_EQ(submit(), StatusCode::kOk);
  EXPECT_EQ(submit(), StatusCode::kResourceExhausted);
}

// Issue 8 item 9: a worker id is usable only with the credentials that registered it.
TEST_F(SchedulerTest, WorkerIdsAreBoundToTheIdentityThatRegisteredThem) {
  auto a = scheduler_->RegisterWorker("a", "host", {"cpu"}, "identity-a");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(scheduler_->CheckWorkerIdentity(a->worker_id, "identity-a").ok());
  EXPECT_EQ(scheduler_->CheckWorkerIdentity(a->worker_id, "identity-b").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(scheduler_->CheckWorkerIdentity(a->worker_id, "").code(),
            StatusCode::kPermissionDenied);
  // Unknown ids pass: the call itself answers NOT_FOUND or unknown_worker.
  EXPECT_TRUE(scheduler_->CheckWorkerIdentity("nobody", "identity-b").ok());
  // A registration made without credentials is bound by its first use.
  auto bare = scheduler_->RegisterWorker("bare", "host", {"cpu"});
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(scheduler_->CheckWorkerIdentity(bare->worker_id, "").ok());
  EXPECT_TRUE(scheduler_->CheckWorkerIdentity(bare->worker_id, "identity-c").ok());
  EXPECT_EQ(scheduler_->CheckWorkerIdentity(bare->worker_id, "identity-d").code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ((*store_->GetWorker(a->worker_id))->identity_digest, "identity-a");
}

// Issue 8 item 9: registrations per identity are capped; silent ones make room.
TEST_F(SchedulerTest, RegistrationsPerIdentityAreCappedAndSilentOnesMakeRoom) {
  options_.max_workers_per_identity = 2;
  Open();
  auto reg = [&](const std::string& name, const std::string& identity) {
    return scheduler_->RegisterWorker(name, "host", {"cpu"}, identity);
  };
  auto a = reg("a", "one"), b = reg("b", "one");
  ASSERT_TRUE(a.ok() && b.ok());
  auto refused = reg("c", "one");  // both are alive
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("--max-workers-per-identity"), std::string::npos)
      << refused.status().message();
  EXPECT_TRUE(reg("other", "two").ok());  // the cap is per identity
  // `a` falls silent for a lease while `b` heartbeats: `a` makes room.
  clock_.Advance(options_.lease_ms + 1);
  ASSERT_TRUE(scheduler_->Heartbeat(b->worker_id, {}).ok());
  auto c = reg("c", "one");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(store_->GetWorker(a->worker_id)->has_value());
  EXPECT_TRUE(store_->GetWorker(b->worker_id)->has_value());
  EXPECT_EQ(scheduler_->Acquire(a->worker_id, 0).status().code(), StatusCode::kNotFound);
}

// Issue 8 item 9: long-silent registrations are forgotten by the reaper.
TEST_F(SchedulerTest, LongSilentRegistrationsAreForgotten) {
  options_.forget_workers_after_ms = 3600 * 1000;
  Open();
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string holder = Register("holder"), idle = Register("idle"), live = Register("live");
  MustAcquire(holder);
  // A wall-clock step alone forgets nobody.
  clock_.StepWall(2 * options_.forget_workers_after_ms);
  EXPECT_EQ(*scheduler_->ForgetSilentWorkers(), 0);
  clock_.StepWall(-2 * options_.forget_workers_after_ms);
  clock_.Advance(options_.forget_workers_after_ms);
  ASSERT_TRUE(scheduler_->Heartbeat(live, {}).ok());
  // `idle` goes; `holder` stays while its lease is open, and goes once it is closed.
  EXPECT_EQ(*scheduler_->ForgetSilentWorkers(), 1);
  EXPECT_FALSE(store_->GetWorker(idle)->has_value());
  EXPECT_TRUE(store_->GetWorker(holder)->has_value());
  EXPECT_EQ(*scheduler_->ExpireLeases(), 1);
  EXPECT_EQ(*scheduler_->ForgetSilentWorkers(), 1);
  EXPECT_FALSE(store_->GetWorker(holder)->has_value());
  EXPECT_TRUE(store_->GetWorker(live)->has_value());
  auto hb = scheduler_->Heartbeat(idle, {});
  ASSERT_TRUE(hb.ok());
  EXPECT_TRUE(hb->unknown_worker);  // it registers again
}

// Issue 8 item 1: host faults give the run back for free and count against the
// worker, which is quarantined after K in a row, for a back-off that doubles (capped)
// until its next success.
TEST_F(SchedulerTest, HostFaultsRequeueForFreeAndQuarantineTheWorkerWithDoublingBackOff) {
  options_.quarantine_after_host_faults = 3;
  options_.quarantine_base_ms = 60000;
  options_.quarantine_max_ms = 200000;
  options_.host_fault_workers_to_fail = 2;
  Open();
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());  // 4 runs, 3 epochs each
  const std::string bad = Register("bad");

  std::set<std::string> faulted;
  for (int i = 0; i < 3; ++i) {
    Lease l = MustAcquire(bad);
    // A run this worker already had a host fault on is not handed to it again
    // while others are queued.
    EXPECT_EQ(faulted.count(l.run_id), 0u) << "fault " << i;
    faulted.insert(l.run_id);
    ASSERT_TRUE(
        scheduler_->HostFault(bad, l.run_id, l.attempt, "dataset missing on this host").ok());
    RunRecord r = Run(l.run_id);
    EXPECT_EQ(r.state, RunState::kQueued);
    EXPECT_EQ(r.failures, 0);  // no attempt used up
    auto detail = scheduler_->GetRun(l.run_id);
    ASSERT_TRUE(detail.ok());
    EXPECT_EQ(detail->attempts.back().state, "host_fault");
    EXPECT_EQ(detail->attempts.back().reason, "dataset missing on this host");
  }
  // Three in a row: quarantined for the base back-off.
  AcquireRefusal refusal;
  auto none = scheduler_->Acquire(bad, NextSlot(bad), &refusal);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(refusal.until_ms, clock_.NowMs() + 60000);
  EXPECT_NE(refusal.reason.find("quarantined"), std::string::npos) << refusal.reason;
  EXPECT_NE(refusal.reason.find("dataset missing on this host"), std::string::npos);
  auto workers = scheduler_->ListWorkers(false);
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_TRUE(workers->front().quarantined);
  EXPECT_EQ(workers->front().health.consecutive_host_faults, 3);
  EXPECT_EQ(workers->front().health.quarantine_level, 1);

  // Each further host fault before a success quarantines it again for twice as long,
  // up to the cap.
  for (int64_t expected : {120000, 200000, 200000}) {
    clock_.Advance(refusal.until_ms - clock_.NowMs() - 1);
    EXPECT_FALSE(scheduler_->Acquire(bad, NextSlot(bad))->has_value())
        << "still quarantined just before its end";
    clock_.Advance(1);
    Lease l = MustAcquire(bad);
    ASSERT_TRUE(scheduler_->HostFault(bad, l.run_id, l.attempt, "CUDA error").ok());
    refusal = AcquireRefusal();
    EXPECT_FALSE(scheduler_->Acquire(bad, NextSlot(bad), &refusal)->has_value());
    EXPECT_EQ(refusal.until_ms, clock_.NowMs() + expected);
  }

  // A success ends it: the next host fault is the first of a new series.
  clock_.Advance(refusal.until_ms - clock_.NowMs());
  Lease ok = MustAcquire(bad);
  for (int e = 1; e <= 3; ++e) ASSERT_TRUE(Report(bad, ok, e, 0.3).ok());
  ASSERT_TRUE(scheduler_->Complete(bad, ok.run_id, ok.attempt, 10).ok());
  EXPECT_EQ(scheduler_->ListWorkers(false)->front().health.consecutive_host_faults, 0);
  Lease again = MustAcquire(bad);
  ASSERT_TRUE(scheduler_->HostFault(bad, again.run_id, again.attempt, "disk full").ok());
  EXPECT_TRUE(scheduler_->Acquire(bad, NextSlot(bad))->has_value());  // not quarantined

  // A stale attempt's host fault is refused like any other call of it.
  EXPECT_EQ(scheduler_->HostFault(bad, again.run_id, again.attempt, "late").code(),
            StatusCode::kFailedPrecondition);
}

// Issue 8 item 1: a run that has host faults on N different workers does fail,
// keeping each worker's reason; one worker failing it again and again does not.
TEST_F(SchedulerTest, ARunWithHostFaultsOnNDifferentWorkersFailsWithEveryReason) {
  options_.quarantine_after_host_faults = 10;
  options_.host_fault_workers_to_fail = 2;
  Open();
  ASSERT_TRUE(
      scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: 2}\n", "o.yaml")
          .ok());
  const std::string w1 = Register("w1"), w2 = Register("w2"), w3 = Register("w3");
  for (int i = 0; i < 3; ++i) {  // the only queued run goes to w1 again
    Lease l = MustAcquire(w1);
    ASSERT_TRUE(scheduler_->HostFault(w1, l.run_id, l.attempt, "no such file: data_batch_1").ok());
    EXPECT_EQ(Run(l.run_id).state, RunState::kQueued);
  }
  Lease l = MustAcquire(w2);
  ASSERT_TRUE(scheduler_->HostFault(w2, l.run_id, l.attempt, "CUDA error: illegal address").ok());
  RunRecord r = Run(l.run_id);
  EXPECT_EQ(r.state, RunState::kFailed);
  EXPECT_EQ(r.failures, 0);
  EXPECT_NE(r.error.find("2 different worker(s)"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(w1), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("no such file: data_batch_1"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find(w2), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("CUDA error: illegal address"), std::string::npos) << r.error;
  auto detail = scheduler_->GetRun(l.run_id);
  ASSERT_TRUE(detail.ok());
  ASSERT_EQ(detail->attempts.size(), 4u);
  EXPECT_EQ(detail->attempts[0].state, "host_fault");
  EXPECT_EQ(detail->attempts[3].state, "failed");
  EXPECT_EQ(detail->attempts[3].reason, "CUDA error: illegal address");

  // Retried, the run counts host faults afresh: one more is not two workers.
  RetryRequest retry;
  retry.failed = true;
  ASSERT_TRUE(scheduler_->Retry("one", retry).ok());
  Lease l3 = MustAcquire(w3);
  ASSERT_TRUE(scheduler_->HostFault(w3, l3.run_id, l3.attempt, "out of memory").ok());
  EXPECT_EQ(Run(l3.run_id).state, RunState::kQueued);
}

// Issue 8 item 5: a worker whose heartbeats keep coming but whose training progress
// stands still (its own watchdog failed) has the run taken back as a host fault.
TEST_F(SchedulerTest, HeartbeatsWhoseProgressStandsStillGiveTheRunBackAsAHostFault) {
  options_.lease_ms = 10000;
  options_.progress_timeout_ms = 60000;
  Open();
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  auto beat = [&](int64_t progress) {
    auto r = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 2, progress}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->decisions.size(), 1u);
    return r->decisions.empty() ? LeaseDecision() : r->decisions[0];
  };
  // Progress that moves, however slowly, keeps the lease; so does a worker that does
  // not report progress (0), for as long as it heartbeats.
  for (int i = 1; i <= 30; ++i) {
    clock_.Advance(5000);
    EXPECT_FALSE(beat(i).stop) << i;
  }
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(5000);
    EXPECT_FALSE(beat(0).stop) << i;
  }
  // The same progress for 60 s, then once more: stopped, queued again for free.
  EXPECT_FALSE(beat(31).stop);
  for (int i = 0; i < 12; ++i) {
    clock_.Advance(5000);
    EXPECT_FALSE(beat(31).stop) << i;
  }
  clock_.Advance(5000);
  const LeaseDecision d = beat(31);
  EXPECT_TRUE(d.stop);
  EXPECT_NE(d.reason.find("no training progress"), std::string::npos) << d.reason;
  RunRecord r = Run(l.run_id);
  EXPECT_EQ(r.state, RunState::kQueued);
  EXPECT_EQ(r.failures, 0);
  auto detail = scheduler_->GetRun(l.run_id);
  ASSERT_TRUE(detail.ok());
  EXPECT_EQ(detail->attempts.back().state, "host_fault");
  EXPECT_EQ(detail->attempts.back().reason, d.reason);
  EXPECT_EQ(scheduler_->ListWorkers(false)->front().health.consecutive_host_faults, 1);
}

// Issue 8 items 1 and 4 (found by review): a quarantine lasts its length on the
// monotonic clock; wall-clock steps neither end nor lengthen it.
TEST_F(SchedulerTest, QuarantineLastsItsLengthWhateverTheWallClockDoes) {
  options_.quarantine_after_host_faults = 1;
  options_.host_fault_workers_to_fail = 10;
  options_.quarantine_base_ms = 60000;
  Open();
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  const std::string back = Register("back"), forward = Register("forward");
  Lease l = MustAcquire(back);
  ASSERT_TRUE(scheduler_->HostFault(back, l.run_id, l.attempt, "CUDA error").ok());
  Lease m = MustAcquire(forward);
  ASSERT_TRUE(scheduler_->HostFault(forward, m.run_id, m.attempt, "CUDA error").ok());
  ASSERT_FALSE(scheduler_->Acquire(back, NextSlot(back))->has_value());
  ASSERT_FALSE(scheduler_->Acquire(forward, NextSlot(forward))->has_value());

  // An hour forwards on the wall clock, a second of real time: still quarantined.
  clock_.StepWall(3600 * 1000LL);
  clock_.Advance(1000);
  EXPECT_FALSE(scheduler_->Acquire(forward, NextSlot(forward))->has_value())
      << "a forward wall-clock step ended a 60 s quarantine after 1 s";
  // Two hours back, then the quarantine's 60 s of real time: over.
  clock_.StepWall(-2 * 3600 * 1000LL);
  clock_.Advance(60000);
  EXPECT_TRUE(scheduler_->Acquire(back, NextSlot(back))->has_value())
      << "a backward wall-clock step of 2 h keeps a 60 s quarantine going";
}

// Issue 8 items 4 and 5 (found by review): the coordinator's progress watch runs on
// the monotonic clock, so a forward wall-clock step between two heartbeats carrying the
// same progress (a slow batch, an evaluation) is no stall.
TEST_F(SchedulerTest, TheProgressWatchIgnoresWallClockSteps) {
  options_.lease_ms = 10000;
  options_.progress_timeout_ms = 60000;
  Open();
  const std::string w = Register("w");
  Lease l = LeaseWithTwoEpochsReported(w);
  auto r = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 2, 5}});
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r->decisions[0].stop);
  clock_.StepWall(2 * 3600 * 1000LL);  // NTP corrects the clock by 2 h
  clock_.Advance(5000);                // one heartbeat later, same progress
  r = scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 2, 5}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->decisions[0].stop) << r->decisions[0].reason;
  EXPECT_EQ(Run(l.run_id).state, RunState::kRunning);
  EXPECT_EQ(scheduler_->ListWorkers(false)->front().health.consecutive_host_faults, 0);
}

// Issue 8 item 1 (found by review): a quarantine belongs to the machine, not to the
// registration: the same worker restarted (same name, host and credentials, as a
// supervisor restarts it) is still quarantined.
TEST_F(SchedulerTest, ARestartedWorkerIsStillQuarantined) {
  options_.quarantine_after_host_faults = 3;
  options_.quarantine_base_ms = 60000;
  Open();
  ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok());
  auto first = scheduler_->RegisterWorker("bad", "host-a", {"cpu"}, "identity-a");
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 3; ++i) {
    auto l = scheduler_->Acquire(first->worker_id, 0);
    ASSERT_TRUE(l.ok() && l->has_value());
    ASSERT_TRUE(scheduler_
                    ->HostFault(first->worker_id, (*l)->run_id, (*l)->attempt,
                                "--checkpoint-dir is not a directory")
                    .ok());
  }
  ASSERT_FALSE(scheduler_->Acquire(first->worker_id, 0)->has_value());
  clock_.Advance(1000);
  auto restarted = scheduler_->RegisterWorker("bad", "host-a", {"cpu"}, "identity-a");
  ASSERT_TRUE(restarted.ok());
  auto l = scheduler_->Acquire(restarted->worker_id, 0);
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->has_value()) << "the restarted bad worker got run " << (*l)->run_id
                               << " 1 s into a 60 s quarantine";
}

// Issue 8 item 1 (found by review): runs fail after host faults on N distinct
// machines; one host whose worker process restarted between two host faults is one.
TEST_F(SchedulerTest, ARestartedWorkerIsNotASecondWorkerForHostFaults) {
  options_.quarantine_after_host_faults = 10;
  options_.host_fault_workers_to_fail = 2;
  Open();
  ASSERT_TRUE(
      scheduler_->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: 2}\n", "o.yaml")
          .ok());
  for (int process = 0; process < 2; ++process) {
    auto w = scheduler_->RegisterWorker("gpu-box-7", "gpu-box-7", {"cuda:0"}, "identity-7");
    ASSERT_TRUE(w.ok());
    auto l = scheduler_->Acquire(w->worker_id, 0);
    ASSERT_TRUE(l.ok() && l->has_value());
    ASSERT_TRUE(scheduler_
                    ->HostFault(w->worker_id, (*l)->run_id, (*l)->attempt,
                                "CUDA error: an illegal memory access")
                    .ok());
    RunRecord r = Run((*l)->run_id);
    EXPECT_EQ(r.state, RunState::kQueued) << "after process " << process << ": " << r.error;
  }
  // Another machine's host fault is the second: the run fails, naming both.
  auto other = scheduler_->RegisterWorker("gpu-box-8", "gpu-box-8", {"cuda:0"}, "identity-8");
  ASSERT_TRUE(other.ok());
  auto l = scheduler_->Acquire(other->worker_id, 0);
  ASSERT_TRUE(l.ok() && l->has_value());
  ASSERT_TRUE(
      scheduler_->HostFault(other->worker_id, (*l)->run_id, (*l)->attempt, "CUDA error").ok());
  RunRecord r = Run((*l)->run_id);
  EXPECT_EQ(r.state, RunState::kFailed);
  EXPECT_NE(r.error.find("2 different worker(s)"), std::string::npos) << r.error;
}

// ------------------------------------------------------------ group commit

// Runs `calls` through `batcher` as one batch (behind a first call that holds the
// batcher until they are all queued); returns each call's status as its reply got it.
// `at_reply` (if set) runs on the batcher's thread as each reply goes.
std::vector<Status> RunAsOneBatch(WriteBatcher* batcher,
                                  const std::vector<std::function<Status()>>& calls,
                                  const std::function<void(size_t)>& at_reply = {}) {
  std::promise<void> gate_entered, gate_open;
  std::shared_future<void> open = gate_open.get_future().share();
  batcher->Submit(
      [&gate_entered, open] {
        gate_entered.set_value();
        open.wait();
        return Status::Ok();
      },
      [](const Status&) {});
  gate_entered.get_future().wait();
  std::vector<Status> replies(calls.size(), InternalError("no reply"));
  std::vector<std::promise<void>> replied(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    batcher->Submit(calls[i], [&, i](const Status& st) {
      replies[i] = st;
      if (at_reply) at_reply(i);
      replied[i].set_value();
    });
  }
  gate_open.set_value();
  for (auto& r : replied) r.get_future().wait();
  return replies;
}

class WriteBatcherTest : public SchedulerTest {
 protected:
  std::unique_ptr<WriteBatcher> MakeBatcher() {
    return std::make_unique<WriteBatcher>(
        [this](const std::function<void()>& calls) { return scheduler_->RunBatch(calls); });
  }
  // A run of `epochs` epochs leased to a new worker *worker.
  Lease LeaseOneRun(std::string* worker, int epochs = 5) {
    EXPECT_TRUE(scheduler_
                    ->Submit("name: one\ntrainer: {kind: synthetic}\ntrain: {epochs: " +
                                 std::to_string(epochs) + "}\n",
                             "o.yaml")
                    .ok());
    *worker = Register("w");
    return MustAcquire(*worker);
  }
  // Epochs of the run a separate read-only connection sees: what is durable.
  size_t DurableEpochs(const std::string& run_id) {
    auto reader = OpenSqliteStore(dir_.File("state.db"), {.read_only = true});
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return 0;
    auto epochs = (*reader)->ListEpochs(run_id);
    EXPECT_TRUE(epochs.ok());
    return epochs.ok() ? epochs->size() : 0;
  }
};

TEST_F(WriteBatcherTest, ACallThatFailsInABatchUndoesOnlyItsOwnWrites) {
  std::string w;
  Lease l = LeaseOneRun(&w);
  auto batcher = MakeBatcher();
  EpochRecord stray;
  stray.run_id = l.run_id;
  stray.attempt = l.attempt;
  stray.epoch = 4;
  const auto replies =
      RunAsOneBatch(batcher.get(), {[&] { return Report(w, l, 1, 0.5); },
                                    // A call that writes, then fails: its write goes with it.
                                    [&] {
                                      return store_->RunInTransaction([&]() -> Status {
                                        RESWEEP_RETURN_IF_ERROR(store_->PutEpoch(stray, w));
                                        return FailedPreconditionError("refused after writing");
                                      });
                                    },
                                    [&] { return Report(w, l, 3, 0.5); },  // skips epoch 2: refused
                                    [&] { return Report(w, l, 2, 0.4); }});
  EXPECT_TRUE(replies[0].ok()) << replies[0].ToString();
  EXPECT_EQ(replies[1].code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(replies[2].code(), StatusCode::kFailedPrecondition) << replies[2].ToString();
  EXPECT_TRUE(replies[3].ok()) << replies[3].ToString();
  EXPECT_EQ(batcher->counts().batches, 2);  // the holding call's, then these four
  EXPECT_EQ(Run(l.run_id).epoch, 2);
  auto epochs = store_->ListEpochs(l.run_id);
  ASSERT_TRUE(epochs.ok());
  ASSERT_EQ(epochs->size(), 2u);  // 1 and 2; not the failed call's 4
  EXPECT_EQ(epochs->back().epoch, 2);
  EXPECT_EQ(DurableEpochs(l.run_id), 2u);
}

TEST_F(WriteBatcherTest, EachReplyGoesOnlyOnceItsWriteIsDurable) {
  std::string w;
  Lease l = LeaseOneRun(&w);
  auto batcher = MakeBatcher();
  std::vector<size_t> durable_at_reply(3, 0);
  const auto replies =
      RunAsOneBatch(batcher.get(),
                    {[&] { return Report(w, l, 1, 0.5); }, [&] { return Report(w, l, 2, 0.5); },
                     [&] { return Report(w, l, 3, 0.5); }},
                    [&](size_t i) { durable_at_reply[i] = DurableEpochs(l.run_id); });
  for (const auto& r : replies) EXPECT_TRUE(r.ok()) << r.ToString();
  // Another connection saw every epoch of the batch before any reply went.
  EXPECT_EQ(durable_at_reply, std::vector<size_t>(3, 3));
}

TEST_F(WriteBatcherTest, WithASyncerNoReplyGoesBeforeTheSyncOfItsBatchReturns) {
  std::string w;
  Lease l = LeaseOneRun(&w);
  std::promise<void> sync_entered, sync_release;
  std::shared_future<void> release = sync_release.get_future().share();
  std::atomic<int> syncs{0};
  std::atomic<bool> replied{false};
  WriteBatcher batcher(
      [this](const std::function<void()>& calls) { return scheduler_->RunBatchBeforeSync(calls); },
      {},
      [&]() -> Status {
        if (syncs.fetch_add(1) == 0) {
          sync_entered.set_value();
          release.wait();
        }
        return scheduler_->SyncCommitted();
      });
  std::promise<Status> reply;
  batcher.Submit([&] { return Report(w, l, 1, 0.5); },
                 [&](const Status& st) {
                   replied = true;
                   reply.set_value(st);
                 });
  sync_entered.get_future().wait();
  // The batch is committed (another connection sees it), its sync has not returned:
  // the call has no reply yet.
  EXPECT_EQ(DurableEpochs(l.run_id), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(replied.load());
  sync_release.set_value();
  const Status st = reply.get_future().get();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_GE(syncs.load(), 1);
}

// Group commit across the sync: while the reply thread syncs one batch, the next
// stays open and every call that arrives meanwhile runs in it; it commits once that
// sync is done, so calls arriving one by one during a sync share one commit (and the
// pages they all write reach the log once).
TEST_F(WriteBatcherTest, CallsArrivingWhileABatchSyncsShareTheNextCommit) {
  std::string w;
  Lease l = LeaseOneRun(&w, 10);
  std::promise<void> sync_entered, sync_release;
  std::shared_future<void> release = sync_release.get_future().share();
  std::atomic<int> syncs{0};
  std::vector<int> calls_per_batch;  // written by the batcher's thread only
  std::atomic<int> ran{0};
  WriteBatcher batcher(
      [&](const std::function<void()>& calls) {
        const int before = ran.load();
        Status st = scheduler_->RunBatchBeforeSync(calls);
        calls_per_batch.push_back(ran.load() - before);
        return st;
      },
      {},
      [&]() -> Status {
        if (syncs.fetch_add(1) == 0) {
          sync_entered.set_value();
          release.wait();
        }
        return scheduler_->SyncCommitted();
      });
  std::vector<std::promise<Status>> replies(4);
  auto submit = [&](int epoch) {
    batcher.Submit(
        [&, epoch] {
          ++ran;
          return Report(w, l, epoch, 0.5);
        },
        [&, epoch](const Status& st) { replies[epoch - 1].set_value(st); });
  };
  submit(1);
  sync_entered.get_future().wait();  // batch 1 committed, its sync held
  // Three calls, each queued only after the one before has run: each could have
  // been a batch of its own.
  for (int epoch = 2; epoch <= 4; ++epoch) {
    submit(epoch);
    while (ran.load() < epoch) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(batcher.counts().batches, 1);  // the second batch is still open
  sync_release.set_value();
  for (auto& r : replies) {
    const Status st = r.get_future().get();
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  batcher.Stop();
  EXPECT_EQ(calls_per_batch, (std::vector<int>{1, 3}));
  EXPECT_EQ(DurableEpochs(l.run_id), 4u);
}

TEST_F(WriteBatcherTest, AFailedSyncFailsTheCallsThatWroteWithUnavailable) {
  std::string w;
  Lease l = LeaseOneRun(&w);
  WriteBatcher batcher(
      [this](const std::function<void()>& calls) { return scheduler_->RunBatchBeforeSync(calls); },
      {}, [] { return UnavailableError("fdatasync: I/O error (injected)"); });
  const auto replies = RunAsOneBatch(
      &batcher, {[&] { return Report(w, l, 1, 0.5); }, [&] { return Report(w, l, 3, 0.5); }});
  // The write's durability is unknown: UNAVAILABLE, as for a failed commit.
  EXPECT_EQ(replies[0].code(), StatusCode::kUnavailable) << replies[0].ToString();
  EXPECT_NE(replies[0].message().find("could not be made durable"), std::string::npos);
  // A refused call wrote nothing: its own refusal stands.
  EXPECT_EQ(replies[1].code(), StatusCode::kFailedPrecondition) << replies[1].ToString();
}

TEST_F(WriteBatcherTest, AFailedCommitFailsEveryCallOfTheBatchAndTheLeaseStaysUsable) {
  CheckpointCommitFailingStore faulty(store_.get());
  scheduler_ = std::make_unique<Scheduler>(&faulty, &clock_, options_, checkpoints_.get());
  std::string w;
  Lease l = LeaseOneRun(&w, 2);
  clock_.Advance(options_.lease_ms / 2);
  ASSERT_TRUE(Report(w, l, 1, 0.5).ok());
  ASSERT_TRUE(Report(w, l, 2, 0.4).ok());  // the lease now runs to 1.5 lease_ms
  auto batcher = MakeBatcher();
  faulty.fail_batch_commit = true;
  const auto replies = RunAsOneBatch(
      batcher.get(), {[&] { return scheduler_->Complete(w, l.run_id, l.attempt, 7); },
                      [&] {
                        return scheduler_->Heartbeat(w, {{l.run_id, l.attempt, 2, 0}}).status();
                      }});
  for (const auto& r : replies) {
    EXPECT_EQ(r.code(), StatusCode::kUnavailable) << r.ToString();
    EXPECT_NE(r.message().find("could not be made durable"), std::string::npos) << r.ToString();
  }
  EXPECT_EQ(Run(l.run_id).state, RunState::kRunning);  // the completion was rolled back
  faulty.fail_batch_commit = false;
  // Past the lease the scheduler would give a run it has no deadline for (its start
  // plus lease_ms), within the one the worker renewed: the worker's retried completion
  // is accepted (the rolled-back completion's close of the lease is forgotten).
  clock_.Advance(options_.lease_ms / 2 + 1);
  Status retried = scheduler_->Complete(w, l.run_id, l.attempt, 7);
  EXPECT_TRUE(retried.ok()) << retried.ToString();
  EXPECT_EQ(Run(l.run_id).state, RunState::kSucceeded);
}

TEST_F(SchedulerTest, TheRunsQueuedListenerHearsEveryWayARunBecomesLeasable) {
  int heard = 0;
  scheduler_->SetRunsQueuedListener([&](int64_t runs) { heard += static_cast<int>(runs); });
  auto hears = [&](const std::function<void()>& action) {
    const int before = heard;
    action();
    return heard > before;
  };
  EXPECT_TRUE(hears([&] { ASSERT_TRUE(scheduler_->Submit(kSweep, "s.yaml").ok()); }));
  EXPECT_EQ(heard, 4);  // one per run
  const std::string w = Register("w");
  Lease l;
  EXPECT_FALSE(hears([&] { l = MustAcquire(w); }));
  EXPECT_TRUE(hears([&] { ASSERT_TRUE(scheduler_->Release(w, l.run_id, l.attempt, "bye").ok()); }));
  l = MustAcquire(w);
  EXPECT_TRUE(
      hears([&] { ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, "oom", true).ok()); }));
  l = MustAcquire(w);
  EXPECT_TRUE(
      hears([&] { ASSERT_TRUE(scheduler_->HostFault(w, l.run_id, l.attempt, "disk").ok()); }));
  l = MustAcquire(w);
  EXPECT_TRUE(hears([&] {
    clock_.Advance(options_.lease_ms + 1);
    ASSERT_GE(*scheduler_->ExpireLeases(), 1);
  }));
  l = MustAcquire(w);
  EXPECT_FALSE(
      hears([&] { ASSERT_TRUE(scheduler_->Fail(w, l.run_id, l.attempt, "bad", false).ok()); }));
  auto sweeps = scheduler_->ListSweeps();
  ASSERT_TRUE(sweeps.ok() && !sweeps->sweeps.empty());
  EXPECT_TRUE(hears([&] {
    auto retried =
        scheduler_->Retry(sweeps->sweeps.front().sweep.sweep_id, RetryRequest{.failed = true});
    ASSERT_TRUE(retried.ok() && retried->runs_queued == 1);
  }));
}

TEST_F(SchedulerTest, AnAcquireWithNothingQueuedWritesNothingAndContactsAreFlushedLater) {
  options_.forget_workers_after_ms = 20000;
  Open();
  const std::string w = Register("w");
  const int64_t registered_ms = clock_.NowMs();
  const std::string wal = dir_.File("state.db") + "-wal";
  const auto wal_size = std::filesystem::file_size(wal);
  clock_.Advance(19000);
  for (int slot = 0; slot < 8; ++slot) {
    auto r = scheduler_->Acquire(w, slot);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->has_value());
  }
  EXPECT_EQ(std::filesystem::file_size(wal), wal_size);  // no commit wrote anything
  EXPECT_EQ((*store_->GetWorker(w))->last_seen_ms, registered_ms);
  // The silence rules see the contact anyway: 21 s after the last stored one (past
  // forget_workers_after_ms), 2 s after the real one, the worker is not forgotten.
  clock_.Advance(2000);
  EXPECT_EQ(*scheduler_->ForgetSilentWorkers(), 0);
  ASSERT_TRUE(scheduler_->FlushWorkerContacts().ok());
  EXPECT_EQ((*store_->GetWorker(w))->last_seen_ms, registered_ms + 19000);
  // A worker that stays silent is still forgotten.
  clock_.Advance(20000);
  EXPECT_EQ(*scheduler_->ForgetSilentWorkers(), 1);
}

// Every page of ListRuns in turn (page_size runs each), following the tokens.
std::vector<RunView> AllRunPages(Scheduler* scheduler, const std::string& sweep,
                                 const std::string& state, int page_size, int* pages) {
  std::vector<RunView> out;
  PageRequest page{page_size, ""};
  *pages = 0;
  do {
    auto r = scheduler->ListRuns(sweep, state, page);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) break;
    ++*pages;
    EXPECT_LE(static_cast<int>(r->runs.size()), page_size);
    out.insert(out.end(), r->runs.begin(), r->runs.end());
    page.page_token = r->next_page_token;
  } while (!page.page_token.empty() && *pages < 100);
  return out;
}

TEST_F(SchedulerTest, ListRunsPagesThroughEveryRunOnceInGridOrder) {
  ASSERT_TRUE(scheduler_
                  ->Submit("name: big\ntrainer: {kind: synthetic}\ngrid:\n  train.optimizer.lr: "
                           "[0.1, 0.2, 0.3, 0.4, 0.5]\nseeds: 3\n",
                           "big.yaml")
                  .ok());
  auto whole = scheduler_->ListRuns("big", "", {});  // the default page holds them all
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(whole->runs.size(), 15u);
  EXPECT_EQ(whole->next_page_token, "");
  std::vector<std::string> expected;
  for (const auto& r : whole->runs) expected.push_back(r.run.run_id);
  for (int size : {1, 4, 5, 14, 15}) {
    int pages = 0;
    std::vector<std::string> seen;
    for (const auto& r : AllRunPages(scheduler_.get(), "big", "", size, &pages)) {
      seen.push_back(r.run.run_id);
    }
    EXPECT_EQ(seen, expected) << "page_size " << size;
    EXPECT_EQ(pages, (15 + size - 1) / size) << "page_size " << size;  // no empty last page
    // Another sweep submitted between pages changes nothing of this one's.
    ASSERT_TRUE(scheduler_
                    ->Submit("name: more" + std::to_string(size) +
                                 "\ntrainer: {kind: synthetic}\nseeds: " + std::to_string(size) +
                                 "\n",
                             "more.yaml")
                    .ok());
  }
  // A state filter pages over the runs in that state only.
  const std::string w = Register("w");
  std::set<std::string> leased;
  for (int i = 0; i < 3; ++i) leased.insert(MustAcquire(w).run_id);
  int pages = 0;
  std::set<std::string> seen;
  for (const auto& r : AllRunPages(scheduler_.get(), "big", "leased", 2, &pages)) {
    seen.insert(r.run.run_id);
  }
  EXPECT_EQ(seen, leased);
  EXPECT_EQ(pages, 2);
}

// Runs with long errors fill a page before its size: it ends early, far under gRPC's
// message limit, and the next pages hold the rest.
TEST_F(SchedulerTest, APageOfRunsEndsBeforeItsTextPassesAFewMiB) {
  ASSERT_TRUE(
      scheduler_->Submit("name: wordy\ntrainer: {kind: synthetic}\nseeds: 600\n", "w.yaml").ok());
  auto all = store_->ListSweepRuns(scheduler_->GetSweep("wordy")->sweep.sweep_id, std::nullopt);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 600u);
  ASSERT_TRUE(store_
                  ->RunInTransaction([&]() -> Status {
                    for (const auto& [link, run] : *all) {
                      RESWEEP_ASSIGN_OR_RETURN(std::optional<RunRecord> r,
                                               store_->GetRun(run.run_id));
                      r->error = std::string(8192, 'e');
                      RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(*r));
                    }
                    return Status::Ok();
                  })
                  .ok());
  auto first = scheduler_->ListRuns("wordy", "", {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_LT(first->runs.size(), 600u);
  EXPECT_LE(first->runs.size() * 8192, Queries::kMaxRunsPageBytes);
  EXPECT_FALSE(first->next_page_token.empty());
  int pages = 0;
  std::set<std::string> seen;
  for (const auto& r : AllRunPages(scheduler_.get(), "wordy", "", 1000, &pages)) {
    seen.insert(r.run.run_id);
  }
  EXPECT_EQ(seen.size(), 600u);
  EXPECT_EQ(pages, 2);
}

TEST_F(SchedulerTest, ListSweepsPagesThroughEverySweepOnce) {
  std::vector<std::string> expected;
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(1000);
    auto s = scheduler_->Submit("name: s" + std::to_string(i) + "\ntrainer: {kind: synthetic}\n",
                                "s.yaml");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    expected.push_back(s->sweep_id);
  }
  ASSERT_TRUE(scheduler_->Delete("s1", true).ok());
  auto list = [&](bool include_archived, int size, SweepOrder order = SweepOrder::kOldestFirst) {
    std::vector<std::string> seen;
    PageRequest page{size, ""};
    for (int pages = 0; pages < 20; ++pages) {
      auto r = scheduler_->ListSweeps(include_archived, page, order);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) break;
      EXPECT_LE(static_cast<int>(r->sweeps.size()), size);
      for (const auto& v : r->sweeps) seen.push_back(v.sweep.sweep_id);
      page.page_token = r->next_page_token;
      if (page.page_token.empty()) break;
    }
    return seen;
  };
  EXPECT_EQ(list(true, 2), expected);
  std::vector<std::string> live = expected;
  live.erase(live.begin() + 1);
  EXPECT_EQ(list(false, 3), live);
  EXPECT_EQ(list(false, 1), live);
  // Newest first: the reverse, whatever the page size.
  const std::vector<std::string> newest(expected.rbegin(), expected.rend());
  const std::vector<std::string> live_newest(live.rbegin(), live.rend());
  EXPECT_EQ(list(true, 2, SweepOrder::kNewestFirst), newest);
  EXPECT_EQ(list(true, 5, SweepOrder::kNewestFirst), newest);
  EXPECT_EQ(list(false, 3, SweepOrder::kNewestFirst), live_newest);
  EXPECT_EQ(list(false, 1, SweepOrder::kNewestFirst), live_newest);

  // A token leads on only in the order it came from.
  auto oldest = scheduler_->ListSweeps(true, {2, ""}, SweepOrder::kOldestFirst);
  auto newest_page = scheduler_->ListSweeps(true, {2, ""}, SweepOrder::kNewestFirst);
  ASSERT_TRUE(oldest.ok() && newest_page.ok());
  ASSERT_FALSE(oldest->next_page_token.empty());
  ASSERT_FALSE(newest_page->next_page_token.empty());
  EXPECT_NE(oldest->next_page_token, newest_page->next_page_token);
  for (const auto& [token, order] :
       {std::pair{oldest->next_page_token, SweepOrder::kNewestFirst},
        std::pair{newest_page->next_page_token, SweepOrder::kOldestFirst}}) {
    auto r = scheduler_->ListSweeps(true, {2, token}, order);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << token;
    EXPECT_NE(r.status().message().find("page_token"), std::string::npos);
  }
}

TEST_F(SchedulerTest, BadPageRequestsAreRefusedNamingTheField) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  ASSERT_TRUE(scheduler_->Submit(kOverlappingSweep, "o.yaml").ok());
  auto first = scheduler_->ListRuns("sched", "", {1, ""});
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token.empty());
  auto sweeps = scheduler_->ListSweeps(false, {1, ""});
  ASSERT_TRUE(sweeps.ok());
  ASSERT_FALSE(sweeps->next_page_token.empty());

  auto refused_runs = [&](const std::string& sweep_name, const PageRequest& page,
                          const std::string& field) {
    auto r = scheduler_->ListRuns(sweep_name, "", page);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument)
        << "'" << page.page_token << "' size " << page.page_size;
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  };
  for (const std::string& token :
       {std::string("garbage"), std::string("r1."), std::string("r1.abc"),
        std::string("r1.") + sweep->sweep_id + ".x", std::string("r1.") + sweep->sweep_id + ".-3",
        std::string("r1.") + sweep->sweep_id + ".99999999999999999999",
        first->next_page_token + "0x", sweeps->next_page_token, std::string(10000, 'r')}) {
    refused_runs("sched", {0, token}, "page_token");
  }
  refused_runs("other", {0, first->next_page_token}, "page_token");  // of another sweep
  refused_runs("sched", {-1, ""}, "page_size");
  for (const std::string& token : {std::string("s1.12"), std::string("s1.x.1"),
                                   first->next_page_token, std::string("\xff\xfe")}) {
    auto r = scheduler_->ListSweeps(false, {0, token});
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << token;
    EXPECT_NE(r.status().message().find("page_token"), std::string::npos);
  }
  EXPECT_EQ(scheduler_->ListSweeps(false, {-5, ""}).status().code(), StatusCode::kInvalidArgument);
  // A page size beyond the most a page holds is capped, not refused.
  auto capped = scheduler_->ListRuns("sched", "", {1 << 30, ""});
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->runs.size(), 4u);
  // The good token still works after all that.
  auto second = scheduler_->ListRuns("sched", "", {0, first->next_page_token});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->runs.size(), 3u);
  EXPECT_EQ(second->next_page_token, "");
}

// A store on which reading every sweep with its spec (ListSweeps) fails, and reading
// one (GetSweep) too unless allowed.
class NoSpecReadsStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  StatusOr<std::optional<SweepRecord>> GetSweep(const std::string& id) override {
    if (allow_get_sweep) return ForwardingStore::GetSweep(id);
    return InternalError("GetSweep(" + id + ") reads a spec");
  }
  bool allow_get_sweep = false;
  StatusOr<std::vector<SweepRecord>> ListSweeps() override {
    return InternalError("ListSweeps reads every spec");
  }
};

// Resolving a sweep by id, name or prefix, listing sweeps and runs, and the name check
// of a submission read only the sweeps that match, never a spec.
TEST_F(SchedulerTest, LookupsAndListsReadNoSweepSpec) {
  auto sweep = scheduler_->Submit(kSweep, "s.yaml");
  ASSERT_TRUE(sweep.ok());
  NoSpecReadsStore no_specs(store_.get());
  Queries queries(&no_specs, &clock_, options_.lease_ms);
  for (const std::string& key :
       {sweep->sweep_id, std::string("sched"), sweep->sweep_id.substr(0, 5)}) {
    auto view = queries.GetSweep(key);
    ASSERT_TRUE(view.ok()) << key << ": " << view.status().ToString();
    EXPECT_EQ(view->sweep.sweep_id, sweep->sweep_id);
    EXPECT_EQ(view->counts.total(), 4);
  }
  EXPECT_EQ(queries.GetSweep("nope").status().code(), StatusCode::kNotFound);
  auto sweeps = queries.ListSweeps(true, {});
  ASSERT_TRUE(sweeps.ok()) << sweeps.status().ToString();
  EXPECT_EQ(sweeps->sweeps.size(), 1u);
  auto runs = queries.ListRuns("sched", "", {});
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  EXPECT_EQ(runs->runs.size(), 4u);
  auto results = queries.Results("sched", 0);
  ASSERT_TRUE(results.ok()) << results.status().ToString();

  // Submitting reads the one sweep of the same id (whether it exists), no other.
  no_specs.allow_get_sweep = true;
  Scheduler on_no_specs(&no_specs, &clock_, options_);
  std::string renamed = kSweep;
  renamed.replace(renamed.find("seeds: 2"), 8, "seeds: 3");
  auto reused = on_no_specs.Submit(renamed, "s.yaml");
  EXPECT_EQ(reused.status().code(), StatusCode::kFailedPrecondition) << reused.status().ToString();
  EXPECT_NE(reused.status().message().find(sweep->sweep_id), std::string::npos);
}

}  // namespace
}  // namespace resweep
