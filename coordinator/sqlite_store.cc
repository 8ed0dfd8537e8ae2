#include "coordinator/sqlite_store.h"

#include <fcntl.h>
#include <malloc.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <limits>
#include <map>
#include <memory>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <thread>
#include <unordered_map>

#include "common/mutex.h"

namespace resweep {

const char* RunStateName(RunState state) {
  switch (state) {
    case RunState::kQueued:
      return "queued";
    case RunState::kLeased:
      return "leased";
    case RunState::kRunning:
      return "running";
    case RunState::kSucceeded:
      return "succeeded";
    case RunState::kFailed:
      return "failed";
    case RunState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::optional<RunState> ParseRunState(const std::string& name) {
  for (RunState s : {RunState::kQueued, RunState::kLeased, RunState::kRunning, RunState::kSucceeded,
                     RunState::kFailed, RunState::kCancelled}) {
    if (name == RunStateName(s)) return s;
  }
  return std::nullopt;
}

namespace {

// How run_counted (below, and again in the migration to 12) moves the counters of a
// run's sweeps from the run's OLD row to its NEW one: the assignments of its UPDATE.
#define RESWEEP_RUN_COUNTERS_SQL                                                           \
  "\n      queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'),"             \
  "\n      leased = leased + (NEW.state = 'leased') - (OLD.state = 'leased'),"             \
  "\n      running = running + (NEW.state = 'running') - (OLD.state = 'running'),"         \
  "\n      succeeded = succeeded + (NEW.state = 'succeeded') - (OLD.state = 'succeeded')," \
  "\n      failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'),"             \
  "\n      cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled')," \
  "\n      epochs_done = epochs_done + NEW.epoch - OLD.epoch,"                             \
  "\n      epochs_total = epochs_total + NEW.epochs_total - OLD.epochs_total,"             \
  "\n      epochs_left = epochs_left"                                                      \
  "\n        + CASE WHEN NEW.state IN ('queued', 'leased', 'running')"                     \
  "\n          THEN NEW.epochs_total - NEW.epoch ELSE 0 END"                               \
  "\n        - CASE WHEN OLD.state IN ('queued', 'leased', 'running')"                     \
  "\n          THEN OLD.epochs_total - OLD.epoch ELSE 0 END,"                              \
  "\n      epoch_seconds_sum = epoch_seconds_sum"                                          \
  "\n        + CASE WHEN NEW.epoch > 0 THEN NEW.last_epoch_seconds ELSE 0 END"             \
  "\n        - CASE WHEN OLD.epoch > 0 THEN OLD.last_epoch_seconds ELSE 0 END,"            \
  "\n      epoch_seconds_n = epoch_seconds_n + (NEW.epoch > 0) - (OLD.epoch > 0)"

// run_counted's condition since schema 12: a column of `runs` that a sweep's replies
// show has changed.
#define RESWEEP_RUN_SHOWN_COLUMNS_CHANGED_SQL                                                     \
  " OLD.state IS NOT NEW.state OR OLD.epoch IS NOT NEW.epoch"                                     \
  "\n  OR OLD.epochs_total IS NOT NEW.epochs_total"                                               \
  "\n  OR OLD.last_epoch_seconds IS NOT NEW.last_epoch_seconds"                                   \
  "\n  OR OLD.attempt IS NOT NEW.attempt OR OLD.worker_id IS NOT NEW.worker_id"                   \
  "\n  OR OLD.last_test_error IS NOT NEW.last_test_error OR OLD.error IS NOT NEW.error"           \
  "\n  OR OLD.param_count IS NOT NEW.param_count"                                                 \
  "\n  OR OLD.checkpoint_epoch IS NOT NEW.checkpoint_epoch OR OLD.seed IS NOT NEW.seed"           \
  "\n  OR OLD.summary_k IS NOT NEW.summary_k OR OLD.final_test_error IS NOT NEW.final_test_error" \
  "\n  OR OLD.last_k_test_error IS NOT NEW.last_k_test_error"                                     \
  "\n  OR OLD.config_json IS NOT NEW.config_json OR OLD.config_key IS NOT NEW.config_key"

// The triggers on `runs` that keep a sweep's counters and outcomes: created by the
// migration to schema 9, and again by the one to 11 after its rebuild of sweep_runs,
// which they read (see kMigrationTriggers). The one to 12 makes run_counted again,
// with the sweeps' change stamps.
constexpr const char kRunTriggersSql[] = R"sql(
CREATE TRIGGER run_counted AFTER UPDATE ON runs
WHEN OLD.state IS NOT NEW.state OR OLD.epoch IS NOT NEW.epoch
  OR OLD.epochs_total IS NOT NEW.epochs_total
  OR OLD.last_epoch_seconds IS NOT NEW.last_epoch_seconds
BEGIN
  UPDATE sweep_counters SET)sql" RESWEEP_RUN_COUNTERS_SQL R"sql(
    WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = NEW.run_id);
END;

CREATE TRIGGER run_outcome_changed AFTER UPDATE ON runs
WHEN (OLD.state = 'succeeded' OR NEW.state = 'succeeded')
  AND (OLD.state IS NOT NEW.state OR OLD.summary_k IS NOT NEW.summary_k
    OR OLD.final_test_error IS NOT NEW.final_test_error
    OR OLD.last_k_test_error IS NOT NEW.last_k_test_error
    OR OLD.param_count IS NOT NEW.param_count)
BEGIN
  DELETE FROM sweep_outcomes WHERE run_id = OLD.run_id;
  INSERT INTO sweep_outcomes
    SELECT l.sweep_id, c.ordinal, l.rowid, NEW.run_id, NEW.summary_k, NEW.final_test_error,
      NEW.last_k_test_error, NEW.param_count
    FROM sweep_runs l JOIN sweep_cells c ON c.sweep_id = l.sweep_id AND c.cell_key = l.cell_key
    WHERE l.run_id = NEW.run_id AND NEW.state = 'succeeded';
  UPDATE sweep_counters SET outcomes_version = outcomes_version + 1
    WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = NEW.run_id);
END;
)sql";

// Forward-only migrations; entry i brings the schema from version i to i+1.
const char* const kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE sweeps (
  sweep_id     TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  spec_yaml    TEXT NOT NULL,
  source_name  TEXT NOT NULL,
  created_ms   INTEGER NOT NULL,
  cancelled    INTEGER NOT NULL DEFAULT 0,
  last_k       INTEGER NOT NULL,
  grid_axes    TEXT NOT NULL
);
CREATE TABLE runs (
  run_id            TEXT PRIMARY KEY,
  config_json       TEXT NOT NULL,
  seed              INTEGER NOT NULL,
  state             TEXT NOT NULL,
  attempt           INTEGER NOT NULL,
  failures          INTEGER NOT NULL,
  max_attempts      INTEGER NOT NULL,
  worker_id         TEXT NOT NULL,
  lease_expires_ms  INTEGER NOT NULL,
  epoch             INTEGER NOT NULL,
  epochs_total      INTEGER NOT NULL,
  last_test_error   REAL NOT NULL,
  checkpoint_epoch  INTEGER NOT NULL,
  param_count       INTEGER NOT NULL,
  error             TEXT NOT NULL,
  queue_position    INTEGER NOT NULL,
  created_ms        INTEGER NOT NULL,
  updated_ms        INTEGER NOT NULL
);
CREATE INDEX runs_by_state ON runs(state, queue_position);
CREATE TABLE sweep_runs (
  sweep_id          TEXT NOT NULL REFERENCES sweeps(sweep_id),
  run_id            TEXT NOT NULL REFERENCES runs(run_id),
  cell_key          TEXT NOT NULL,
  cell_label        TEXT NOT NULL,
  cell_params_json  TEXT NOT NULL,
  PRIMARY KEY (sweep_id, run_id)
);
CREATE INDEX sweep_runs_by_run ON sweep_runs(run_id);
CREATE TABLE attempts (
  run_id      TEXT NOT NULL REFERENCES runs(run_id),
  attempt     INTEGER NOT NULL,
  worker_id   TEXT NOT NULL,
  state       TEXT NOT NULL,
  started_ms  INTEGER NOT NULL,
  ended_ms    INTEGER NOT NULL,
  reason      TEXT NOT NULL,
  PRIMARY KEY (run_id, attempt)
);
CREATE TABLE epochs (
  run_id          TEXT NOT NULL REFERENCES runs(run_id),
  epoch           INTEGER NOT NULL,
  attempt         INTEGER NOT NULL,
  train_loss      REAL NOT NULL,
  train_error     REAL NOT NULL,
  test_error      REAL NOT NULL,
  test_loss       REAL NOT NULL,
  lr              REAL NOT NULL,
  seconds         REAL NOT NULL,
  images_per_sec  REAL NOT NULL,
  PRIMARY KEY (run_id, epoch)
);
CREATE TABLE workers (
  worker_id      TEXT PRIMARY KEY,
  name           TEXT NOT NULL,
  host           TEXT NOT NULL,
  devices        TEXT NOT NULL,
  registered_ms  INTEGER NOT NULL,
  last_seen_ms   INTEGER NOT NULL
);
)sql",
    // 1 -> 2: checkpoints on a shared filesystem (path relative to the workers'
    // --checkpoint-dir; '' = in the coordinator's artifact directory).
    R"sql(
ALTER TABLE runs ADD COLUMN checkpoint_path TEXT NOT NULL DEFAULT '';
)sql",
    // 2 -> 3: mid-epoch checkpoints (a worker shutting down) are ordered by iteration.
    R"sql(
ALTER TABLE runs ADD COLUMN checkpoint_iteration INTEGER NOT NULL DEFAULT 0;
)sql",
    // 3 -> 4: archived (deleted) sweeps, the trainer log tail of failed attempts,
    // lookups of the runs a worker holds.
    R"sql(
ALTER TABLE sweeps ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN log_tail TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_worker ON runs(worker_id) WHERE worker_id != '';
)sql",
    // 4 -> 5: the worker slot a lease was given to (meaningful while the run holds a
    // lease; -1 = unknown, for leases given before slots were recorded), and the
    // digest of the identity that registered each worker.
    R"sql(
ALTER TABLE runs ADD COLUMN lease_slot INTEGER NOT NULL DEFAULT -1;
ALTER TABLE workers ADD COLUMN identity_digest TEXT NOT NULL DEFAULT '';
)sql",
    // 5 -> 6: host faults and quarantine of workers (issue 8 item 1).
    R"sql(
CREATE TABLE IF NOT EXISTS worker_health (
  worker_id                TEXT PRIMARY KEY,
  consecutive_host_faults  INTEGER NOT NULL,
  quarantine_level         INTEGER NOT NULL,
  quarantined_until_ms     INTEGER NOT NULL,
  last_fault               TEXT NOT NULL
);
)sql",
    // 6 -> 7: per-run results summaries kept as epochs land (issue 9: results of a
    // 100,000-run sweep without reading its epochs). Filled for existing runs by
    // BackfillSummaries after this step.
    R"sql(
ALTER TABLE runs ADD COLUMN summary_k INTEGER NOT NULL DEFAULT 5;
ALTER TABLE runs ADD COLUMN final_test_error REAL NOT NULL DEFAULT -1;
ALTER TABLE runs ADD COLUMN last_k_test_error REAL NOT NULL DEFAULT -1;
ALTER TABLE runs ADD COLUMN last_epoch_seconds REAL NOT NULL DEFAULT 0;
UPDATE runs SET summary_k = COALESCE((SELECT s.last_k FROM sweep_runs l
    JOIN sweeps s ON s.sweep_id = l.sweep_id WHERE l.run_id = runs.run_id
    ORDER BY s.created_ms, s.rowid LIMIT 1), 5);
-- Lookups by name, and pages of a sweep's runs in link order (an index on sweep_id
-- alone orders its entries by rowid), without reading every sweep or link.
CREATE INDEX IF NOT EXISTS sweeps_by_name ON sweeps(name);
CREATE INDEX IF NOT EXISTS sweep_runs_by_sweep ON sweep_runs(sweep_id);
)sql",
    // 7 -> 8: the runs of one grid cell, for gang leases (issue 13).
    R"sql(
CREATE INDEX IF NOT EXISTS sweep_runs_by_cell ON sweep_runs(sweep_id, cell_key);
)sql",
    // 8 -> 9: what a sweep's status and results read, kept as runs change (issue 9:
    // results of a 100,000-run sweep in well under a second), by triggers, so that
    // every writer keeps them and none can forget:
    //  - sweep_counters: runs by state and epoch progress of each sweep; every change
    //    of a run's state, epoch, epochs_total or last_epoch_seconds moves the counters
    //    of each sweep it is linked to. outcomes_version counts changes of the sweep's
    //    outcomes; statistics_version is the outcomes_version the persisted statistics
    //    (sweep_statistics) were computed from (-1: none).
    //  - sweep_cells: a sweep's grid cells in the order of each one's first link, with
    //    the first run's config (which names the cell's dataset and network).
    //  - sweep_outcomes: the results summary of each succeeded run of a sweep, in grid
    //    order (cell, then link position): results read these ~50-byte rows and never
    //    the runs themselves.
    //  - sweep_statistics: statistics of a sweep's outcomes remembered under their exact
    //    inputs (analysis::StatisticsCache keys), written by the coordinator's refresher.
    R"sql(
CREATE TABLE sweep_counters (
  sweep_id            TEXT PRIMARY KEY,
  queued              INTEGER NOT NULL DEFAULT 0,
  leased              INTEGER NOT NULL DEFAULT 0,
  running             INTEGER NOT NULL DEFAULT 0,
  succeeded           INTEGER NOT NULL DEFAULT 0,
  failed              INTEGER NOT NULL DEFAULT 0,
  cancelled           INTEGER NOT NULL DEFAULT 0,
  epochs_done         INTEGER NOT NULL DEFAULT 0,
  epochs_total        INTEGER NOT NULL DEFAULT 0,
  epochs_left         INTEGER NOT NULL DEFAULT 0,
  epoch_seconds_sum   REAL NOT NULL DEFAULT 0,
  epoch_seconds_n     INTEGER NOT NULL DEFAULT 0,
  outcomes_version    INTEGER NOT NULL DEFAULT 0,
  statistics_version  INTEGER NOT NULL DEFAULT -1
);
INSERT INTO sweep_counters (sweep_id, queued, leased, running, succeeded, failed, cancelled,
    epochs_done, epochs_total, epochs_left, epoch_seconds_sum, epoch_seconds_n)
  SELECT s.sweep_id, TOTAL(r.state = 'queued'), TOTAL(r.state = 'leased'),
    TOTAL(r.state = 'running'), TOTAL(r.state = 'succeeded'), TOTAL(r.state = 'failed'),
    TOTAL(r.state = 'cancelled'), TOTAL(r.epoch), TOTAL(r.epochs_total),
    TOTAL(CASE WHEN r.state IN ('queued', 'leased', 'running')
          THEN r.epochs_total - r.epoch ELSE 0 END),
    TOTAL(CASE WHEN r.epoch > 0 THEN r.last_epoch_seconds ELSE 0 END), TOTAL(r.epoch > 0)
  FROM sweeps s LEFT JOIN sweep_runs l ON l.sweep_id = s.sweep_id
    LEFT JOIN runs r ON r.run_id = l.run_id
  GROUP BY s.sweep_id;
CREATE TABLE sweep_cells (
  sweep_id          TEXT NOT NULL,
  ordinal           INTEGER NOT NULL,
  cell_key          TEXT NOT NULL,
  cell_label        TEXT NOT NULL,
  cell_params_json  TEXT NOT NULL,
  config_json       TEXT NOT NULL,
  runs_total        INTEGER NOT NULL,
  PRIMARY KEY (sweep_id, ordinal)
);
CREATE UNIQUE INDEX sweep_cells_by_key ON sweep_cells(sweep_id, cell_key);
INSERT INTO sweep_cells (sweep_id, ordinal, cell_key, cell_label, cell_params_json,
    config_json, runs_total)
  SELECT g.sweep_id, ROW_NUMBER() OVER (PARTITION BY g.sweep_id ORDER BY g.first) - 1,
    g.cell_key, f.cell_label, f.cell_params_json, COALESCE(r.config_json, ''), g.n
  FROM (SELECT sweep_id, cell_key, MIN(rowid) AS first, COUNT(*) AS n FROM sweep_runs
        GROUP BY sweep_id, cell_key) g
    JOIN sweep_runs f ON f.rowid = g.first LEFT JOIN runs r ON r.run_id = f.run_id;
CREATE TABLE sweep_outcomes (
  sweep_id           TEXT NOT NULL,
  cell_ordinal       INTEGER NOT NULL,
  position           INTEGER NOT NULL,
  run_id             TEXT NOT NULL,
  summary_k          INTEGER NOT NULL,
  final_test_error   REAL NOT NULL,
  last_k_test_error  REAL NOT NULL,
  param_count        INTEGER NOT NULL,
  PRIMARY KEY (sweep_id, cell_ordinal, position)
) WITHOUT ROWID;
CREATE INDEX sweep_outcomes_by_run ON sweep_outcomes(run_id);
INSERT INTO sweep_outcomes
  SELECT l.sweep_id, c.ordinal, l.rowid, r.run_id, r.summary_k, r.final_test_error,
    r.last_k_test_error, r.param_count
  FROM sweep_runs l JOIN runs r ON r.run_id = l.run_id
    JOIN sweep_cells c ON c.sweep_id = l.sweep_id AND c.cell_key = l.cell_key
  WHERE r.state = 'succeeded';
CREATE TABLE sweep_statistics (
  sweep_id  TEXT NOT NULL,
  key       BLOB NOT NULL,
  value     BLOB NOT NULL
);
CREATE INDEX sweep_statistics_by_sweep ON sweep_statistics(sweep_id);

CREATE TRIGGER sweep_counted AFTER INSERT ON sweeps BEGIN
  INSERT OR IGNORE INTO sweep_counters (sweep_id) VALUES (NEW.sweep_id);
END;

CREATE TRIGGER sweep_run_linked AFTER INSERT ON sweep_runs BEGIN
  UPDATE sweep_cells SET runs_total = runs_total + 1
    WHERE sweep_id = NEW.sweep_id AND cell_key = NEW.cell_key;
  INSERT INTO sweep_cells (sweep_id, ordinal, cell_key, cell_label, cell_params_json,
      config_json, runs_total)
    SELECT NEW.sweep_id,
      COALESCE((SELECT MAX(ordinal) FROM sweep_cells WHERE sweep_id = NEW.sweep_id), -1) + 1,
      NEW.cell_key, NEW.cell_label, NEW.cell_params_json,
      COALESCE((SELECT config_json FROM runs WHERE run_id = NEW.run_id), ''), 1
    WHERE changes() = 0;
  INSERT OR IGNORE INTO sweep_counters (sweep_id) VALUES (NEW.sweep_id);
  UPDATE sweep_counters SET (queued, leased, running, succeeded, failed, cancelled,
      epochs_done, epochs_total, epochs_left, epoch_seconds_sum, epoch_seconds_n,
      outcomes_version) = (
    SELECT sweep_counters.queued + (r.state = 'queued'),
      sweep_counters.leased + (r.state = 'leased'),
      sweep_counters.running + (r.state = 'running'),
      sweep_counters.succeeded + (r.state = 'succeeded'),
      sweep_counters.failed + (r.state = 'failed'),
      sweep_counters.cancelled + (r.state = 'cancelled'),
      sweep_counters.epochs_done + r.epoch, sweep_counters.epochs_total + r.epochs_total,
      sweep_counters.epochs_left + CASE WHEN r.state IN ('queued', 'leased', 'running')
                                   THEN r.epochs_total - r.epoch ELSE 0 END,
      sweep_counters.epoch_seconds_sum + CASE WHEN r.epoch > 0
                                         THEN r.last_epoch_seconds ELSE 0 END,
      sweep_counters.epoch_seconds_n + (r.epoch > 0),
      sweep_counters.outcomes_version + (r.state = 'succeeded')
    FROM runs r WHERE r.run_id = NEW.run_id)
  WHERE sweep_id = NEW.sweep_id AND EXISTS (SELECT 1 FROM runs WHERE run_id = NEW.run_id);
  INSERT INTO sweep_outcomes
    SELECT NEW.sweep_id, c.ordinal, NEW.rowid, r.run_id, r.summary_k, r.final_test_error,
      r.last_k_test_error, r.param_count
    FROM runs r JOIN sweep_cells c ON c.sweep_id = NEW.sweep_id AND c.cell_key = NEW.cell_key
    WHERE r.run_id = NEW.run_id AND r.state = 'succeeded';
END;

)sql",
    // 9 -> 10: links are accounted for by Store::LinkRuns, set-based, once per batch of
    // links, instead of by a trigger per link: a trigger makes every INSERT into
    // sweep_runs keep a statement journal of each page it touches, and with the
    // trigger's own reads and writes that was two thirds of submitting a big sweep.
    // (sweep_runs has no other writer; counters, cells and outcomes stay as they are.)
    R"sql(
DROP TRIGGER sweep_run_linked;
)sql",
    // 10 -> 11 (issue 9: submitting 100,000 runs in under 2 s writes half the bytes):
    //  - run_configs: a config stored once, under the hash its runs share (their cell
    //    key); a run written with a config_key keeps an empty config_json of its own.
    //    Rows from before keep theirs (config_key NULL). Readers take
    //    RESWEEP_RUN_CONFIG_JSON_SQL, which resolves both.
    //  - sweep_runs rebuilt without the cell's label and parameters (sweep_cells holds
    //    them once per cell), with its link position a column (`position`, the rowid it
    //    had, so VACUUM cannot renumber it) and one unique index (run_id, sweep_id) for
    //    both the primary key and the lookups by run.
    R"sql(
CREATE TABLE run_configs (
  config_key   TEXT PRIMARY KEY,
  config_json  TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN config_key TEXT;
DROP TRIGGER run_counted;
DROP TRIGGER run_outcome_changed;
CREATE TABLE sweep_runs_v11 (
  position  INTEGER PRIMARY KEY,
  sweep_id  TEXT NOT NULL REFERENCES sweeps(sweep_id),
  run_id    TEXT NOT NULL REFERENCES runs(run_id),
  cell_key  TEXT NOT NULL
);
INSERT INTO sweep_runs_v11 (position, sweep_id, run_id, cell_key)
  SELECT rowid, sweep_id, run_id, cell_key FROM sweep_runs ORDER BY rowid;
DROP TABLE sweep_runs;
ALTER TABLE sweep_runs_v11 RENAME TO sweep_runs;
CREATE UNIQUE INDEX sweep_runs_by_run ON sweep_runs(run_id, sweep_id);
CREATE INDEX sweep_runs_by_sweep ON sweep_runs(sweep_id);
CREATE INDEX sweep_runs_by_cell ON sweep_runs(sweep_id, cell_key);
)sql",
    // 11 -> 12 (issue 11: an unchanged dashboard poll answered from a reply cache):
    // sweep_counters.change_stamp, a sweep's change stamp (Store::SweepChangeStamp),
    // which moves with every committed change of anything the sweep's replies show.
    // Kept by triggers, so that no writer can forget it; the one writer that changes
    // such data without firing them (PutEpoch: an epoch replaced in place) moves it
    // itself. run_counted is made again with the stamp and a wider WHEN: every column
    // of `runs` that a sweep's replies (GetSweep, ListRuns, GetResults, GetCurves)
    // show (its counter deltas are 0 when only the new columns change); a run linked
    // to several sweeps moves each one's stamp. An epoch report (which moves the run's
    // epoch) pays only the increment, in the UPDATE that run_counted makes anyway;
    // heartbeats (lease_expires_ms, updated_ms) move nothing. New links move the stamp
    // in Store::LinkRuns; the sweep's own row (cancel, delete) and deleted epochs (a
    // restart from a checkpoint) by the triggers below.
    R"sql(
ALTER TABLE sweep_counters ADD COLUMN change_stamp INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER run_counted;
CREATE TRIGGER run_counted AFTER UPDATE ON runs
WHEN)sql" RESWEEP_RUN_SHOWN_COLUMNS_CHANGED_SQL R"sql(
BEGIN
  UPDATE sweep_counters SET)sql" RESWEEP_RUN_COUNTERS_SQL R"sql(,
      change_stamp = change_stamp + 1
    WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = NEW.run_id);
END;
CREATE TRIGGER sweep_changed AFTER UPDATE ON sweeps BEGIN
  UPDATE sweep_counters SET change_stamp = change_stamp + 1 WHERE sweep_id = NEW.sweep_id;
END;
CREATE TRIGGER epoch_deleted AFTER DELETE ON epochs BEGIN
  UPDATE sweep_counters SET change_stamp = change_stamp + 1
    WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = OLD.run_id);
END;
)sql",
    // 12 -> 13 (issue 9, ingestion): runs.counted_appends, the epochs that
    // Store::AppendNextEpoch appended to the run while keeping its sweeps' counters
    // itself, once per batch and sweep. run_counted skips an UPDATE that moves this
    // column, and fires as before for every other one (an UPDATE that does not name it
    // leaves it as it was). Per report, the trigger was the most expensive part of the
    // hot path: SQLite builds a temporary table for its IN (SELECT ...) and keeps a
    // statement journal for the UPDATE that fires it. Since schema 14 no write moves
    // the column (reports go to epoch_log, whose apply the trigger counts per run).
    R"sql(
ALTER TABLE runs ADD COLUMN counted_appends INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER run_counted;
CREATE TRIGGER run_counted AFTER UPDATE ON runs
WHEN OLD.counted_appends IS NEW.counted_appends AND ()sql" RESWEEP_RUN_SHOWN_COLUMNS_CHANGED_SQL
    R"sql()
BEGIN
  UPDATE sweep_counters SET)sql" RESWEEP_RUN_COUNTERS_SQL R"sql(,
      change_stamp = change_stamp + 1
    WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = NEW.run_id);
END;
)sql",
    // 13 -> 14 (issue 9, ingestion): epoch_log, where Store::AppendNextEpoch records a
    // report inside a batch: one fenced INSERT at the end of a table without indexes,
    // where writing the run's row and its epochs' index leaf per report had been the
    // hot path's cost. SqliteStore::ApplyEpochLog moves the rows to `epochs` and the
    // runs (and, through run_counted, their sweeps' counters) in bulk, and empties the
    // table; it holds rows only between two applies. The rowid is the order of
    // appending. Not read outside this connection: it is applied when the writer opens.
    R"sql(
CREATE TABLE epoch_log (
  run_id           TEXT NOT NULL,
  epoch            INTEGER NOT NULL,
  attempt          INTEGER NOT NULL,
  train_loss       REAL NOT NULL,
  train_error      REAL NOT NULL,
  test_error       REAL NOT NULL,
  test_loss        REAL NOT NULL,
  lr               REAL NOT NULL,
  seconds          REAL NOT NULL,
  images_per_sec   REAL NOT NULL,
  lease_expires_ms INTEGER NOT NULL,
  updated_ms       INTEGER NOT NULL
);
)sql",
};
// The schema versions whose migration ends by creating kRunTriggersSql.
constexpr int kMigrationTriggers[] = {9, 11};
// The schema version whose migration needs BackfillSummaries after it.
constexpr int kSummariesVersion = 7;
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

Status SqliteError(sqlite3* db, int rc, const std::string& what) {
  const std::string message = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  const int primary = rc & 0xff;
  if (primary == SQLITE_FULL) {
    return ResourceExhaustedError("database: disk full, nothing was written (" + message + ")");
  }
  if (primary == SQLITE_READONLY || primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_PERM) {
    return UnavailableError("database: " + message);
  }
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return UnavailableError("database busy: " + message);
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return DataLossError("database: " + message);
  }
  return InternalError("database: " + message);
}

// Prepared statements of one connection, kept for reuse by their SQL text: preparing
// costs about as much as running a small statement. An entry serves one Statement at
// a time; a second use of the same SQL while the first is alive prepares its own.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, entry] : entries_) sqlite3_finalize(entry.stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  sqlite3* db() const { return db_; }
  // A ready statement for `sql` and whether it is the cache's (then Give it back),
  // or nullptr with the error code in *rc.
  sqlite3_stmt* Take(const std::string& sql, bool* cached, int* rc) {
    auto it = entries_.find(sql);
    if (it != entries_.end() && !it->second.in_use) {
      it->second.in_use = true;
      *cached = true;
      *rc = SQLITE_OK;
      return it->second.stmt;
    }
    sqlite3_stmt* stmt = nullptr;
    *rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (*rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return nullptr;
    }
    *cached = it == entries_.end();
    if (*cached) entries_.emplace(sql, Entry{stmt, true});
    return stmt;
  }
  void Give(const std::string& sql) { entries_[sql].in_use = false; }

 private:
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  sqlite3* const db_;
  std::map<std::string, Entry> entries_;
};

// A prepared statement with positional binding (1-based, in call order).
class Statement {
 public:
  // Prepared afresh and finalized at the end (migrations, pragmas).
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  // From the connection's cache; reset and handed back at the end.
  Statement(StatementCache* cache, std::string sql)
      : db_(cache->db()), cache_(cache), sql_(std::move(sql)) {
    stmt_ = cache->Take(sql_, &cached_, &rc_);
  }
  ~Statement() {
    if (cached_) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      cache_->Give(sql_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Makes the statement ready to run again with new bindings.
  void Reset() {
    if (!stmt_) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    index_ = 0;
  }

  Statement& Bind(const std::string& v) {
    if (stmt_)
      sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(const char* v) { return Bind(std::string(v)); }
  Statement& Bind(int64_t v) {
    if (stmt_) sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Statement& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
  Statement& Bind(double v) {
    if (stmt_) sqlite3_bind_double(stmt_, ++index_, v);
    return *this;
  }
  // Binds `v` without copying it: it must stay unchanged until the statement is reset
  // or destroyed.
  Statement& BindUncopied(const std::string& v) {
    if (stmt_)
      sqlite3_bind_text(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& BindNull() {
    if (stmt_) sqlite3_bind_null(stmt_, ++index_);
    return *this;
  }
  Statement& BindBlob(const std::string& v) {
    if (stmt_)
      sqlite3_bind_blob(stmt_, ++index_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }

  // Steps once. Returns true with a row, false when done; errors in *status.
  bool Step(Status* status) {
    if (rc_ != SQLITE_OK) {
      *status = SqliteError(db_, rc_, "prepare");
      return false;
    }
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) *status = SqliteError(db_, rc, "step");
    return false;
  }
  Status Run() {
    Status status;
    while (Step(&status)) {
    }
    return status;
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  sqlite3* db_;
  StatementCache* cache_ = nullptr;
  std::string sql_;
  bool cached_ = false;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int index_ = 0;
};

// A run's config: in run_configs under its config_key (schema 11), or in the run's own
// row (inserted without a key, or before schema 11). For `runs` by its table name.
#define RESWEEP_RUN_CONFIG_JSON_SQL                                                         \
  "IFNULL((SELECT c.config_json FROM run_configs c WHERE c.config_key = runs.config_key), " \
  "runs.config_json)"

// The config a new cell stores (sweep_cells.config_json) from its first run, for `runs`
// by its table name: nothing when run_configs holds it under the cell's key (?2), which
// RESWEEP_CELL_CONFIG_JSON_SQL then reads.
#define RESWEEP_CELL_CONFIG_JSON_TO_STORE_SQL \
  "CASE WHEN runs.config_key = ?2 THEN '' ELSE " RESWEEP_RUN_CONFIG_JSON_SQL " END"

// A cell's config, for `sweep_cells` by its table name.
#define RESWEEP_CELL_CONFIG_JSON_SQL                                                             \
  "CASE WHEN sweep_cells.config_json != '' THEN sweep_cells.config_json ELSE "                   \
  "IFNULL((SELECT c.config_json FROM run_configs c WHERE c.config_key = sweep_cells.cell_key), " \
  "'') END"

// A link with its cell's label and parameters, for `sweep_runs l` (with `sweep_cells` by
// its table name joined as RESWEEP_LINK_CELL_JOIN_SQL does).
#define RESWEEP_LINK_COLUMNS_SQL                                           \
  "l.sweep_id, l.run_id, l.cell_key, IFNULL(sweep_cells.cell_label, ''), " \
  "IFNULL(sweep_cells.cell_params_json, '{}')"
#define RESWEEP_LINK_CELL_JOIN_SQL                                                          \
  " LEFT JOIN sweep_cells ON sweep_cells.sweep_id = l.sweep_id AND sweep_cells.cell_key = " \
  "l.cell_key"

// What ReadRun reads, for a query over `runs` by its table name (not an alias).
constexpr const char* kRunColumns =
    "runs.run_id, " RESWEEP_RUN_CONFIG_JSON_SQL
    ", runs.seed, runs.state, runs.attempt, runs.failures, runs.max_attempts, "
    "runs.worker_id, runs.lease_expires_ms, runs.epoch, runs.epochs_total, "
    "runs.last_test_error, runs.checkpoint_epoch, runs.param_count, runs.error, "
    "runs.queue_position, runs.created_ms, runs.updated_ms, runs.checkpoint_path, "
    "runs.checkpoint_iteration, runs.summary_k, runs.final_test_error, runs.last_k_test_error";

constexpr int kRunColumnCount = 23;

// What BindRun binds, in its order (the config twice: key, then the run's own copy).
constexpr const char* kRunInsertColumns =
    "run_id, config_key, config_json, seed, state, attempt, failures, max_attempts, "
    "worker_id, lease_expires_ms, epoch, epochs_total, last_test_error, checkpoint_epoch, "
    "param_count, error, queue_position, created_ms, updated_ms, checkpoint_path, "
    "checkpoint_iteration, summary_k, final_test_error, last_k_test_error";

// The results summary of a run moved to epoch ?2 by an UPDATE of it (AppendEpoch,
// AppendNextEpoch), as SET assignments: from the new epoch's test error ?7 and the
// summary_k - 1 evaluated epochs of run ?8 before it, newest first (the order, and so
// the rounding, of kRecomputeSummarySql's mean); an epoch not evaluated (?7 < 0)
// leaves the summary of the epochs before it as it is.
#define RESWEEP_APPENDED_SUMMARY_SQL                                         \
  "final_test_error = CASE WHEN ?7 >= 0 THEN ?7 ELSE final_test_error END, " \
  "last_k_test_error = CASE WHEN ?7 < 0 THEN last_k_test_error "             \
  "WHEN summary_k = 0 THEN -1 "                                              \
  "ELSE (SELECT AVG(t) FROM (SELECT ?7 AS t UNION ALL SELECT * FROM "        \
  "(SELECT test_error FROM epochs WHERE run_id = ?8 AND epoch < ?2 "         \
  "AND test_error >= 0 ORDER BY epoch DESC "                                 \
  "LIMIT (SELECT summary_k FROM runs WHERE run_id = ?8) - 1))) END"

// Recomputes one run's results summary (RunRecord::final_test_error and
// last_k_test_error) from its epochs; binds the run id once.
constexpr const char* kRecomputeSummarySql =
    "UPDATE runs SET "
    "final_test_error = COALESCE((SELECT test_error FROM epochs WHERE run_id = ?1 "
    "AND test_error >= 0 ORDER BY epoch DESC LIMIT 1), -1), "
    "last_k_test_error = COALESCE((SELECT AVG(test_error) FROM (SELECT test_error FROM epochs "
    "WHERE run_id = ?1 AND test_error >= 0 ORDER BY epoch DESC "
    "LIMIT (SELECT summary_k FROM runs WHERE run_id = ?1))), -1), "
    "last_epoch_seconds = COALESCE((SELECT seconds FROM epochs WHERE run_id = ?1 "
    "ORDER BY epoch DESC LIMIT 1), 0) "
    "WHERE run_id = ?1";

RunRecord ReadRun(const Statement& s, int c = 0) {
  RunRecord r;
  r.run_id = s.Text(c + 0);
  r.config_json = s.Text(c + 1);
  r.seed = s.Int(c + 2);
  r.state = ParseRunState(s.Text(c + 3)).value_or(RunState::kFailed);
  r.attempt = static_cast<int>(s.Int(c + 4));
  r.failures = static_cast<int>(s.Int(c + 5));
  r.max_attempts = static_cast<int>(s.Int(c + 6));
  r.worker_id = s.Text(c + 7);
  r.lease_expires_ms = s.Int(c + 8);
  r.epoch = static_cast<int>(s.Int(c + 9));
  r.epochs_total = static_cast<int>(s.Int(c + 10));
  r.last_test_error = s.Real(c + 11);
  r.checkpoint_epoch = static_cast<int>(s.Int(c + 12));
  r.param_count = s.Int(c + 13);
  r.error = s.Text(c + 14);
  r.queue_position = s.Int(c + 15);
  r.created_ms = s.Int(c + 16);
  r.updated_ms = s.Int(c + 17);
  r.checkpoint_path = s.Text(c + 18);
  r.checkpoint_iteration = s.Int(c + 19);
  r.summary_k = static_cast<int>(s.Int(c + 20));
  r.final_test_error = s.Real(c + 21);
  r.last_k_test_error = s.Real(c + 22);
  r.read_as = {r.attempt, r.worker_id, r.state};
  return r;
}

// What ReadSweep reads, with '' for spec_yaml: lookups and listings never read it.
constexpr const char* kSweepColumnsWithoutSpec =
    "sweep_id, name, '', source_name, created_ms, cancelled, last_k, grid_axes, archived";

SweepRecord ReadSweep(const Statement& s) {
  SweepRecord r;
  r.sweep_id = s.Text(0);
  r.name = s.Text(1);
  r.spec_yaml = s.Text(2);
  r.source_name = s.Text(3);
  r.created_ms = s.Int(4);
  r.cancelled = s.Int(5) != 0;
  r.last_k = static_cast<int>(s.Int(6));
  r.archived = s.Int(8) != 0;
  try {
    r.grid_axes = nlohmann::json::parse(s.Text(7)).get<std::vector<std::string>>();
  } catch (const std::exception&) {
    r.grid_axes.clear();
  }
  return r;
}

// Checkpoints a database's write-ahead log on a thread and connection of its own, so
// that no commit of the writer (and no reply waiting for one) copies the log into the
// database itself: the writer's connection has automatic checkpoints off and wakes
// this one from its WAL hook once the log holds `frames_` frames
// (SqliteStoreOptions::wal_checkpoint_frames). A PASSIVE checkpoint
// blocks neither the writer nor readers; it syncs the log before copying it (frames
// of a batch that is not synced yet included) and the database after, as the
// automatic one did. When every frame is copied, the writer's next transaction
// starts the log from its beginning again; but while the writer commits without
// pause, a checkpoint on another thread never quite catches up with it and the log
// would grow without end. So once the log holds restart_frames_ (four times as many)
// and this thread has copied all but a quarter of them (or frames_), the writer's
// commit copies that rest itself (a small checkpoint, about once per restart_frames_
// frames written), and its next transaction starts the log again.
class WalCheckpointer {
 public:
  // Opens its connection to `path` (in WAL mode already) and starts its thread.
  static StatusOr<std::unique_ptr<WalCheckpointer>> Start(const std::string& path,
                                                          int busy_timeout_ms, int frames) {
    sqlite3* db = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status st = SqliteError(db, rc, "open " + path + " for checkpoints");
      sqlite3_close_v2(db);
      return st;
    }
    sqlite3_busy_timeout(db, busy_timeout_ms);
    char* err = nullptr;
    if (sqlite3_exec(db, "PRAGMA synchronous = FULL", nullptr, nullptr, &err) != SQLITE_OK) {
      Status st = UnavailableError(path + ": " + (err ? err : "PRAGMA synchronous failed"));
      sqlite3_free(err);
      sqlite3_close_v2(db);
      return st;
    }
    return std::unique_ptr<WalCheckpointer>(
        new WalCheckpointer(db, std::clamp(frames, 1, 1 << 24)));
  }
  ~WalCheckpointer() {
    {
      MutexLock lock(&mutex_);
      stopping_ = true;
    }
    wake_.NotifyAll();
    thread_.join();
    sqlite3_close_v2(db_);
  }
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // sqlite3_wal_hook's callback, on the writer's thread after each commit.
  // (`frames`: the log's frames now.)
  static int OnCommit(void* checkpointer, sqlite3* writer, const char*, int frames) {
    auto* self = static_cast<WalCheckpointer*>(checkpointer);
    if (frames >= self->restart_frames_) {
      const int copied = self->copied_frames_.load(std::memory_order_relaxed);
      if (copied <= frames && frames - copied <= std::max(self->frames_, frames / 4)) {
        // SQLITE_BUSY while this thread checkpoints: tried again at the next commit.
        sqlite3_wal_checkpoint_v2(writer, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        return SQLITE_OK;
      }
    }
    if (frames >= self->frames_) self->Wake();
    return SQLITE_OK;
  }

 private:
  WalCheckpointer(sqlite3* db, int frames)
      : db_(db), frames_(frames), restart_frames_(4 * frames), thread_([this] { Loop(); }) {}

  void Wake() {
    {
      MutexLock lock(&mutex_);
      due_ = true;
    }
    wake_.NotifyOne();
  }

  void Loop() {
    for (;;) {
      {
        MutexLock lock(&mutex_);
        while (!due_ && !stopping_) wake_.Wait(&mutex_);
        if (stopping_) return;
        due_ = false;
      }
      int log_frames = 0, copied_frames = 0;
      const int rc = sqlite3_wal_checkpoint_v2(db_, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                               &copied_frames);
      if (rc == SQLITE_OK) copied_frames_.store(copied_frames, std::memory_order_relaxed);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        spdlog::warn(
            "store: checkpoint of the write-ahead log failed: {} (retried after the next "
            "commit)",
            sqlite3_errmsg(db_));
      } else {
        spdlog::debug("store: checkpoint copied {} of {} frames", copied_frames, log_frames);
      }
    }
  }

  sqlite3* const db_;         // this thread's alone once started
  const int frames_;          // a checkpoint is due at this many frames in the log
  const int restart_frames_;  // the writer finishes one at this many
  Mutex mutex_;
  CondVar wake_;
  bool due_ RESWEEP_GUARDED_BY(mutex_) = false;
  bool stopping_ RESWEEP_GUARDED_BY(mutex_) = false;
  // Frames of the log this thread's last checkpoint had copied.
  std::atomic<int> copied_frames_{0};
  std::thread thread_;  // last: starts once the members above exist
};

class SqliteStore : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db), cache_(std::make_unique<StatementCache>(db)) {}
  ~SqliteStore() override {
    // A clean close leaves the log applied (an unclean one: the next open applies it).
    if (depth_ == 0 && !batch_owner_) {
      if (Status st = ApplyEpochLogBeforeAccess(); !st.ok()) {
        spdlog::warn("store: epochs logged since the last apply are applied at the next open: {}",
                     st.ToString());
      }
    }
    checkpointer_.reset();  // before the connection whose hook wakes it
    cache_.reset();         // finalizes the statements before the connection closes
    sqlite3_close_v2(db_);
    MutexLock lock(&sync_mutex_);
    if (wal_fd_ >= 0) close(wal_fd_);
  }

  // Batches may defer their commit's fsync (CommitBatchBeforeSync) once the database
  // is known to be in WAL mode with its write-ahead log at `wal_path`.
  void EnableDeferredSync(std::string wal_path) { wal_path_ = std::move(wal_path); }

  // Hands the log's checkpoints to `checkpointer` (see WalCheckpointer): this
  // connection no longer checkpoints when it commits.
  void CheckpointOnAnotherThread(std::unique_ptr<WalCheckpointer> checkpointer) {
    checkpointer_ = std::move(checkpointer);
    sqlite3_wal_hook(db_, &WalCheckpointer::OnCommit, checkpointer_.get());
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string message = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      return SqliteError(nullptr, rc, message);
    }
    return Status::Ok();
  }

  Status Migrate() {
    auto current = SchemaVersion();
    if (!current.ok()) return current.status();
    const int version = *current;
    if (version > kSchemaVersion) {
      return FailedPreconditionError("database schema version " + std::to_string(version) +
                                     " is newer than this build's " +
                                     std::to_string(kSchemaVersion));
    }
    for (int v = version; v < kSchemaVersion; ++v) {
      spdlog::info("store: migrating schema {} -> {}", v, v + 1);
      Status st = RunInTransaction([&]() -> Status {
        RESWEEP_RETURN_IF_ERROR(Exec(kMigrations[v]));
        for (int with_triggers : kMigrationTriggers) {
          if (v + 1 == with_triggers) RESWEEP_RETURN_IF_ERROR(Exec(kRunTriggersSql));
        }
        if (v + 1 == kSummariesVersion) RESWEEP_RETURN_IF_ERROR(BackfillSummaries());
        return Exec(("PRAGMA user_version = " + std::to_string(v + 1)).c_str());
      });
      RESWEEP_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }

  // Fills every run's results summary from its epochs (once, when migrating to
  // kSummariesVersion).
  Status BackfillSummaries() {
    std::vector<std::string> ids;
    {
      Statement s(cache_.get(), "SELECT run_id FROM runs");
      Status st;
      while (s.Step(&st)) ids.push_back(s.Text(0));
      RESWEEP_RETURN_IF_ERROR(st);
    }
    spdlog::info("store: computing results summaries of {} run(s)", ids.size());
    for (const auto& id : ids) RESWEEP_RETURN_IF_ERROR(RecomputeSummary(id));
    return Status::Ok();
  }

  Status RecomputeSummary(const std::string& run_id) {
    Statement s(cache_.get(), kRecomputeSummarySql);
    s.Bind(run_id);
    return s.Run();
  }

  StatusOr<std::string> JournalMode() {
    Statement s(db_, "PRAGMA journal_mode");
    Status st;
    std::string mode;
    if (s.Step(&st)) mode = s.Text(0);
    if (!st.ok()) return st;
    return mode;
  }

  StatusOr<int> SchemaVersion() {
    Statement s(db_, "PRAGMA user_version");
    Status st;
    int version = 0;
    if (s.Step(&st)) version = static_cast<int>(s.Int(0));
    if (!st.ok()) return st;
    return version;
  }

  Status CheckReadableVersion() {
    auto current = SchemaVersion();
    if (!current.ok()) return current.status();
    const int version = *current;
    if (version != kSchemaVersion) {
      return FailedPreconditionError("database schema version " + std::to_string(version) +
                                     "; this build reads version " +
                                     std::to_string(kSchemaVersion));
    }
    return Status::Ok();
  }

  // Transactions. `depth_` counts the open levels: 0 = none; the outermost level is
  // a BEGIN IMMEDIATE (a top-level transaction or a batch), every level inside it a
  // savepoint named after its depth.
  Status RunInTransaction(const std::function<Status()>& body) override {
    if (depth_ == 0 || (batch_owner_ && *batch_owner_ != std::this_thread::get_id())) {
      RESWEEP_RETURN_IF_ERROR(SyncFailure());
    }
    if (batch_owner_ && *batch_owner_ != std::this_thread::get_id() && depth_ == 1) {
      return RunForeignTransactionInBatch(body);
    }
    if (batch_owner_) RESWEEP_RETURN_IF_ERROR(BatchNotFailed());
    if (depth_ > 0) return RunSavepoint(body);
    RESWEEP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    depth_ = 1;
    Status st = RunBody(body);
    depth_ = 0;
    // After some failures (a full disk, an I/O error) SQLite has rolled the whole
    // transaction back itself; a body that went on after one must not be committed
    // in pieces.
    if (st.ok() && sqlite3_get_autocommit(db_)) {
      st = UnavailableError("the transaction was rolled back by the database after a failure");
    }
    if (!st.ok()) {
      RollBack();  // `st` says why
      return st;
    }
    Status commit = Exec("COMMIT");
    if (!commit.ok()) {
      RollBack();  // the failure being returned says why
      return commit;
    }
    PublishEpochLogState();
    return Status::Ok();
  }

  Status RunInBulkTransaction(const std::function<Status()>& body) override {
    if (depth_ > 0 || bulk_cache_kib_ <= cache_kib_) return RunInTransaction(body);
    RESWEEP_RETURN_IF_ERROR(SetCacheKib(bulk_cache_kib_));
    Status st = RunInTransaction(body);
    // Shrinking the cache frees the pages above the usual size (to the heap: the
    // caller's ReleaseMemory, once its own big allocations are gone, returns them).
    Status restored = SetCacheKib(cache_kib_);
    if (!restored.ok()) spdlog::warn("store: page cache not shrunk back: {}", restored.ToString());
    return st;
  }

  // The connection's page cache sizes (OpenSqliteStore), KiB.
  void SetCacheSizes(int64_t usual_kib, int64_t bulk_kib) {
    cache_kib_ = usual_kib;
    bulk_cache_kib_ = bulk_kib;
  }
  Status SetCacheKib(int64_t kib) {
    return Exec(("PRAGMA cache_size = -" + std::to_string(kib)).c_str());
  }

  Status RunInReadTransaction(const std::function<Status()>& body) override {
    if (depth_ > 0) return body();
    RESWEEP_RETURN_IF_ERROR(Exec("BEGIN"));
    depth_ = 1;
    Status st;
    try {
      st = body();
    } catch (const std::exception& e) {
      st = InternalError(std::string("exception in read transaction: ") + e.what());
    }
    depth_ = 0;
    Status end = Exec("COMMIT");  // nothing was written but maybe an apply of the log
    if (end.ok()) {
      PublishEpochLogState();
    } else {
      RollBack();  // `end` says why
    }
    if (!st.ok()) return st;
    return end;
  }

  Status BeginBatch() override {
    if (depth_ > 0 || batch_owner_) {
      return FailedPreconditionError("BeginBatch: a transaction or batch is already open");
    }
    RESWEEP_RETURN_IF_ERROR(SyncFailure());
    // In WAL mode a batch commits with synchronous=NORMAL (the log is written, not
    // fsynced) and its durability comes from an fdatasync of the log afterwards
    // (SyncCommitted: by CommitBatch itself, or on another thread). SQLite allows the
    // level to change only outside a transaction; EndBatch sets FULL back.
    if (!wal_path_.empty()) RESWEEP_RETURN_IF_ERROR(RunCached("PRAGMA synchronous = NORMAL"));
    if (Status begin = RunCached("BEGIN IMMEDIATE"); !begin.ok()) {
      RestoreFullSync();
      return begin;
    }
    depth_ = 1;
    batch_owner_ = std::this_thread::get_id();
    batch_error_.reset();
    return Status::Ok();
  }

  Status CommitBatch() override {
    RESWEEP_RETURN_IF_ERROR(CommitBatchBeforeSync());
    return SyncCommitted();
  }

  Status SyncCommitted() override {
    if (wal_path_.empty()) return Status::Ok();  // every commit was a synchronous=FULL one
    MutexLock lock(&sync_mutex_);
    if (Status failed = SyncFailure(); !failed.ok()) return failed;
    Status synced = SyncLogLocked();
    if (!synced.ok()) {
      spdlog::error(
          "store: {}; what reached the disk is unknown from now on, so every later write and "
          "sync fails: restart the coordinator (it recovers what the disk holds)",
          synced.ToString());
      MutexLock failure_lock(&sync_failure_mutex_);
      sync_failure_ =
          UnavailableError("an earlier sync of the write-ahead log failed (" + synced.ToString() +
                           "): nothing written since can be made durable until "
                           "the coordinator restarts");
    }
    return synced;
  }

  // Once a sync failed (see SyncCommitted): the failure every write returns. Does not
  // wait for a sync in flight (a batch begins while the previous one syncs); a batch
  // begun before that sync fails learns it from its own SyncCommitted.
  Status SyncFailure() {
    if (wal_path_.empty()) return Status::Ok();
    MutexLock lock(&sync_failure_mutex_);
    return sync_failure_ ? *sync_failure_ : Status::Ok();
  }

  // fdatasync of the write-ahead log.
  Status SyncLogLocked() RESWEEP_REQUIRES(sync_mutex_) {
    // The log's file as it is now (SQLite keeps one file while the connection is
    // open; reopened should it ever be replaced). fdatasync flushes the file, whatever
    // descriptor wrote it.
    struct stat now {};
    if (stat(wal_path_.c_str(), &now) != 0) {
      return UnavailableError("database: cannot find the write-ahead log " + wal_path_ + ": " +
                              std::strerror(errno));
    }
    if (wal_fd_ >= 0 && (now.st_ino != wal_inode_ || now.st_dev != wal_device_)) {
      close(wal_fd_);
      wal_fd_ = -1;
    }
    if (wal_fd_ < 0) {
      wal_fd_ = open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0) {
        return UnavailableError("database: cannot open the write-ahead log " + wal_path_ + ": " +
                                std::strerror(errno));
      }
      struct stat opened {};
      fstat(wal_fd_, &opened);
      wal_inode_ = opened.st_ino;
      wal_device_ = opened.st_dev;
    }
    if (fdatasync(wal_fd_) != 0) {
      return UnavailableError("database: fdatasync of the write-ahead log " + wal_path_ +
                              " failed: " + std::strerror(errno));
    }
    return Status::Ok();
  }

  void ReleaseMemory() override {
    sqlite3_db_release_memory(db_);
#ifdef __GLIBC__
    // glibc keeps freed memory in its arenas (one per thread that allocated) until
    // told otherwise; this returns every free page of every arena.
    malloc_trim(0);
#endif
  }

  Status CommitBatchBeforeSync() override {
    if (!batch_owner_) return FailedPreconditionError("CommitBatch: no batch is open");
    Status st = BatchLost() ? *batch_error_ : Status::Ok();
    if (st.ok()) {
      if (Status applied = ApplyEpochLogIfDue(); !applied.ok()) {
        // The batch commits without it: the log's rows stay (durable with their
        // batches) and an apply cut short is taken up again by the next one (each of
        // its statements is atomic, and redoing one writes the same values).
        spdlog::warn(
            "store: the epoch log could not be applied ({}); batches commit without it, tried "
            "again in {} ms (reads on this connection try at once)",
            applied.ToString(), epoch_log_apply_interval_.count());
        epoch_log_apply_retry_ = std::chrono::steady_clock::now() + epoch_log_apply_interval_;
        if (BatchLost()) st = *batch_error_;
      }
    }
    if (st.ok()) {
      st = RunCached("COMMIT");
      if (!st.ok() && !sqlite3_get_autocommit(db_))
        Exec("ROLLBACK").IgnoreError();  // `st` says why
    } else if (!sqlite3_get_autocommit(db_)) {
      Exec("ROLLBACK").IgnoreError();
    }
    if (st.ok()) {
      PublishEpochLogState();
    } else {
      ForgetEpochLogPositions();
    }
    EndBatch();
    return st;
  }

  // What a batch applies of the log as it commits: all of it when fewer than
  // epoch_log_defer_after_ epochs were logged since the last apply, or when they came
  // slower than epoch_log_defer_rate_ a second (readers on other connections see
  // every epoch as soon as it is acknowledged); else its oldest
  // epoch_log_apply_rows_ rows once it holds that many, and all of it once
  // epoch_log_apply_interval_ has passed. Under a stream of reports a run's row and
  // its epochs' index page are then written once per apply, for many reports, rather
  // than once per commit, and no commit carries more than about that many rows.
  Status ApplyEpochLogIfDue() {
    if (!epoch_log_pending_) return Status::Ok();
    const auto now = std::chrono::steady_clock::now();
    if (now < epoch_log_apply_retry_) return Status::Ok();  // it failed a moment ago
    const auto since = now - last_epoch_log_apply_;
    if (epoch_log_rows_ < 0 || since >= epoch_log_apply_interval_ ||
        epoch_log_appends_since_apply_ < epoch_log_defer_after_ ||
        epoch_log_appends_since_apply_ <
            epoch_log_defer_rate_ * std::chrono::duration<double>(since).count()) {
      return ApplyEpochLog();
    }
    if (epoch_log_rows_ >= epoch_log_apply_rows_) return ApplyEpochLog(epoch_log_apply_rows_);
    return Status::Ok();
  }

  Status AbortBatch() override {
    if (!batch_owner_) return FailedPreconditionError("AbortBatch: no batch is open");
    Status st = sqlite3_get_autocommit(db_) ? Status::Ok() : Exec("ROLLBACK");
    ForgetEpochLogPositions();
    EndBatch();
    return st;
  }

  Status InsertSweep(const SweepRecord& w) override {
    Statement s(cache_.get(),
                "INSERT INTO sweeps (sweep_id, name, spec_yaml, source_name, created_ms, "
                "cancelled, last_k, grid_axes) VALUES (?,?,?,?,?,?,?,?)");
    s.Bind(w.sweep_id).Bind(w.name).Bind(w.spec_yaml).Bind(w.source_name).Bind(w.created_ms);
    s.Bind(w.cancelled ? 1 : 0).Bind(w.last_k).Bind(nlohmann::json(w.grid_axes).dump());
    return s.Run();
  }

  StatusOr<std::optional<SweepRecord>> GetSweep(const std::string& sweep_id) override {
    Statement s(cache_.get(),
                "SELECT sweep_id, name, spec_yaml, source_name, created_ms, cancelled, last_k, "
                "grid_axes, archived FROM sweeps WHERE sweep_id = ?");
    s.Bind(sweep_id);
    Status st;
    if (s.Step(&st)) return std::optional<SweepRecord>(ReadSweep(s));
    if (!st.ok()) return st;
    return std::optional<SweepRecord>();
  }

  StatusOr<SweepsPage> ListSweepsPage(bool include_archived, SweepOrder order,
                                      const std::optional<SweepCursor>& after, int limit) override {
    const bool newest_first = order == SweepOrder::kNewestFirst;
    Statement s(cache_.get(), std::string("SELECT ") + kSweepColumnsWithoutSpec +
                                  ", rowid FROM sweeps WHERE (? OR archived = 0) AND " +
                                  (newest_first ? "(created_ms, rowid) < (?, ?) "
                                                  "ORDER BY created_ms DESC, rowid DESC LIMIT ?"
                                                : "(created_ms, rowid) > (?, ?) "
                                                  "ORDER BY created_ms, rowid LIMIT ?"));
    // Without a cursor: from the first sweep in that order.
    const int64_t from =
        newest_first ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    s.Bind(include_archived ? 1 : 0);
    s.Bind(after ? after->created_ms : from);
    s.Bind(after ? after->rowid : from);
    s.Bind(static_cast<int64_t>(limit) + 1);  // one more says whether another page follows
    SweepsPage page;
    int64_t last_rowid = 0;
    Status st;
    while (s.Step(&st)) {
      if (static_cast<int>(page.sweeps.size()) == limit) {
        page.next = SweepCursor{page.sweeps.back().created_ms, last_rowid};
        break;
      }
      page.sweeps.push_back(ReadSweep(s));
      last_rowid = s.Int(9);
    }
    if (!st.ok()) return st;
    return page;
  }

  StatusOr<std::optional<SweepRecord>> NewestSweepNamed(const std::string& name) override {
    Statement s(cache_.get(), std::string("SELECT ") + kSweepColumnsWithoutSpec +
                                  " FROM sweeps WHERE name = ? "
                                  "ORDER BY archived, created_ms DESC, rowid DESC LIMIT 1");
    s.Bind(name);
    Status st;
    if (s.Step(&st)) return std::optional<SweepRecord>(ReadSweep(s));
    if (!st.ok()) return st;
    return std::optional<SweepRecord>();
  }

  StatusOr<std::vector<SweepRecord>> SweepsWithIdPrefix(const std::string& prefix,
                                                        int limit) override {
    // As RunIdsWithPrefix: a range scan of the primary key (sweep ids are lowercase hex).
    Statement s(cache_.get(), std::string("SELECT ") + kSweepColumnsWithoutSpec +
                                  " FROM sweeps WHERE sweep_id >= ? AND sweep_id < ? AND "
                                  "substr(sweep_id, 1, ?) = ? ORDER BY sweep_id LIMIT ?");
    s.Bind(prefix).Bind(prefix + "~").Bind(static_cast<int64_t>(prefix.size())).Bind(prefix);
    s.Bind(limit);
    std::vector<SweepRecord> out;
    Status st;
    while (s.Step(&st)) out.push_back(ReadSweep(s));
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<SweepRecord>> ListSweeps() override {
    Statement s(cache_.get(),
                "SELECT sweep_id, name, spec_yaml, source_name, created_ms, cancelled, last_k, "
                "grid_axes, archived FROM sweeps ORDER BY created_ms, rowid");
    std::vector<SweepRecord> out;
    Status st;
    while (s.Step(&st)) out.push_back(ReadSweep(s));
    if (!st.ok()) return st;
    return out;
  }

  Status SetSweepCancelled(const std::string& sweep_id, bool cancelled) override {
    Statement s(cache_.get(), "UPDATE sweeps SET cancelled = ? WHERE sweep_id = ?");
    s.Bind(cancelled ? 1 : 0).Bind(sweep_id);
    return s.Run();
  }

  Status SetSweepArchived(const std::string& sweep_id, bool archived) override {
    Statement s(cache_.get(), "UPDATE sweeps SET archived = ? WHERE sweep_id = ?");
    s.Bind(archived ? 1 : 0).Bind(sweep_id);
    return s.Run();
  }

  StatusOr<SweepProgressRecord> SweepProgress(const std::string& sweep_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT epochs_done, epochs_total, epoch_seconds_sum, epoch_seconds_n, "
                "epochs_left FROM sweep_counters WHERE sweep_id = ?");
    s.Bind(sweep_id);
    SweepProgressRecord p;
    Status st;
    if (s.Step(&st)) {
      p.epochs_done = s.Int(0);
      p.epochs_total = s.Int(1);
      const int64_t timed = s.Int(3);
      p.mean_epoch_seconds = timed > 0 ? std::max(0.0, s.Real(2) / timed) : 0;
      p.epochs_left = s.Int(4);
    }
    if (!st.ok()) return st;
    return p;
  }

  StatusOr<RunCountsRecord> CountRuns(const std::string& sweep_id) override {
    Statement s(cache_.get(),
                "SELECT queued, leased, running, succeeded, failed, cancelled "
                "FROM sweep_counters WHERE sweep_id = ?");
    s.Bind(sweep_id);
    RunCountsRecord c;
    Status st;
    if (s.Step(&st)) {
      c.queued = static_cast<int>(s.Int(0));
      c.leased = static_cast<int>(s.Int(1));
      c.running = static_cast<int>(s.Int(2));
      c.succeeded = static_cast<int>(s.Int(3));
      c.failed = static_cast<int>(s.Int(4));
      c.cancelled = static_cast<int>(s.Int(5));
    }
    if (!st.ok()) return st;
    return c;
  }

  StatusOr<RunCountsRecord> CountRunsOfLiveSweeps() override {
    Statement s(cache_.get(),
                "SELECT r.state, COUNT(*) FROM runs r WHERE EXISTS (SELECT 1 FROM sweep_runs l "
                "JOIN sweeps w ON w.sweep_id = l.sweep_id WHERE l.run_id = r.run_id "
                "AND w.archived = 0) GROUP BY r.state");
    RunCountsRecord c;
    Status st;
    while (s.Step(&st)) {
      const std::string state = s.Text(0);
      const int n = static_cast<int>(s.Int(1));
      if (state == "queued") c.queued = n;
      if (state == "leased") c.leased = n;
      if (state == "running") c.running = n;
      if (state == "succeeded") c.succeeded = n;
      if (state == "failed") c.failed = n;
      if (state == "cancelled") c.cancelled = n;
    }
    if (!st.ok()) return st;
    return c;
  }

  StatusOr<std::vector<bool>> InsertRunsIfAbsent(const std::vector<RunRecord>& runs) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    std::vector<bool> inserted;
    inserted.reserve(runs.size());
    auto body = [&]() -> Status {
      static const std::string kSql = std::string("INSERT OR IGNORE INTO runs (") +
                                      kRunInsertColumns +
                                      ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
      Statement insert(cache_.get(), kSql);
      Statement config(cache_.get(),
                       "INSERT OR IGNORE INTO run_configs (config_key, config_json) VALUES (?, ?)");
      // A key is a prefix of a hash: one that holds another config already leaves the
      // run its own copy, so that no run ever reads a config that is not its own.
      auto key_holds_config = [&](const RunRecord& r) -> StatusOr<bool> {
        config.Reset();
        config.BindUncopied(r.config_key).BindUncopied(r.config_json);
        RESWEEP_RETURN_IF_ERROR(config.Run());
        if (sqlite3_changes(db_) > 0) return true;
        Statement same(cache_.get(),
                       "SELECT config_json = ? FROM run_configs WHERE config_key = ?");
        same.BindUncopied(r.config_json).BindUncopied(r.config_key);
        Status st;
        const bool equal = same.Step(&st) && same.Int(0) != 0;
        RESWEEP_RETURN_IF_ERROR(st);
        return equal;
      };
      const RunRecord* last_keyed = nullptr;  // the previous run with a config_key
      bool last_shared = false;               // whether its config is the one under its key
      for (const RunRecord& r : runs) {
        bool shared = false;  // r's config is in run_configs under r's key
        if (!r.config_key.empty()) {
          if (last_keyed && last_keyed->config_key == r.config_key &&
              last_keyed->config_json == r.config_json) {
            shared = last_shared;
          } else {
            RESWEEP_ASSIGN_OR_RETURN(shared, key_holds_config(r));
          }
          last_keyed = &r;
          last_shared = shared;
        }
        insert.Reset();
        BindRun(insert, r, shared);
        RESWEEP_RETURN_IF_ERROR(insert.Run());
        inserted.push_back(sqlite3_changes(db_) > 0);
      }
      return Status::Ok();
    };
    // Inside the caller's transaction without a savepoint (see LinkRuns).
    const bool foreign_to_batch = batch_owner_ && *batch_owner_ != std::this_thread::get_id();
    if (depth_ > 0 && !foreign_to_batch) {
      RESWEEP_RETURN_IF_ERROR(body());
    } else {
      RESWEEP_RETURN_IF_ERROR(RunInTransaction(body));
    }
    return inserted;
  }

  // The new links of one call are the rows of sweep_runs above the largest rowid before
  // it: rows are never deleted from sweep_runs, so SQLite gives each new row the
  // largest rowid plus one (it would pick others only past 2^63 - 1).
  Status LinkRuns(const std::vector<SweepRunRecord>& links) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    if (links.empty()) return Status::Ok();
    auto body = [&]() -> Status {
      int64_t floor = 0;
      {
        Statement max(cache_.get(), "SELECT COALESCE(MAX(rowid), 0) FROM sweep_runs");
        Status st;
        if (max.Step(&st)) floor = max.Int(0);
        RESWEEP_RETURN_IF_ERROR(st);
      }
      // Cells, in the order of their first new link: consecutive new links of one cell
      // (a sweep's seeds) are counted with one statement. A new cell takes the next
      // ordinal of its sweep, read once per sweep and call (this call is the only
      // writer until it returns).
      std::map<std::string, int64_t> next_ordinal;  // sweep id -> ordinal of its next cell
      Statement new_cell(cache_.get(),
                         "INSERT OR IGNORE INTO sweep_cells (sweep_id, ordinal, cell_key, "
                         "cell_label, cell_params_json, config_json, runs_total) SELECT ?1, ?7, "
                         "?2, ?3, ?4, COALESCE((SELECT " RESWEEP_CELL_CONFIG_JSON_TO_STORE_SQL
                         " FROM runs WHERE run_id = ?5), ''), ?6");
      Statement add_to_cell(cache_.get(),
                            "UPDATE sweep_cells SET runs_total = runs_total + ? "
                            "WHERE sweep_id = ? AND cell_key = ?");
      const SweepRunRecord* group = nullptr;  // the group's first new link
      int64_t group_size = 0;
      auto count_group = [&]() -> Status {
        if (group == nullptr) return Status::Ok();
        auto [ordinal, first_of_sweep] = next_ordinal.try_emplace(group->sweep_id, 0);
        if (first_of_sweep) {
          Statement max(
              cache_.get(),
              "SELECT COALESCE(MAX(ordinal), -1) + 1 FROM sweep_cells WHERE sweep_id = ?");
          max.Bind(group->sweep_id);
          Status st;
          if (max.Step(&st)) ordinal->second = max.Int(0);
          RESWEEP_RETURN_IF_ERROR(st);
        }
        new_cell.Reset();
        new_cell.Bind(group->sweep_id).Bind(group->cell_key).Bind(group->cell_label);
        new_cell.Bind(group->cell_params_json).Bind(group->run_id).Bind(group_size);
        new_cell.Bind(ordinal->second);
        RESWEEP_RETURN_IF_ERROR(new_cell.Run());
        if (sqlite3_changes(db_) > 0) {
          ++ordinal->second;
          return Status::Ok();
        }
        add_to_cell.Reset();
        add_to_cell.Bind(group_size).Bind(group->sweep_id).Bind(group->cell_key);
        RESWEEP_RETURN_IF_ERROR(add_to_cell.Run());
        if (sqlite3_changes(db_) > 0) return Status::Ok();
        return InternalError("sweep " + group->sweep_id + ": cell " + group->cell_key +
                             " could be neither added nor counted");
      };
      // The label and parameters are the cell's (sweep_cells), not each link's. The
      // links outlive each insert: bound without a copy.
      Statement insert(cache_.get(),
                       "INSERT OR IGNORE INTO sweep_runs (sweep_id, run_id, cell_key) "
                       "VALUES (?,?,?)");
      for (const SweepRunRecord& l : links) {
        insert.Reset();
        insert.BindUncopied(l.sweep_id).BindUncopied(l.run_id).BindUncopied(l.cell_key);
        RESWEEP_RETURN_IF_ERROR(insert.Run());
        if (sqlite3_changes(db_) == 0) continue;  // linked already
        if (group && group->sweep_id == l.sweep_id && group->cell_key == l.cell_key) {
          ++group_size;
          continue;
        }
        RESWEEP_RETURN_IF_ERROR(count_group());
        group = &l;
        group_size = 1;
      }
      RESWEEP_RETURN_IF_ERROR(count_group());
      // Counters and outcomes of every sweep that got a new link, from its new links'
      // runs as they are now.
      Statement counters(cache_.get(),
                         "INSERT OR IGNORE INTO sweep_counters (sweep_id) "
                         "SELECT DISTINCT sweep_id FROM sweep_runs WHERE rowid > ?");
      counters.Bind(floor);
      RESWEEP_RETURN_IF_ERROR(counters.Run());
      Statement count(
          cache_.get(),
          "UPDATE sweep_counters SET (queued, leased, running, succeeded, failed, cancelled, "
          "epochs_done, epochs_total, epochs_left, epoch_seconds_sum, epoch_seconds_n, "
          "outcomes_version, change_stamp) = (SELECT sweep_counters.queued + "
          "SUM(r.state = 'queued'), "
          "sweep_counters.leased + SUM(r.state = 'leased'), "
          "sweep_counters.running + SUM(r.state = 'running'), "
          "sweep_counters.succeeded + SUM(r.state = 'succeeded'), "
          "sweep_counters.failed + SUM(r.state = 'failed'), "
          "sweep_counters.cancelled + SUM(r.state = 'cancelled'), "
          "sweep_counters.epochs_done + SUM(r.epoch), "
          "sweep_counters.epochs_total + SUM(r.epochs_total), "
          "sweep_counters.epochs_left + SUM(CASE WHEN r.state IN ('queued', 'leased', 'running') "
          "THEN r.epochs_total - r.epoch ELSE 0 END), "
          "sweep_counters.epoch_seconds_sum + TOTAL(CASE WHEN r.epoch > 0 "
          "THEN r.last_epoch_seconds ELSE 0 END), "
          "sweep_counters.epoch_seconds_n + SUM(r.epoch > 0), "
          "sweep_counters.outcomes_version + SUM(r.state = 'succeeded'), "
          "sweep_counters.change_stamp + 1 "
          "FROM sweep_runs l JOIN runs r ON r.run_id = l.run_id "
          "WHERE l.sweep_id = sweep_counters.sweep_id AND l.rowid > ?1) "
          "WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE rowid > ?1)");
      count.Bind(floor);
      RESWEEP_RETURN_IF_ERROR(count.Run());
      Statement outcomes(
          cache_.get(),
          "INSERT INTO sweep_outcomes SELECT l.sweep_id, c.ordinal, l.rowid, "
          "r.run_id, r.summary_k, r.final_test_error, r.last_k_test_error, "
          "r.param_count FROM sweep_runs l JOIN runs r ON r.run_id = l.run_id "
          "JOIN sweep_cells c ON c.sweep_id = l.sweep_id AND c.cell_key = l.cell_key "
          "WHERE l.rowid > ? AND r.state = 'succeeded'");
      outcomes.Bind(floor);
      return outcomes.Run();
    };
    // Inside the caller's transaction the statements run in it directly: in a savepoint
    // of their own, SQLite would first copy each page they touch (for a ROLLBACK TO),
    // which made a submission take 1.7 times as long.
    const bool foreign_to_batch = batch_owner_ && *batch_owner_ != std::this_thread::get_id();
    if (depth_ > 0 && !foreign_to_batch) return body();
    return RunInTransaction(body);
  }

  StatusOr<std::optional<RunRecord>> GetRun(const std::string& run_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    static const std::string kSql =
        std::string("SELECT ") + kRunColumns + " FROM runs WHERE run_id = ?";
    Statement s(cache_.get(), kSql);
    s.Bind(run_id);
    Status st;
    if (s.Step(&st)) return std::optional<RunRecord>(ReadRun(s));
    if (!st.ok()) return st;
    return std::optional<RunRecord>();
  }

  Status UpdateRun(const RunRecord& r) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    if (r.read_as.attempt < 0) {
      return InvalidArgumentError("run " + r.run_id +
                                  ": UpdateRun of a record not read from the store");
    }
    Statement s(cache_.get(),
                "UPDATE runs SET seed=?, state=?, attempt=?, failures=?, "
                "max_attempts=?, worker_id=?, lease_expires_ms=?, epoch=?, epochs_total=?, "
                "last_test_error=?, checkpoint_epoch=?, param_count=?, error=?, "
                "queue_position=?, created_ms=?, updated_ms=?, checkpoint_path=?, "
                "checkpoint_iteration=? WHERE run_id=? AND attempt=? AND worker_id=? AND state=?");
    s.Bind(r.seed).Bind(RunStateName(r.state)).Bind(r.attempt);
    s.Bind(r.failures).Bind(r.max_attempts).Bind(r.worker_id).Bind(r.lease_expires_ms);
    s.Bind(r.epoch).Bind(r.epochs_total).Bind(r.last_test_error).Bind(r.checkpoint_epoch);
    s.Bind(r.param_count).Bind(r.error).Bind(r.queue_position).Bind(r.created_ms);
    s.Bind(r.updated_ms).Bind(r.checkpoint_path).Bind(r.checkpoint_iteration).Bind(r.run_id);
    s.Bind(r.read_as.attempt).Bind(r.read_as.worker_id).Bind(RunStateName(r.read_as.state));
    RESWEEP_RETURN_IF_ERROR(s.Run());
    if (sqlite3_changes(db_) == 1) return Status::Ok();
    return FenceRefusal(r.run_id, r.read_as.attempt, r.read_as.worker_id,
                        RunStateName(r.read_as.state));
  }

  // Why a compare-and-set on run `run_id` changed nothing: NOT_FOUND when the run is
  // gone, else FAILED_PRECONDITION naming what was expected and what is stored.
  Status FenceRefusal(const std::string& run_id, int attempt, const std::string& worker_id,
                      const std::string& expected_state) {
    auto now = GetRun(run_id);
    if (!now.ok()) return now.status();
    if (!now->has_value()) return NotFoundError("run " + run_id + " not found");
    const RunRecord& r = **now;
    return FailedPreconditionError(
        "run " + run_id + " changed under attempt " + std::to_string(attempt) + " of worker '" +
        worker_id + "' (" + expected_state + "): it is now attempt " + std::to_string(r.attempt) +
        " of worker '" + r.worker_id + "' (" + RunStateName(r.state) + ")");
  }

  StatusOr<std::optional<RunRecord>> NextQueuedRun() override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(), (std::string("SELECT ") + kRunColumns +
                               " FROM runs WHERE state = 'queued' ORDER BY queue_position LIMIT 1")
                                  .c_str());
    Status st;
    if (s.Step(&st)) return std::optional<RunRecord>(ReadRun(s));
    if (!st.ok()) return st;
    return std::optional<RunRecord>();
  }

  StatusOr<std::optional<RunRecord>> NextQueuedRunWithoutHostFaultBy(
      const std::string& worker_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    // Walks the queue in order and looks each run's attempts up by primary key: the
    // first candidate usually qualifies.
    Statement s(cache_.get(),
                (std::string("SELECT ") + kRunColumns +
                 " FROM runs WHERE state = 'queued' AND NOT EXISTS (SELECT 1 FROM attempts a "
                 "WHERE a.run_id = runs.run_id AND a.worker_id = ? AND a.state = "
                 "'host_fault') ORDER BY queue_position LIMIT 1")
                    .c_str());
    s.Bind(worker_id);
    Status st;
    if (s.Step(&st)) return std::optional<RunRecord>(ReadRun(s));
    if (!st.ok()) return st;
    return std::optional<RunRecord>();
  }

  StatusOr<std::vector<RunRecord>> QueuedCellMates(const RunRecord& run,
                                                   const std::string& worker_id,
                                                   int limit) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    std::vector<RunRecord> mates;
    if (limit <= 0) return mates;
    // "+state": not through runs_by_state, which would walk the whole queue (a cell's
    // seeds lie a grid's width apart in it), but from the run's links to its cell's
    // (sweep_runs_by_run, sweep_runs_by_cell), then each mate by primary key.
    Statement s(cache_.get(),
                (std::string("SELECT ") + kRunColumns +
                 " FROM runs WHERE run_id IN (SELECT mate.run_id FROM sweep_runs own JOIN "
                 "sweep_runs mate ON mate.sweep_id = own.sweep_id AND mate.cell_key = "
                 "own.cell_key WHERE own.run_id = ?) AND run_id != ? AND +state = 'queued' "
                 "AND " RESWEEP_RUN_CONFIG_JSON_SQL
                 " = ? AND checkpoint_epoch = ? AND checkpoint_iteration = ? AND NOT "
                 "EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = runs.run_id AND a.worker_id "
                 "= ? AND a.state = 'host_fault') ORDER BY queue_position LIMIT ?")
                    .c_str());
    s.Bind(run.run_id)
        .Bind(run.run_id)
        .Bind(run.config_json)
        .Bind(run.checkpoint_epoch)
        .Bind(run.checkpoint_iteration)
        .Bind(worker_id)
        .Bind(limit);
    Status st;
    while (s.Step(&st)) mates.push_back(ReadRun(s));
    if (!st.ok()) return st;
    return mates;
  }

  Status SetLeaseSlot(const std::string& run_id, int slot) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(), "UPDATE runs SET lease_slot = ? WHERE run_id = ?");
    s.Bind(slot).Bind(run_id);
    RESWEEP_RETURN_IF_ERROR(s.Run());
    if (sqlite3_changes(db_) != 1) return NotFoundError("run " + run_id + " not found");
    return Status::Ok();
  }

  StatusOr<std::optional<std::string>> LeaseOfSlot(const std::string& worker_id,
                                                   int slot) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT run_id FROM runs WHERE worker_id = ? AND lease_slot = ? AND "
                "state IN ('leased', 'running') ORDER BY updated_ms DESC, run_id LIMIT 1");
    s.Bind(worker_id).Bind(slot);
    Status st;
    if (s.Step(&st)) return std::optional<std::string>(s.Text(0));
    if (!st.ok()) return st;
    return std::optional<std::string>();
  }

  StatusOr<int> CountLeasesOf(const std::string& worker_id) override {
    Statement s(cache_.get(),
                "SELECT COUNT(*) FROM runs WHERE worker_id = ? AND state IN ('leased', 'running')");
    s.Bind(worker_id);
    Status st;
    if (s.Step(&st)) return static_cast<int>(s.Int(0));
    if (!st.ok()) return st;
    return 0;
  }

  StatusOr<int64_t> NextQueuePosition() override {
    Statement s(cache_.get(), "SELECT COALESCE(MAX(queue_position), 0) + 1 FROM runs");
    Status st;
    if (s.Step(&st)) return s.Int(0);
    if (!st.ok()) return st;
    return int64_t{1};
  }

  StatusOr<int64_t> CountActiveRuns() override {
    Statement s(cache_.get(),
                "SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'leased', 'running')");
    Status st;
    if (s.Step(&st)) return s.Int(0);
    if (!st.ok()) return st;
    return int64_t{0};
  }

  StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRuns(
      const std::string& sweep_id, std::optional<RunState> state) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    return SweepRuns(sweep_id, state, 0, 0);
  }

  StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> ListSweepRunsPage(
      const std::string& sweep_id, std::optional<RunState> state, int64_t after_position,
      int limit) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    if (limit <= 0) return InvalidArgumentError("a page of runs needs a limit > 0");
    return SweepRuns(sweep_id, state, after_position, limit);
  }

  StatusOr<std::vector<SweepCellRecord>> ListSweepCells(const std::string& sweep_id) override {
    Statement s(
        cache_.get(),
        "SELECT ordinal, cell_key, cell_label, cell_params_json, " RESWEEP_CELL_CONFIG_JSON_SQL
        ", runs_total FROM sweep_cells WHERE sweep_id = ? ORDER BY ordinal");
    s.Bind(sweep_id);
    std::vector<SweepCellRecord> out;
    Status st;
    while (s.Step(&st)) {
      out.push_back({static_cast<int>(s.Int(0)), s.Text(1), s.Text(2), s.Text(3), s.Text(4),
                     static_cast<int>(s.Int(5))});
    }
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<SweepOutcomeRecord>> ListSweepOutcomes(const std::string& sweep_id,
                                                              int k) override {
    Statement s(cache_.get(),
                "SELECT cell_ordinal, CASE WHEN summary_k != ?2 THEN run_id END, summary_k, "
                "final_test_error, last_k_test_error, param_count FROM sweep_outcomes "
                "WHERE sweep_id = ?1 ORDER BY cell_ordinal, position");
    s.Bind(sweep_id).Bind(k);
    std::vector<SweepOutcomeRecord> out;
    Status st;
    while (s.Step(&st)) {
      out.push_back({static_cast<int>(s.Int(0)), s.Text(1), static_cast<int>(s.Int(2)), s.Real(3),
                     s.Real(4), s.Int(5)});
    }
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<StatisticsEntryRecord>> ListSweepStatistics(
      const std::string& sweep_id) override {
    Statement s(cache_.get(), "SELECT rowid, key, value FROM sweep_statistics WHERE sweep_id = ?");
    s.Bind(sweep_id);
    std::vector<StatisticsEntryRecord> out;
    Status st;
    while (s.Step(&st)) out.push_back({s.Int(0), s.Blob(1), s.Blob(2)});
    if (!st.ok()) return st;
    return out;
  }

  Status UpdateSweepStatistics(const std::string& sweep_id, int64_t version,
                               const std::vector<StatisticsEntryRecord>& added,
                               const std::vector<int64_t>& removed) override {
    return RunInTransaction([&]() -> Status {
      {
        Statement s(cache_.get(), "DELETE FROM sweep_statistics WHERE rowid = ? AND sweep_id = ?");
        for (int64_t id : removed) {
          s.Reset();
          s.Bind(id).Bind(sweep_id);
          RESWEEP_RETURN_IF_ERROR(s.Run());
        }
      }
      {
        Statement s(cache_.get(),
                    "INSERT INTO sweep_statistics (sweep_id, key, value) VALUES (?, ?, ?)");
        for (const auto& e : added) {
          s.Reset();
          s.Bind(sweep_id).BindBlob(e.key).BindBlob(e.value);
          RESWEEP_RETURN_IF_ERROR(s.Run());
        }
      }
      Statement s(cache_.get(),
                  "UPDATE sweep_counters SET statistics_version = ? WHERE sweep_id = ?");
      s.Bind(version).Bind(sweep_id);
      return s.Run();
    });
  }

  StatusOr<std::vector<std::pair<std::string, int64_t>>> SweepsWithStaleStatistics(
      int limit) override {
    Statement s(cache_.get(),
                "SELECT c.sweep_id, c.outcomes_version FROM sweep_counters c "
                "JOIN sweeps s ON s.sweep_id = c.sweep_id "
                "WHERE c.statistics_version != c.outcomes_version "
                "ORDER BY s.created_ms, s.rowid LIMIT ?");
    s.Bind(limit);
    std::vector<std::pair<std::string, int64_t>> out;
    Status st;
    while (s.Step(&st)) out.emplace_back(s.Text(0), s.Int(1));
    if (!st.ok()) return st;
    return out;
  }

  // A transaction of its own (the refresher's thread may call it while a batch of
  // worker calls is open: a bare statement would join the batch, and go with it).
  StatusOr<int> MarkStatisticsOfOtherVersionsStale(char version) override {
    int marked = 0;
    RESWEEP_RETURN_IF_ERROR(RunInTransaction([&]() -> Status {
      Statement s(cache_.get(),
                  "UPDATE sweep_counters SET statistics_version = -1 WHERE sweep_id IN "
                  "(SELECT DISTINCT sweep_id FROM sweep_statistics WHERE substr(key, 2, 1) != ?)");
      s.BindBlob(std::string(1, version));
      RESWEEP_RETURN_IF_ERROR(s.Run());
      marked = sqlite3_changes(db_);
      return Status::Ok();
    }));
    return marked;
  }

  StatusOr<std::optional<int64_t>> SweepChangeStamp(const std::string& sweep_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT c.change_stamp FROM sweeps s JOIN sweep_counters c "
                "ON c.sweep_id = s.sweep_id WHERE s.sweep_id = ?");
    s.Bind(sweep_id);
    Status st;
    if (s.Step(&st)) return std::optional<int64_t>(s.Int(0));
    if (!st.ok()) return st;
    return std::optional<int64_t>();
  }

  StatusOr<int64_t> SweepOutcomesVersion(const std::string& sweep_id) override {
    Statement s(cache_.get(), "SELECT outcomes_version FROM sweep_counters WHERE sweep_id = ?");
    s.Bind(sweep_id);
    Status st;
    if (s.Step(&st)) return s.Int(0);
    if (!st.ok()) return st;
    return NotFoundError("no sweep " + sweep_id);
  }

  StatusOr<std::vector<double>> LastKTestErrors(const std::vector<std::string>& run_ids,
                                                int k) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT test_error FROM epochs WHERE run_id = ? AND test_error >= 0 "
                "ORDER BY epoch DESC LIMIT ?");
    std::vector<double> out;
    out.reserve(run_ids.size());
    for (const auto& id : run_ids) {
      s.Reset();
      s.Bind(id).Bind(k);
      double sum = 0;
      int n = 0;
      Status st;
      while (s.Step(&st)) {
        sum += s.Real(0);
        ++n;
      }
      if (!st.ok()) return st;
      out.push_back(n ? sum / n : -1.0);
    }
    return out;
  }

  StatusOr<std::vector<std::string>> RunIdsWithPrefix(const std::string& prefix,
                                                      int limit) override {
    // A range scan on the primary key (GLOB/LIKE would interpret '*', '%' in the prefix).
    // Run ids are lowercase hex, so prefix + "~" bounds the range from above.
    Statement s(cache_.get(),
                "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? AND "
                "substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT ?");
    s.Bind(prefix).Bind(prefix + "~").Bind(static_cast<int64_t>(prefix.size())).Bind(prefix);
    s.Bind(limit);
    std::vector<std::string> out;
    Status st;
    while (s.Step(&st)) out.push_back(s.Text(0));
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<SweepRunRecord>> LinksOfRun(const std::string& run_id) override {
    Statement s(
        cache_.get(),
        "SELECT " RESWEEP_LINK_COLUMNS_SQL
        " FROM sweep_runs l JOIN sweeps w ON w.sweep_id = l.sweep_id" RESWEEP_LINK_CELL_JOIN_SQL
        " WHERE l.run_id = ? ORDER BY w.created_ms, w.sweep_id");
    s.Bind(run_id);
    std::vector<SweepRunRecord> out;
    Status st;
    while (s.Step(&st)) out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)});
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<std::pair<std::string, std::string>>> ListLeaseHolders() override {
    // Without applying the log: it changes no run's state or worker.
    Statement s(cache_.get(),
                "SELECT run_id, worker_id FROM runs WHERE worker_id != '' AND "
                "state IN ('leased', 'running') ORDER BY worker_id, run_id");
    std::vector<std::pair<std::string, std::string>> out;
    Status st;
    while (s.Step(&st)) out.emplace_back(s.Text(0), s.Text(1));
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::vector<LeaseThroughput>> ListLeaseThroughput() override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT r.run_id, r.worker_id, IFNULL(e.images_per_sec, 0) FROM runs r "
                "LEFT JOIN epochs e ON e.run_id = r.run_id AND e.epoch = r.epoch "
                "AND e.attempt = r.attempt WHERE r.worker_id != '' AND "
                "r.state IN ('leased', 'running') ORDER BY r.worker_id, r.run_id");
    std::vector<LeaseThroughput> out;
    Status st;
    while (s.Step(&st)) out.push_back({s.Text(0), s.Text(1), s.Real(2)});
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<std::optional<SweepRunRecord>> FirstLinkOfRun(const std::string& run_id) override {
    Statement s(
        cache_.get(),
        "SELECT " RESWEEP_LINK_COLUMNS_SQL
        " FROM sweep_runs l JOIN sweeps w ON w.sweep_id = l.sweep_id" RESWEEP_LINK_CELL_JOIN_SQL
        " WHERE l.run_id = ? ORDER BY w.created_ms LIMIT 1");
    s.Bind(run_id);
    Status st;
    if (s.Step(&st)) {
      return std::optional<SweepRunRecord>(
          SweepRunRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)});
    }
    if (!st.ok()) return st;
    return std::optional<SweepRunRecord>();
  }

  StatusOr<int> CountOtherActiveSweeps(const std::string& run_id,
                                       const std::string& except_sweep_id) override {
    Statement s(cache_.get(),
                "SELECT COUNT(*) FROM sweep_runs l JOIN sweeps w ON w.sweep_id = l.sweep_id "
                "WHERE l.run_id = ? AND l.sweep_id != ? AND w.cancelled = 0");
    s.Bind(run_id).Bind(except_sweep_id);
    Status st;
    if (s.Step(&st)) return static_cast<int>(s.Int(0));
    if (!st.ok()) return st;
    return 0;
  }

  Status InsertAttempt(const AttemptRecord& a) override {
    Statement s(cache_.get(),
                "INSERT INTO attempts (run_id, attempt, worker_id, state, started_ms, ended_ms, "
                "reason) VALUES (?,?,?,?,?,?,?)");
    s.Bind(a.run_id).Bind(a.attempt).Bind(a.worker_id).Bind(a.state).Bind(a.started_ms);
    s.Bind(a.ended_ms).Bind(a.reason);
    return s.Run();
  }

  Status UpdateAttempt(const std::string& run_id, int attempt, const std::string& state,
                       int64_t ended_ms, const std::string& reason) override {
    Statement s(cache_.get(),
                "UPDATE attempts SET state = ?, ended_ms = ?, reason = ? "
                "WHERE run_id = ? AND attempt = ?");
    s.Bind(state).Bind(ended_ms).Bind(reason).Bind(run_id).Bind(attempt);
    RESWEEP_RETURN_IF_ERROR(s.Run());
    if (sqlite3_changes(db_) != 1) {
      return NotFoundError("no attempt " + std::to_string(attempt) + " of run " + run_id);
    }
    return Status::Ok();
  }

  StatusOr<std::vector<AttemptRecord>> ListAttempts(const std::string& run_id) override {
    Statement s(cache_.get(),
                "SELECT run_id, attempt, worker_id, state, started_ms, ended_ms, reason, log_tail "
                "FROM attempts WHERE run_id = ? ORDER BY attempt");
    s.Bind(run_id);
    std::vector<AttemptRecord> out;
    Status st;
    while (s.Step(&st)) {
      out.push_back({s.Text(0), static_cast<int>(s.Int(1)), s.Text(2), s.Text(3), s.Int(4),
                     s.Int(5), s.Text(6), s.Text(7)});
    }
    if (!st.ok()) return st;
    return out;
  }

  Status SetAttemptLogTail(const std::string& run_id, int attempt,
                           const std::string& log_tail) override {
    Statement s(cache_.get(), "UPDATE attempts SET log_tail = ? WHERE run_id = ? AND attempt = ?");
    s.Bind(log_tail).Bind(run_id).Bind(attempt);
    return s.Run();
  }

  Status PutEpoch(const EpochRecord& e, const std::string& worker_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    return RunInTransaction([&]() -> Status {
      Statement s(cache_.get(),
                  "INSERT OR REPLACE INTO epochs (run_id, epoch, attempt, train_loss, train_error, "
                  "test_error, test_loss, lr, seconds, images_per_sec) "
                  "SELECT ?,?,?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ? "
                  "AND attempt = ? AND worker_id = ? AND state IN ('leased', 'running'))");
      s.Bind(e.run_id).Bind(e.epoch).Bind(e.attempt).Bind(e.train_loss).Bind(e.train_error);
      s.Bind(e.test_error).Bind(e.test_loss).Bind(e.lr).Bind(e.seconds).Bind(e.images_per_sec);
      s.Bind(e.run_id).Bind(e.attempt).Bind(worker_id);
      RESWEEP_RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) != 1) {
        return FenceRefusal(e.run_id, e.attempt, worker_id, "leased or running");
      }
      // The epoch may replace one with other values and leave the run's row as it was:
      // no trigger fires, so the stamps move here.
      Statement stamp(cache_.get(),
                      "UPDATE sweep_counters SET change_stamp = change_stamp + 1 "
                      "WHERE sweep_id IN (SELECT sweep_id FROM sweep_runs WHERE run_id = ?)");
      stamp.Bind(e.run_id);
      RESWEEP_RETURN_IF_ERROR(stamp.Run());
      return RecomputeSummary(e.run_id);
    });
  }

  Status AppendEpoch(const RunRecord& r, const EpochRecord& e) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    if (r.read_as.attempt < 0) {
      return InvalidArgumentError("run " + r.run_id +
                                  ": AppendEpoch of a record not read from the store");
    }
    if (r.epoch != e.epoch || r.run_id != e.run_id || r.attempt != e.attempt ||
        r.read_as.attempt != e.attempt || !HoldsLease(r.state)) {
      return InvalidArgumentError("run " + r.run_id + " attempt " + std::to_string(r.attempt) +
                                  " (read as " + std::to_string(r.read_as.attempt) + ") epoch " +
                                  std::to_string(r.epoch) + " " + RunStateName(r.state) +
                                  ": AppendEpoch of run " + e.run_id + " attempt " +
                                  std::to_string(e.attempt) + " epoch " + std::to_string(e.epoch));
    }
    return RunInTransaction([&]() -> Status {
      // One UPDATE of the run, fenced, that also keeps its results summary.
      Statement update(cache_.get(),
                       "UPDATE runs SET state = ?1, epoch = ?2, last_test_error = ?3, "
                       "lease_expires_ms = ?4, updated_ms = ?5, last_epoch_seconds = ?6, "
                       "" RESWEEP_APPENDED_SUMMARY_SQL
                       " WHERE run_id = ?8 AND attempt = ?9 AND worker_id = ?10 AND state = ?11 "
                       "AND state IN ('leased', 'running') AND epoch = ?2 - 1");
      update.Bind(RunStateName(r.state)).Bind(e.epoch).Bind(r.last_test_error);
      update.Bind(r.lease_expires_ms).Bind(r.updated_ms).Bind(e.seconds).Bind(e.test_error);
      update.Bind(r.run_id).Bind(r.read_as.attempt).Bind(r.read_as.worker_id);
      update.Bind(RunStateName(r.read_as.state));
      RESWEEP_RETURN_IF_ERROR(update.Run());
      if (sqlite3_changes(db_) != 1) return AppendRefusal(r, e.epoch);
      return InsertEpoch(e);
    });
  }

  StatusOr<bool> AppendNextEpoch(const std::string& worker_id, const EpochRecord& e,
                                 int64_t lease_expires_ms, int64_t updated_ms) override {
    if (InOwnBatch()) {
      // The hot path of a batch: one INSERT at the end of epoch_log, fenced in the
      // same statement on the run (running on this attempt under this worker, with
      // room for the epoch). The previous epoch is the run's last one in the log
      // (epoch_log_last_), else its row's. Nothing else is written until the log is
      // applied (ApplyEpochLog), and no savepoint: the statement is atomic on its own.
      RESWEEP_RETURN_IF_ERROR(BatchNotFailed());
      bool previous_in_log = false;
      if (auto it = epoch_log_last_.find(e.run_id); it != epoch_log_last_.end()) {
        if (it->second != e.epoch - 1) return false;
        previous_in_log = true;
      } else if (!epoch_log_exact_) {
        return false;  // the log may hold this run's epochs: the caller's read applies it
      }
      Statement append(cache_.get(),
                       "INSERT INTO epoch_log (run_id, epoch, attempt, train_loss, train_error, "
                       "test_error, test_loss, lr, seconds, images_per_sec, lease_expires_ms, "
                       "updated_ms) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 "
                       "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND attempt = ?3 "
                       "AND worker_id = ?13 AND state = 'running' AND epochs_total >= ?2 "
                       "AND (?14 OR epoch = ?2 - 1))");
      append.Bind(e.run_id).Bind(e.epoch).Bind(e.attempt).Bind(e.train_loss);
      append.Bind(e.train_error).Bind(e.test_error).Bind(e.test_loss).Bind(e.lr);
      append.Bind(e.seconds).Bind(e.images_per_sec).Bind(lease_expires_ms).Bind(updated_ms);
      append.Bind(worker_id).Bind(previous_in_log ? 1 : 0);
      RESWEEP_RETURN_IF_ERROR(append.Run());
      if (sqlite3_changes(db_) != 1) return false;
      epoch_log_last_[e.run_id] = e.epoch;
      epoch_log_pending_ = true;
      epoch_log_unpublished_ = true;
      ++epoch_log_appends_since_apply_;
      if (epoch_log_rows_ >= 0) ++epoch_log_rows_;
      return true;
    }
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    bool appended = false;
    RESWEEP_RETURN_IF_ERROR(RunInTransaction([&]() -> Status {
      RESWEEP_ASSIGN_OR_RETURN(const bool updated,
                               UpdateRunForNextEpoch(worker_id, e, lease_expires_ms, updated_ms));
      if (!updated) return Status::Ok();
      RESWEEP_RETURN_IF_ERROR(InsertEpoch(e));
      appended = true;
      return Status::Ok();
    }));
    return appended;
  }

  StatusOr<bool> RenewLease(const std::string& worker_id, const std::string& run_id, int attempt,
                            int64_t lease_expires_ms, int64_t updated_ms) override {
    // Neither column is one that run_counted watches nor one that the log's apply
    // overwrites with an older value (it keeps the later of the two).
    Statement s(cache_.get(),
                "UPDATE runs SET lease_expires_ms = MAX(lease_expires_ms, ?4), "
                "updated_ms = MAX(updated_ms, ?5) WHERE run_id = ?1 AND attempt = ?2 "
                "AND worker_id = ?3 AND state IN ('leased', 'running')");
    s.Bind(run_id).Bind(attempt).Bind(worker_id).Bind(lease_expires_ms).Bind(updated_ms);
    RESWEEP_RETURN_IF_ERROR(s.Run());
    return sqlite3_changes(db_) == 1;
  }

  bool HoldsUnappliedEpochs() const override { return epoch_log_unpublished_; }
  void SetReadOnly() { read_only_ = true; }
  Status ApplyLoggedEpochs() override {
    if (!epoch_log_unpublished_) return Status::Ok();
    // Also when this connection applied the log already, in a batch of another thread
    // not committed yet: this transaction commits that batch first (RunInTransaction).
    return RunInTransaction(
        [&]() -> Status { return epoch_log_pending_ ? ApplyEpochLog() : Status::Ok(); });
  }

  // Epochs logged but not applied when the last writer closed (it crashed).
  Status ApplyEpochLogLeftByLastClose() {
    Statement any(cache_.get(), "SELECT EXISTS (SELECT 1 FROM epoch_log)");
    Status st;
    const bool left = any.Step(&st) && any.Int(0) != 0;
    RESWEEP_RETURN_IF_ERROR(st);
    if (!left) return Status::Ok();
    spdlog::info("store: applying the epochs logged before the last close");
    ForgetEpochLogPositions();
    return ApplyEpochLogBeforeAccess();
  }

  // When batches apply the log (SqliteStoreOptions).
  void SetEpochLogDeferral(int defer_after, double defer_rate, int apply_rows,
                           int apply_interval_ms) {
    epoch_log_defer_after_ = defer_after;
    epoch_log_defer_rate_ = defer_rate;
    epoch_log_apply_rows_ = std::max(1, apply_rows);
    epoch_log_apply_interval_ = std::chrono::milliseconds(apply_interval_ms);
  }

  // Before a call on this connection reads or writes what the log changes (whole run
  // records, epochs, the sweeps' epoch counters and change stamps): applies the log, in
  // the caller's transaction (a savepoint of it) or in one of its own. Calls that read
  // only sweeps, links, cells, attempts, statistics, outcomes or runs' states and
  // workers (which the log never changes) do not.
  Status ApplyEpochLogBeforeAccess() {
    if (!epoch_log_pending_) return Status::Ok();
    return RunInTransaction([&]() -> Status { return ApplyEpochLog(); });
  }

  // Moves the rows of epoch_log (the oldest `max_rows` of them; all when 0) to
  // `epochs` and to their runs (epoch, last test error, last epoch's seconds, results
  // summary, lease and update times, never earlier than stored), one UPDATE per run,
  // which run_counted counts into the run's sweeps, and deletes them. In the open
  // transaction; a rollback of it (or of a savepoint around it) brings the rows back
  // and calls ForgetEpochLogPositions.
  Status ApplyEpochLog(int64_t max_rows = 0) {
    int64_t last_rowid = std::numeric_limits<int64_t>::max();
    if (max_rows > 0) {
      Statement first(cache_.get(), "SELECT MIN(rowid) FROM epoch_log");
      Status st;
      if (first.Step(&st)) last_rowid = first.Int(0) + max_rows - 1;
      RESWEEP_RETURN_IF_ERROR(st);
    }
    Statement move(cache_.get(),
                   "INSERT OR REPLACE INTO epochs (run_id, epoch, attempt, train_loss, "
                   "train_error, test_error, test_loss, lr, seconds, images_per_sec) "
                   "SELECT run_id, epoch, attempt, train_loss, train_error, test_error, "
                   "test_loss, lr, seconds, images_per_sec FROM epoch_log WHERE rowid <= ? "
                   "ORDER BY run_id, epoch, rowid");
    move.Bind(last_rowid);
    RESWEEP_RETURN_IF_ERROR(move.Run());
    {
      // Per run, its last row (the bare columns of the row with the greatest rowid).
      Statement last(cache_.get(),
                     "SELECT run_id, MAX(rowid), epoch, seconds, lease_expires_ms, updated_ms "
                     "FROM epoch_log WHERE rowid <= ? GROUP BY run_id");
      last.Bind(last_rowid);
      Statement update(
          cache_.get(),
          "UPDATE runs SET epoch = ?2, last_test_error = COALESCE((SELECT test_error FROM "
          "epochs WHERE run_id = ?1 AND epoch > runs.epoch AND epoch <= ?2 AND test_error >= 0 "
          "ORDER BY epoch DESC LIMIT 1), last_test_error), last_epoch_seconds = ?3, "
          "lease_expires_ms = MAX(lease_expires_ms, ?4), updated_ms = MAX(updated_ms, ?5), "
          "final_test_error = COALESCE((SELECT test_error FROM epochs WHERE run_id = ?1 "
          "AND epoch <= ?2 AND test_error >= 0 ORDER BY epoch DESC LIMIT 1), -1), "
          "last_k_test_error = COALESCE((SELECT AVG(test_error) FROM (SELECT test_error FROM "
          "epochs WHERE run_id = ?1 AND epoch <= ?2 AND test_error >= 0 ORDER BY epoch DESC "
          "LIMIT (SELECT summary_k FROM runs WHERE run_id = ?1))), -1) WHERE run_id = ?1");
      Status st;
      while (last.Step(&st)) {
        update.Bind(last.Text(0)).Bind(last.Int(2)).Bind(last.Real(3)).Bind(last.Int(4));
        update.Bind(last.Int(5));
        RESWEEP_RETURN_IF_ERROR(update.Run());
        update.Reset();
      }
      RESWEEP_RETURN_IF_ERROR(st);
    }
    Statement remove(cache_.get(), "DELETE FROM epoch_log WHERE rowid <= ?");
    remove.Bind(last_rowid);
    RESWEEP_RETURN_IF_ERROR(remove.Run());
    const int64_t applied = sqlite3_changes(db_);
    epoch_log_appends_since_apply_ = 0;
    last_epoch_log_apply_ = std::chrono::steady_clock::now();
    if (max_rows > 0 && (epoch_log_rows_ < 0 || applied < epoch_log_rows_)) {
      // Rows may be left: each run's last logged epoch stays as it was (a run whose
      // rows are all applied is at that epoch now).
      if (epoch_log_rows_ >= 0) epoch_log_rows_ -= applied;
      return Status::Ok();
    }
    epoch_log_last_.clear();
    epoch_log_exact_ = true;
    epoch_log_pending_ = false;
    epoch_log_rows_ = 0;
    return Status::Ok();
  }

  // After a rollback that may have taken appends to the log or an apply of it back:
  // what the log holds is no longer known here. AppendNextEpoch refuses every run
  // until the next apply (the caller reads the run, which applies the log first).
  void ForgetEpochLogPositions() {
    if (read_only_) return;  // it never logs (nor could it apply)
    epoch_log_last_.clear();
    epoch_log_exact_ = false;
    epoch_log_pending_ = true;
    epoch_log_unpublished_ = true;
    epoch_log_rows_ = -1;
  }

  // Ends the open transaction, if SQLite has not already, after a failure the caller
  // reports; what the log holds is then no longer known here.
  void RollBack() {
    if (!sqlite3_get_autocommit(db_)) Exec("ROLLBACK").IgnoreError();
    ForgetEpochLogPositions();
  }

  // After a commit (the outermost transaction's, or a batch's): what other
  // connections see of the log is what this one knows of it.
  void PublishEpochLogState() { epoch_log_unpublished_ = epoch_log_pending_; }

  // Whether the open batch's transaction is gone: rolled back after an earlier
  // failure, or by SQLite itself after a bare statement (AppendNextEpoch's INSERT, a
  // write of another thread that joins the batch) failed (a full disk, an I/O error),
  // which no call of the batch noticed. The latter is noted in batch_error_ from then
  // on: whatever came after it would be written in autocommit and stand while the
  // batch fails (a logged epoch whose predecessors in the log are lost with it).
  bool BatchLost() {
    if (!batch_error_ && sqlite3_get_autocommit(db_)) {
      ForgetEpochLogPositions();
      batch_error_ = UnavailableError("the batch's transaction was rolled back by the database");
    }
    return batch_error_.has_value();
  }

  // Inside a batch: UNAVAILABLE once its transaction is gone (BatchLost).
  Status BatchNotFailed() {
    if (!BatchLost()) return Status::Ok();
    return UnavailableError("the batch's transaction was rolled back after an earlier failure (" +
                            batch_error_->ToString() + ")");
  }

  // The batch's owner, inside it (the batch's transaction is its own).
  bool InOwnBatch() const {
    return batch_owner_ && *batch_owner_ == std::this_thread::get_id() && depth_ == 1;
  }

  // AppendNextEpoch's compare-and-set on the run outside a batch: whether it matched
  // (and moved).
  StatusOr<bool> UpdateRunForNextEpoch(const std::string& worker_id, const EpochRecord& e,
                                       int64_t lease_expires_ms, int64_t updated_ms) {
    Statement update(cache_.get(),
                     "UPDATE runs SET epoch = ?2, "
                     "last_test_error = CASE WHEN ?7 >= 0 THEN ?7 ELSE last_test_error END, "
                     "lease_expires_ms = ?4, updated_ms = ?5, last_epoch_seconds = ?6, "
                     "" RESWEEP_APPENDED_SUMMARY_SQL
                     " WHERE run_id = ?8 AND attempt = ?9 AND worker_id = ?10 AND state = ?1 "
                     "AND epoch = ?3 AND epochs_total >= ?2");
    update.Bind(RunStateName(RunState::kRunning)).Bind(e.epoch).Bind(e.epoch - 1);
    update.Bind(lease_expires_ms).Bind(updated_ms).Bind(e.seconds).Bind(e.test_error);
    update.Bind(e.run_id).Bind(e.attempt).Bind(worker_id);
    RESWEEP_RETURN_IF_ERROR(update.Run());
    return sqlite3_changes(db_) == 1;
  }

  Status InsertEpoch(const EpochRecord& e) {
    Statement insert(cache_.get(),
                     "INSERT OR REPLACE INTO epochs (run_id, epoch, attempt, train_loss, "
                     "train_error, test_error, test_loss, lr, seconds, images_per_sec) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?)");
    insert.Bind(e.run_id).Bind(e.epoch).Bind(e.attempt).Bind(e.train_loss);
    insert.Bind(e.train_error).Bind(e.test_error).Bind(e.test_loss).Bind(e.lr);
    insert.Bind(e.seconds).Bind(e.images_per_sec);
    return insert.Run();
  }

  // Why AppendEpoch's compare-and-set changed nothing: the fence (as FenceRefusal),
  // else the stored epoch.
  Status AppendRefusal(const RunRecord& r, int epoch) {
    auto now = GetRun(r.run_id);
    if (!now.ok()) return now.status();
    if (!now->has_value()) return NotFoundError("run " + r.run_id + " not found");
    const RunRecord& stored = **now;
    if (!HoldsLease(stored.state)) {
      return FailedPreconditionError("run " + r.run_id + " is " + RunStateName(stored.state) +
                                     ": no lease to record epoch " + std::to_string(epoch) +
                                     " under");
    }
    if (stored.attempt == r.read_as.attempt && stored.worker_id == r.read_as.worker_id &&
        stored.state == r.read_as.state) {
      return FailedPreconditionError("run " + r.run_id + " is at epoch " +
                                     std::to_string(stored.epoch) + ": epoch " +
                                     std::to_string(epoch) + " is not its next one");
    }
    return FenceRefusal(r.run_id, r.read_as.attempt, r.read_as.worker_id,
                        RunStateName(r.read_as.state));
  }

  Status DeleteEpochsAfter(const std::string& run_id, int epoch) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    return RunInTransaction([&]() -> Status {
      Statement s(cache_.get(), "DELETE FROM epochs WHERE run_id = ? AND epoch > ?");
      s.Bind(run_id).Bind(epoch);
      RESWEEP_RETURN_IF_ERROR(s.Run());
      return RecomputeSummary(run_id);
    });
  }

  StatusOr<std::vector<EpochRecord>> ListEpochs(const std::string& run_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT run_id, epoch, attempt, train_loss, train_error, test_error, test_loss, "
                "lr, seconds, images_per_sec FROM epochs WHERE run_id = ? ORDER BY epoch");
    s.Bind(run_id);
    return ReadEpochs(s);
  }

  StatusOr<std::vector<EpochRecord>> ListSweepEpochs(const std::string& sweep_id) override {
    RESWEEP_RETURN_IF_ERROR(ApplyEpochLogBeforeAccess());
    Statement s(cache_.get(),
                "SELECT e.run_id, e.epoch, e.attempt, e.train_loss, e.train_error, e.test_error, "
                "e.test_loss, e.lr, e.seconds, e.images_per_sec FROM epochs e "
                "JOIN sweep_runs l ON l.run_id = e.run_id WHERE l.sweep_id = ? "
                "ORDER BY e.run_id, e.epoch");
    s.Bind(sweep_id);
    return ReadEpochs(s);
  }

  // Reads the rows of an epochs query selecting the columns of ListEpochs, in order.
  static StatusOr<std::vector<EpochRecord>> ReadEpochs(Statement& s) {
    std::vector<EpochRecord> out;
    Status st;
    while (s.Step(&st)) {
      EpochRecord e;
      e.run_id = s.Text(0);
      e.epoch = static_cast<int>(s.Int(1));
      e.attempt = static_cast<int>(s.Int(2));
      e.train_loss = s.Real(3);
      e.train_error = s.Real(4);
      e.test_error = s.Real(5);
      e.test_loss = s.Real(6);
      e.lr = s.Real(7);
      e.seconds = s.Real(8);
      e.images_per_sec = s.Real(9);
      out.push_back(e);
    }
    if (!st.ok()) return st;
    return out;
  }

  Status UpsertWorker(const WorkerRecord& w) override {
    Statement s(cache_.get(),
                "INSERT OR REPLACE INTO workers (worker_id, name, host, devices, registered_ms, "
                "last_seen_ms, identity_digest) VALUES (?,?,?,?,?,?,?)");
    s.Bind(w.worker_id).Bind(w.name).Bind(w.host).Bind(w.devices).Bind(w.registered_ms);
    s.Bind(w.last_seen_ms).Bind(w.identity_digest);
    return s.Run();
  }

  Status DeleteWorker(const std::string& worker_id) override {
    Statement s(cache_.get(), "DELETE FROM workers WHERE worker_id = ?");
    s.Bind(worker_id);
    return s.Run();
  }

  StatusOr<std::optional<WorkerRecord>> GetWorker(const std::string& worker_id) override {
    Statement s(
        cache_.get(),
        "SELECT worker_id, name, host, devices, registered_ms, last_seen_ms, identity_digest "
        "FROM workers "
        "WHERE worker_id = ?");
    s.Bind(worker_id);
    Status st;
    if (s.Step(&st)) {
      return std::optional<WorkerRecord>(
          WorkerRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4), s.Int(5), s.Text(6)});
    }
    if (!st.ok()) return st;
    return std::optional<WorkerRecord>();
  }

  Status TouchWorker(const std::string& worker_id, int64_t now_ms) override {
    Statement s(cache_.get(), "UPDATE workers SET last_seen_ms = ? WHERE worker_id = ?");
    s.Bind(now_ms).Bind(worker_id);
    return s.Run();
  }

  StatusOr<std::vector<WorkerRecord>> ListWorkers() override {
    Statement s(
        cache_.get(),
        "SELECT worker_id, name, host, devices, registered_ms, last_seen_ms, identity_digest "
        "FROM workers "
        "ORDER BY name, worker_id");
    std::vector<WorkerRecord> out;
    Status st;
    while (s.Step(&st)) {
      out.push_back(
          WorkerRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4), s.Int(5), s.Text(6)});
    }
    if (!st.ok()) return st;
    return out;
  }

  StatusOr<WorkerHealthRecord> GetWorkerHealth(const std::string& worker_id) override {
    Statement s(cache_.get(),
                "SELECT consecutive_host_faults, quarantine_level, quarantined_until_ms, "
                "last_fault FROM worker_health WHERE worker_id = ?");
    s.Bind(worker_id);
    WorkerHealthRecord h;
    h.worker_id = worker_id;
    Status st;
    if (s.Step(&st)) {
      h.consecutive_host_faults = static_cast<int>(s.Int(0));
      h.quarantine_level = static_cast<int>(s.Int(1));
      h.quarantined_until_ms = s.Int(2);
      h.last_fault = s.Text(3);
    }
    if (!st.ok()) return st;
    return h;
  }

  Status PutWorkerHealth(const WorkerHealthRecord& h) override {
    Statement s(cache_.get(),
                "INSERT OR REPLACE INTO worker_health (worker_id, consecutive_host_faults, "
                "quarantine_level, quarantined_until_ms, last_fault) VALUES (?,?,?,?,?)");
    s.Bind(h.worker_id).Bind(h.consecutive_host_faults).Bind(h.quarantine_level);
    s.Bind(h.quarantined_until_ms).Bind(h.last_fault);
    return s.Run();
  }

  StatusOr<std::vector<WorkerHealthRecord>> ListWorkerHealth() override {
    Statement s(cache_.get(),
                "SELECT worker_id, consecutive_host_faults, quarantine_level, "
                "quarantined_until_ms, last_fault FROM worker_health ORDER BY worker_id");
    std::vector<WorkerHealthRecord> out;
    Status st;
    while (s.Step(&st)) {
      out.push_back(
          {s.Text(0), static_cast<int>(s.Int(1)), static_cast<int>(s.Int(2)), s.Int(3), s.Text(4)});
    }
    if (!st.ok()) return st;
    return out;
  }

 private:
  // Binds kRunInsertColumns, `r`'s strings uncopied (it must outlive the statement's
  // next reset). A run whose config is `shared` (in run_configs under its config_key)
  // keeps no config of its own; any other keeps its own copy, under a NULL key.
  static void BindRun(Statement& s, const RunRecord& r, bool shared) {
    s.BindUncopied(r.run_id);
    if (shared) {
      s.BindUncopied(r.config_key).Bind("");
    } else {
      s.BindNull().BindUncopied(r.config_json);
    }
    s.Bind(r.seed).Bind(RunStateName(r.state));
    s.Bind(r.attempt).Bind(r.failures).Bind(r.max_attempts).BindUncopied(r.worker_id);
    s.Bind(r.lease_expires_ms).Bind(r.epoch).Bind(r.epochs_total).Bind(r.last_test_error);
    s.Bind(r.checkpoint_epoch).Bind(r.param_count).BindUncopied(r.error).Bind(r.queue_position);
    s.Bind(r.created_ms).Bind(r.updated_ms).BindUncopied(r.checkpoint_path);
    s.Bind(r.checkpoint_iteration);
    s.Bind(r.summary_k).Bind(r.final_test_error).Bind(r.last_k_test_error);
  }

  // Runs one statement without results, prepared once and kept in the cache.
  Status RunCached(std::string sql) {
    Statement s(cache_.get(), std::move(sql));
    return s.Run();
  }

  Status RunBody(const std::function<Status()>& body) {
    try {
      return body();
    } catch (const std::exception& e) {
      return InternalError(std::string("exception in transaction: ") + e.what());
    }
  }

  // One level inside an open transaction: kept (RELEASE) when `body` returns OK,
  // else rolled back alone (ROLLBACK TO, then RELEASE).
  Status RunSavepoint(const std::function<Status()>& body) {
    const std::string name = "level" + std::to_string(depth_);
    // SAVEPOINT and RELEASE run once per batched call: prepared once, not parsed anew.
    RESWEEP_RETURN_IF_ERROR(RunCached("SAVEPOINT " + name));
    ++depth_;
    Status st = RunBody(body);
    --depth_;
    if (!st.ok() || sqlite3_get_autocommit(db_)) ForgetEpochLogPositions();
    if (sqlite3_get_autocommit(db_)) {
      // SQLite rolled the whole transaction back after a failure inside `body`.
      if (st.ok()) st = UnavailableError("the transaction was rolled back by the database");
      if (batch_owner_ && !batch_error_) batch_error_ = st;
      return st;
    }
    if (st.ok()) {
      st = RunCached("RELEASE " + name);
      if (st.ok()) return st;
    }
    ForgetEpochLogPositions();
    Status undone = Exec(("ROLLBACK TO " + name).c_str());
    if (undone.ok()) undone = Exec(("RELEASE " + name).c_str());
    if (!undone.ok() && batch_owner_ && !batch_error_) batch_error_ = undone;
    return st;
  }

  // Another thread's transaction while a batch is open between two of its owner's
  // calls (see Store::BeginBatch): the batch so far is committed, this one runs as a
  // transaction of its own and is synced, so that it is durable when it returns, and
  // the batch goes on in a new transaction. Not as a savepoint of the batch's
  // transaction: SQLite keeps the original of every page a savepoint changes until it
  // ends, in memory (temp_store = MEMORY), and each statement's end walks that
  // journal, so that a big one (cancelling, retrying or deleting a big sweep while
  // workers report) took memory in proportion and time quadratic in its size.
  Status RunForeignTransactionInBatch(const std::function<Status()>& body) {
    const bool batch_lost = BatchLost();  // nothing of it to commit
    if (!batch_lost) {
      Status commit = Exec("COMMIT");
      if (!commit.ok()) {
        RollBack();  // `commit` says why
        batch_error_ = commit;
        return commit;
      }
      PublishEpochLogState();
    }
    std::optional<std::thread::id> owner = batch_owner_;
    batch_owner_.reset();
    depth_ = 0;
    Status st = RunInTransaction(body);
    batch_owner_ = owner;
    depth_ = 1;
    if (!batch_lost) {
      if (Status begin = Exec("BEGIN IMMEDIATE"); !begin.ok()) {
        // What the batch had so far is committed; the rest of it fails.
        batch_error_ = begin;
      }
    }
    if (!st.ok()) return st;
    // Committed under the batch's synchronous=NORMAL: durable only once synced.
    return SyncCommitted();
  }

  void EndBatch() {
    batch_owner_.reset();
    batch_error_.reset();
    depth_ = 0;
    RestoreFullSync();
  }

  // Back to synchronous=FULL after a batch (outside any transaction).
  void RestoreFullSync() {
    if (wal_path_.empty() || !sqlite3_get_autocommit(db_)) return;
    if (Status st = RunCached("PRAGMA synchronous = FULL"); !st.ok()) {
      spdlog::error("store: cannot set synchronous=FULL again after a batch: {}", st.ToString());
    }
  }

  // Runs of a sweep in link order with their links; `limit` > 0 pages (links after
  // `after_position`). sweep_runs_by_sweep holds (sweep_id, rowid): the page is a
  // range scan of it, never a sort of the whole sweep.
  StatusOr<std::vector<std::pair<SweepRunRecord, RunRecord>>> SweepRuns(
      const std::string& sweep_id, std::optional<RunState> state, int64_t after_position,
      int limit) {
    std::string sql = std::string("SELECT " RESWEEP_LINK_COLUMNS_SQL ", ") + kRunColumns +
                      ", (SELECT a.worker_id FROM attempts a WHERE a.run_id = runs.run_id "
                      "ORDER BY a.attempt DESC LIMIT 1), l.rowid FROM sweep_runs l JOIN runs ON "
                      "runs.run_id = l.run_id" RESWEEP_LINK_CELL_JOIN_SQL " WHERE l.sweep_id = ?";
    if (limit > 0) sql += " AND l.rowid > ?";
    if (state) sql += " AND runs.state = ?";
    sql += " ORDER BY l.rowid";  // the sweep file's grid order (cells, then seeds)
    if (limit > 0) sql += " LIMIT ?";
    Statement s(cache_.get(), sql);
    s.Bind(sweep_id);
    if (limit > 0) s.Bind(after_position);
    if (state) s.Bind(RunStateName(*state));
    if (limit > 0) s.Bind(limit);
    std::vector<std::pair<SweepRunRecord, RunRecord>> out;
    Status st;
    while (s.Step(&st)) {
      SweepRunRecord l{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)};
      RunRecord r = ReadRun(s, 5);
      r.last_worker_id = s.Text(5 + kRunColumnCount);
      l.position = s.Int(6 + kRunColumnCount);
      out.emplace_back(std::move(l), std::move(r));
    }
    if (!st.ok()) return st;
    return out;
  }

  sqlite3* db_;
  std::unique_ptr<StatementCache> cache_;
  int depth_ = 0;  // open transaction levels (see RunInTransaction)
  // The epoch log (see ApplyEpochLog). pending: it may hold rows. exact: every run
  // it holds rows of is in epoch_log_last_, with its last logged epoch (else runs not
  // there may have some too, after a rollback).
  bool epoch_log_pending_ = false;
  // Whether other connections may miss logged epochs: set with every append, cleared
  // only once a commit has made the log's apply visible. Read by any thread.
  std::atomic<bool> epoch_log_unpublished_{false};
  bool read_only_ = false;  // a read-only connection
  bool epoch_log_exact_ = true;
  std::unordered_map<std::string, int> epoch_log_last_;
  // Rows in the log (-1: unknown, after a rollback), appends since it was last
  // applied, and when that was.
  int64_t epoch_log_rows_ = 0;
  int64_t epoch_log_appends_since_apply_ = 0;
  std::chrono::steady_clock::time_point last_epoch_log_apply_ = std::chrono::steady_clock::now();
  // A batch's commit does not try to apply the log before then (it just failed).
  std::chrono::steady_clock::time_point epoch_log_apply_retry_;
  // When the log is applied at a batch's commit (SqliteStoreOptions).
  double epoch_log_defer_rate_ = 1000;
  int64_t epoch_log_apply_rows_ = 4096;
  int64_t epoch_log_defer_after_ = 16;
  std::chrono::milliseconds epoch_log_apply_interval_{1000};
  // The thread that began the open batch, if one is open.
  std::optional<std::thread::id> batch_owner_;
  // The write-ahead log, for SyncCommitted ("" : not in WAL mode, nothing deferred).
  std::string wal_path_;
  // Serializes syncs (SyncCommitted may run on any thread); held for the fdatasync.
  // Taken before sync_failure_mutex_ when both are.
  Mutex sync_mutex_;
  int wal_fd_ RESWEEP_GUARDED_BY(sync_mutex_) = -1;
  ino_t wal_inode_ RESWEEP_GUARDED_BY(sync_mutex_) = 0;
  dev_t wal_device_ RESWEEP_GUARDED_BY(sync_mutex_) = 0;
  // Set once a sync failed, for good: Linux reports a failed write-back to one
  // fdatasync only and may drop the pages it could not write, so a later fdatasync
  // returning OK proves nothing (the log may have a hole that ends it at recovery).
  // Never held across a sync: the writer checks it as each batch begins.
  Mutex sync_failure_mutex_;
  std::optional<Status> sync_failure_ RESWEEP_GUARDED_BY(sync_failure_mutex_);
  int64_t cache_kib_ = 2000;  // SQLite's default
  int64_t bulk_cache_kib_ = 2000;
  // Checkpoints the log for this connection (a file-backed one in WAL mode).
  std::unique_ptr<WalCheckpointer> checkpointer_;
  // Set once the open batch's transaction is lost (rolled back by SQLite, or a
  // commit for another thread failed): its owner's later transactions and its
  // commit fail with it.
  std::optional<Status> batch_error_;
};

}  // namespace

int CurrentSchemaVersion() { return kSchemaVersion; }

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const SqliteStoreOptions& options) {
  sqlite3* db = nullptr;
  const int flags =
      options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status st = SqliteError(db, rc, "open " + path);
    sqlite3_close_v2(db);
    return st;
  }
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  auto store = std::make_unique<SqliteStore>(db);
  if (options.read_only) {
    store->SetReadOnly();
    RESWEEP_RETURN_IF_ERROR(store->CheckReadableVersion().WithContext(path));
  } else {
    // WAL: readers (e.g. `resweep results --db`) never block the single writer.
    // synchronous=FULL: a committed transaction survives power loss, not just a crash.
    RESWEEP_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode = WAL").WithContext(path));
    RESWEEP_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous = FULL").WithContext(path));
    RESWEEP_RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys = ON").WithContext(path));
    store->SetCacheSizes(options.writer_cache_kib, options.bulk_cache_kib);
    store->SetEpochLogDeferral(options.epoch_log_defer_after, options.epoch_log_defer_rate,
                               options.epoch_log_apply_rows, options.epoch_log_apply_ms);
    RESWEEP_RETURN_IF_ERROR(store->SetCacheKib(options.writer_cache_kib).WithContext(path));
    RESWEEP_RETURN_IF_ERROR(store->Migrate().WithContext(path));
    RESWEEP_RETURN_IF_ERROR(store->ApplyEpochLogLeftByLastClose().WithContext(path));
    // Statement journals in memory. A statement that may fail halfway through a
    // transaction (an INSERT or UPDATE that fires a trigger, above all) saves every
    // page it changes first, so that the statement alone can be undone; in a file,
    // that was two pwrite calls per page, the third of a submission's time. After
    // the migration: its statements touch whole tables.
    RESWEEP_RETURN_IF_ERROR(store->Exec("PRAGMA temp_store = MEMORY").WithContext(path));
    // Batches defer their fsync only for a file-backed database in WAL mode (an
    // in-memory one has no log file and nothing to make durable).
    if (auto mode = store->JournalMode(); mode.ok() && *mode == "wal") {
      const char* file = sqlite3_db_filename(db, "main");
      if (file && *file) {
        store->EnableDeferredSync(std::string(file) + "-wal");
        auto checkpointer =
            WalCheckpointer::Start(file, options.busy_timeout_ms, options.wal_checkpoint_frames);
        if (!checkpointer.ok()) return checkpointer.status().WithContext(path);
        store->CheckpointOnAnotherThread(std::move(*checkpointer));
      }
    }
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace resweep
