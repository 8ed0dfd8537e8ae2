// SQLite implementation of Store: the one place in the project with SQL.
//
// The database runs in WAL mode with synchronous=FULL, so every committed
// transaction is durable when it returns (a batch committed with
// CommitBatchBeforeSync: once SyncCommitted returns); its schema is versioned (PRAGMA user_version)
// and migrated forward on open. A read-only open never migrates and refuses a file whose schema it
// does not know.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/store.h"

namespace resweep {

struct SqliteStoreOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
  // Page cache of the writing connection, KiB (SQLite's default is 2,000), and its
  // size during a bulk transaction (Store::RunInBulkTransaction). A transaction that
  // touches more pages than the cache holds spills them to the WAL and reads them
  // back: a 100,000-run submission inserts into five indexes keyed by hashes (random
  // order, ~15 MiB of index pages) and with the default spent a third of its time in
  // that I/O. Pages are allocated as they are first used, up to the size; what the
  // cache holds stays allocated, so the usual size bounds the coordinator's memory.
  int64_t writer_cache_kib = 16 * 1024;
  int64_t bulk_cache_kib = 64 * 1024;
  // The write-ahead log is checkpointed (copied into the database, on a thread of its
  // own) once it holds this many frames (4 KiB pages), and written from its start
  // again once it holds four times as many (see WalCheckpointer). A page that many
  // commits change (a running run's row, the sweep's counters, the last leaf of each
  // run's epochs) is copied once per checkpoint, so under a stream of epoch reports a
  // longer log copies fewer pages: 4,000 (16 MiB, the log at most about 64 MiB) cost
  // 10-15% less CPU per report than SQLite's default of 1,000 (bench/README.md).
  // Taken between 1 and 2^24.
  int wal_checkpoint_frames = 4000;
  // Epoch reports recorded inside a batch (Store::AppendNextEpoch) are appended to a
  // log and applied to the runs, their epochs and their sweeps' counters as the batch
  // commits, unless they come at `epoch_log_defer_rate` a second or faster (counted
  // since the last apply, once `epoch_log_defer_after` have come); then in steps of the oldest
  // `epoch_log_apply_rows` once the log holds that many, and all of it once `epoch_log_apply_ms`
  // have passed, at the first commit after that. Reads on this connection always see every epoch
  // (the log is applied before them), and so do the coordinator's queries
  // (Store::ApplyLoggedEpochs); other read-only connections may see a busy writer's
  // epochs up to epoch_log_apply_ms late (longer only when no write follows). Under a
  // stream of reports, a run's row and its epochs' index page are written once per
  // apply instead of once per commit: see bench/README.md (goal 3) for what it bought.
  int epoch_log_defer_after = 16;
  double epoch_log_defer_rate = 1000;
  int epoch_log_apply_rows = 4096;
  int epoch_log_apply_ms = 1000;
};

// Opens (creating and migrating unless read-only) the database at `path`.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const SqliteStoreOptions& options = {});

// The schema version this build writes.
int CurrentSchemaVersion();

}  // namespace resweep
