#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "coordinator/results.h"
#include "coordinator/sqlite_store.h"
#include "tests/test_util.h"

namespace resweep {
namespace {

using testing::TempDir;

RunRecord SampleRun(const std::string& id) {
  RunRecord r;
  r.run_id = id;
  r.config_json = "{\"x\":1}";
  r.seed = 42;
  r.state = RunState::kRunning;
  r.attempt = 2;
  r.failures = 1;
  r.max_attempts = 5;
  r.worker_id = "w-1";
  r.lease_expires_ms = 123456789;
  r.epoch = 7;
  r.epochs_total = 200;
  r.last_test_error = 0.0875;
  r.checkpoint_epoch = 6;
  r.param_count = 269722;
  r.error = "";
  r.queue_position = 9;
  r.created_ms = 1;
  r.updated_ms = 2;
  return r;
}

TEST(SqliteStore, RoundTripsEveryRecord) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& s = **store;
  SweepRecord sweep{"abc", "name", "yaml: 1\n", "f.yaml", 100, false, 5, {"model.depth_n"}};
  ASSERT_TRUE(s.InsertSweep(sweep).ok());
  EXPECT_FALSE(s.InsertSweep(sweep).ok());  // primary key
  auto got = s.GetSweep("abc");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->spec_yaml, "yaml: 1\n");
  EXPECT_EQ((*got)->grid_axes, std::vector<std::string>{"model.depth_n"});

  const RunRecord run = SampleRun("r1");
  EXPECT_TRUE(*s.InsertRunIfAbsent(run));
  EXPECT_FALSE(*s.InsertRunIfAbsent(run));
  auto back = s.GetRun("r1");
  ASSERT_TRUE(back.ok() && back->has_value());
  const RunRecord& b = **back;
  EXPECT_EQ(b.state, RunState::kRunning);
  EXPECT_EQ(b.attempt, 2);
  EXPECT_EQ(b.lease_expires_ms, 123456789);
  EXPECT_DOUBLE_EQ(b.last_test_error, 0.0875);
  EXPECT_EQ(b.param_count, 269722);
  EXPECT_EQ(b.checkpoint_epoch, 6);

  ASSERT_TRUE(s.LinkRun({"abc", "r1", "cell", "model.depth_n=3", "{}"}).ok());
  auto rows = s.ListSweepRuns("abc", RunState::kRunning);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].first.cell_label, "model.depth_n=3");
  EXPECT_EQ((*rows)[0].second.seed, 42);
  EXPECT_TRUE(s.ListSweepRuns("abc", RunState::kQueued)->empty());

  EpochRecord e;
  e.run_id = "r1";
  e.epoch = 1;
  e.attempt = 2;
  e.test_error = 0.5;
  ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
  e.test_error = 0.4;  // a newer attempt replaces, never duplicates
  ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
  e.epoch = 2;
  ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
  auto epochs = s.ListEpochs("r1");
  ASSERT_EQ(epochs->size(), 2u);
  EXPECT_DOUBLE_EQ((*epochs)[0].test_error, 0.4);
  ASSERT_TRUE(s.DeleteEpochsAfter("r1", 1).ok());
  EXPECT_EQ(s.ListEpochs("r1")->size(), 1u);
}

// Every write by a lease holder is a compare-and-set in SQL: a write based on a read
// that is no longer true changes nothing, whoever serialises the calls.
TEST(SqliteStore, WritesAreCompareAndSetOnTheLease) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun("r1")));  // running, attempt 2 of w-1
  EpochRecord e;
  e.run_id = "r1";
  e.epoch = 1;
  e.attempt = 2;
  e.test_error = 0.5;
  // Another worker, or an older attempt: refused, nothing recorded.
  Status other = s.PutEpoch(e, "w-2");
  EXPECT_EQ(other.code(), StatusCode::kFailedPrecondition) << other.ToString();
  EXPECT_NE(other.message().find("attempt 2 of worker 'w-1'"), std::string::npos)
      << other.message();
  e.attempt = 1;
  EXPECT_EQ(s.PutEpoch(e, "w-1").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(s.ListEpochs("r1")->empty());

  // Two writers read the same record; the first write wins, the second (stale) read
  // is refused and the stored run is the first writer's.
  RunRecord first = **s.GetRun("r1");
  RunRecord second = first;
  first.state = RunState::kQueued;  // e.g. the lease was lost
  first.worker_id.clear();
  first.failures = 1;
  ASSERT_TRUE(s.UpdateRun(first).ok());
  second.checkpoint_epoch = 9;  // e.g. a late checkpoint of the old attempt
  Status stale = s.UpdateRun(second);
  EXPECT_EQ(stale.code(), StatusCode::kFailedPrecondition) << stale.ToString();
  const RunRecord now = **s.GetRun("r1");
  EXPECT_EQ(now.state, RunState::kQueued);
  EXPECT_EQ(now.checkpoint_epoch, 6);
  // The epoch of the lease that is gone is refused as well.
  e.attempt = 2;
  EXPECT_EQ(s.PutEpoch(e, "w-1").code(), StatusCode::kFailedPrecondition);

  // A record that was never read from the store cannot be written over a run.
  EXPECT_EQ(s.UpdateRun(SampleRun("r1")).code(), StatusCode::kInvalidArgument);
  RunRecord gone = now;
  gone.run_id = "nope";
  EXPECT_EQ(s.UpdateRun(gone).code(), StatusCode::kNotFound);
}

// The results summary follows the epochs: the newest evaluated epoch's error and the
// mean of the last K evaluated ones (K from the run), also after epochs are removed.
TEST(SqliteStore, KeepsEachRunsResultsSummary) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  RunRecord run = SampleRun("r1");
  run.summary_k = 2;
  ASSERT_TRUE(*s.InsertRunIfAbsent(run));
  EXPECT_EQ((*s.GetRun("r1"))->final_test_error, -1);
  EXPECT_EQ((*s.GetRun("r1"))->last_k_test_error, -1);
  const double errors[] = {0.5, 0.4, -1, 0.2, -1};  // -1: not evaluated that epoch
  for (int i = 0; i < 5; ++i) {
    EpochRecord e;
    e.run_id = "r1";
    e.epoch = i + 1;
    e.attempt = 2;
    e.test_error = errors[i];
    ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
  }
  RunRecord got = **s.GetRun("r1");
  EXPECT_EQ(got.summary_k, 2);
  EXPECT_DOUBLE_EQ(got.final_test_error, 0.2);
  EXPECT_DOUBLE_EQ(got.last_k_test_error, (0.2 + 0.4) / 2);
  // The same as the results code computes from the epochs themselves.
  EXPECT_DOUBLE_EQ(got.last_k_test_error, LastKMeanTestError(*s.ListEpochs("r1"), 2));
  ASSERT_TRUE(s.DeleteEpochsAfter("r1", 2).ok());  // back to a checkpoint of epoch 2
  got = **s.GetRun("r1");
  EXPECT_DOUBLE_EQ(got.final_test_error, 0.4);
  EXPECT_DOUBLE_EQ(got.last_k_test_error, (0.4 + 0.5) / 2);
  ASSERT_TRUE(s.DeleteEpochsAfter("r1", 0).ok());
  EXPECT_EQ((*s.GetRun("r1"))->final_test_error, -1);
  // UpdateRun leaves the summary alone.
  ASSERT_TRUE(s.PutEpoch({"r1", 1, 2, 0, 0, 0.3}, "w-1").ok());
  got = **s.GetRun("r1");
  got.param_count = 7;
  got.final_test_error = 0.9;
  ASSERT_TRUE(s.UpdateRun(got).ok());
  EXPECT_DOUBLE_EQ((*s.GetRun("r1"))->final_test_error, 0.3);
}

// What a sweep's counters, cells and outcomes must say, recomputed from every run of
// the sweep and its epochs.
struct SweepTruth {
  RunCountsRecord counts;
  SweepProgressRecord progress;
  std::vector<SweepCellRecord> cells;
  std::vector<SweepOutcomeRecord> outcomes;
};

SweepTruth RecountSweep(Store& s, const std::string& sweep_id) {
  SweepTruth t;
  auto rows = s.ListSweepRuns(sweep_id, std::nullopt);
  EXPECT_TRUE(rows.ok());
  std::map<std::string, int> ordinal;
  double seconds = 0;
  int timed = 0;
  for (const auto& [link, run] : *rows) {
    int* count[] = {&t.counts.queued,    &t.counts.leased, &t.counts.running,
                    &t.counts.succeeded, &t.counts.failed, &t.counts.cancelled};
    ++*count[static_cast<int>(run.state)];
    t.progress.epochs_done += run.epoch;
    t.progress.epochs_total += run.epochs_total;
    if (!IsTerminal(run.state)) t.progress.epochs_left += run.epochs_total - run.epoch;
    if (run.epoch > 0) {
      auto epochs = s.ListEpochs(run.run_id);
      seconds += epochs->empty() ? 0 : epochs->back().seconds;
      ++timed;
    }
    auto [it, inserted] = ordinal.emplace(link.cell_key, static_cast<int>(t.cells.size()));
    if (inserted) {
      t.cells.push_back(
          {it->second, link.cell_key, link.cell_label, link.cell_params_json, run.config_json, 0});
    }
    ++t.cells[it->second].runs_total;
    if (run.state == RunState::kSucceeded) {
      t.outcomes.push_back({it->second, run.run_id, run.summary_k, run.final_test_error,
                            run.last_k_test_error, run.param_count});
    }
  }
  t.progress.mean_epoch_seconds = timed ? seconds / timed : 0;
  std::stable_sort(t.outcomes.begin(), t.outcomes.end(),
                   [](const auto& a, const auto& b) { return a.cell_ordinal < b.cell_ordinal; });
  return t;
}

void ExpectAggregatesMatchRuns(Store& s, const std::string& sweep_id, const std::string& when) {
  SCOPED_TRACE(sweep_id + " " + when);
  const SweepTruth t = RecountSweep(s, sweep_id);
  const RunCountsRecord c = *s.CountRuns(sweep_id);
  EXPECT_EQ(std::tie(c.queued, c.leased, c.running, c.succeeded, c.failed, c.cancelled),
            std::tie(t.counts.queued, t.counts.leased, t.counts.running, t.counts.succeeded,
                     t.counts.failed, t.counts.cancelled));
  const SweepProgressRecord p = *s.SweepProgress(sweep_id);
  EXPECT_EQ(p.epochs_done, t.progress.epochs_done);
  EXPECT_EQ(p.epochs_total, t.progress.epochs_total);
  EXPECT_EQ(p.epochs_left, t.progress.epochs_left);
  EXPECT_NEAR(p.mean_epoch_seconds, t.progress.mean_epoch_seconds, 1e-9);
  const auto cells = *s.ListSweepCells(sweep_id);
  ASSERT_EQ(cells.size(), t.cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    EXPECT_EQ(std::tie(cells[i].ordinal, cells[i].cell_key, cells[i].cell_label,
                       cells[i].cell_params_json, cells[i].config_json, cells[i].runs_total),
              std::tie(t.cells[i].ordinal, t.cells[i].cell_key, t.cells[i].cell_label,
                       t.cells[i].cell_params_json, t.cells[i].config_json, t.cells[i].runs_total));
  }
  const auto outcomes = *s.ListSweepOutcomes(sweep_id, -1);  // every run_id
  ASSERT_EQ(outcomes.size(), t.outcomes.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& a = outcomes[i];
    const auto& b = t.outcomes[i];
    EXPECT_EQ(std::tie(a.cell_ordinal, a.run_id, a.summary_k, a.final_test_error,
                       a.last_k_test_error, a.param_count),
              std::tie(b.cell_ordinal, b.run_id, b.summary_k, b.final_test_error,
                       b.last_k_test_error, b.param_count))
        << "outcome " << i;
  }
}

// A worker's epoch report is one compare-and-set on the run: on its lease (attempt,
// worker, state) and on the epoch being the run's next. A refusal writes nothing;
// an accepted report writes the epoch and only the run's columns that a report moves.
TEST(SqliteStore, AppendEpochIsACompareAndSetOnTheLeaseAndTheNextEpoch) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun("r1")));  // running, attempt 2 of w-1, epoch 7
  const RunRecord stored = **s.GetRun("r1");
  RunRecord r = stored;
  r.epoch = 8;
  r.last_test_error = 0.25;
  r.lease_expires_ms = 999;
  r.updated_ms = 77;
  EpochRecord e{"r1", 8, 2, 0.1, 0.2, 0.25};
  e.seconds = 3;
  auto unchanged = [&](const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_TRUE(s.ListEpochs("r1")->empty());
    const RunRecord now = **s.GetRun("r1");
    EXPECT_EQ(std::tie(now.epoch, now.last_test_error, now.lease_expires_ms, now.updated_ms,
                       now.final_test_error),
              std::tie(stored.epoch, stored.last_test_error, stored.lease_expires_ms,
                       stored.updated_ms, stored.final_test_error));
  };
  // Read as another worker's, or another attempt's: refused, naming the stored lease.
  RunRecord other = r;
  other.read_as.worker_id = "w-2";
  Status st = s.AppendEpoch(other, e);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("attempt 2 of worker 'w-1'"), std::string::npos) << st.message();
  other = r;
  other.attempt = other.read_as.attempt = 1;
  EpochRecord older = e;
  older.attempt = 1;
  EXPECT_EQ(s.AppendEpoch(other, older).code(), StatusCode::kFailedPrecondition);
  unchanged("other lease");
  // Not the run's next epoch (a gap, or one recorded already).
  for (int epoch : {9, 7}) {
    RunRecord skip = r;
    skip.epoch = epoch;
    EpochRecord later = e;
    later.epoch = epoch;
    st = s.AppendEpoch(skip, later);
    EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
    EXPECT_NE(st.message().find("is at epoch 7"), std::string::npos) << st.message();
  }
  unchanged("not the next epoch");
  // Records that do not fit: not read from the store, or not of this epoch.
  RunRecord fresh = SampleRun("r1");
  fresh.epoch = 8;
  EXPECT_EQ(s.AppendEpoch(fresh, e).code(), StatusCode::kInvalidArgument);
  RunRecord mismatched = r;
  mismatched.epoch = 9;
  EXPECT_EQ(s.AppendEpoch(mismatched, e).code(), StatusCode::kInvalidArgument);
  EpochRecord other_attempt = e;
  other_attempt.attempt = 1;
  EXPECT_EQ(s.AppendEpoch(r, other_attempt).code(), StatusCode::kInvalidArgument);
  RunRecord finished = r;
  finished.state = RunState::kSucceeded;
  EXPECT_EQ(s.AppendEpoch(finished, e).code(), StatusCode::kInvalidArgument);
  unchanged("invalid");

  // Accepted: the epoch and the report's columns; the rest of the record is not written.
  r.checkpoint_epoch = 99;
  r.param_count = 5;
  r.error = "not written";
  ASSERT_TRUE(s.AppendEpoch(r, e).ok());
  const RunRecord now = **s.GetRun("r1");
  EXPECT_EQ(now.epoch, 8);
  EXPECT_EQ(now.state, RunState::kRunning);
  EXPECT_DOUBLE_EQ(now.last_test_error, 0.25);
  EXPECT_EQ(now.lease_expires_ms, 999);
  EXPECT_EQ(now.updated_ms, 77);
  EXPECT_DOUBLE_EQ(now.final_test_error, 0.25);
  EXPECT_EQ(now.checkpoint_epoch, stored.checkpoint_epoch);
  EXPECT_EQ(now.param_count, stored.param_count);
  EXPECT_EQ(now.error, "");
  ASSERT_EQ(s.ListEpochs("r1")->size(), 1u);
  EXPECT_DOUBLE_EQ(s.ListEpochs("r1")->front().seconds, 3);
  // The same report again, from the same read: the run is at epoch 8 now.
  EXPECT_EQ(s.AppendEpoch(r, e).code(), StatusCode::kFailedPrecondition);
  // A lease that was lost meanwhile refuses the old holder's next epoch.
  RunRecord requeued = now;
  requeued.state = RunState::kQueued;
  requeued.worker_id.clear();
  ASSERT_TRUE(s.UpdateRun(requeued).ok());
  RunRecord next = now;
  next.epoch = 9;
  EpochRecord e9 = e;
  e9.epoch = 9;
  st = s.AppendEpoch(next, e9);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  // Nor does a record read while the run was queued record an epoch under no lease.
  RunRecord queued = **s.GetRun("r1");
  queued.state = RunState::kRunning;
  queued.epoch = 9;
  st = s.AppendEpoch(queued, e9);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("is queued"), std::string::npos) << st.message();
  EXPECT_EQ((**s.GetRun("r1")).state, RunState::kQueued);
  EXPECT_EQ(s.ListEpochs("r1")->size(), 1u);
  // A run that is gone.
  next.run_id = e9.run_id = "nope";
  EXPECT_EQ(s.AppendEpoch(next, e9).code(), StatusCode::kNotFound);
}

// The coordinator's run gauges count each run once: a run that two sweeps share is
// one run, and the runs of archived sweeps are not counted.
TEST(SqliteStore, CountsRunsOfLiveSweepsEachOnce) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"a", "a", "y", "f", 1, false, 3, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"b", "b", "y", "f", 2, false, 3, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"old", "old", "y", "f", 3, false, 3, {}}).ok());
  RunRecord shared = SampleRun("shared");  // running
  RunRecord queued = SampleRun("queued");
  queued.state = RunState::kQueued;
  queued.worker_id.clear();
  RunRecord archived = SampleRun("archived");
  archived.state = RunState::kQueued;
  archived.worker_id.clear();
  for (const RunRecord& r : {shared, queued, archived}) ASSERT_TRUE(*s.InsertRunIfAbsent(r));
  ASSERT_TRUE(s.LinkRun({"a", "shared", "c", "c", "{}"}).ok());
  ASSERT_TRUE(s.LinkRun({"b", "shared", "c", "c", "{}"}).ok());
  ASSERT_TRUE(s.LinkRun({"b", "queued", "d", "d", "{}"}).ok());
  ASSERT_TRUE(s.LinkRun({"old", "archived", "c", "c", "{}"}).ok());
  ASSERT_TRUE(s.SetSweepArchived("old").ok());
  // Summed per sweep, the shared run counts twice.
  EXPECT_EQ(s.CountRuns("a")->running + s.CountRuns("b")->running, 2);
  auto counts = s.CountRunsOfLiveSweeps();
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(counts->running, 1);
  EXPECT_EQ(counts->queued, 1);
  EXPECT_EQ(counts->leased + counts->succeeded + counts->failed + counts->cancelled, 0);
}

// The report path's write without a read is a compare-and-set on all it assumes:
// the run running on this attempt under this worker, at the epoch before, with epochs
// to go. Anything else returns false and writes nothing (the scheduler then reads the
// run and decides); accepted, it moves the run as AppendEpoch does.
TEST(SqliteStore, AppendNextEpochWritesOnlyTheRunningLeasesNextEpoch) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  RunRecord sample = SampleRun("r1");  // running, attempt 2 of w-1, epoch 7 of 200
  sample.epochs_total = 8;
  ASSERT_TRUE(*s.InsertRunIfAbsent(sample));
  const RunRecord stored = **s.GetRun("r1");
  EpochRecord e{"r1", 8, 2, 0.1, 0.2, 0.25};
  e.seconds = 3;
  auto refused = [&](const std::string& why, const std::string& worker, const EpochRecord& epoch) {
    SCOPED_TRACE(why);
    auto appended = s.AppendNextEpoch(worker, epoch, 999, 77);
    ASSERT_TRUE(appended.ok()) << appended.status().ToString();
    EXPECT_FALSE(*appended);
    EXPECT_TRUE(s.ListEpochs("r1")->empty());
    const RunRecord now = **s.GetRun("r1");
    EXPECT_EQ(std::tie(now.epoch, now.last_test_error, now.lease_expires_ms, now.updated_ms,
                       now.final_test_error),
              std::tie(stored.epoch, stored.last_test_error, stored.lease_expires_ms,
                       stored.updated_ms, stored.final_test_error));
  };
  refused("another worker", "w-2", e);
  EpochRecord other = e;
  other.attempt = 1;
  refused("another attempt", "w-1", other);
  for (int epoch : {7, 9, 6}) {
    other = e;
    other.epoch = epoch;
    refused("epoch " + std::to_string(epoch) + " after 7", "w-1", other);
  }
  other = e;
  other.run_id = "nope";
  refused("no such run", "w-1", other);
  RunRecord leased = stored;
  leased.state = RunState::kLeased;
  ASSERT_TRUE(s.UpdateRun(leased).ok());
  refused("leased, not running yet", "w-1", e);
  RunRecord running = **s.GetRun("r1");
  running.state = RunState::kRunning;
  running.epochs_total = 7;
  ASSERT_TRUE(s.UpdateRun(running).ok());
  refused("past the run's last epoch", "w-1", e);
  running = **s.GetRun("r1");
  running.epochs_total = 8;
  ASSERT_TRUE(s.UpdateRun(running).ok());

  auto appended = s.AppendNextEpoch("w-1", e, 999, 77);
  ASSERT_TRUE(appended.ok() && *appended);
  const RunRecord now = **s.GetRun("r1");
  EXPECT_EQ(now.epoch, 8);
  EXPECT_EQ(now.state, RunState::kRunning);
  EXPECT_DOUBLE_EQ(now.last_test_error, 0.25);
  EXPECT_EQ(now.lease_expires_ms, 999);
  EXPECT_EQ(now.updated_ms, 77);
  EXPECT_DOUBLE_EQ(now.final_test_error, 0.25);
  EXPECT_EQ(now.checkpoint_epoch, stored.checkpoint_epoch);
  ASSERT_EQ(s.ListEpochs("r1")->size(), 1u);
  EXPECT_DOUBLE_EQ(s.ListEpochs("r1")->front().seconds, 3);
  // The same report again: the run is at epoch 8 now.
  appended = s.AppendNextEpoch("w-1", e, 1999, 177);
  ASSERT_TRUE(appended.ok());
  EXPECT_FALSE(*appended);
  EXPECT_EQ((**s.GetRun("r1")).lease_expires_ms, 999);
}

// AppendEpoch keeps the results summary from the new epoch and the ones before it:
// bit for bit what recomputing it from all of the run's epochs up to this one gives
// (also when the run still holds later epochs of an abandoned attempt), and the
// sweep's counters (mean epoch seconds, epochs done) follow.
TEST(SqliteStore, AppendEpochKeepsTheSummaryARecomputeWouldGive) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"a", "a", "y", "f", 1, false, 3, {}}).ok());
  RunRecord run = SampleRun("r1");
  run.state = RunState::kLeased;
  run.epoch = 0;
  run.epochs_total = 40;
  run.summary_k = 3;
  ASSERT_TRUE(*s.InsertRunIfAbsent(run));
  ASSERT_TRUE(s.LinkRun({"a", "r1", "c", "c", "{}"}).ok());
  std::mt19937 rng(11);
  // Even epochs of the running run take AppendNextEpoch (the report path without a
  // read), the others AppendEpoch: both keep the same summary.
  auto append = [&](int epoch) {
    RunRecord r = **s.GetRun("r1");
    const bool running = r.state == RunState::kRunning;
    r.state = RunState::kRunning;
    r.epoch = epoch;
    // Some epochs are not evaluated (-1); errors with many digits show any rounding.
    EpochRecord e{"r1", epoch, r.attempt, 0.5, 0.5, rng() % 4 ? (rng() % 1000) / 997.0 : -1};
    e.seconds = 1 + (rng() % 100) / 7.0;
    if (e.test_error >= 0) r.last_test_error = e.test_error;
    if (running && epoch % 2 == 0) {
      auto appended = s.AppendNextEpoch(r.worker_id, e, r.lease_expires_ms, r.updated_ms);
      ASSERT_TRUE(appended.ok()) << appended.status().ToString();
      ASSERT_TRUE(*appended) << "epoch " << epoch;
      EXPECT_EQ((**s.GetRun("r1")).last_test_error, r.last_test_error);
    } else {
      ASSERT_TRUE(s.AppendEpoch(r, e).ok()) << "epoch " << epoch;
    }
  };
  auto expect_recomputed = [&](const std::string& when) {
    SCOPED_TRACE(when);
    const RunRecord kept = **s.GetRun("r1");
    ExpectAggregatesMatchRuns(s, "a", when);
    // DeleteEpochsAfter recomputes the summary from every epoch (deleting none here).
    ASSERT_TRUE(s.DeleteEpochsAfter("r1", 1000).ok());
    const RunRecord recomputed = **s.GetRun("r1");
    EXPECT_EQ(kept.final_test_error, recomputed.final_test_error);
    EXPECT_EQ(kept.last_k_test_error, recomputed.last_k_test_error);
    EXPECT_DOUBLE_EQ(kept.last_k_test_error, LastKMeanTestError(*s.ListEpochs("r1"), 3));
    ExpectAggregatesMatchRuns(s, "a", when + ", recomputed");
  };
  for (int epoch = 1; epoch <= 20; ++epoch) {
    append(epoch);
    expect_recomputed("epoch " + std::to_string(epoch));
    if (HasFailure()) return;
  }
  EXPECT_EQ(s.CountRuns("a")->running, 1);
  // The run goes back to epoch 12 without its later epochs being removed (no writer in
  // the coordinator does this: a resumed lease removes them first). Its next epochs
  // are summarised with the ones before them, not with the abandoned ones after.
  RunRecord back = **s.GetRun("r1");
  back.epoch = 12;
  ASSERT_TRUE(s.UpdateRun(back).ok());
  for (int epoch = 13; epoch <= 15; ++epoch) {
    SCOPED_TRACE("epoch " + std::to_string(epoch) + " again, up to 20 still held");
    append(epoch);
    const RunRecord kept = **s.GetRun("r1");
    std::vector<EpochRecord> upto = *s.ListEpochs("r1");
    upto.resize(epoch);
    EXPECT_DOUBLE_EQ(kept.last_k_test_error, LastKMeanTestError(upto, 3));
    double final_error = -1;
    for (const auto& e : upto) {
      if (e.test_error >= 0) final_error = e.test_error;
    }
    EXPECT_EQ(kept.final_test_error, final_error);
  }
  EXPECT_EQ(s.ListEpochs("r1")->size(), 20u);
  ASSERT_TRUE(s.DeleteEpochsAfter("r1", 15).ok());  // as the next lease would
  expect_recomputed("abandoned epochs removed");
}

// Two sweeps sharing runs; the runs go through leases, epochs, rewinds, success,
// failure and requeues in a random order: after every step, each sweep's counters,
// cells and outcomes (kept by the store's triggers) are what recounting its runs gives.
TEST(SqliteStore, KeepsEachSweepsCountersCellsAndOutcomesAsItsRunsChange) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"a", "a", "y", "f", 1, false, 2, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"b", "b", "y", "f", 2, false, 3, {}}).ok());
  ExpectAggregatesMatchRuns(s, "a", "empty");
  for (int i = 0; i < 12; ++i) {
    RunRecord r = SampleRun("r" + std::to_string(i));
    r.config_json = "{\"run\":" + std::to_string(i) + "}";
    r.state = RunState::kQueued;
    r.attempt = 0;
    r.worker_id = "";
    r.epoch = 0;
    r.epochs_total = 4 + i % 3;
    r.param_count = 1000 + i;
    r.summary_k = 2;
    ASSERT_TRUE(*s.InsertRunIfAbsent(r));
    if (i < 10) {
      const std::string cell = "c" + std::to_string(i % 3);
      ASSERT_TRUE(
          s.LinkRun({"a", r.run_id, cell, "label " + cell, "{\"k\":\"" + cell + "\"}"}).ok());
    }
  }
  std::mt19937 rng(7);
  auto step = [&](int n) {
    for (int k = 0; k < n; ++k) {
      const std::string id = "r" + std::to_string(rng() % 12);
      RunRecord r = **s.GetRun(id);
      switch (rng() % 6) {
        case 0:  // lease or start
          if (r.state == RunState::kQueued) {
            r.state = RunState::kLeased;
            r.attempt += 1;
            r.worker_id = "w";
          } else if (r.state == RunState::kLeased) {
            r.state = RunState::kRunning;
          }
          break;
        case 1:  // an epoch, as a worker reports it
          if (HoldsLease(r.state) && r.epoch < r.epochs_total) {
            RunRecord next = r;
            next.state = RunState::kRunning;
            next.epoch += 1;
            next.lease_expires_ms += 1;
            EpochRecord e{id, next.epoch, r.attempt, 0.1, 0.1, 0.05 * (rng() % 10)};
            e.seconds = 1 + rng() % 5;
            ASSERT_TRUE(s.AppendEpoch(next, e).ok());
            r = **s.GetRun(id);
          }
          break;
        case 2:  // an epoch written on its own
          if (HoldsLease(r.state) && r.epoch < r.epochs_total) {
            EpochRecord e{id, r.epoch + 1, r.attempt, 0.1, 0.1, 0.05 * (rng() % 10)};
            e.seconds = 1 + rng() % 5;
            ASSERT_TRUE(s.PutEpoch(e, "w").ok());
            r = **s.GetRun(id);
            r.epoch += 1;
          }
          break;
        case 3:  // finish
          if (HoldsLease(r.state)) {
            r.state = rng() % 3 ? RunState::kSucceeded : RunState::kFailed;
            r.worker_id = "";
          }
          break;
        case 4:  // back to the queue (a lost lease, or a retry of a finished run)
          if (r.state != RunState::kQueued) {
            r.state = RunState::kQueued;
            r.worker_id = "";
          }
          break;
        case 5:  // rewind to a checkpoint
          if (HoldsLease(r.state) && r.epoch > 0) {
            ASSERT_TRUE(s.DeleteEpochsAfter(id, r.epoch - 1).ok());
            r = **s.GetRun(id);
            r.epoch -= 1;
          }
          break;
      }
      ASSERT_TRUE(s.UpdateRun(r).ok());
      ExpectAggregatesMatchRuns(s, "a", "after a step on " + id);
      ExpectAggregatesMatchRuns(s, "b", "after a step on " + id);
      if (HasFailure()) return;
    }
  };
  step(150);
  // Sweep b links runs that have moved on already (some succeeded), then both go on.
  for (int i = 6; i < 12; ++i) {
    const std::string cell = i % 2 ? "odd" : "even";
    ASSERT_TRUE(s.LinkRun({"b", "r" + std::to_string(i), cell, cell, "{}"}).ok());
  }
  ExpectAggregatesMatchRuns(s, "b", "linked");
  step(150);
  ExpectAggregatesMatchRuns(s, "b", "at the end");
  EXPECT_GT(s.CountRuns("a")->succeeded + s.CountRuns("b")->succeeded, 0);
  // Unknown sweeps count nothing.
  EXPECT_EQ(s.CountRuns("nope")->total(), 0);
  EXPECT_TRUE(s.ListSweepOutcomes("nope", 2)->empty());
  // Only the ids of runs whose summary is of another K are copied out.
  for (int k : {2, 3}) {
    // Held here: a range-for over *(a temporary StatusOr) would read freed memory.
    auto outcomes = s.ListSweepOutcomes("a", k);
    ASSERT_TRUE(outcomes.ok()) << outcomes.status().ToString();
    for (const auto& o : *outcomes) EXPECT_EQ(o.run_id.empty(), o.summary_k == k);
  }
}

TEST(SqliteStore, FailedTransactionLeavesNothingBehind) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  Status st = s.RunInTransaction([&]() -> Status {
    EXPECT_TRUE(*s.InsertRunIfAbsent(SampleRun("r1")));
    return InternalError("boom");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(s.GetRun("r1")->has_value());
}

// Runs each statement on the database file at `path`, each required to succeed.
void ExecSql(const std::string& path, const std::vector<const char*>& statements) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql : statements) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  }
  sqlite3_close(db);
}

// Runs in several states, some with epochs, some succeeded, for the linking tests.
void AddRunsInEveryState(Store& s, int n) {
  const RunState states[] = {RunState::kQueued,    RunState::kLeased, RunState::kRunning,
                             RunState::kSucceeded, RunState::kFailed, RunState::kCancelled};
  for (int i = 0; i < n; ++i) {
    RunRecord r = SampleRun("r" + std::to_string(i));
    r.config_json = "{\"run\":" + std::to_string(i) + "}";
    r.state = RunState::kRunning;
    r.worker_id = "w";
    r.epoch = 0;
    r.epochs_total = 3 + i % 4;
    r.summary_k = 2;
    ASSERT_TRUE(*s.InsertRunIfAbsent(r));
    for (int epoch = 1; epoch <= i % 3; ++epoch) {
      EpochRecord e{r.run_id, epoch, r.attempt, 0.1, 0.1, 0.01 * (i + epoch)};
      e.seconds = 1.0 + i;
      ASSERT_TRUE(s.PutEpoch(e, "w").ok());
    }
    r = **s.GetRun(r.run_id);
    r.epoch = i % 3;
    r.state = states[i % 6];
    ASSERT_TRUE(s.UpdateRun(r).ok());
  }
}

// LinkRuns accounts for a whole batch at once (set-based): the batch gives each
// sweep the counters, cells and outcomes that linking one at a time gives, with
// links to two sweeps interleaved, a cell coming back after others, links made
// twice and links that existed already (both ignored), and runs in every state.
TEST(SqliteStore, LinkRunsAccountsForABatchAsLinkingOneAtATimeDoes) {
  TempDir dir;
  auto one_store = OpenSqliteStore(dir.File("one.db"));
  auto batch_store = OpenSqliteStore(dir.File("batch.db"));
  ASSERT_TRUE(one_store.ok() && batch_store.ok());
  Store& one = **one_store;
  Store& batch = **batch_store;
  std::vector<SweepRunRecord> earlier, links;
  for (Store* s : {&one, &batch}) {
    ASSERT_TRUE(s->InsertSweep({"a", "a", "y", "f", 1, false, 2, {}}).ok());
    ASSERT_TRUE(s->InsertSweep({"b", "b", "y", "f", 2, false, 2, {}}).ok());
    ASSERT_NO_FATAL_FAILURE(AddRunsInEveryState(*s, 18));
  }
  // Sweep a has two cells already; the batch adds to one of them and makes new ones.
  earlier.push_back({"a", "r0", "x", "label x", "{\"c\":\"x\"}"});
  earlier.push_back({"a", "r1", "y", "label y", "{\"c\":\"y\"}"});
  for (int i = 2; i < 18; ++i) {
    const std::string id = "r" + std::to_string(i);
    const std::string cell = std::string(1, "xzw"[i / 2 % 3]);  // runs of 2 seeds
    links.push_back(
        {i % 4 == 0 ? "b" : "a", id, cell, "label " + cell, "{\"c\":\"" + cell + "\"}"});
    if (i % 5 == 0) links.push_back(links.back());                     // made twice
    if (i % 3 == 0) links.push_back({"b", id, "v", "label v", "{}"});  // shared with b
  }
  links.push_back(earlier[0]);                         // existed already
  links.push_back({"b", "r0", "v", "label v", "{}"});  // new for b
  for (Store* s : {&one, &batch}) {
    ASSERT_TRUE(s->LinkRuns(earlier).ok());
  }
  for (const auto& l : links) ASSERT_TRUE(one.LinkRun(l).ok());
  ASSERT_TRUE(batch.LinkRuns(links).ok());
  for (const std::string sweep : {"a", "b"}) {
    ExpectAggregatesMatchRuns(one, sweep, "linked one at a time");
    ExpectAggregatesMatchRuns(batch, sweep, "linked in one batch");
    EXPECT_EQ(batch.CountRuns(sweep)->total(), one.CountRuns(sweep)->total());
    EXPECT_EQ(batch.ListSweepCells(sweep)->size(), one.ListSweepCells(sweep)->size());
    EXPECT_EQ(batch.ListSweepOutcomes(sweep, -1)->size(), one.ListSweepOutcomes(sweep, -1)->size());
  }
  EXPECT_EQ(batch.CountRuns("a")->total(), 2 + 12);
  EXPECT_GT(batch.ListSweepOutcomes("b", -1)->size(), 0u);
  // Inside a transaction that fails afterwards, nothing of a batch stays.
  const RunCountsRecord before = *batch.CountRuns("b");
  const size_t cells_before = batch.ListSweepCells("b")->size();
  Status failed = batch.RunInTransaction([&]() -> Status {
    RESWEEP_RETURN_IF_ERROR(
        batch.LinkRuns({{"b", "r1", "new", "new", "{}"}, {"b", "r3", "new", "new", "{}"}}));
    return InternalError("and then something failed");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(batch.CountRuns("b")->total(), before.total());
  EXPECT_EQ(batch.ListSweepCells("b")->size(), cells_before);
  ExpectAggregatesMatchRuns(batch, "b", "after a failed transaction");
  // A link to a run that does not exist fails and leaves nothing behind either.
  EXPECT_FALSE(batch.LinkRuns({{"b", "r2", "u", "u", "{}"}, {"b", "nope", "u", "u", "{}"}}).ok());
  EXPECT_EQ(batch.CountRuns("b")->total(), before.total());
  ExpectAggregatesMatchRuns(batch, "b", "after a failed batch");
}

// After a big write, ReleaseMemory gives back the page cache the write filled (the
// coordinator calls it after a big submission).
TEST(SqliteStore, ReleaseMemoryGivesTheCachedPagesBack) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  const int64_t before = sqlite3_memory_used();
  ASSERT_TRUE(s.RunInTransaction([&]() -> Status {
                 for (int i = 0; i < 4000; ++i) {
                   RunRecord r = SampleRun("run-" + std::to_string(i));
                   r.config_json = std::string(1000, 'c') + std::to_string(i);
                   RESWEEP_RETURN_IF_ERROR(s.InsertRunIfAbsent(r).status());
                 }
                 return Status::Ok();
               }).ok());
  const int64_t filled = sqlite3_memory_used();
  ASSERT_GT(filled - before, 4 << 20) << "4,000 rows of 1 KiB went through the page cache";
  s.ReleaseMemory();
  const int64_t released = sqlite3_memory_used();
  EXPECT_LT(released - before, (filled - before) / 4)
      << "before " << before << ", after the write " << filled << ", released " << released;
  EXPECT_EQ((*s.GetRun("run-3999"))->config_json.size(), 1004u);  // read back from disk
}

// Inserts `n` runs named run-<*next> on (incrementing *next), each with a config of
// 4,000 bytes: about 4 KiB of pages per run.
Status InsertRunsOf4000Bytes(Store& s, int* next, int n) {
  for (int i = 0; i < n; ++i) {
    RunRecord r = SampleRun("run-" + std::to_string((*next)++));
    r.config_json = std::string(4000, 'c');
    RESWEEP_RETURN_IF_ERROR(s.InsertRunIfAbsent(r).status());
  }
  return Status::Ok();
}

// The writer never checkpoints the log itself (a commit, and the replies waiting for
// it, would copy the log into the database): another thread does, so the database
// file fills up and the log is written from its beginning again rather than growing.
TEST(SqliteStore, TheLogIsCheckpointedAndReusedWhileTheWriterCommitsWithoutPause) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  // A checkpoint at 1,000 frames (4 MiB), the log restarted at 16 MiB: the sizes
  // below are in proportion.
  auto store = OpenSqliteStore(path, {.wal_checkpoint_frames = 1000});
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  auto file_size = [](const std::string& file) -> int64_t {
    struct stat st {};
    return stat(file.c_str(), &st) == 0 ? st.st_size : -1;
  };
  int next = 0;
  auto write_mib = [&](int mib) {  // in transactions of 256 KiB
    for (int t = 0; t < mib * 4; ++t) {
      ASSERT_TRUE(s.RunInTransaction([&]() { return InsertRunsOf4000Bytes(s, &next, 64); }).ok());
    }
  };
  ASSERT_NO_FATAL_FAILURE(write_mib(8));
  // The database file gets the 8 MiB (copied from the log by the other thread).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (file_size(path) < (8 << 20) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(file_size(path), 8 << 20) << "nothing checkpointed the log into the database";
  // The log is reused while the writer commits without pause: after 40 MiB in all
  // (about 80 MiB of log frames: most pages are written twice) it is much smaller.
  ASSERT_NO_FATAL_FAILURE(write_mib(32));
  EXPECT_LT(file_size(path + "-wal"), 40 << 20)
      << "the log holds everything written: its start was never written again";
}

// A bulk transaction may use the bulk page cache; afterwards, and in any other
// transaction, the cache keeps to its usual size.
TEST(SqliteStore, OnlyABulkTransactionGrowsThePageCacheAndOnlyWhileItRuns) {
  TempDir dir;
  SqliteStoreOptions options;
  options.writer_cache_kib = 1024;
  options.bulk_cache_kib = 64 * 1024;
  auto store = OpenSqliteStore(dir.File("s.db"), options);
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  int next = 0;
  auto write_mib = [&](int mib) { return InsertRunsOf4000Bytes(s, &next, mib * 256); };
  const int64_t base = sqlite3_memory_used();
  int64_t in_plain = 0, in_bulk = 0;
  ASSERT_TRUE(s.RunInTransaction([&]() -> Status {
                 RESWEEP_RETURN_IF_ERROR(write_mib(12));
                 in_plain = sqlite3_memory_used() - base;
                 return Status::Ok();
               }).ok());
  ASSERT_TRUE(s.RunInBulkTransaction([&]() -> Status {
                 RESWEEP_RETURN_IF_ERROR(write_mib(12));
                 in_bulk = sqlite3_memory_used() - base;
                 return Status::Ok();
               }).ok());
  const int64_t after = sqlite3_memory_used() - base;
  int64_t in_plain_after = 0;
  ASSERT_TRUE(s.RunInTransaction([&]() -> Status {
                 RESWEEP_RETURN_IF_ERROR(write_mib(12));
                 in_plain_after = sqlite3_memory_used() - base;
                 return Status::Ok();
               }).ok());
  EXPECT_LT(in_plain, 4 << 20) << "a plain transaction kept more than its 1 MiB cache";
  EXPECT_GT(in_bulk, 12 << 20) << "the bulk transaction's 12 MiB did not stay cached";
  EXPECT_LT(after, 4 << 20) << "the bulk cache was not given back";
  EXPECT_LT(in_plain_after, 4 << 20) << "the cache kept its bulk size after the bulk transaction";
  EXPECT_EQ(s.CountRuns("none")->total(), 0);
  EXPECT_EQ((*s.GetRun("run-0"))->config_json.size(), 4000u);
  EXPECT_EQ((*s.GetRun("run-" + std::to_string(next - 1)))->config_json.size(), 4000u);
}

// Calls `row` with each row of a query on the database file (a second connection);
// false when the file or the query cannot be opened.
bool ForEachRow(const std::string& path, const char* sql,
                const std::function<void(sqlite3_stmt*)>& row) {
  sqlite3* db = nullptr;
  sqlite3_stmt* stmt = nullptr;
  const bool opened = sqlite3_open(path.c_str(), &db) == SQLITE_OK &&
                      sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK;
  while (opened && sqlite3_step(stmt) == SQLITE_ROW) row(stmt);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return opened;
}

// One integer from a query on the database file; -1 without a row.
int64_t QueryInt(const std::string& path, const char* sql) {
  int64_t value = -1;
  ForEachRow(path, sql, [&](sqlite3_stmt* stmt) { value = sqlite3_column_int64(stmt, 0); });
  return value;
}

// The CREATE TRIGGER statement of run_counted in the database file at `path`.
std::string RunCountedSql(const std::string& path) {
  std::string sql;
  ForEachRow(path, "SELECT sql FROM sqlite_master WHERE name = 'run_counted'",
             [&](sqlite3_stmt* stmt) {
               sql = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
             });
  return sql;
}

// What schema 14 changed, undone (a database as schema 13 wrote it): no epoch_log.
void UndoSchema14(const std::string& path) {
  ExecSql(path, {"DROP TABLE epoch_log", "PRAGMA user_version = 13"});
}

// What schema 13 changed, undone (a database as schema 12 wrote it): no
// runs.counted_appends, and run_counted fires on every change it watches.
void UndoSchema13(const std::string& path) {
  ASSERT_NO_FATAL_FAILURE(UndoSchema14(path));
  std::string counted = RunCountedSql(path);
  ASSERT_FALSE(counted.empty());
  const std::string skip = " OLD.counted_appends IS NEW.counted_appends AND (";
  const size_t at = counted.find(skip);
  ASSERT_NE(at, std::string::npos) << counted;
  counted.erase(at, skip.size());
  const size_t close = counted.find(")\nBEGIN");
  ASSERT_NE(close, std::string::npos) << counted;
  counted.erase(close, 1);
  ExecSql(path, {"DROP TRIGGER run_counted", counted.c_str(),
                 "ALTER TABLE runs DROP COLUMN counted_appends", "PRAGMA user_version = 12"});
}

// What schema 12 changed, undone (a database as schema 11 wrote it): no change stamps,
// nor the triggers that move them; run_counted without the stamp (its wider WHEN
// left: the counters it keeps are the same).
void UndoSchema12(const std::string& path) {
  ASSERT_NO_FATAL_FAILURE(UndoSchema13(path));
  std::string counted = RunCountedSql(path);
  ASSERT_FALSE(counted.empty());
  const std::string stamp = ",\n      change_stamp = change_stamp + 1";
  const size_t at = counted.find(stamp);
  ASSERT_NE(at, std::string::npos) << counted;
  counted.erase(at, stamp.size());
  ExecSql(path,
          {"DROP TRIGGER sweep_changed", "DROP TRIGGER epoch_deleted", "DROP TRIGGER run_counted",
           counted.c_str(), "ALTER TABLE sweep_counters DROP COLUMN change_stamp",
           "PRAGMA user_version = 11"});
}

// What schema 11 changed, undone (a database as schema 10 wrote it): links hold their
// cell's label and parameters, runs and cells their configs, sweep_runs its schema-1
// shape and indexes, and the triggers on runs are created again as they were.
void UndoSchema11(const std::string& path) {
  ASSERT_NO_FATAL_FAILURE(UndoSchema12(path));
  std::vector<std::string> triggers;
  ASSERT_TRUE(ForEachRow(path,
                         "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                         "tbl_name = 'runs' ORDER BY name",
                         [&](sqlite3_stmt* stmt) {
                           triggers.emplace_back(
                               reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
                         }));
  ASSERT_EQ(triggers.size(), 2u);
  std::vector<const char*> sql = {
      "DROP TRIGGER run_counted",
      "DROP TRIGGER run_outcome_changed",
      "CREATE TABLE sweep_runs_v10 (sweep_id TEXT NOT NULL REFERENCES sweeps(sweep_id), "
      "run_id TEXT NOT NULL REFERENCES runs(run_id), cell_key TEXT NOT NULL, cell_label TEXT "
      "NOT NULL, cell_params_json TEXT NOT NULL, PRIMARY KEY (sweep_id, run_id))",
      "INSERT INTO sweep_runs_v10 (rowid, sweep_id, run_id, cell_key, cell_label, "
      "cell_params_json) SELECT l.position, l.sweep_id, l.run_id, l.cell_key, c.cell_label, "
      "c.cell_params_json FROM sweep_runs l JOIN sweep_cells c ON c.sweep_id = l.sweep_id AND "
      "c.cell_key = l.cell_key",
      "DROP TABLE sweep_runs",
      "ALTER TABLE sweep_runs_v10 RENAME TO sweep_runs",
      "CREATE INDEX sweep_runs_by_run ON sweep_runs(run_id)",
      "CREATE INDEX sweep_runs_by_sweep ON sweep_runs(sweep_id)",
      "CREATE INDEX sweep_runs_by_cell ON sweep_runs(sweep_id, cell_key)",
      "UPDATE runs SET config_json = (SELECT c.config_json FROM run_configs c WHERE "
      "c.config_key = runs.config_key) WHERE config_key IS NOT NULL",
      "UPDATE sweep_cells SET config_json = (SELECT c.config_json FROM run_configs c WHERE "
      "c.config_key = sweep_cells.cell_key) WHERE config_json = '' AND cell_key IN (SELECT "
      "config_key FROM run_configs)",
      "ALTER TABLE runs DROP COLUMN config_key",
      "DROP TABLE run_configs"};
  for (const std::string& t : triggers) sql.push_back(t.c_str());
  sql.push_back("PRAGMA user_version = 10");
  ExecSql(path, sql);
}

const char* const kUndoSchema9[] = {
    "DROP TRIGGER sweep_counted", "DROP TRIGGER IF EXISTS sweep_run_linked",
    "DROP TRIGGER run_counted",   "DROP TRIGGER run_outcome_changed",
    "DROP TABLE sweep_counters",  "DROP TABLE sweep_cells",
    "DROP TABLE sweep_outcomes",  "DROP TABLE sweep_statistics",
    "PRAGMA user_version = 8"};

// A database of schema 8 (before the store kept per-sweep counters, cells and
// outcomes) gets them on open, as if they had been kept all along.
TEST(SqliteStore, MigrationFillsEachSweepsCountersCellsAndOutcomes) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    Store& s = **store;
    ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    ASSERT_TRUE(s.InsertSweep({"empty", "e", "y", "f", 2, false, 2, {}}).ok());
    const RunState states[] = {RunState::kQueued, RunState::kRunning, RunState::kSucceeded,
                               RunState::kSucceeded, RunState::kFailed};
    for (int i = 0; i < 5; ++i) {
      RunRecord r = SampleRun("r" + std::to_string(i));
      r.config_json = "{\"i\":" + std::to_string(i) + "}";
      ASSERT_TRUE(*s.InsertRunIfAbsent(r));
      const std::string cell = i % 2 ? "odd" : "even";
      ASSERT_TRUE(s.LinkRun({"sw", r.run_id, cell, cell + "!", "{}"}).ok());
      EpochRecord e{r.run_id, 1, 2, 0, 0, 0.1 * (i + 1)};
      e.seconds = 2.0 + i;
      ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
      r = **s.GetRun(r.run_id);
      r.state = states[i];
      r.epoch = 1;
      ASSERT_TRUE(s.UpdateRun(r).ok());
    }
  }
  ASSERT_NO_FATAL_FAILURE(UndoSchema11(path));
  ASSERT_NO_FATAL_FAILURE(ExecSql(path, {std::begin(kUndoSchema9), std::end(kUndoSchema9)}));
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ExpectAggregatesMatchRuns(**store, "sw", "migrated");
  ExpectAggregatesMatchRuns(**store, "empty", "migrated");
  EXPECT_EQ((*store)->CountRuns("sw")->succeeded, 2);
  EXPECT_EQ((*store)->ListSweepOutcomes("sw", 5)->size(), 2u);
  // Stored statistics start stale: the sweeps with outcomes are listed for a refresh.
  auto stale = (*store)->SweepsWithStaleStatistics(10);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->size(), 2u);
}

// Runs that share a config_key share one stored config; each still reads its own, and
// so does its cell; a run without a key keeps its config in its row.
TEST(SqliteStore, RunsOfOneConfigKeyStoreTheirConfigOnce) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
  std::vector<RunRecord> runs;
  for (int i = 0; i < 6; ++i) {
    RunRecord r = SampleRun("r" + std::to_string(i));
    r.config_json = i < 3 ? "{\"depth\":3}" : i < 5 ? "{\"depth\":5}" : "{\"inline\":1}";
    r.config_key = i < 3 ? "k3" : i < 5 ? "k5" : "";
    runs.push_back(r);
  }
  auto inserted = s.InsertRunsIfAbsent(runs);
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  EXPECT_EQ(*inserted, std::vector<bool>(6, true));
  // Again, with one new run between existing ones: only it is new.
  runs.insert(runs.begin() + 1, SampleRun("r6"));
  runs[1].config_key = "k3";
  runs[1].config_json = "{\"depth\":3}";
  inserted = s.InsertRunsIfAbsent(runs);
  ASSERT_TRUE(inserted.ok());
  EXPECT_EQ(*inserted, (std::vector<bool>{false, true, false, false, false, false, false}));
  for (const RunRecord& r : runs) {
    ASSERT_TRUE(s.LinkRun({"sw", r.run_id, r.config_key.empty() ? "own" : r.config_key,
                           "label " + r.config_key, "{}"})
                    .ok());
    auto read = s.GetRun(r.run_id);
    ASSERT_TRUE(read.ok() && read->has_value());
    EXPECT_EQ((*read)->config_json, r.config_json) << r.run_id;
  }
  EXPECT_EQ(QueryInt(path, "SELECT COUNT(*) FROM run_configs"), 2);
  EXPECT_EQ(QueryInt(path, "SELECT COUNT(*) FROM runs WHERE config_json = ''"), 6);
  auto cells = s.ListSweepCells("sw");
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), 3u);
  EXPECT_EQ((*cells)[0].config_json, "{\"depth\":3}");
  EXPECT_EQ((*cells)[1].config_json, "{\"depth\":5}");
  EXPECT_EQ((*cells)[2].config_json, "{\"inline\":1}");
  EXPECT_EQ(QueryInt(path, "SELECT COUNT(*) FROM sweep_cells WHERE config_json = ''"), 2);
  // Gang leases compare configs as read: r0's queued mates are the rest of its cell.
  for (const char* id : {"r1", "r2", "r6", "r3"}) {
    RunRecord r = **s.GetRun(id);
    r.state = RunState::kQueued;
    r.worker_id.clear();
    ASSERT_TRUE(s.UpdateRun(r).ok());
  }
  auto mates = s.QueuedCellMates(**s.GetRun("r0"), "w-2", 8);
  ASSERT_TRUE(mates.ok()) << mates.status().ToString();
  std::set<std::string> mate_ids;
  for (const RunRecord& m : *mates) mate_ids.insert(m.run_id);
  EXPECT_EQ(mate_ids, (std::set<std::string>{"r1", "r2", "r6"}));
}

// A config key is a 64-bit prefix of a hash: two configs may share one. A run whose
// key holds another config keeps its own (in its row), in one call or in two, and
// so does a cell it is the first run of; the config stored first stays as it was.
TEST(SqliteStore, RunsWhoseConfigKeyHoldsAnotherConfigKeepTheirOwn) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
  auto run = [](const std::string& id, const std::string& config) {
    RunRecord r = SampleRun(id);
    r.config_key = "same-key";
    r.config_json = config;
    return r;
  };
  ASSERT_TRUE(*s.InsertRunIfAbsent(run("first", "{\"depth\":3}")));
  ASSERT_TRUE(*s.InsertRunIfAbsent(run("other", "{\"depth\":5}")));
  auto batch = s.InsertRunsIfAbsent({run("a", "{\"depth\":3}"), run("b", "{\"depth\":7}"),
                                     run("c", "{\"depth\":7}"), run("d", "{\"depth\":3}")});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  const std::map<std::string, std::string> expected = {
      {"first", "{\"depth\":3}"}, {"other", "{\"depth\":5}"}, {"a", "{\"depth\":3}"},
      {"b", "{\"depth\":7}"},     {"c", "{\"depth\":7}"},     {"d", "{\"depth\":3}"}};
  for (const auto& [id, config] : expected) {
    auto read = s.GetRun(id);
    ASSERT_TRUE(read.ok() && read->has_value()) << id;
    EXPECT_EQ((*read)->config_json, config) << id;
  }
  // A cell whose first run is one of them holds that run's config.
  ASSERT_TRUE(s.LinkRun({"sw", "other", "same-key", "depth 5", "{}"}).ok());
  ASSERT_TRUE(s.LinkRun({"sw", "first", "another-cell", "depth 3", "{}"}).ok());
  auto cells = s.ListSweepCells("sw");
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), 2u);
  EXPECT_EQ((*cells)[0].config_json, "{\"depth\":5}");
  EXPECT_EQ((*cells)[1].config_json, "{\"depth\":3}");
}

// Gang leases join the queued runs of a cell whose configs read the same, wherever
// each is stored: in its row (a run from before schema 11, or one whose key holds
// another config) or under its key. A run of the cell whose config differs is no mate.
TEST(SqliteStore, QueuedCellMatesMatchConfigsStoredInRowsAndUnderKeys) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
  auto run = [](const std::string& id, const std::string& key, const std::string& config) {
    RunRecord r = SampleRun(id);
    r.state = RunState::kQueued;
    r.attempt = 0;
    r.worker_id.clear();
    r.checkpoint_epoch = 0;
    r.config_key = key;
    r.config_json = config;
    return r;
  };
  const std::string config = "{\"depth\":3}";
  auto inserted = s.InsertRunsIfAbsent({run("old0", "", config), run("old1", "", config),
                                        run("new2", "k", config), run("new3", "k", config),
                                        run("other", "k", "{\"depth\":9}")});
  ASSERT_TRUE(inserted.ok()) << inserted.status().ToString();
  for (const char* id : {"old0", "old1", "new2", "new3", "other"}) {
    ASSERT_TRUE(s.LinkRun({"sw", id, "k", "depth 3", "{}"}).ok());
  }
  auto mates_of = [&](const std::string& id) {
    std::set<std::string> ids;
    auto mates = s.QueuedCellMates(**s.GetRun(id), "w-2", 8);
    EXPECT_TRUE(mates.ok()) << mates.status().ToString();
    if (mates.ok()) {
      for (const RunRecord& m : *mates) ids.insert(m.run_id);
    }
    return ids;
  };
  EXPECT_EQ(mates_of("old0"), (std::set<std::string>{"old1", "new2", "new3"}));
  EXPECT_EQ(mates_of("new2"), (std::set<std::string>{"old0", "old1", "new3"}));
  EXPECT_EQ(mates_of("other"), std::set<std::string>{});
}

// A database of schema 10 (configs in each run's row, cell labels in each link) moves
// to schema 11 on open: every run, link, cell and position reads as before, the
// triggers still keep the counters, and positions survive a VACUUM.
TEST(SqliteStore, MigrationTo11KeepsRunsLinksCellsAndTheirAccounting) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  std::vector<std::pair<SweepRunRecord, RunRecord>> before;
  std::vector<SweepCellRecord> cells_before;
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    Store& s = **store;
    ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    ASSERT_NO_FATAL_FAILURE(AddRunsInEveryState(s, 12));
    for (int i = 0; i < 12; ++i) {
      const std::string cell = "c" + std::to_string(i % 4);
      ASSERT_TRUE(s.LinkRun({"sw", "r" + std::to_string(i), cell, "label " + cell,
                             "{\"cell\":\"" + cell + "\"}"})
                      .ok());
    }
    RunRecord keyed = SampleRun("keyed");
    keyed.config_key = "kk";
    keyed.config_json = "{\"keyed\":true}";
    ASSERT_TRUE(*s.InsertRunIfAbsent(keyed));
    ASSERT_TRUE(s.LinkRun({"sw", "keyed", "kk", "label kk", "{}"}).ok());
    before = *s.ListSweepRuns("sw", std::nullopt);
    cells_before = *s.ListSweepCells("sw");
  }
  ASSERT_NO_FATAL_FAILURE(UndoSchema11(path));
  ASSERT_EQ(QueryInt(path, "PRAGMA user_version"), 10);
  ASSERT_EQ(QueryInt(path, "SELECT COUNT(*) FROM runs WHERE config_json = ''"), 0);
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& s = **store;
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), CurrentSchemaVersion());
  auto expect_as_before = [&](const std::string& when) {
    auto after = s.ListSweepRuns("sw", std::nullopt);
    ASSERT_TRUE(after.ok()) << when;
    ASSERT_EQ(after->size(), before.size()) << when;
    for (size_t i = 0; i < before.size(); ++i) {
      const auto& [l0, r0] = before[i];
      const auto& [l1, r1] = (*after)[i];
      EXPECT_EQ(l1.run_id, l0.run_id) << when;
      EXPECT_EQ(l1.position, l0.position) << when;
      EXPECT_EQ(l1.cell_key, l0.cell_key) << when;
      EXPECT_EQ(l1.cell_label, l0.cell_label) << when;
      EXPECT_EQ(l1.cell_params_json, l0.cell_params_json) << when;
      EXPECT_EQ(r1.config_json, r0.config_json) << when;
      EXPECT_EQ(r1.state, r0.state) << when;
    }
    auto cells = s.ListSweepCells("sw");
    ASSERT_TRUE(cells.ok());
    ASSERT_EQ(cells->size(), cells_before.size());
    for (size_t i = 0; i < cells->size(); ++i) {
      EXPECT_EQ((*cells)[i].config_json, cells_before[i].config_json) << when;
      EXPECT_EQ((*cells)[i].cell_label, cells_before[i].cell_label) << when;
    }
  };
  expect_as_before("migrated");
  ExpectAggregatesMatchRuns(s, "sw", "migrated");
  // The triggers of schema 9 were made again: a run that changes moves the counters.
  RunRecord r = **s.GetRun("r2");
  r.state = RunState::kSucceeded;
  r.worker_id.clear();
  ASSERT_TRUE(s.UpdateRun(r).ok());
  before[2].second.state = RunState::kSucceeded;
  ExpectAggregatesMatchRuns(s, "sw", "after an update");
  ASSERT_NO_FATAL_FAILURE(ExecSql(path, {"VACUUM"}));
  expect_as_before("after VACUUM");
}

// Statistics stored by another version of the algorithms make their sweep stale.
// Issue 11: a sweep's change stamp moves with every committed change of what its
// replies show, on each path that writes one (a run shared by two sweeps moves both),
// and with nothing else (a heartbeat); only an exact sweep id has one.
TEST(SqliteStore, SweepChangeStampMovesWithEveryChangeASweepsRepliesShow) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"sweep-a", "a", "y", "f", 1, false, 2, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"sweep-b", "b", "y", "f", 2, false, 2, {}}).ok());
  ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun("shared")));  // running, epoch 7
  ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun("own")));
  ASSERT_TRUE(s.LinkRuns({{"sweep-a", "shared", "c", "c", "{}"},
                          {"sweep-a", "own", "c", "c", "{}"},
                          {"sweep-b", "shared", "c", "c", "{}"}})
                  .ok());
  EXPECT_FALSE(*s.SweepChangeStamp("sweep-"));  // a prefix: no sweep
  EXPECT_FALSE(*s.SweepChangeStamp("a"));       // a name: no sweep
  auto stamp = [&](const std::string& sweep) { return s.SweepChangeStamp(sweep)->value_or(-1); };
  auto run = [&](const std::string& id) { return **s.GetRun(id); };
  // Runs `change` and expects each sweep's stamp to have moved or not as told.
  auto expect = [&](const std::string& what, bool a_moves, bool b_moves,
                    const std::function<Status()>& change) {
    const int64_t a = stamp("sweep-a"), b = stamp("sweep-b");
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    const Status st = change();
    ASSERT_TRUE(st.ok()) << what << ": " << st.ToString();
    EXPECT_EQ(stamp("sweep-a") > a, a_moves) << what;
    EXPECT_EQ(stamp("sweep-b") > b, b_moves) << what;
    EXPECT_GE(stamp("sweep-a"), a) << what;
    EXPECT_GE(stamp("sweep-b"), b) << what;
  };
  expect("a heartbeat", false, false, [&] {
    RunRecord r = run("own");
    r.lease_expires_ms += 1000;
    r.updated_ms += 1;
    return s.UpdateRun(r);
  });
  expect("an error text", true, false, [&] {
    RunRecord r = run("own");
    r.error = "trainer said no";
    return s.UpdateRun(r);
  });
  expect("a state change", true, false, [&] {
    RunRecord r = run("own");
    r.state = RunState::kQueued;
    r.worker_id = "";
    return s.UpdateRun(r);
  });
  expect("an epoch of a shared run", true, true, [&] {
    RunRecord r = run("shared");
    r.epoch = 8;
    return s.AppendEpoch(r, {"shared", 8, 2, 0.5, 0.2, 0.3, 0.9, 0.1, 1.5, 100});
  });
  expect("an epoch not evaluated", true, true, [&] {
    RunRecord r = run("shared");
    r.epoch = 9;
    return s.AppendEpoch(r, {"shared", 9, 2, 0.4, 0.2, -1, -1, 0.1, 1.5, 100});
  });
  // The run's row stays as it was (same test error and seconds): only the epoch's
  // other values change.
  expect("an epoch replaced", true, true, [&] {
    return s.PutEpoch({"shared", 9, 2, 0.35, 0.2, -1, -1, 0.1, 1.5, 100}, "w-1");
  });
  ASSERT_EQ(run("shared").epoch, 9);
  // Its summary stays too (epoch 9 was not evaluated, took as long as 8).
  const RunRecord before_delete = run("shared");
  expect("an epoch deleted", true, true, [&] { return s.DeleteEpochsAfter("shared", 8); });
  EXPECT_EQ(run("shared").final_test_error, before_delete.final_test_error);
  EXPECT_EQ(run("shared").last_k_test_error, before_delete.last_k_test_error);
  expect("a cancel", true, false, [&] { return s.SetSweepCancelled("sweep-a"); });
  expect("a delete", false, true, [&] { return s.SetSweepArchived("sweep-b"); });
  expect("a new link", false, true, [&] {
    RESWEEP_ASSIGN_OR_RETURN(bool inserted, s.InsertRunIfAbsent(SampleRun("late")));
    if (!inserted) return InternalError("not inserted");
    return s.LinkRuns({{"sweep-b", "late", "c", "c", "{}"}});
  });
  expect("statistics stored", false, false,
         [&] { return s.UpdateSweepStatistics("sweep-a", 0, {}, {}); });
}

// A database of schema 11 gets change stamps on open, which move from then on.
TEST(SqliteStore, MigrationTo12GivesEverySweepAChangeStamp) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    ASSERT_TRUE(*(*store)->InsertRunIfAbsent(SampleRun("r")));
    ASSERT_TRUE((*store)->LinkRun({"sw", "r", "c", "c", "{}"}).ok());
  }
  ASSERT_NO_FATAL_FAILURE(UndoSchema12(path));
  ASSERT_EQ(QueryInt(path, "PRAGMA user_version"), 11);
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& s = **store;
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), CurrentSchemaVersion());
  const std::optional<int64_t> before = *s.SweepChangeStamp("sw");
  ASSERT_TRUE(before);
  RunRecord r = **s.GetRun("r");
  r.epoch += 1;
  ASSERT_TRUE(s.AppendEpoch(r, {"r", r.epoch, r.attempt, 0.5, 0.2, 0.3, 0.9, 0.1, 1.5, 1}).ok());
  EXPECT_GT(s.SweepChangeStamp("sw")->value_or(-1), *before);
  // The counters kept by the trigger made again are right.
  EXPECT_EQ(s.SweepProgress("sw")->epochs_done, r.epoch);
}

// A database of schema 12 (its runs mid-epoch) is counted the same after the
// migration to 13: by run_counted for every other write, by AppendNextEpoch for its
// epochs in a batch.
TEST(SqliteStore, MigrationTo13KeepsTheCountersOfRunsMidSweep) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    for (const char* id : {"r1", "r2"}) {
      ASSERT_TRUE(*(*store)->InsertRunIfAbsent(SampleRun(id)));
      ASSERT_TRUE((*store)->LinkRun({"sw", id, "c", "c", "{}"}).ok());
    }
  }
  ASSERT_NO_FATAL_FAILURE(UndoSchema13(path));
  ASSERT_EQ(QueryInt(path, "PRAGMA user_version"), 12);
  ASSERT_EQ(QueryInt(path,
                     "SELECT COUNT(*) FROM pragma_table_info('runs') "
                     "WHERE name = 'counted_appends'"),
            0);
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Store& s = **store;
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), CurrentSchemaVersion());
  ExpectAggregatesMatchRuns(s, "sw", "migrated");
  ASSERT_TRUE(s.BeginBatch().ok());
  for (int epoch = 8; epoch <= 10; ++epoch) {
    EpochRecord e{"r1", epoch, 2, 0.1, 0.2, 0.3};
    e.seconds = epoch / 3.0;
    ASSERT_TRUE(*s.AppendNextEpoch("w-1", e, 999, 77));
  }
  ASSERT_TRUE(s.CommitBatch().ok());
  RunRecord r2 = **s.GetRun("r2");  // a write run_counted counts
  r2.state = RunState::kSucceeded;
  ASSERT_TRUE(s.UpdateRun(r2).ok());
  ExpectAggregatesMatchRuns(s, "sw", "after epochs and a finished run");
  EXPECT_EQ(s.SweepProgress("sw")->epochs_done, 10 + 7);
}

TEST(SqliteStore, StatisticsOfAnotherVersionMakeTheirSweepStale) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  for (const char* id : {"old", "current"}) {
    ASSERT_TRUE(s.InsertSweep({id, id, "y", "f", 1, false, 2, {}}).ok());
    ASSERT_TRUE(
        s.UpdateSweepStatistics(
             id, 0, {{0, std::string("d") + (id[0] == 'o' ? '\x07' : '\x01') + "k", "v"}}, {})
            .ok());
  }
  EXPECT_TRUE(s.SweepsWithStaleStatistics(10)->empty());
  EXPECT_EQ(*s.MarkStatisticsOfOtherVersionsStale('\x01'), 1);
  auto stale = s.SweepsWithStaleStatistics(10);
  ASSERT_TRUE(stale.ok());
  ASSERT_EQ(stale->size(), 1u);
  EXPECT_EQ((*stale)[0].first, "old");
}

// A database written before results summaries existed (schema 6) gets them on open:
// summary K from the run's first sweep, final and last-K errors from its epochs.
TEST(SqliteStore, MigrationFillsResultsSummariesOfExistingRuns) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    Store& s = **store;
    ASSERT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun("r1")));
    ASSERT_TRUE(s.LinkRun({"sw", "r1", "c", "c", "{}"}).ok());
    for (int epoch = 1; epoch <= 3; ++epoch) {
      EpochRecord e{"r1", epoch, 2, 0, 0, 0.1 * epoch};
      e.seconds = 10.0 * epoch;
      ASSERT_TRUE(s.PutEpoch(e, "w-1").ok());
    }
    RunRecord r = **s.GetRun("r1");
    r.epoch = 3;
    ASSERT_TRUE(s.UpdateRun(r).ok());
  }
  ASSERT_NO_FATAL_FAILURE(UndoSchema11(path));
  ASSERT_NO_FATAL_FAILURE(ExecSql(path, {std::begin(kUndoSchema9), std::end(kUndoSchema9)}));
  ASSERT_NO_FATAL_FAILURE(ExecSql(
      path,
      {"ALTER TABLE runs DROP COLUMN summary_k", "ALTER TABLE runs DROP COLUMN final_test_error",
       "ALTER TABLE runs DROP COLUMN last_k_test_error",
       "ALTER TABLE runs DROP COLUMN last_epoch_seconds", "PRAGMA user_version = 6"}));
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const RunRecord r = **(*store)->GetRun("r1");
  EXPECT_EQ(r.summary_k, 2);
  EXPECT_DOUBLE_EQ(r.final_test_error, 0.3);
  EXPECT_DOUBLE_EQ(r.last_k_test_error, (0.3 + 0.2) / 2);
  // The sweep's progress reads the newest epoch's duration from the run.
  auto progress = (*store)->SweepProgress("sw");
  ASSERT_TRUE(progress.ok());
  EXPECT_DOUBLE_EQ(progress->mean_epoch_seconds, 30.0);
  EXPECT_EQ(progress->epochs_done, 3);
}

TEST(SqliteStore, MigratesAnEmptyFileAndRefusesNewerSchemas) {
  TempDir dir;
  const std::string path = dir.File("s.db");
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->InsertSweep({"id", "n", "y", "f", 1, false, 5, {}}).ok());
  }
  {
    // Reopening keeps the data (no re-migration).
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok());
    EXPECT_TRUE((*store)->GetSweep("id")->has_value());
  }
  {
    auto ro = OpenSqliteStore(path, {.read_only = true});
    ASSERT_TRUE(ro.ok()) << ro.status().ToString();
    EXPECT_TRUE((*ro)->GetSweep("id")->has_value());
    // Writes through a read-only store fail cleanly.
    EXPECT_FALSE((*ro)->InsertSweep({"id2", "n", "y", "f", 1, false, 5, {}}).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, ("PRAGMA user_version = " + std::to_string(CurrentSchemaVersion() + 1)).c_str(),
               nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto newer = OpenSqliteStore(path);
  EXPECT_EQ(newer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(newer.status().message().find("newer"), std::string::npos);
}

// Pages of a sweep's runs, by the position of the last one listed, list every run
// once in grid order, also when another sweep's links were made between its own and
// while the pages are read.
TEST(SqliteStore, PagesOfASweepsRunsListEachRunOnceInGridOrder) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"aaa", "a", "yaml", "a.yaml", 1, false, 5, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"bbb", "b", "yaml", "b.yaml", 2, false, 5, {}}).ok());
  std::vector<std::string> expected, running;
  int other = 0;
  auto link_other = [&] {
    const std::string id = "b-" + std::to_string(other++);
    ASSERT_TRUE(*s.InsertRunIfAbsent(SampleRun(id)));
    ASSERT_TRUE(s.LinkRun({"bbb", id, "cell", "label", "{}"}).ok());
  };
  for (int i = 0; i < 23; ++i) {
    // Ids out of their grid order, so that an order by id would show.
    const std::string id = "a-" + std::to_string(1000 - i);
    RunRecord run = SampleRun(id);
    run.state = i % 3 == 0 ? RunState::kRunning : RunState::kQueued;
    ASSERT_TRUE(*s.InsertRunIfAbsent(run));
    ASSERT_TRUE(s.LinkRun({"aaa", id, "cell", "label", "{}"}).ok());
    expected.push_back(id);
    if (run.state == RunState::kRunning) running.push_back(id);
    if (i % 4 == 0) link_other();
  }
  auto page_through = [&](std::optional<RunState> state, int limit) {
    std::vector<std::string> seen;
    int64_t after = 0;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = s.ListSweepRunsPage("aaa", state, after, limit);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok() || page->empty()) break;
      EXPECT_LE(static_cast<int>(page->size()), limit);
      for (const auto& [link, run] : *page) {
        EXPECT_EQ(link.sweep_id, "aaa");
        EXPECT_GT(link.position, after);
        seen.push_back(run.run_id);
      }
      after = page->back().first.position;
      link_other();  // another sweep's runs arrive between pages
    }
    return seen;
  };
  EXPECT_EQ(page_through(std::nullopt, 5), expected);
  EXPECT_EQ(page_through(std::nullopt, 23), expected);
  EXPECT_EQ(page_through(RunState::kRunning, 2), running);
  std::vector<std::string> whole;
  auto listed = s.ListSweepRuns("aaa", std::nullopt);
  ASSERT_TRUE(listed.ok());
  for (const auto& [link, run] : *listed) whole.push_back(run.run_id);
  EXPECT_EQ(whole, expected);
  EXPECT_FALSE(s.ListSweepRunsPage("aaa", std::nullopt, 0, 0).ok());  // a page needs a limit
}

TEST(SqliteStore, ListsSweepsPageByPageInSubmissionOrderOrNewestFirstWithoutTheirSpecs) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  // Inserted out of creation order; two created in the same millisecond.
  for (const auto& [id, created, archived] :
       std::vector<std::tuple<std::string, int, bool>>{{"e5", 50, false},
                                                       {"a1", 10, false},
                                                       {"c3", 30, true},
                                                       {"b2", 20, false},
                                                       {"d4", 20, false}}) {
    ASSERT_TRUE(
        s.InsertSweep({id, "n" + id, "yaml: big", "f.yaml", created, false, 5, {"x"}}).ok());
    if (archived) ASSERT_TRUE(s.SetSweepArchived(id).ok());
  }
  auto page_through = [&](bool include_archived, int limit,
                          SweepOrder order = SweepOrder::kOldestFirst) {
    std::vector<std::string> seen;
    std::optional<SweepCursor> after;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = s.ListSweepsPage(include_archived, order, after, limit);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int>(page->sweeps.size()), limit);
      for (const auto& sweep : page->sweeps) {
        seen.push_back(sweep.sweep_id);
        EXPECT_EQ(sweep.spec_yaml, "");
        EXPECT_EQ(sweep.name, "n" + sweep.sweep_id);
        EXPECT_EQ(sweep.grid_axes, std::vector<std::string>{"x"});
      }
      if (!page->next) break;
      after = page->next;
    }
    return seen;
  };
  const std::vector<std::string> all = {"a1", "b2", "d4", "c3", "e5"};
  const std::vector<std::string> live = {"a1", "b2", "d4", "e5"};
  EXPECT_EQ(page_through(true, 2), all);
  EXPECT_EQ(page_through(true, 5), all);  // exactly one page: no next
  EXPECT_EQ(page_through(false, 1), live);
  EXPECT_EQ(page_through(false, 100), live);
  // Newest first: the exact reverse, ties (b2, d4 in the same millisecond) included,
  // across page boundaries of every size.
  const std::vector<std::string> all_newest(all.rbegin(), all.rend());
  const std::vector<std::string> live_newest(live.rbegin(), live.rend());
  for (int limit : {1, 2, 3, 5, 100}) {
    SCOPED_TRACE(limit);
    EXPECT_EQ(page_through(true, limit, SweepOrder::kNewestFirst), all_newest);
    EXPECT_EQ(page_through(false, limit, SweepOrder::kNewestFirst), live_newest);
  }
  auto first = s.ListSweepsPage(true, SweepOrder::kNewestFirst, std::nullopt, 2);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->next);
  EXPECT_EQ(first->next->created_ms, 30);  // past c3, the last of page 1
  // A sweep submitted later comes first in the newest-first order, while a page
  // reached by its cursor stays where it was.
  ASSERT_TRUE(s.InsertSweep({"f6", "nf6", "yaml", "f.yaml", 60, false, 5, {"x"}}).ok());
  auto again = s.ListSweepsPage(true, SweepOrder::kNewestFirst, std::nullopt, 1);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->sweeps.size(), 1u);
  EXPECT_EQ(again->sweeps[0].sweep_id, "f6");
  auto second = s.ListSweepsPage(true, SweepOrder::kNewestFirst, first->next, 2);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->sweeps.size(), 2u);
  EXPECT_EQ(second->sweeps[0].sweep_id, "d4");
  EXPECT_EQ(second->sweeps[1].sweep_id, "b2");
  std::vector<std::string> whole;
  auto listed = s.ListSweeps();
  ASSERT_TRUE(listed.ok());
  for (const auto& sweep : *listed) whole.push_back(sweep.sweep_id);
  EXPECT_EQ(whole, (std::vector<std::string>{"a1", "b2", "d4", "c3", "e5", "f6"}));
}

TEST(SqliteStore, FindsSweepsByNameAndIdPrefixWithoutTheirSpecs) {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("s.db"));
  ASSERT_TRUE(store.ok());
  Store& s = **store;
  ASSERT_TRUE(s.InsertSweep({"ab12", "same", "yaml", "f.yaml", 10, false, 5, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"ab34", "same", "yaml", "f.yaml", 30, false, 5, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"ab56", "same", "yaml", "f.yaml", 40, false, 5, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"cd78", "gone", "yaml", "f.yaml", 20, false, 5, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"cd90", "gone", "yaml", "f.yaml", 50, false, 5, {}}).ok());
  ASSERT_TRUE(s.SetSweepArchived("ab56").ok());
  ASSERT_TRUE(s.SetSweepArchived("cd78").ok());
  ASSERT_TRUE(s.SetSweepArchived("cd90").ok());

  auto named = s.NewestSweepNamed("same");  // the newest live one, not the newer archived
  ASSERT_TRUE(named.ok() && named->has_value());
  EXPECT_EQ((*named)->sweep_id, "ab34");
  EXPECT_EQ((*named)->spec_yaml, "");
  auto archived = s.NewestSweepNamed("gone");  // none live: the newest archived
  ASSERT_TRUE(archived.ok() && archived->has_value());
  EXPECT_EQ((*archived)->sweep_id, "cd90");
  EXPECT_TRUE((*archived)->archived);
  EXPECT_FALSE(s.NewestSweepNamed("nothing")->has_value());

  auto ids = [&](const std::string& prefix, int limit) {
    std::vector<std::string> out;
    auto found = s.SweepsWithIdPrefix(prefix, limit);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    if (!found.ok()) return out;
    for (const auto& sweep : *found) {
      EXPECT_EQ(sweep.spec_yaml, "");
      out.push_back(sweep.sweep_id);
    }
    return out;
  };
  EXPECT_EQ(ids("ab", 10), (std::vector<std::string>{"ab12", "ab34", "ab56"}));
  EXPECT_EQ(ids("ab", 2), (std::vector<std::string>{"ab12", "ab34"}));
  EXPECT_EQ(ids("cd90", 10), std::vector<std::string>{"cd90"});
  EXPECT_TRUE(ids("ab%", 10).empty());  // no pattern characters
  EXPECT_TRUE(ids("e", 10).empty());
}

TEST(SqliteStore, ReadOnlyOpenOfAMissingFileIsAnError) {
  TempDir dir;
  auto ro = OpenSqliteStore(dir.File("missing.db"), {.read_only = true});
  EXPECT_FALSE(ro.ok());
  EXPECT_NE(ro.status().message().find("missing.db"), std::string::npos);
}

// Group commit (Store::BeginBatch): what another connection sees, as a reader such as
// `resweep results --db` would: only what is committed.
class StoreBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenSqliteStore(dir_.File("s.db"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }

  // Whether the run is durable: visible to a separate read-only connection.
  bool Durable(const std::string& run_id) {
    auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return false;
    auto run = (*reader)->GetRun(run_id);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() && run->has_value();
  }
  // Whether this store (the writer) has the run.
  bool Has(const std::string& run_id) {
    auto run = store_->GetRun(run_id);
    EXPECT_TRUE(run.ok());
    return run.ok() && run->has_value();
  }
  Status Insert(const std::string& run_id) {
    return store_->RunInTransaction([&]() -> Status {
      auto inserted = store_->InsertRunIfAbsent(SampleRun(run_id));
      return inserted.ok() ? Status::Ok() : inserted.status();
    });
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreBatchTest,
       AFailingTransactionUndoesOnlyItsOwnWritesAndNothingIsDurableBeforeTheCommit) {
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(Insert("a").ok());
  Status failed = store_->RunInTransaction([&]() -> Status {
    RESWEEP_RETURN_IF_ERROR(store_->InsertRunIfAbsent(SampleRun("b")).status());
    // A nested transaction that fails undoes its own write; the outer one goes on.
    EXPECT_FALSE(store_
                     ->RunInTransaction([&]() -> Status {
                       RESWEEP_RETURN_IF_ERROR(
                           store_->InsertRunIfAbsent(SampleRun("b-inner")).status());
                       return FailedPreconditionError("inner refused");
                     })
                     .ok());
    EXPECT_FALSE(Has("b-inner"));
    EXPECT_TRUE(Has("b"));
    return FailedPreconditionError("refused");
  });
  EXPECT_EQ(failed.code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Insert("c").ok());
  EXPECT_TRUE(Has("a"));
  EXPECT_FALSE(Has("b"));
  EXPECT_TRUE(Has("c"));
  EXPECT_FALSE(Durable("a"));  // one commit for the whole batch, at its end
  EXPECT_FALSE(Durable("c"));
  ASSERT_TRUE(store_->CommitBatch().ok());
  EXPECT_TRUE(Durable("a"));
  EXPECT_FALSE(Durable("b"));
  EXPECT_FALSE(Durable("b-inner"));
  EXPECT_TRUE(Durable("c"));
  // After the batch, transactions commit on their own again.
  ASSERT_TRUE(Insert("d").ok());
  EXPECT_TRUE(Durable("d"));
}

TEST_F(StoreBatchTest, ABatchCommittedBeforeSyncIsCommittedAndSyncsFromAnotherThread) {
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(Insert("a").ok());
  ASSERT_TRUE(store_->CommitBatchBeforeSync().ok());
  EXPECT_TRUE(Durable("a"));  // committed: another connection reads it
  // The next batch writes while another thread syncs the first one.
  ASSERT_TRUE(store_->BeginBatch().ok());
  Status synced = InternalError("not run");
  std::thread syncer([&] { synced = store_->SyncCommitted(); });
  ASSERT_TRUE(Insert("b").ok());
  syncer.join();
  EXPECT_TRUE(synced.ok()) << synced.ToString();
  ASSERT_TRUE(store_->CommitBatch().ok());
  EXPECT_TRUE(Durable("b"));
  // After the batches, transactions commit on their own again.
  ASSERT_TRUE(Insert("c").ok());
  EXPECT_TRUE(Durable("c"));
  EXPECT_FALSE(store_->CommitBatchBeforeSync().ok());  // no batch open
}

TEST_F(StoreBatchTest, AnotherThreadsTransactionIsDurableWhenItReturnsAndAnAbortKeepsIt) {
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(Insert("batched-before").ok());
  // Store calls are serialised by the caller (here: one after the other).
  std::thread other([&] { ASSERT_TRUE(Insert("other-thread").ok()); });
  other.join();
  EXPECT_TRUE(Durable("other-thread"));
  EXPECT_TRUE(Durable("batched-before"));  // committed with it
  ASSERT_TRUE(Insert("batched-after").ok());
  EXPECT_FALSE(Durable("batched-after"));
  ASSERT_TRUE(store_->AbortBatch().ok());
  EXPECT_FALSE(Has("batched-after"));
  EXPECT_TRUE(Has("other-thread"));
  EXPECT_TRUE(Has("batched-before"));
  EXPECT_FALSE(store_->CommitBatch().ok());  // no batch open
}

// After a failed sync nothing tells which commits reached the disk: Linux reports a
// failed write-back once, to one fdatasync, and may drop the pages it could not
// write, so a later fdatasync returns OK while the log has a hole that ends it at
// recovery (the frames after it are lost too). Every later sync fails then, and so
// does every new write: the coordinator must restart and recover from the disk.
TEST_F(StoreBatchTest, AFailedSyncFailsEveryLaterSyncAndWrite) {
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(Insert("a").ok());
  ASSERT_TRUE(store_->CommitBatchBeforeSync().ok());
  // The sync fails (injected: the log cannot be found while it runs).
  const std::string wal = dir_.File("s.db") + "-wal";
  ASSERT_EQ(std::rename(wal.c_str(), (wal + ".away").c_str()), 0);
  const Status failed = store_->SyncCommitted();
  ASSERT_EQ(std::rename((wal + ".away").c_str(), wal.c_str()), 0);
  ASSERT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  // The next batch's writes follow the ones of unknown fate in the log.
  Status begun = store_->BeginBatch();
  if (begun.ok()) {
    const Status inserted = Insert("b");
    const Status committed = store_->CommitBatchBeforeSync();
    if (inserted.ok() && committed.ok()) {
      const Status synced = store_->SyncCommitted();
      EXPECT_FALSE(synced.ok()) << "a sync after a failed one said the batch is durable";
    }
  }
  EXPECT_FALSE(store_->SyncCommitted().ok());
  EXPECT_EQ(Insert("c").code(), StatusCode::kUnavailable) << "a write after a failed sync";
}

// In a batch, an epoch report is one fenced row of the epoch log (Store::
// AppendNextEpoch): a refused one wrote nothing and the batch goes on. When the log
// cannot be applied as a batch commits (an epoch that cannot be inserted), the batch
// commits without the apply: its calls stand, the rows stay in the log, and a read on
// this connection fails until the log can be applied (it never reads a run behind
// its log). Once it can, every logged epoch lands, counted once.
TEST_F(StoreBatchTest, AnEpochThatCannotBeAppliedStaysInTheLogAndTheBatchCommits) {
  for (const char* id : {"r1", "r2"}) ASSERT_TRUE(Insert(id).ok());  // running at epoch 7
  ASSERT_TRUE(store_->InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
  for (const char* id : {"r1", "r2"}) ASSERT_TRUE(store_->LinkRun({"sw", id, "c", "c", "{}"}).ok());
  EpochRecord e{"r1", 8, 2, 0.1, 0.2, 0.25};
  ASSERT_TRUE(store_->BeginBatch().ok());
  auto appended = store_->AppendNextEpoch("w-1", e, 999, 77);
  ASSERT_TRUE(appended.ok() && *appended) << appended.status().ToString();
  EpochRecord stale = e;
  stale.epoch = 9;
  appended = store_->AppendNextEpoch("w-2", stale, 999, 77);  // another worker: refused
  ASSERT_TRUE(appended.ok() && !*appended);
  ASSERT_TRUE(store_->CommitBatch().ok());
  ASSERT_EQ(store_->ListEpochs("r1")->size(), 1u);

  // Injected: epoch 8 of r2 cannot be inserted (a trigger made by another connection).
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("s.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other,
                         "CREATE TRIGGER injected BEFORE INSERT ON epochs "
                         "WHEN NEW.run_id = 'r2' BEGIN SELECT RAISE(ABORT, 'injected'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_TRUE(store_->BeginBatch().ok());
  e.epoch = 9;
  appended = store_->AppendNextEpoch("w-1", e, 1999, 177);
  ASSERT_TRUE(appended.ok() && *appended) << appended.status().ToString();
  EpochRecord r2{"r2", 8, 2, 0.1, 0.2, 0.5};
  appended = store_->AppendNextEpoch("w-1", r2, 1999, 177);
  ASSERT_TRUE(appended.ok() && *appended) << appended.status().ToString();
  const Status committed = store_->CommitBatch();
  EXPECT_TRUE(committed.ok()) << committed.ToString();
  EXPECT_EQ(QueryInt(dir_.File("s.db"), "SELECT COUNT(*) FROM epoch_log"), 2);
  EXPECT_TRUE(store_->HoldsUnappliedEpochs());
  auto read = store_->GetRun("r1");
  EXPECT_FALSE(read.ok()) << "read a run behind its log";
  // The failed read rolled its apply back: reports wait for a read that applies.
  ASSERT_TRUE(store_->BeginBatch().ok());
  e.epoch = 10;
  appended = store_->AppendNextEpoch("w-1", e, 2999, 277);
  EXPECT_TRUE(appended.ok() && !*appended) << "logged without knowing the log's last epoch";
  ASSERT_TRUE(store_->CommitBatch().ok());
  ASSERT_EQ(sqlite3_exec(other, "DROP TRIGGER injected", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  EXPECT_EQ((**store_->GetRun("r1")).epoch, 9);
  ASSERT_TRUE(store_->BeginBatch().ok());
  appended = store_->AppendNextEpoch("w-1", e, 2999, 277);
  EXPECT_TRUE(appended.ok() && *appended) << appended.status().ToString();
  ASSERT_TRUE(store_->CommitBatch().ok());
  EXPECT_EQ((**store_->GetRun("r1")).epoch, 10);
  EXPECT_EQ((**store_->GetRun("r1")).updated_ms, 277);
  EXPECT_EQ(store_->ListEpochs("r1")->size(), 3u);
  EXPECT_EQ((**store_->GetRun("r2")).epoch, 8);
  EXPECT_EQ(store_->ListEpochs("r2")->size(), 1u);
  EXPECT_EQ(QueryInt(dir_.File("s.db"), "SELECT COUNT(*) FROM epoch_log"), 0);
  ExpectAggregatesMatchRuns(*store_, "sw", "after the log could be applied");
}

// In a batch, AppendNextEpoch counts its epochs into the sweeps' counters once per
// batch and sweep, not per report (run_counted skips its UPDATE): whatever reads the
// counters (this connection inside the batch, another after a commit, a transaction of
// another thread that commits the batch so far) sees what a recount of the runs
// gives, and a batch rolled back counts nothing. Runs r3-r5 belong to both sweeps.
TEST_F(StoreBatchTest, AppendedEpochsAreCountedInEverySweepOfTheRunOncePerBatch) {
  Store& s = *store_;
  ASSERT_TRUE(s.InsertSweep({"a", "a", "y", "f", 1, false, 2, {}}).ok());
  ASSERT_TRUE(s.InsertSweep({"b", "b", "y", "f", 2, false, 3, {}}).ok());
  for (int i = 0; i < 6; ++i) {
    RunRecord r = SampleRun("r" + std::to_string(i));
    r.config_json = "{\"run\":" + std::to_string(i) + "}";
    r.epoch = i % 2 ? 0 : 7;  // some take their first epoch here
    ASSERT_TRUE(*s.InsertRunIfAbsent(r));
    ASSERT_TRUE(s.LinkRun({"a", r.run_id, "c", "c", "{}"}).ok());
    if (i >= 3) {
      ASSERT_TRUE(s.LinkRun({"b", r.run_id, "c", "c", "{}"}).ok());
    }
  }
  std::mt19937 rng(5);
  auto report = [&](int i) {
    const RunRecord r = **s.GetRun("r" + std::to_string(i));
    EpochRecord e{r.run_id, r.epoch + 1, r.attempt, 0.1, 0.2, (rng() % 100) / 97.0};
    e.seconds = 1 + (rng() % 50) / 7.0;
    auto appended = s.AppendNextEpoch("w-1", e, 1000, 10);
    ASSERT_TRUE(appended.ok() && *appended) << appended.status().ToString();
  };
  auto expect_counted = [&](Store& store, const std::string& when) {
    for (const char* sweep : {"a", "b"}) ExpectAggregatesMatchRuns(store, sweep, when);
  };
  const int64_t stamp_before = **s.SweepChangeStamp("b");
  for (int batch = 0; batch < 6; ++batch) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    ASSERT_TRUE(s.BeginBatch().ok());
    for (int k = 0; k < 10; ++k) report(rng() % 6);
    expect_counted(s, "inside the batch");  // this connection, before its commit
    for (int k = 0; k < 10; ++k) report(rng() % 6);
    if (batch == 2) {
      // Another thread's transaction commits the batch so far, then its own.
      std::thread other([&] {
        EXPECT_TRUE(s.RunInTransaction([&] { return s.SetSweepArchived("a", false); }).ok());
      });
      other.join();
      auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
      ASSERT_TRUE(reader.ok());
      expect_counted(**reader, "committed by another thread's transaction");
      for (int k = 0; k < 5; ++k) report(rng() % 6);
    }
    if (batch == 4) {
      ASSERT_TRUE(s.AbortBatch().ok());
      expect_counted(s, "after a batch rolled back");
    } else {
      ASSERT_TRUE(s.CommitBatch().ok());
    }
    auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
    ASSERT_TRUE(reader.ok());
    expect_counted(**reader, "committed");
    if (HasFailure()) return;
  }
  EXPECT_GT(**s.SweepChangeStamp("b"), stamp_before);
  EXPECT_GT(s.SweepProgress("b")->epochs_done, 3 * 7);
}

// SQLite rolls a whole transaction back itself after some failures of one statement
// (a full disk, an I/O error, no memory; injected here with RAISE(ROLLBACK) from a
// trigger another connection makes). When that statement is a bare one of the batch
// (AppendNextEpoch's UPDATE has no savepoint), the batch's transaction is gone:
// nothing after it may be written outside it, in autocommit, and so stand while the
// batch fails; above all not an epoch without its count, or a count without its epoch.
class StoreBatchRolledBackTest : public StoreBatchTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StoreBatchTest::SetUp());
    ASSERT_TRUE(store_->InsertSweep({"sw", "n", "y", "f", 1, false, 2, {}}).ok());
    for (const char* id : {"r1", "r2", "r3"}) {  // running at epoch 7
      ASSERT_TRUE(Insert(id).ok());
      ASSERT_TRUE(store_->LinkRun({"sw", id, "c", "c", "{}"}).ok());
    }
  }
  void TearDown() override {
    if (other_ != nullptr) sqlite3_close(other_);
  }
  // A trigger made by another connection (`sql`: its CREATE TRIGGER).
  void Inject(const char* sql) {
    ASSERT_EQ(sqlite3_open(dir_.File("s.db").c_str(), &other_), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other_, sql, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(other_);
  }
  void Uninject() {
    ASSERT_EQ(sqlite3_exec(other_, "DROP TRIGGER injected", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  StatusOr<bool> Report(const std::string& run_id) {
    EpochRecord e{run_id, 8, 2, 0.1, 0.2, 0.25};
    e.seconds = 3;
    return store_->AppendNextEpoch("w-1", e, 999, 77);
  }
  // Nothing of the batch stands, and the counters (as another connection reads them)
  // are those of the runs.
  void ExpectNothingOfTheBatch() {
    for (const char* id : {"r1", "r2", "r3"}) {
      EXPECT_EQ((**store_->GetRun(id)).epoch, 7) << id;
      EXPECT_TRUE(store_->ListEpochs(id)->empty()) << id;
    }
    auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
    ASSERT_TRUE(reader.ok());
    ExpectAggregatesMatchRuns(**reader, "sw", "after the batch failed");
    EXPECT_EQ((*reader)->SweepProgress("sw")->epochs_done, 3 * 7);
  }
  // The store goes on: the same reports are recorded and counted in a new batch.
  void ExpectTheNextBatchCounts() {
    ASSERT_TRUE(store_->BeginBatch().ok());
    for (const char* id : {"r1", "r2", "r3"}) {
      auto appended = Report(id);
      ASSERT_TRUE(appended.ok() && *appended) << id << " " << appended.status().ToString();
    }
    ASSERT_TRUE(store_->CommitBatch().ok());
    // Three reports right after an apply came fast: they may wait in the log.
    ASSERT_TRUE(store_->ApplyLoggedEpochs().ok());
    EXPECT_FALSE(store_->HoldsUnappliedEpochs());
    auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
    ASSERT_TRUE(reader.ok());
    ExpectAggregatesMatchRuns(**reader, "sw", "the next batch");
    EXPECT_EQ((*reader)->SweepProgress("sw")->epochs_done, 3 * 8);
  }

  sqlite3* other_ = nullptr;
};

// A report whose statement rolled the batch back: the owner's next report fails too
// (it is not written in autocommit, its epoch logged and never applied).
TEST_F(StoreBatchRolledBackTest, AReportAfterOneThatRolledTheBatchBackFailsToo) {
  ASSERT_NO_FATAL_FAILURE(
      Inject("CREATE TRIGGER injected BEFORE INSERT ON epoch_log "
             "WHEN NEW.run_id = 'r2' BEGIN SELECT RAISE(ROLLBACK, 'injected'); END"));
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(*Report("r1"));
  auto appended = Report("r2");
  ASSERT_FALSE(appended.ok());
  EXPECT_NE(appended.status().message().find("injected"), std::string::npos)
      << appended.status().ToString();
  appended = Report("r3");
  EXPECT_EQ(appended.status().code(), StatusCode::kUnavailable)
      << (appended.ok() ? "recorded" : appended.status().ToString());
  EXPECT_FALSE(store_->CommitBatch().ok());
  ASSERT_NO_FATAL_FAILURE(Uninject());
  ExpectNothingOfTheBatch();
  ExpectTheNextBatchCounts();
}

// A read of the progress after the batch was rolled back (its epochs are gone) must
// not apply the batch's epochs in autocommit.
TEST_F(StoreBatchRolledBackTest, AReadOfProgressAfterTheBatchRolledBackCountsNothing) {
  ASSERT_NO_FATAL_FAILURE(
      Inject("CREATE TRIGGER injected BEFORE INSERT ON epoch_log "
             "WHEN NEW.run_id = 'r2' BEGIN SELECT RAISE(ROLLBACK, 'injected'); END"));
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(*Report("r1"));
  ASSERT_FALSE(Report("r2").ok());
  // The owner reads progress (outside a savepoint), and so does another thread.
  auto progress = store_->SweepProgress("sw");
  EXPECT_TRUE(!progress.ok() || progress->epochs_done == 3 * 7)
      << progress->epochs_done << " epochs done, counted in autocommit";
  std::thread reader([&] { (void)store_->SweepChangeStamp("sw"); });
  reader.join();
  EXPECT_FALSE(store_->CommitBatch().ok());
  ASSERT_NO_FATAL_FAILURE(Uninject());
  ExpectNothingOfTheBatch();
  ExpectTheNextBatchCounts();
}

// Another thread's transaction after a bare statement of the batch rolled it back
// (nothing of the batch noticed yet): the batch's counts are not written in
// autocommit before it; the batch fails, the other thread's transaction runs.
TEST_F(StoreBatchRolledBackTest, AnotherThreadsTransactionAfterTheBatchRolledBackCountsNothing) {
  ASSERT_NO_FATAL_FAILURE(
      Inject("CREATE TRIGGER injected BEFORE INSERT ON epoch_log "
             "WHEN NEW.run_id = 'r2' BEGIN SELECT RAISE(ROLLBACK, 'injected'); END"));
  ASSERT_TRUE(store_->BeginBatch().ok());
  ASSERT_TRUE(*Report("r1"));
  ASSERT_FALSE(Report("r2").ok());
  Status other = InternalError("not run");
  std::thread thread([&] {
    other = store_->RunInTransaction([&] { return store_->SetSweepArchived("sw", true); });
  });
  thread.join();
  EXPECT_FALSE(store_->CommitBatch().ok());
  ASSERT_NO_FATAL_FAILURE(Uninject());
  ExpectNothingOfTheBatch();
  EXPECT_TRUE(other.ok()) << other.ToString();
  EXPECT_TRUE((**store_->GetSweep("sw")).archived);
  ExpectTheNextBatchCounts();
}

// Epoch reports that come fast (epoch_log_defer_rate a second or more) wait in
// the epoch log: another connection sees the runs as they were until the log is
// applied, every call on the writer sees them moved. Applied, the runs, their epochs,
// results summaries and sweeps' counters are exactly what the same reports give
// written one by one outside a batch.
class EpochLogTest : public ::testing::Test {
 protected:
  static constexpr int kRuns = 3;
  // Every report of a batch stays in the log until a read (or the next open) applies it.
  static constexpr SqliteStoreOptions kAlwaysLogged = {
      .epoch_log_defer_after = 0, .epoch_log_defer_rate = 0, .epoch_log_apply_ms = 3600000};
  // A store at `name` holding runs r1-r3 (running at epoch 7 of 200) of sweep "sw"
  // (summary_k 3).
  std::unique_ptr<Store> Open(const std::string& name, SqliteStoreOptions options) {
    // No checkpoint: a copy of the database and its log is a crash's snapshot.
    options.wal_checkpoint_frames = 1 << 24;
    auto store = OpenSqliteStore(dir_.File(name), options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return nullptr;
    Store& s = **store;
    EXPECT_TRUE(s.InsertSweep({"sw", "n", "y", "f", 1, false, 3, {}}).ok());
    for (int i = 1; i <= kRuns; ++i) {
      RunRecord r = SampleRun("r" + std::to_string(i));
      r.summary_k = 3;
      EXPECT_TRUE(*s.InsertRunIfAbsent(r));
      EXPECT_TRUE(s.LinkRun({"sw", r.run_id, "c", "c", "{}"}).ok());
    }
    return std::move(*store);
  }
  // Epoch `epoch` of run i, with some not evaluated and errors with many digits.
  static EpochRecord Report(int i, int epoch) {
    EpochRecord e{"r" + std::to_string(i),
                  epoch,
                  2,
                  0.5,
                  0.4,
                  (epoch + i) % 3 == 0 ? -1 : (epoch * 31 + i * 7) % 97 / 97.0};
    e.seconds = 1 + (epoch * 13 + i) % 11 / 7.0;
    return e;
  }
  // Epochs 8..last of every run: one batch per epoch in `batched`, else one by one.
  static void ReportUpTo(Store& s, int last, bool batched) {
    for (int epoch = 8; epoch <= last; ++epoch) {
      if (batched) ASSERT_TRUE(s.BeginBatch().ok());
      for (int i = 1; i <= kRuns; ++i) {
        auto appended = s.AppendNextEpoch("w-1", Report(i, epoch), 1000 + epoch, 100 + epoch);
        ASSERT_TRUE(appended.ok()) << appended.status().ToString();
        ASSERT_TRUE(*appended) << "r" << i << " epoch " << epoch;
      }
      if (batched) ASSERT_TRUE(s.CommitBatch().ok());
    }
  }
  int64_t LoggedRows(const std::string& name) {
    return QueryInt(dir_.File(name), "SELECT COUNT(*) FROM epoch_log");
  }
  RunRecord ReadRun(const std::string& name, const std::string& run_id) {
    auto reader = OpenSqliteStore(dir_.File(name), {.read_only = true});
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    return reader.ok() ? (*(*reader)->GetRun(run_id)).value_or(RunRecord{}) : RunRecord{};
  }
  static void ExpectSameRunsAndCounters(Store& logged, Store& direct) {
    for (int i = 1; i <= kRuns; ++i) {
      const std::string id = "r" + std::to_string(i);
      SCOPED_TRACE(id);
      const RunRecord a = **logged.GetRun(id);
      const RunRecord b = **direct.GetRun(id);
      EXPECT_EQ(a.epoch, b.epoch);
      EXPECT_EQ(a.last_test_error, b.last_test_error);
      EXPECT_EQ(a.final_test_error, b.final_test_error);
      EXPECT_EQ(a.last_k_test_error, b.last_k_test_error);
      EXPECT_EQ(a.updated_ms, b.updated_ms);
      const auto ea = *logged.ListEpochs(id);
      const auto eb = *direct.ListEpochs(id);
      ASSERT_EQ(ea.size(), eb.size());
      for (size_t k = 0; k < ea.size(); ++k) {
        EXPECT_EQ(std::tie(ea[k].epoch, ea[k].test_error, ea[k].seconds),
                  std::tie(eb[k].epoch, eb[k].test_error, eb[k].seconds));
      }
    }
    const SweepProgressRecord pa = *logged.SweepProgress("sw");
    const SweepProgressRecord pb = *direct.SweepProgress("sw");
    EXPECT_EQ(pa.epochs_done, pb.epochs_done);
    EXPECT_EQ(pa.epochs_left, pb.epochs_left);
    EXPECT_DOUBLE_EQ(pa.mean_epoch_seconds, pb.mean_epoch_seconds);
    ExpectAggregatesMatchRuns(logged, "sw", "applied");
  }

  TempDir dir_;
};

TEST_F(EpochLogTest, ABusyBatchsEpochsWaitInTheLogAndApplyAsWrittenOneByOne) {
  auto logged = Open("logged.db", kAlwaysLogged);
  auto direct = Open("direct.db", {});
  ASSERT_TRUE(logged && direct);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 13, /*batched=*/true));
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*direct, 13, /*batched=*/false));
  EXPECT_EQ(LoggedRows("logged.db"), 6 * kRuns);
  EXPECT_EQ(LoggedRows("direct.db"), 0);
  EXPECT_EQ(ReadRun("logged.db", "r1").epoch, 7) << "another connection saw the log applied";
  // A read on the writer applies the log first.
  EXPECT_EQ((**logged->GetRun("r2")).epoch, 13);
  EXPECT_EQ(LoggedRows("logged.db"), 0);
  EXPECT_EQ(ReadRun("logged.db", "r1").epoch, 13);
  ExpectSameRunsAndCounters(*logged, *direct);
}

// A busy log is applied in steps of its oldest epoch_log_apply_rows rows, so that no
// commit carries much more; the runs whose rows are left go on from their last
// logged epoch.
TEST_F(EpochLogTest, ABusyLogIsAppliedInStepsOfItsOldestRows) {
  auto logged = Open("logged.db", {.epoch_log_defer_after = 0,
                                   .epoch_log_defer_rate = 0,
                                   .epoch_log_apply_rows = 4,
                                   .epoch_log_apply_ms = 3600000});
  auto direct = Open("direct.db", {});
  ASSERT_TRUE(logged && direct);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 13, /*batched=*/true));
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*direct, 14, /*batched=*/false));
  // 18 rows in batches of 3, applied 4 at a time once 4 are there: epochs 13 of r2
  // and r3 are left (r1's was the 4th of the last step).
  EXPECT_EQ(LoggedRows("logged.db"), 2);
  EXPECT_EQ(ReadRun("logged.db", "r1").epoch, 13);
  EXPECT_EQ(ReadRun("logged.db", "r2").epoch, 12);
  ASSERT_TRUE(logged->BeginBatch().ok());
  for (int i = 1; i <= kRuns; ++i) {
    auto appended = logged->AppendNextEpoch("w-1", Report(i, 14), 1014, 114);
    ASSERT_TRUE(appended.ok() && *appended) << "r" << i;
  }
  ASSERT_TRUE(logged->CommitBatch().ok());
  EXPECT_EQ(LoggedRows("logged.db"), 1);
  ExpectSameRunsAndCounters(*logged, *direct);
}

// Reports that come slower than epoch_log_defer_rate are applied as their batch
// commits: other connections see every acknowledged epoch.
TEST_F(EpochLogTest, AQuietBatchAppliesTheLogAsItCommits) {
  auto logged = Open(
      "logged.db",
      {.epoch_log_defer_after = 0, .epoch_log_defer_rate = 1e9, .epoch_log_apply_ms = 3600000});
  ASSERT_TRUE(logged);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 9, /*batched=*/true));
  EXPECT_EQ(LoggedRows("logged.db"), 0);
  EXPECT_EQ(ReadRun("logged.db", "r3").epoch, 9);
}

// The log as a crash left it (the database and its write-ahead log copied while
// the writer is open) is applied when the database is opened next.
TEST_F(EpochLogTest, EpochsLoggedBeforeACrashAreAppliedAtTheNextOpen) {
  auto logged = Open("logged.db", kAlwaysLogged);
  auto direct = Open("direct.db", {});
  ASSERT_TRUE(logged && direct);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 12, /*batched=*/true));
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*direct, 12, /*batched=*/false));
  ASSERT_EQ(LoggedRows("logged.db"), 5 * kRuns);
  for (const char* suffix : {"", "-wal"}) {
    std::filesystem::copy_file(dir_.File(std::string("logged.db") + suffix),
                               dir_.File(std::string("crashed.db") + suffix));
  }
  auto crashed = OpenSqliteStore(dir_.File("crashed.db"));
  ASSERT_TRUE(crashed.ok()) << crashed.status().ToString();
  EXPECT_EQ(LoggedRows("crashed.db"), 0);
  EXPECT_EQ(ReadRun("crashed.db", "r1").epoch, 12);
  ExpectSameRunsAndCounters(**crashed, *direct);
}

// A rollback that takes an apply back (a batched call that read, then failed)
// restores the log's rows; the store no longer knows each run's last logged epoch
// and refuses reports until a read applies the log again, so that no epoch is
// logged twice or out of order.
TEST_F(EpochLogTest, AfterARolledBackApplyReportsWaitForTheNextRead) {
  auto logged = Open("logged.db", kAlwaysLogged);
  auto direct = Open("direct.db", {});
  ASSERT_TRUE(logged && direct);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*direct, 10, /*batched=*/false));
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 9, /*batched=*/true));
  ASSERT_TRUE(logged->BeginBatch().ok());
  const Status failed = logged->RunInTransaction([&]() -> Status {
    RESWEEP_RETURN_IF_ERROR(logged->GetRun("r1").status());  // applies, inside the call
    return FailedPreconditionError("the call fails");
  });
  EXPECT_EQ(failed.code(), StatusCode::kFailedPrecondition);
  auto appended = logged->AppendNextEpoch("w-1", Report(1, 10), 1010, 110);
  ASSERT_TRUE(appended.ok());
  EXPECT_FALSE(*appended) << "logged without knowing the run's last logged epoch";
  EXPECT_EQ((**logged->GetRun("r1")).epoch, 9);  // applies again
  for (int i = 1; i <= kRuns; ++i) {
    appended = logged->AppendNextEpoch("w-1", Report(i, 10), 1010, 110);
    ASSERT_TRUE(appended.ok() && *appended) << i;
  }
  ASSERT_TRUE(logged->CommitBatch().ok());
  ExpectSameRunsAndCounters(*logged, *direct);
}

// An apply inside a batch that has not committed yet is not visible to other
// connections: the store says it holds unapplied epochs until the commit.
TEST_F(EpochLogTest, EpochsAreUnappliedForOthersUntilTheApplyCommits) {
  auto logged = Open("logged.db", kAlwaysLogged);
  ASSERT_TRUE(logged);
  ASSERT_NO_FATAL_FAILURE(ReportUpTo(*logged, 8, /*batched=*/true));
  ASSERT_TRUE(logged->HoldsUnappliedEpochs());
  ASSERT_TRUE(logged->BeginBatch().ok());
  EXPECT_EQ((**logged->GetRun("r1")).epoch, 8);  // applied in the batch
  EXPECT_TRUE(logged->HoldsUnappliedEpochs()) << "said applied before the commit";
  EXPECT_EQ(ReadRun("logged.db", "r1").epoch, 7);
  // Another thread (a query's) that wants them visible gets them now: the batch so
  // far is committed first.
  Status applied = InternalError("not run");
  std::thread query([&] { applied = logged->ApplyLoggedEpochs(); });
  query.join();
  EXPECT_TRUE(applied.ok()) << applied.ToString();
  EXPECT_FALSE(logged->HoldsUnappliedEpochs());
  EXPECT_EQ(ReadRun("logged.db", "r1").epoch, 8);
  ASSERT_TRUE(logged->CommitBatch().ok());
  EXPECT_FALSE(logged->HoldsUnappliedEpochs());
  EXPECT_EQ(ReadRun("logged.db", "r2").epoch, 8);
}

// A call that fails inside a read transaction of a read-only connection (a query's)
// leaves the connection reading: it has no log to apply.
TEST_F(EpochLogTest, AFailedCallOnAReadConnectionLeavesItReading) {
  auto store = Open("s.db", {});
  ASSERT_TRUE(store);
  auto reader = OpenSqliteStore(dir_.File("s.db"), {.read_only = true});
  ASSERT_TRUE(reader.ok());
  const Status read = (*reader)->RunInReadTransaction([&]() -> Status {
    const Status inner = (*reader)->RunInTransaction([] { return NotFoundError("nothing"); });
    EXPECT_EQ(inner.code(), StatusCode::kNotFound) << inner.ToString();
    return Status::Ok();
  });
  EXPECT_TRUE(read.ok()) << read.ToString();
  EXPECT_FALSE((*reader)->HoldsUnappliedEpochs());
  auto run = (*reader)->GetRun("r1");
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_TRUE(run->has_value());
}

// A heartbeat's renewal is a compare-and-set on the lease alone, never moving it back.
TEST_F(EpochLogTest, RenewLeaseRenewsOnlyTheHeldLease) {
  auto store = Open("s.db", {});
  ASSERT_TRUE(store);
  const RunRecord before = **store->GetRun("r1");  // attempt 2 of w-1
  for (auto [worker, attempt] : {std::pair<const char*, int>{"w-2", 2}, {"w-1", 1}}) {
    auto renewed = store->RenewLease(worker, "r1", attempt, before.lease_expires_ms + 5, 1000);
    ASSERT_TRUE(renewed.ok());
    EXPECT_FALSE(*renewed) << worker << " attempt " << attempt;
  }
  EXPECT_EQ((**store->GetRun("r1")).lease_expires_ms, before.lease_expires_ms);
  auto renewed = store->RenewLease("w-1", "r1", 2, before.lease_expires_ms + 5, 1000);
  ASSERT_TRUE(renewed.ok() && *renewed);
  EXPECT_EQ((**store->GetRun("r1")).lease_expires_ms, before.lease_expires_ms + 5);
  EXPECT_EQ((**store->GetRun("r1")).updated_ms, 1000);
  renewed = store->RenewLease("w-1", "r1", 2, before.lease_expires_ms - 5, 900);
  ASSERT_TRUE(renewed.ok() && *renewed);
  EXPECT_EQ((**store->GetRun("r1")).lease_expires_ms, before.lease_expires_ms + 5);
  EXPECT_EQ((**store->GetRun("r1")).updated_ms, 1000);
  RunRecord queued = **store->GetRun("r1");
  queued.state = RunState::kQueued;
  ASSERT_TRUE(store->UpdateRun(queued).ok());
  renewed = store->RenewLease("w-1", "r1", 2, before.lease_expires_ms + 50, 2000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_FALSE(*renewed) << "a queued run's lease renewed";
}

// Another thread's big transaction while a batch is open (cancelling, retrying or
// deleting a big sweep while workers report) is a savepoint: SQLite keeps the
// original of every page it changes in a sub-journal until it ends. That journal
// may stay in memory only up to a bound (then it goes to a temporary file): held
// in memory whole it grew with the transaction (about 2.8 KiB a run here, 280 MiB
// for a sweep of 100,000 runs), and each statement's end walked all of it, so that
// such a transaction took time quadratic in its size (48 s instead of 1.8 s for
// 20,000 runs) while holding the scheduler.
TEST_F(StoreBatchTest, AnotherThreadsBigTransactionInABatchKeepsItsJournalOutOfMemory) {
  constexpr int kRuns = 8000;
  ASSERT_TRUE(store_
                  ->RunInTransaction([&]() -> Status {
                    for (int i = 0; i < kRuns; ++i) {
                      RunRecord r = SampleRun("run-" + std::to_string(i));
                      r.config_json = std::string(1000, 'c') + std::to_string(i);
                      RESWEEP_RETURN_IF_ERROR(store_->InsertRunIfAbsent(r).status());
                    }
                    return Status::Ok();
                  })
                  .ok());
  // The memory SQLite takes to change every run once: in a transaction of its own,
  // then as another thread's transaction while a batch is open.
  auto peak_memory_of_changing_every_run = [&](int round) -> int64_t {
    store_->ReleaseMemory();
    const int64_t before = sqlite3_memory_used();
    sqlite3_memory_highwater(/*resetFlag=*/1);
    Status st;
    std::thread other([&] {
      st = store_->RunInTransaction([&]() -> Status {
        for (int i = 0; i < kRuns; ++i) {
          auto run = store_->GetRun("run-" + std::to_string(i));
          if (!run.ok()) return run.status();
          RunRecord r = **run;
          r.error = "round " + std::to_string(round);
          RESWEEP_RETURN_IF_ERROR(store_->UpdateRun(r));
        }
        return Status::Ok();
      });
    });
    other.join();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return sqlite3_memory_highwater(/*resetFlag=*/0) - before;
  };
  const int64_t alone = peak_memory_of_changing_every_run(1);
  ASSERT_TRUE(store_->BeginBatch().ok());
  const int64_t in_batch = peak_memory_of_changing_every_run(2);
  ASSERT_TRUE(store_->CommitBatch().ok());
  EXPECT_EQ((*store_->GetRun("run-0"))->error, "round 2");
  // The page cache is the same; the journal adds at most its in-memory bound (8 MiB)
  // and some slack, never the whole transaction's (over 20 MiB here).
  EXPECT_LT(in_batch - alone, 12 << 20) << "alone " << alone << " bytes, in a batch " << in_batch;
}

// The statistics refresher marks statistics of another version stale once per
// coordinator, from its own thread, maybe while a batch of worker calls is open: the
// mark is a transaction of its own, durable when it returns. Made as a bare
// statement it joined the batch, and a batch that failed took it along (the
// refresher, believing it done, never marked them again).
TEST_F(StoreBatchTest, StatisticsMarkedStaleFromAnotherThreadDuringABatchStayMarked) {
  ASSERT_TRUE(store_->InsertSweep({"old", "old", "y", "f", 1, false, 2, {}}).ok());
  ASSERT_TRUE(store_->UpdateSweepStatistics("old", 0, {{0, std::string("d\x07k"), "v"}}, {}).ok());
  ASSERT_TRUE(store_->SweepsWithStaleStatistics(10)->empty());
  ASSERT_TRUE(store_->BeginBatch().ok());
  StatusOr<int> marked = InternalError("not run");
  std::thread refresher([&] { marked = store_->MarkStatisticsOfOtherVersionsStale('\x01'); });
  refresher.join();
  ASSERT_TRUE(marked.ok()) << marked.status().ToString();
  EXPECT_EQ(*marked, 1);
  ASSERT_TRUE(store_->AbortBatch().ok());  // as when the batch's commit fails
  auto stale = store_->SweepsWithStaleStatistics(10);
  ASSERT_TRUE(stale.ok());
  ASSERT_EQ(stale->size(), 1u);
  EXPECT_EQ((*stale)[0].first, "old");
}

}  // namespace
}  // namespace resweep
