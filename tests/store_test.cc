#include <gtest/gtest.h>
#include <sqlite3.h>

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
  ASSERT_TRUE(s.PutEpoch(e).ok());
  e.test_error = 0.4;  // a newer attempt replaces, never duplicates
  ASSERT_TRUE(s.PutEpoch(e).ok());
  e.epoch = 2;
  ASSERT_TRUE(s.PutEpoch(e).ok());
  auto epochs = s.ListEpochs("r1");
  ASSERT_EQ(epochs->size(), 2u);
  EXPECT_DOUBLE_EQ((*epochs)[0].test_error, 0.4);
  ASSERT_TRUE(s.DeleteEpochsAfter("r1", 1).ok());
  EXPECT_EQ(s.ListEpochs("r1")->size(), 1u);
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

TEST(SqliteStore, ReadOnlyOpenOfAMissingFileIsAnError) {
  TempDir dir;
  auto ro = OpenSqliteStore(dir.File("missing.db"), {.read_only = true});
  EXPECT_FALSE(ro.ok());
  EXPECT_NE(ro.status().message().find("missing.db"), std::string::npos);
}

}  // namespace
}  // namespace resweep
