#include <gtest/gtest.h>
#include <sqlite3.h>

#include <thread>

#include <optional>
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
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql :
       {"ALTER TABLE runs DROP COLUMN summary_k", "ALTER TABLE runs DROP COLUMN final_test_error",
        "ALTER TABLE runs DROP COLUMN last_k_test_error",
        "ALTER TABLE runs DROP COLUMN last_epoch_seconds", "PRAGMA user_version = 6"}) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  }
  sqlite3_close(db);
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

TEST(SqliteStore, ListsSweepsPageByPageInSubmissionOrderWithoutTheirSpecs) {
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
  auto page_through = [&](bool include_archived, int limit) {
    std::vector<std::string> seen;
    std::optional<SweepCursor> after;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = s.ListSweepsPage(include_archived, after, limit);
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
  std::vector<std::string> whole;
  auto listed = s.ListSweeps();
  ASSERT_TRUE(listed.ok());
  for (const auto& sweep : *listed) whole.push_back(sweep.sweep_id);
  EXPECT_EQ(whole, all);
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

}  // namespace
}  // namespace resweep
