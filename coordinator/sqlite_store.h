// SQLite implementation of Store: the one place in the project with SQL.
//
// The database runs in WAL mode with synchronous=FULL, so every committed
// transaction is durable when it returns (a batch committed with
// CommitBatchBeforeSync: once SyncCommitted returns); its schema is versioned (PRAGMA user_version) and
// migrated forward on open. A read-only open never migrates and refuses a file whose
// schema it does not know.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "coordinator/store.h"

namespace resweep {

struct SqliteStoreOptions {
  bool read_only = false;
  int busy_timeout_ms = 5000;
};

// Opens (creating and migrating unless read-only) the database at `path`.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                 const SqliteStoreOptions& options = {});

// The schema version this build writes.
int CurrentSchemaVersion();

}  // namespace resweep
