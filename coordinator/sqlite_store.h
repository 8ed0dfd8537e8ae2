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
};

// Opens (creating and migrating unless read-only) the database at `path`.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const SqliteStoreOptions& options = {});

// The schema version this build writes.
int CurrentSchemaVersion();

}  // namespace resweep
